"""``SqlTrackingStore``: the tracking store on SQLAlchemy (SQLite, PostgreSQL, MySQL)."""

from __future__ import annotations

import os
import random
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from tracking.entities import (
    DatasetInput,
    Experiment,
    LifecycleStage,
    Lineage,
    LineageEdge,
    Metric,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    ViewType,
    metric_of,
)
from tracking.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidParameterError,
    InvalidStateError,
    NotFoundError,
    RunNotFoundError,
    StoreUnavailableError,
)
from tracking.store.base import TrackingStore
from tracking.store.sql import engine as sql_engine
from tracking.store.sql import lineage
from tracking.store.sql.engine import create_tracking_engine, transaction, write_lock_for
from tracking.store.sql.hotpath import (
    FAILURE_TAGS,
    HotPath,
    RetryTransactionError,
    decode_value,
    run_info,
)
from tracking.store.sql.inputs import dataset_summaries, inputs_of, log_inputs
from tracking.store.sql.migrate import ensure_schema
from tracking.store.sql.model_store import ModelStoreMixin
from tracking.store.sql.models import (
    ExperimentModel,
    ExperimentTagModel,
    LatestMetricModel,
    MetricModel,
    ParamModel,
    RunModel,
    TagModel,
    table_of,
)

__all__ = ["SqlTrackingStore"]

T = TypeVar("T")

_exp = table_of(ExperimentModel)
_exp_tags = table_of(ExperimentTagModel)
_runs = table_of(RunModel)
#: The tag of pipeline runs (see :mod:`tracking.pipelines`).
ORCHESTRATOR_TAG = "trackflow.orchestrator"
_params = table_of(ParamModel)
_tags = table_of(TagModel)
_metrics = table_of(MetricModel)
_latest = table_of(LatestMetricModel)

_IN_CHUNK = 500
_NO_INPUTS = RunInputs()
_NO_LIMIT = 2**62
DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"
PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
REAPED_TAGS = FAILURE_TAGS


def _experiment_id(experiment_id: str | int) -> int:
    try:
        return int(experiment_id)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"experiment_id must be an integer string such as '1', got {experiment_id!r}"
        ) from None


