"""The SQL schema, as typed SQLAlchemy 2.0 declarative models.

Alembic migrations in ``migrations/`` own the schema of a real database; these
models must describe the same tables (a test compares them). Design notes:

* ``metrics`` holds every point; ``latest_metrics`` one row per (run, key)
  with the point of the highest (step, timestamp, value), kept up to date on
  write, so a run's summary and metric searches never scan the history.
* SQL cannot store NaN and +/-inf everywhere (SQLite turns NaN into NULL,
  MySQL has neither), so ``value`` holds a finite stand-in and ``special``
  says what the value really is (see :data:`SPECIAL_NAN` ...).
* ``metrics`` is keyed by the whole point, so re-sending a point is a no-op:
  retried writes stay idempotent. On SQLite it is a WITHOUT ROWID table, so a
  series is stored in key order and reads back as one range scan.
* ``metric_rollups`` keeps each series' lowest and highest point per block of
  :data:`ROLLUP_BLOCK` steps, so a chart of a million points reads a few
  thousand rows (see :mod:`tracking.store.sql.sampling`).
* On MySQL every table uses a binary collation: keys and values compare
  case-sensitively, as on the other backends.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "LONG_TEXT",
    "ONLY_ON",
    "ROLLUP_BLOCK",
    "SPECIAL_FINITE",
    "SPECIAL_NAN",
    "SPECIAL_NEG_INF",
    "SPECIAL_POS_INF",
    "Base",
    "DatasetModel",
    "ExperimentModel",
    "ExperimentTagModel",
    "LatestMetricModel",
    "LineageModel",
    "LoggedModelMetricModel",
    "LoggedModelModel",
    "LoggedModelParamModel",
    "LoggedModelTagModel",
    "MetricModel",
    "MetricRollupModel",
    "ModelVersionModel",
    "ModelVersionTagModel",
    "ParamModel",
    "RegisteredModelAliasModel",
    "RegisteredModelModel",
    "RegisteredModelTagModel",
    "RunInputModel",
    "RunModel",
    "RunModelIOModel",
    "TagModel",
    "table_of",
]

SPECIAL_FINITE = 0
SPECIAL_NAN = 1
SPECIAL_POS_INF = 2
SPECIAL_NEG_INF = 3

#: Steps per row of ``metric_rollups``: a step's block is ``step // ROLLUP_BLOCK``.
ROLLUP_BLOCK = 256

_MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

#: ``info`` key of a constraint created on one dialect only (beside its ``ddl_if``,
#: which Alembic's comparison does not read): the dialect's name.
ONLY_ON = "trackflow_only_on"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints alike."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ExperimentModel(Base):
    """An experiment row. Ids are integers shown as strings; ``0`` is "Default"."""

    __tablename__ = "experiments"
    __table_args__ = (_MYSQL,)

    experiment_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    artifact_location: Mapped[str] = mapped_column(String(1000))
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active")
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class ExperimentTagModel(Base):
    """A tag of an experiment."""

    __tablename__ = "experiment_tags"
    __table_args__ = (_MYSQL,)

    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(5000))


class RunModel(Base):
    """A run row; ``parent_run_uuid`` makes the run tree, ``heartbeat_time`` feeds reaping."""

    __tablename__ = "runs"
    __table_args__ = (
        Index(
            "ix_runs_experiment_lifecycle_start", "experiment_id", "lifecycle_stage", "start_time"
        ),
        Index("ix_runs_parent_run_uuid", "parent_run_uuid"),
        Index("ix_runs_status_heartbeat", "status", "heartbeat_time"),
        _MYSQL,
    )

    run_uuid: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(250))
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE")
    )
    user_id: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(20))
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    artifact_uri: Mapped[str] = mapped_column(String(1000))
    lifecycle_stage: Mapped[str] = mapped_column(String(20))
    parent_run_uuid: Mapped[str | None] = mapped_column(String(32))
    heartbeat_time: Mapped[int | None] = mapped_column(BigInteger)
    deleted_time: Mapped[int | None] = mapped_column(BigInteger)


class ParamModel(Base):
    """A run param: one immutable string value per key."""

    __tablename__ = "params"
    __table_args__ = (_MYSQL,)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(6000))


class TagModel(Base):
    """A run tag."""

    __tablename__ = "tags"
    __table_args__ = (_MYSQL,)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(5000))


class MetricModel(Base):
    """One point of a metric series; the whole point is the key."""

    __tablename__ = "metrics"
    __table_args__ = (
        # SQLite only: on PostgreSQL and MySQL the database would check every point
        # (1,000 lookups a batch: half of PostgreSQL's cost of the insert); a batch
        # locks its run once instead (HotPath.log_batch) and purging deletes the
        # points (tracking.store.sql.purge).
        ForeignKeyConstraint(
            ["run_uuid"], ["runs.run_uuid"], ondelete="CASCADE", info={ONLY_ON: "sqlite"}
        ).ddl_if(dialect="sqlite"),
        {"sqlite_with_rowid": False, **_MYSQL},
    )

    run_uuid: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Double, primary_key=True)
    special: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=0)


class LatestMetricModel(Base):
    """The latest point of each metric of a run (highest step, then timestamp, then value)."""

    __tablename__ = "latest_metrics"
    __table_args__ = (
        Index("ix_latest_metrics_key_value", "key", "value"),
        _MYSQL,
    )

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Double)
    special: Mapped[int] = mapped_column(SmallInteger, default=0)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    step: Mapped[int] = mapped_column(BigInteger)


class MetricRollupModel(Base):
    """The lowest and highest point of a series per block of :data:`ROLLUP_BLOCK` steps.

    Kept up to date on write (an upsert that only ever widens the extremes,
    so re-sent and concurrent writes are harmless); sampled history reads
    these rows instead of every point of a long series.
    """

    __tablename__ = "metric_rollups"
    __table_args__ = (_MYSQL,)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    min_value: Mapped[float] = mapped_column(Double)
    min_special: Mapped[int] = mapped_column(SmallInteger)
    min_step: Mapped[int] = mapped_column(BigInteger)
    min_timestamp: Mapped[int] = mapped_column(BigInteger)
    max_value: Mapped[float] = mapped_column(Double)
    max_special: Mapped[int] = mapped_column(SmallInteger)
    max_step: Mapped[int] = mapped_column(BigInteger)
    max_timestamp: Mapped[int] = mapped_column(BigInteger)


#: Text of up to 16 MiB on every backend (MySQL's TEXT stops at 64 KiB).
LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class DatasetModel(Base):
    """A data set of an experiment, once per (name, digest); ``dataset_uuid`` is derived
    from the experiment, name and digest, so logging it twice finds the same row."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("experiment_id", "name", "digest"), _MYSQL)

    dataset_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(500))
    digest: Mapped[str] = mapped_column(String(36))
    source_type: Mapped[str] = mapped_column(String(36))
    source: Mapped[str] = mapped_column(LONG_TEXT)
    schema: Mapped[str | None] = mapped_column(LONG_TEXT)
    profile: Mapped[str | None] = mapped_column(LONG_TEXT)


