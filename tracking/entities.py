"""Frozen, typed records of the tracking model: no I/O here.

The names and fields follow MLflow's entities (``run.info.run_id``,
``run.data.metrics`` ...) so code written against MLflow reads the same.
Small, hot records (``Metric``, ``Param``, ``RunTag``) are named tuples, which
cost next to nothing to build by the million; the others are frozen
dataclasses whose mappings are read-only views.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from types import MappingProxyType
from typing import ClassVar, Generic, NamedTuple, TypeVar

__all__ = [
    "ArtifactRef",
    "Dataset",
    "DatasetInput",
    "Experiment",
    "ExperimentTag",
    "FileInfo",
    "InputTag",
    "LifecycleStage",
    "Lineage",
    "LineageEdge",
    "LoggedModel",
    "LoggedModelStatus",
    "Metric",
    "ModelMetric",
    "ModelRef",
    "ModelVersion",
    "PagedList",
    "Param",
    "RegisteredModel",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunStatus",
    "RunTag",
    "ViewType",
    "metric_of",
]

T = TypeVar("T")

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _empty() -> Mapping[str, str]:
    return _EMPTY


class RunStatus(enum.StrEnum):
    """Where a run is in its life. ``FINISHED``, ``FAILED`` and ``KILLED`` are final."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminated(self) -> bool:
        """True for the final states."""
        return self in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)

    @classmethod
    def parse(cls, value: str | RunStatus) -> RunStatus:
        """The status named by ``value`` (case-insensitive); ValueError if none."""
        if isinstance(value, RunStatus):
            return value
        try:
            return cls(str(value).upper())
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValueError(f"invalid run status {value!r}: expected one of {allowed}") from None


class LifecycleStage(enum.StrEnum):
    """Whether an experiment or run is live or in the bin."""

    ACTIVE = "active"
    DELETED = "deleted"


class ViewType(enum.IntEnum):
    """Which lifecycle stages a search returns (MLflow's numbering)."""

    ACTIVE_ONLY = 1
    DELETED_ONLY = 2
    ALL = 3

    @property
    def stages(self) -> tuple[LifecycleStage, ...]:
        """The lifecycle stages this view shows."""
        if self is ViewType.ACTIVE_ONLY:
            return (LifecycleStage.ACTIVE,)
        if self is ViewType.DELETED_ONLY:
            return (LifecycleStage.DELETED,)
        return (LifecycleStage.ACTIVE, LifecycleStage.DELETED)

    @classmethod
    def parse(cls, value: int | str | ViewType) -> ViewType:
        """Accepts a ViewType, its number, or a name such as ``"ACTIVE_ONLY"``."""
        if isinstance(value, ViewType):
            return value
        if isinstance(value, int):
            return cls(value)
        try:
            return cls[str(value).upper()]
        except KeyError:
            raise ValueError(
                f"invalid view type {value!r}: expected ACTIVE_ONLY, DELETED_ONLY or ALL"
            ) from None


class Metric(NamedTuple):
    """One point of a metric series: ``timestamp`` in epoch milliseconds."""

    key: str
    value: float
    timestamp: int
    step: int


#: A :class:`Metric` from a tuple (or list) of its four fields, without NamedTuple's
#: Python-level ``__new__``: half the cost, for readers that build thousands
#: from rows they already checked. It does not check the length.
metric_of = partial(tuple.__new__, Metric)


class Param(NamedTuple):
    """A run parameter; values are strings and never change once logged."""

    key: str
    value: str


class RunTag(NamedTuple):
    """A free-form run tag."""

    key: str
    value: str


class ExperimentTag(NamedTuple):
    """A free-form experiment tag."""

    key: str
    value: str


class FileInfo(NamedTuple):
    """An entry of an artifact listing: ``path`` is relative to the run's root."""

    path: str
    is_dir: bool
    file_size: int | None


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """What ``log_artifact`` returns: enough to find, check and hand on a file.

    ``path`` is relative to the run's artifact root, ``uri`` is absolute and
    ``sha256`` is the hex digest of the content (``None`` for directories).

    A reference goes between pipeline steps as a small dict (:meth:`to_dict`),
    never the file itself. ``serialize``/``deserialize`` follow the protocol of
    Airflow's XCom serde, so a task can return one and the next receive it.
    """

    #: The serialised form's version (Airflow's serde records it).
    __version__: ClassVar[int] = 1

    run_id: str
    path: str
    uri: str
    size: int
    sha256: str | None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict, for handing the reference between pipeline steps."""
        return {
            "run_id": self.run_id,
            "path": self.path,
            "uri": self.uri,
            "size": self.size,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ArtifactRef:
        """The inverse of :meth:`to_dict`; a missing field raises KeyError naming it."""
        size = data["size"]
        sha256 = data.get("sha256")
        return cls(
            str(data["run_id"]),
            str(data["path"]),
            str(data["uri"]),
            int(size) if isinstance(size, int | str) else 0,
            None if sha256 is None else str(sha256),
        )

    def serialize(self) -> dict[str, object]:
        """Airflow serde's hook: the same dict as :meth:`to_dict`."""
        return self.to_dict()

    @staticmethod
    def deserialize(data: Mapping[str, object], version: int) -> ArtifactRef:
        """Airflow serde's hook: the inverse of :meth:`serialize`."""
        if int(version) > ArtifactRef.__version__:
            raise TypeError(
                f"ArtifactRef serialised with version {version}, newer than this "
                f"trackflow's {ArtifactRef.__version__}: upgrade trackflow where it is read"
            )
        return ArtifactRef.from_dict(data)