def _chunks(items: Sequence[T], size: int = _IN_CHUNK) -> Iterable[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SqlTrackingStore(ModelStoreMixin, TrackingStore):
    """Experiments and runs in a relational database.

    Example::

        store = SqlTrackingStore("sqlite:///trackflow.db", "/data/artifacts")
        store.create_experiment("churn")

    ``auto_upgrade`` (default: only for SQLite) migrates an older schema on open;
    otherwise an old schema raises :class:`~tracking.errors.SchemaOutOfDateError`.

    ``wait_for_database`` (seconds, default 0) is how long a call waits, retrying
    with backoff, for a PostgreSQL or MySQL server that cannot be reached before it
    raises :class:`~tracking.errors.StoreUnavailableError`: the tracking server
    answers 503 at once and lets its clients wait, a client that talks to the
    database itself (:func:`~tracking.store.registry.get_store`) waits
    ``TRACKFLOW_RETRY_TIMEOUT``.
    """

    def __init__(
        self,
        db_uri: str,
        artifact_root: str | None = None,
        *,
        auto_upgrade: bool | None = None,
        wait_for_database: float = 0.0,
    ) -> None:
        self.db_uri = db_uri
        self._engine = create_tracking_engine(db_uri)
        self.dialect = self._engine.dialect.name
        # How long a transaction that keeps meeting locks is tried again: on SQLite
        # each attempt has already waited out the busy timeout, so that is enough.
        self._retry_for = (
            sql_engine.busy_timeout(self._engine.url)
            if self.dialect == "sqlite"
            else sql_engine.RETRY_FOR_S
        )
        # SQLite's busy timeout already waits for the lock; a file does not restart.
        self._wait_for = wait_for_database if self.dialect != "sqlite" else 0.0
        if auto_upgrade is None:
            auto_upgrade = self.dialect == "sqlite"
        try:
            ensure_schema(self._engine, auto_upgrade=auto_upgrade)
        except OperationalError as exc:
            raise StoreUnavailableError(
                f"cannot open the tracking database "
                f"{self._engine.url.render_as_string(hide_password=True)}: "
                f"{str(exc.orig).strip()}"
            ) from exc
        # A forked child must not share the parent's pooled connections (SQLite
        # forbids it, server drivers would interleave on one socket).
        os.register_at_fork(after_in_child=_dispose_in_child(self._engine))
        self.artifact_root = _resolve_root(artifact_root)
        self._hot = HotPath(self._engine)
        self._ensure_default_experiment()

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (for tools and tests)."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()
        lock = write_lock_for(self._engine)
        if lock is not None:
            lock.close()

    # -- plumbing -----------------------------------------------------------

    def _write(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with transaction(self._engine, write=True) as conn:
                return fn(conn)

        return self._retry(attempt)

    def _retry(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (one whole transaction) through :func:`sql_engine.retrying`,
        again when it lost a race, and for ``wait_for_database`` seconds while the
        database cannot be reached."""
        started = time.monotonic()
        delay = 0.25
        while True:
            try:
                return sql_engine.retrying(fn, retry_for=self._retry_for)
            except RetryTransactionError:
                continue
            except StoreUnavailableError:
                waited = time.monotonic() - started
                if waited + delay > self._wait_for:
                    raise
                time.sleep(delay / 2 + random.uniform(0, delay / 2))
                delay = min(delay * 2, 5.0)

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction, again on lock errors and deadlocks."""
        return self._write(fn)

    def read(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with transaction(self._engine, write=False) as conn:
                return fn(conn)

        return self._retry(attempt)

    def _ensure_default_experiment(self) -> None:
        def exists(conn: Connection) -> bool:
            return (
                conn.execute(select(_exp.c.experiment_id).where(_exp.c.experiment_id == 0)).first()
                is not None
            )

        if self.read(exists):
            return

        def create(conn: Connection) -> None:
            if exists(conn):
                return
            if self.dialect in ("mysql", "mariadb"):
                conn.exec_driver_sql(
                    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')"
                )
            now = _now()
            conn.execute(
                _exp.insert().values(
                    experiment_id=0,
                    name=DEFAULT_EXPERIMENT_NAME,
                    artifact_location=_join(self.artifact_root, DEFAULT_EXPERIMENT_ID),
                    lifecycle_stage=LifecycleStage.ACTIVE.value,
                    creation_time=now,
                    last_update_time=now,
                )
            )

        try:
            self._write(create)
        except InvalidParameterError:
            if not self.read(exists):  # lost a race to another process: fine
                raise

    # -- experiments ----------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
    ) -> str:
        def work(conn: Connection) -> str:
            taken = conn.execute(
                select(_exp.c.experiment_id, _exp.c.lifecycle_stage).where(_exp.c.name == name)
            ).first()
            if taken is not None:
                where = " (in the deleted state)" if taken[1] == "deleted" else ""
                raise AlreadyExistsError(
                    f"Experiment(name={name}) already exists: experiment {name!r}{where} "
                    f"has id {taken[0]}"
                )
            now = _now()
            result = conn.execute(
                _exp.insert().values(
                    name=name,
                    artifact_location=artifact_location or "",
                    lifecycle_stage=LifecycleStage.ACTIVE.value,
                    creation_time=now,
                    last_update_time=now,
                )
            )
            new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            if not artifact_location:
                conn.execute(
                    update(_exp)
                    .where(_exp.c.experiment_id == new_id)
                    .values(artifact_location=_join(self.artifact_root, str(new_id)))
                )
            if tags:
                conn.execute(
                    _exp_tags.insert(),
                    [
                        {"experiment_id": new_id, "key": k, "value": v}
                        for k, v in dict(tags).items()
                    ],
                )
            return str(new_id)

        try:
            return self._write(work)
        except InvalidParameterError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise AlreadyExistsError(f"Experiment(name={name}) already exists") from exc
            raise

    def load_experiments(self, conn: Connection, where: Any) -> list[Experiment]:
        rows = conn.execute(select(_exp).where(where)).all()
        if not rows:
            return []
        ids = [r.experiment_id for r in rows]
        tags: dict[int, dict[str, str]] = {i: {} for i in ids}
        for eid, key, value in conn.execute(
            select(_exp_tags.c.experiment_id, _exp_tags.c.key, _exp_tags.c.value).where(
                _exp_tags.c.experiment_id.in_(ids)
            )
        ):
            tags[eid][key] = value
        return [
            Experiment(
                experiment_id=str(r.experiment_id),
                name=r.name,
                artifact_location=r.artifact_location,
                lifecycle_stage=LifecycleStage(r.lifecycle_stage),
                tags=tags[r.experiment_id],
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
            )
            for r in rows
        ]

    def get_experiment(self, experiment_id: str) -> Experiment:
        eid = _experiment_id(experiment_id)
        found = self.read(lambda conn: self.load_experiments(conn, _exp.c.experiment_id == eid))
        if not found:
            raise ExperimentNotFoundError(f"No experiment with id {experiment_id!r} exists")
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self.read(lambda conn: self.load_experiments(conn, _exp.c.name == name))
        return found[0] if found else None

    def search_experiments(
        self,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        from tracking.store.sql import searching

        return searching.search_experiments(
            self, view_type, max_results, filter_string, order_by, page_token
        )

    def _experiment_row(self, conn: Connection, eid: int) -> Any:
        row = conn.execute(
            select(_exp.c.lifecycle_stage, _exp.c.last_update_time).where(
                _exp.c.experiment_id == eid
            )
        ).first()
        if row is None:
            raise ExperimentNotFoundError(f"No experiment with id '{eid}' exists")
        return row

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        eid = _experiment_id(experiment_id)

        def work(conn: Connection) -> None:
            if self._experiment_row(conn, eid).lifecycle_stage != "active":
                raise InvalidStateError(
                    f"cannot rename experiment {experiment_id}: it is deleted; restore it first"
                )
            taken = conn.execute(
                select(_exp.c.experiment_id).where(_exp.c.name == new_name)
            ).scalar()
            if taken is not None and taken != eid:
                raise AlreadyExistsError(
                    f"Experiment(name={new_name}) already exists: it has id {taken}"
                )
            conn.execute(
                update(_exp)
                .where(_exp.c.experiment_id == eid)
                .values(name=new_name, last_update_time=_now())
            )

        self._write(work)

    def delete_experiment(self, experiment_id: str) -> None:
        eid = _experiment_id(experiment_id)
        if eid == 0:
            raise InvalidParameterError("the Default experiment (id 0) cannot be deleted")

        def work(conn: Connection) -> None:
            if self._experiment_row(conn, eid).lifecycle_stage == "deleted":
                return
            # Restore brings back the runs whose deleted_time is the experiment's,
            # so it must differ from that of any run deleted on its own before.
            last = conn.execute(
                select(func.max(_runs.c.deleted_time)).where(_runs.c.experiment_id == eid)
            ).scalar()
            now = max(_now(), (last or 0) + 1)
            conn.execute(
                update(_exp)
                .where(_exp.c.experiment_id == eid)
                .values(lifecycle_stage="deleted", last_update_time=now)
            )
            conn.execute(
                update(_runs)
                .where(_runs.c.experiment_id == eid, _runs.c.lifecycle_stage == "active")
                .values(lifecycle_stage="deleted", deleted_time=now)
            )

        self._write(work)

    def restore_experiment(self, experiment_id: str) -> None:
        eid = _experiment_id(experiment_id)

        def work(conn: Connection) -> None:
            row = self._experiment_row(conn, eid)
            if row.lifecycle_stage == "active":
                return
            # Runs deleted together with the experiment come back; runs deleted
            # one by one before stay in the bin.
            conn.execute(
                update(_runs)
                .where(_runs.c.experiment_id == eid, _runs.c.deleted_time == row.last_update_time)
                .values(lifecycle_stage="active", deleted_time=None)
            )
            conn.execute(
                update(_exp)
                .where(_exp.c.experiment_id == eid)
                .values(lifecycle_stage="active", last_update_time=_now())
            )

        self._write(work)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        eid = _experiment_id(experiment_id)

        def work(conn: Connection) -> None:
            if self._experiment_row(conn, eid).lifecycle_stage != "active":
                raise InvalidStateError(
                    f"cannot set a tag on experiment {experiment_id}: it is deleted"
                )
            conn.execute(
                delete(_exp_tags).where(_exp_tags.c.experiment_id == eid, _exp_tags.c.key == key)
            )
            conn.execute(_exp_tags.insert().values(experiment_id=eid, key=key, value=value))

        self._write(work)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        eid = _experiment_id(experiment_id)

        def work(conn: Connection) -> None:
            if self._experiment_row(conn, eid).lifecycle_stage != "active":
                raise InvalidStateError(
                    f"cannot delete a tag of experiment {experiment_id}: it is deleted"
                )
            deleted = conn.execute(
                delete(_exp_tags).where(_exp_tags.c.experiment_id == eid, _exp_tags.c.key == key)
            )
            if not deleted.rowcount:
                raise NotFoundError(
                    f"No tag with name: {key} in experiment with id {experiment_id}"
                )

        self._write(work)

    # -- runs -----------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: Sequence[RunTag],
        run_name: str | None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        status: RunStatus = RunStatus.RUNNING,
    ) -> Run:
        eid = _experiment_id(experiment_id)
        new_id = run_id or os.urandom(16).hex()

        def work(conn: Connection) -> Run:
            if run_id is not None:
                existing = self._existing_run(conn, run_id, eid)
                if existing is not None:
                    return existing
            exp = conn.execute(
                select(_exp.c.lifecycle_stage, _exp.c.artifact_location).where(
                    _exp.c.experiment_id == eid
                )
            ).first()
            if exp is None:
                raise ExperimentNotFoundError(f"No experiment with id {experiment_id!r} exists")
            if exp.lifecycle_stage != "active":
                raise InvalidStateError(
                    f"cannot create a run in experiment {experiment_id}: it is deleted"
                )
            if parent_run_id is not None:
                parent = conn.execute(
                    select(_runs.c.experiment_id).where(_runs.c.run_uuid == parent_run_id)
                ).first()
                if parent is None:
                    raise RunNotFoundError(f"parent run {parent_run_id!r} not found")
            all_tags = dict(tags)
            name = run_name if run_name is not None else all_tags.get(RUN_NAME_TAG)
            if name is None:
                from tracking.names import generate_run_name

                name = generate_run_name()
            all_tags[RUN_NAME_TAG] = name
            if parent_run_id is not None:
                all_tags[PARENT_RUN_TAG] = parent_run_id
            artifact_uri = _join(exp.artifact_location, new_id, "artifacts")
            try:
                conn.execute(
                    _runs.insert().values(
                        run_uuid=new_id,
                        name=name,
                        experiment_id=eid,
                        user_id=user_id,
                        status=status.value,
                        start_time=start_time,
                        end_time=None,
                        artifact_uri=artifact_uri,
                        lifecycle_stage="active",
                        parent_run_uuid=parent_run_id,
                        heartbeat_time=start_time,
                    )
                )
            except IntegrityError as exc:
                if run_id is None:
                    raise
                raise RetryTransactionError from exc  # created meanwhile: read it next time
            conn.execute(
                _tags.insert(),
                [{"run_uuid": new_id, "key": k, "value": v} for k, v in all_tags.items()],
            )
            info = RunInfo(
                run_id=new_id,
                experiment_id=str(eid),
                run_name=name,
                user_id=user_id,
                status=status,
                start_time=start_time,
                end_time=None,
                artifact_uri=artifact_uri,
                lifecycle_stage=LifecycleStage.ACTIVE,
                parent_run_id=parent_run_id,
            )
            return Run(info, RunData(tags=all_tags))

        return self._write(work)

    def _existing_run(self, conn: Connection, run_id: str, eid: int) -> Run | None:
        runs = self.load_runs(conn, [run_id])
        if not runs:
            return None
        run = runs[0]
        if run.info.experiment_id != str(eid):
            raise AlreadyExistsError(
                f"run id {run_id!r} is already used by a run in experiment "
                f"{run.info.experiment_id}, not {eid}"
            )
        return run

    def load_runs(self, conn: Connection, run_ids: Sequence[str]) -> list[Run]:
        """Runs with their data, in the order of ``run_ids`` (missing ids skipped).

        Four queries a chunk, on the DBAPI cursor (:meth:`HotPath.run_rows`): a
        search page loads a thousand rows here, where SQLAlchemy's statement
        building and row handling cost more than the database's work.
        """
        infos: dict[str, RunInfo] = {}
        params: dict[str, dict[str, str]] = {}
        metrics: dict[str, dict[str, float]] = {}
        latest: dict[str, dict[str, Metric]] = {}
        tags: dict[str, dict[str, str]] = {}
        inputs: dict[str, RunInputs] = {}
        with self._hot.cursor_in(conn) as cursor:
            for chunk in _chunks(run_ids):
                run_rows, param_rows, tag_rows, latest_rows, input_rows = self._hot.run_rows(
                    cursor, chunk
                )
                if input_rows:
                    inputs.update(inputs_of(input_rows))
                for row in run_rows:
                    infos[row[0]] = run_info(row)
                    params[row[0]], metrics[row[0]], latest[row[0]], tags[row[0]] = {}, {}, {}, {}
                for rid, key, value in param_rows:
                    params[rid][key] = value
                for rid, key, value in tag_rows:
                    tags[rid][key] = value
                for rid, key, value, special, timestamp, step in latest_rows:
                    number = metrics[rid][key] = decode_value(value, special) if special else value
                    latest[rid][key] = metric_of((key, number, timestamp, step))
        return [
            Run(
                infos[rid],
                RunData(
                    params=params[rid], metrics=metrics[rid], tags=tags[rid], latest=latest[rid]
                ),
                inputs.get(rid, _NO_INPUTS),
            )
            for rid in run_ids
            if rid in infos
        ]

    def record_lineage(self, edge: LineageEdge) -> None:
        def work(conn: Connection) -> None:
            for run_id in (edge.consumer_run_id, edge.producer_run_id):
                self._run_stage(conn, run_id)
            lineage.record_lineage(conn, edge)

        self._write(work)

    def get_lineage(self, run_id: str) -> Lineage:
        def work(conn: Connection) -> Lineage:
            self._run_stage(conn, run_id)
            return lineage.get_lineage(conn, run_id)

        return self.read(work)

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        def work(conn: Connection) -> None:
            row = conn.execute(
                select(_runs.c.experiment_id, _runs.c.lifecycle_stage).where(
                    _runs.c.run_uuid == run_id
                )
            ).first()
            if row is None:
                raise RunNotFoundError(f"Run {run_id!r} not found")
            if row.lifecycle_stage != "active":
                raise InvalidStateError(
                    f"The run {run_id} must be in the 'active' state. Current state is deleted."
                )
            log_inputs(conn, run_id, int(row.experiment_id), inputs)

        self._write(work)

    def search_dataset_summaries(
        self, experiment_ids: Sequence[str]
    ) -> list[tuple[str, str, str, str | None]]:
        """``(experiment_id, name, digest, context)`` of the data sets the runs of these
        experiments used (MLflow's ``experiments/search-datasets``, for its web UI)."""
        ids = [_experiment_id(e) for e in experiment_ids]
        return self.read(lambda conn: dataset_summaries(conn, ids))

    def get_run(self, run_id: str) -> Run:
        runs = self.read(lambda conn: self.load_runs(conn, [run_id]))
        if not runs:
            raise RunNotFoundError(f"Run {run_id!r} not found")
        return runs[0]

    def _run_stage(self, conn: Connection, run_id: str) -> str:
        stage = conn.execute(
            select(_runs.c.lifecycle_stage).where(_runs.c.run_uuid == run_id)
        ).scalar()
        if stage is None:
            raise RunNotFoundError(f"Run {run_id!r} not found")
        return str(stage)

    def _check_active(self, conn: Connection, run_id: str) -> None:
        if self._run_stage(conn, run_id) != "active":
            raise InvalidStateError(
                f"The run {run_id} must be in the 'active' state. Current state is deleted."
            )

    def update_run_info(
        self,
        run_id: str,
        status: RunStatus | None,
        end_time: int | None,
        run_name: str | None,
    ) -> RunInfo:
        return self._retry(lambda: self._hot.update_run(run_id, status, end_time, run_name, _now()))

    def _set_stage(self, run_id: str, stage: str) -> None:
        def work(conn: Connection) -> None:
            self._run_stage(conn, run_id)
            conn.execute(
                update(_runs)
                .where(_runs.c.run_uuid == run_id)
                .values(lifecycle_stage=stage, deleted_time=_now() if stage == "deleted" else None)
            )

        self._write(work)

    def delete_run(self, run_id: str) -> None:
        self._set_stage(run_id, "deleted")

    def restore_run(self, run_id: str) -> None:
        self._set_stage(run_id, "active")

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        self._retry(lambda: self._hot.log_batch(run_id, metrics, params, tags))

    def delete_tag(self, run_id: str, key: str) -> None:
        def work(conn: Connection) -> None:
            self._check_active(conn, run_id)
            deleted = conn.execute(
                delete(_tags).where(_tags.c.run_uuid == run_id, _tags.c.key == key)
            )
            if not deleted.rowcount:
                raise NotFoundError(f"No tag with name: {key} in run with id {run_id}")

        self._write(work)

    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        from tracking.search.paging import decode_page_token, encode_page_token

        fingerprint = f"history:{run_id}:{key}"
        offset = decode_page_token(page_token, fingerprint)

        limit = (max_results + 1) if max_results is not None else _NO_LIMIT
        points = self._retry(lambda: self._hot.metric_history(run_id, key, offset, limit))
        token = None
        if max_results is not None and len(points) > max_results:
            points.pop()
            token = encode_page_token(offset + max_results, fingerprint)
        return PagedList(points, token)

    def get_metric_history_sampled(
        self, run_id: str, key: str, max_points: int = 1000
    ) -> list[Metric]:
        """At most ``max_points`` points of a series, each bucket's extremes kept (for charts).

        Sampled in the database; see :mod:`tracking.store.sql.sampling`.
        """
        from tracking.store.sql import sampling

        return sampling.sampled_history(self, run_id, key, max_points)

    def get_metric_histories_sampled(
        self, run_ids: Sequence[str], key: str, max_points: int = 1000
    ) -> dict[str, list[Metric]]:
        """:meth:`get_metric_history_sampled` for several runs in one read (a chart of
        many runs): ``{run_id: points}``; RunNotFoundError names the first missing run."""
        from tracking.store.sql import sampling

        return sampling.sampled_histories(self, run_ids, key, max_points)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        from tracking.store.sql import searching

        return searching.search_runs(
            self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token
        )

    # -- trackflow additions ------------------------------------------------------

    def get_children(self, run_id: str, recursive: bool = False) -> list[Run]:
        def work(conn: Connection) -> list[Run]:
            self._run_stage(conn, run_id)
            if recursive:
                tree = (
                    select(_runs.c.run_uuid, literal(1).label("depth"))
                    .where(_runs.c.parent_run_uuid == run_id)
                    .cte("subtree", recursive=True)
                )
                tree = tree.union_all(
                    select(_runs.c.run_uuid, (tree.c.depth + 1).label("depth")).join(
                        tree, _runs.c.parent_run_uuid == tree.c.run_uuid
                    )
                )
                ids_query = (
                    select(tree.c.run_uuid)
                    .join(_runs, _runs.c.run_uuid == tree.c.run_uuid)
                    .order_by(tree.c.depth, _runs.c.start_time, _runs.c.run_uuid)
                )
            else:
                ids_query = (
                    select(_runs.c.run_uuid)
                    .where(_runs.c.parent_run_uuid == run_id)
                    .order_by(_runs.c.start_time, _runs.c.run_uuid)
                )
            return self.load_runs(conn, list(conn.execute(ids_query).scalars()))

        return self.read(work)

    def heartbeat(self, run_ids: Sequence[str], timestamp: int) -> None:
        if not run_ids:
            return

        def work(conn: Connection) -> None:
            conn.execute(
                update(_runs)
                .where(
                    _runs.c.run_uuid.in_(list(run_ids)), _runs.c.status == RunStatus.RUNNING.value
                )
                .values(heartbeat_time=timestamp)
            )

        self._write(work)

    def reap_stale_runs(self, older_than_ms: int, now: int, reason: str) -> list[str]:
        cutoff = now - older_than_ms

        def work(conn: Connection) -> list[str]:
            stale = list(
                conn.execute(
                    select(_runs.c.run_uuid).where(
                        _runs.c.status == RunStatus.RUNNING.value,
                        _runs.c.lifecycle_stage == "active",
                        func.coalesce(_runs.c.heartbeat_time, _runs.c.start_time) < cutoff,
                        # A pipeline run (an Airflow DAG run, a Prefect flow run) has no
                        # process of its own to beat for it: its orchestrator ends it.
                        ~select(_tags.c.key)
                        .where(
                            _tags.c.run_uuid == _runs.c.run_uuid,
                            _tags.c.key == ORCHESTRATOR_TAG,
                        )
                        .exists(),
                    )
                ).scalars()
            )
            for chunk in _chunks(stale):
                conn.execute(
                    update(_runs)
                    .where(_runs.c.run_uuid.in_(chunk))
                    .values(status=RunStatus.FAILED.value, end_time=now)
                )
                conn.execute(
                    delete(_tags).where(
                        _tags.c.run_uuid.in_(chunk), _tags.c.key.in_(list(REAPED_TAGS))
                    )
                )
                conn.execute(
                    _tags.insert(),
                    [
                        {"run_uuid": rid, "key": key, "value": value}
                        for rid in chunk
                        for key, value in zip(REAPED_TAGS, (reason, str(now)), strict=True)
                    ],
                )
            return stale

        return self._write(work)


def _dispose_in_child(engine: Any) -> Callable[[], None]:
    ref = weakref.ref(engine)

    def dispose() -> None:
        alive = ref()
        if alive is not None:
            alive.dispose(close=False)

    return dispose


def _now() -> int:
    import time

    return time.time_ns() // 1_000_000


def _join(base: str, *parts: str) -> str:
    from tracking.artifacts import join_uri

    return join_uri(base, *parts)


def _resolve_root(artifact_root: str | None) -> str:
    from tracking.artifacts import resolve_artifact_root
    from tracking.settings import DEFAULT_ARTIFACT_ROOT

    return resolve_artifact_root(artifact_root or DEFAULT_ARTIFACT_ROOT)