class RunInputModel(Base):
    """A run's use of a data set; ``tags`` is the JSON object of the input's tags."""

    __tablename__ = "run_inputs"
    __table_args__ = (Index("ix_run_inputs_dataset_uuid", "dataset_uuid"), _MYSQL)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    dataset_uuid: Mapped[str] = mapped_column(
        ForeignKey("datasets.dataset_uuid", ondelete="CASCADE"), primary_key=True
    )
    tags: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer)


class LineageModel(Base):
    """An edge of the artifact graph: a run used an artifact another run produced."""

    __tablename__ = "lineage"
    __table_args__ = (Index("ix_lineage_producer_run_uuid", "producer_run_uuid"), _MYSQL)

    consumer_run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    producer_run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    # 500 characters: the whole key must fit MySQL's 3072-byte index limit.
    artifact_path: Mapped[str] = mapped_column(String(500), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[int] = mapped_column(BigInteger)


# -- MLflow 3 logged models ------------------------------------------------------


class LoggedModelModel(Base):
    """A logged model (MLflow 3): a model with its own id and artifact location,
    usually produced by a run (``source_run_id``)."""

    __tablename__ = "logged_models"
    __table_args__ = (
        Index("ix_logged_models_experiment_id_creation", "experiment_id", "creation_timestamp_ms"),
        Index("ix_logged_models_source_run_id", "source_run_id"),
        _MYSQL,
    )

    model_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.experiment_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(500))
    artifact_location: Mapped[str] = mapped_column(String(1000))
    creation_timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    last_updated_timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    status_message: Mapped[str | None] = mapped_column(Text)
    model_type: Mapped[str | None] = mapped_column(String(500))
    source_run_id: Mapped[str | None] = mapped_column(String(32))
    lifecycle_stage: Mapped[str] = mapped_column(String(32))