@dataclass(frozen=True, slots=True)
class Experiment:
    """A named group of runs with its own artifact location."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: LifecycleStage = LifecycleStage.ACTIVE
    tags: Mapping[str, str] = field(default_factory=_empty)
    creation_time: int | None = None
    last_update_time: int | None = None


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run's metadata (everything but params, metrics and tags)."""

    run_id: str
    experiment_id: str
    run_name: str
    user_id: str
    status: RunStatus
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: LifecycleStage
    parent_run_id: str | None = None

    @property
    def run_uuid(self) -> str:
        """MLflow's older name for ``run_id``."""
        return self.run_id


@dataclass(frozen=True, slots=True)
class RunData:
    """A run's params, latest metric values and tags, as read-only mappings.

    ``latest`` holds the latest point of each metric (its value with its step
    and timestamp, like MLflow's ``RunData._metric_objs``) where the store
    read them with the run; ``metrics`` holds just the values.
    """

    params: Mapping[str, str] = field(default_factory=_empty)
    metrics: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    tags: Mapping[str, str] = field(default_factory=_empty)
    latest: Mapping[str, Metric] = field(default_factory=lambda: MappingProxyType({}))


class LineageEdge(NamedTuple):
    """A run used an artifact another run produced: ``consumer`` read ``path`` of
    ``producer``, whose content had ``sha256``, at ``timestamp`` (ms)."""

    consumer_run_id: str
    producer_run_id: str
    artifact_path: str
    sha256: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Lineage:
    """A run's place in the artifact graph: what it ``consumed`` (each edge names the
    producing run) and which runs consumed what it ``produced``."""

    consumed: tuple[LineageEdge, ...] = ()
    produced: tuple[LineageEdge, ...] = ()


@dataclass(frozen=True, slots=True)
class Dataset:
    """A data set a run used, as MLflow records it: what it is, not its content.

    ``digest`` identifies the content (a hash, at most 36 characters);
    ``source_type`` and ``source`` say where it lives (``"local"`` and a path,
    ``"s3"`` and a URL, ``"trackflow-artifact"`` and an artifact URI ...);
    ``schema`` and ``profile`` are optional JSON text. Example::

        Dataset("churn-train", "9f86d081", "local", '{"uri": "/data/train.csv"}')
    """

    name: str
    digest: str
    source_type: str
    source: str
    schema: str | None = None
    profile: str | None = None


class InputTag(NamedTuple):
    """A tag of one run's use of a data set (``mlflow.data.context``: ``"training"``)."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class DatasetInput:
    """A data set used by a run, with the tags of that use."""

    dataset: Dataset
    tags: tuple[InputTag, ...] = ()


@dataclass(frozen=True, slots=True)
class RunInputs:
    """What a run consumed: ``dataset_inputs``, as in MLflow's ``run.inputs``."""

    dataset_inputs: tuple[DatasetInput, ...] = ()


_NO_INPUTS = RunInputs()


@dataclass(frozen=True, slots=True)
class Run:
    """A run: ``info`` (metadata), ``data`` (params, metrics, tags) and ``inputs``."""

    info: RunInfo
    data: RunData
    inputs: RunInputs = _NO_INPUTS


class PagedList(list[T], Generic[T]):
    """A page of results; ``token`` fetches the next page (``None`` on the last).

    Example::

        page = client.search_runs(["1"], max_results=100)
        while page.token:
            page = client.search_runs(["1"], max_results=100, page_token=page.token)
    """

    def __init__(self, items: Iterable[T] = (), token: str | None = None) -> None:
        super().__init__(items)
        self.token = token


# -- MLflow 3 logged models and the model registry ---------------------------------


class LoggedModelStatus(enum.StrEnum):
    """A logged model is PENDING while its files upload, then READY (or FAILED)."""

    PENDING = "PENDING"
    READY = "READY"
    FAILED = "FAILED"

    @classmethod
    def parse(cls, value: str | LoggedModelStatus) -> LoggedModelStatus:
        """The status named by ``value``: ``READY`` or MLflow's ``LOGGED_MODEL_READY``."""
        if isinstance(value, LoggedModelStatus):
            return value
        name = str(value).upper().removeprefix("LOGGED_MODEL_")
        try:
            return cls(name)
        except ValueError:
            raise ValueError(
                f"invalid logged model status {value!r}: expected PENDING, READY or FAILED"
            ) from None


class ModelMetric(NamedTuple):
    """A metric point linked to a logged model: which run logged it, on which data set
    (``dataset_name``/``dataset_digest``, ``None`` if none)."""

    key: str
    value: float
    timestamp: int
    step: int
    run_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