class LoggedModelTagModel(Base):
    """A tag of a logged model."""

    __tablename__ = "logged_model_tags"
    __table_args__ = (_MYSQL,)

    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(5000))


class LoggedModelParamModel(Base):
    """A param of a logged model (immutable, like a run's)."""

    __tablename__ = "logged_model_params"
    __table_args__ = (_MYSQL,)

    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(6000))


class LoggedModelMetricModel(Base):
    """A metric point linked to a logged model (``log_metric(..., model_id=...)``),
    with the run that logged it and the data set it was measured on (``""`` if none)."""

    __tablename__ = "logged_model_metrics"
    __table_args__ = (_MYSQL,)

    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    timestamp: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dataset_name: Mapped[str] = mapped_column(String(250), primary_key=True)
    dataset_digest: Mapped[str] = mapped_column(String(36), primary_key=True)
    value: Mapped[float] = mapped_column(Double)
    special: Mapped[int] = mapped_column(SmallInteger, default=0)


class RunModelIOModel(Base):
    """A run's use (``input``) or production (``output``, at ``step``) of a logged model."""

    __tablename__ = "run_model_io"
    __table_args__ = (Index("ix_run_model_io_model_id", "model_id"), _MYSQL)

    run_uuid: Mapped[str] = mapped_column(
        ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[str] = mapped_column(
        ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)


# -- the model registry --------------------------------------------------------------


class RegisteredModelModel(Base):
    """A registered model: a name whose numbered versions point at model files."""

    __tablename__ = "registered_models"
    __table_args__ = (_MYSQL,)

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_updated_time: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(Text)


class RegisteredModelTagModel(Base):
    """A tag of a registered model."""

    __tablename__ = "registered_model_tags"
    __table_args__ = (_MYSQL,)

    name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(5000))


class ModelVersionModel(Base):
    """A version of a registered model; ``model_id`` names the logged model it came from."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_run_id", "run_id"), _MYSQL)

    name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_updated_time: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(256))
    current_stage: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(1000))
    storage_location: Mapped[str | None] = mapped_column(String(1000))
    run_id: Mapped[str | None] = mapped_column(String(32))
    run_link: Mapped[str | None] = mapped_column(String(500))
    model_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    status_message: Mapped[str | None] = mapped_column(String(500))


class ModelVersionTagModel(Base):
    """A tag of a model version."""

    __tablename__ = "model_version_tags"
    __table_args__ = (_MYSQL,)

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(String(5000))


class RegisteredModelAliasModel(Base):
    """An alias (``champion``) pointing at one version of a registered model."""

    __tablename__ = "registered_model_aliases"
    __table_args__ = (_MYSQL,)

    name: Mapped[str] = mapped_column(
        ForeignKey("registered_models.name", ondelete="CASCADE"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(256), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class RegistryRequestModel(Base):
    """A registry create a client made, by the id it chose: a retried
    ``registered-models/create`` or ``model-versions/create`` (its first answer
    lost) finds what the first attempt made instead of failing or adding a version."""

    __tablename__ = "registry_requests"
    __table_args__ = (_MYSQL,)

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    #: The version made; NULL for a registered model's creation.
    version: Mapped[int | None] = mapped_column(Integer)
    creation_time: Mapped[int] = mapped_column(BigInteger)


def table_of(model: type[Base]) -> Table:
    """The ``Table`` of a model, typed as such (``__table__`` is typed as a FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