@dataclass(frozen=True, slots=True)
class LoggedModel:
    """An MLflow 3 logged model: a model with an id of its own (``m-<32 hex>``), its
    files under ``artifact_location``, usually produced by run ``source_run_id``.

    Load it with the stock client as ``mlflow.<flavor>.load_model("models:/<model_id>")``.
    """

    model_id: str
    experiment_id: str
    name: str
    artifact_location: str
    creation_timestamp: int
    last_updated_timestamp: int
    status: LoggedModelStatus = LoggedModelStatus.PENDING
    status_message: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    lifecycle_stage: LifecycleStage = LifecycleStage.ACTIVE
    tags: Mapping[str, str] = field(default_factory=_empty)
    params: Mapping[str, str] = field(default_factory=_empty)
    metrics: tuple[ModelMetric, ...] = ()

    @property
    def model_uri(self) -> str:
        """``models:/<model_id>``, the URI MLflow's ``load_model`` takes."""
        return f"models:/{self.model_id}"

    @property
    def ref(self) -> ModelRef:
        """The reference to hand on to another pipeline step (:class:`ModelRef`)."""
        return ModelRef(self.model_id, self.source_run_id, self.name)

    #: The serialised form's version (Airflow's serde records it).
    __version__: ClassVar[int] = 1

    def serialize(self) -> dict[str, object]:
        """Airflow serde's hook: a task returning a logged model hands on its
        :class:`ModelRef` (the id is the reference, never the files)."""
        return self.ref.to_dict()

    @staticmethod
    def deserialize(data: Mapping[str, object], version: int) -> ModelRef:
        """Airflow serde's hook: the :class:`ModelRef` a returned logged model became."""
        return ModelRef.deserialize(data, version)

    def __reduce__(self) -> tuple[object, tuple[dict[str, object]]]:
        # Read-only mapping views do not pickle: plain dicts travel, views come back
        # (a Prefect task may return a logged model as its result).
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["tags"], values["params"] = dict(self.tags), dict(self.params)
        return (_unpickle_logged_model, (values,))


def _unpickle_logged_model(values: dict[str, object]) -> LoggedModel:
    for key in ("tags", "params"):
        values[key] = MappingProxyType(dict(values[key]))  # type: ignore[call-overload]
    return LoggedModel(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A logged model handed between pipeline steps: its id (the reference), the run
    that produced it and its name. ``tracking.use_model(ref)`` in the next step
    downloads its files and records the lineage edge producer run -> consumer run,
    naming ``models:/<model_id>``.

    Example::

        @task.trackflow
        def train() -> ModelRef:
            return tracking.log_model("out/model", "churn").ref

        @task.trackflow
        def evaluate(model: ModelRef) -> None:
            local_dir = tracking.use_model(model)
    """

    #: The serialised form's version (Airflow's serde records it).
    __version__: ClassVar[int] = 1

    model_id: str
    source_run_id: str | None = None
    name: str = ""

    @property
    def model_uri(self) -> str:
        """``models:/<model_id>``."""
        return f"models:/{self.model_id}"

    @property
    def run_id(self) -> str | None:
        """The producing run (``source_run_id``), as an :class:`ArtifactRef` names it."""
        return self.source_run_id

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict, for handing the reference between pipeline steps."""
        return {"model_id": self.model_id, "source_run_id": self.source_run_id, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> ModelRef:
        """The inverse of :meth:`to_dict`; a missing ``model_id`` raises KeyError."""
        source = data.get("source_run_id")
        return cls(
            str(data["model_id"]),
            None if source is None else str(source),
            str(data.get("name", "")),
        )

    def serialize(self) -> dict[str, object]:
        """Airflow serde's hook: the same dict as :meth:`to_dict`."""
        return self.to_dict()

    @staticmethod
    def deserialize(data: Mapping[str, object], version: int) -> ModelRef:
        """Airflow serde's hook: the inverse of :meth:`serialize`."""
        if int(version) > ModelRef.__version__:
            raise TypeError(
                f"ModelRef serialised with version {version}, newer than this "
                f"trackflow's {ModelRef.__version__}: upgrade trackflow where it is read"
            )
        return ModelRef.from_dict(data)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """A numbered version of a registered model, pointing at model files (``source``)."""

    name: str
    version: str
    creation_timestamp: int
    last_updated_timestamp: int
    source: str
    current_stage: str = "None"
    description: str | None = None
    user_id: str | None = None
    run_id: str | None = None
    run_link: str | None = None
    model_id: str | None = None
    storage_location: str | None = None
    status: str = "READY"
    status_message: str | None = None
    tags: Mapping[str, str] = field(default_factory=_empty)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """A named model of the registry: its versions, and ``aliases`` (``champion``) each
    pointing at one version (alias -> version number as a string)."""

    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=_empty)
    aliases: Mapping[str, str] = field(default_factory=_empty)
    latest_versions: tuple[ModelVersion, ...] = ()
