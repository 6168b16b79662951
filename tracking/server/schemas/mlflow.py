"""Request and response bodies of MLflow's REST API 2.0 (``mlflow/protos/service.proto``).

Field names and defaults follow the protobuf messages; where MLflow accepts
``run_uuid`` as an old spelling of ``run_id`` so do these models (see
:meth:`RunRef.resolved_run_id`).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import from_json

from tracking.entities import Metric, ViewType, metric_of
from tracking.errors import InvalidParameterError
from tracking.server.schemas.common import (
    DatasetInputBody,
    Double,
    ExperimentOut,
    Int64,
    KeyValue,
    MetricOut,
    RequestModel,
    RunInfoOut,
    RunOut,
    RunStatusField,
    ViewTypeField,
)
from tracking.validation import plain_metrics

__all__ = [
    "CreateExperiment",
    "CreateExperimentResponse",
    "CreateRun",
    "DeleteExperimentTag",
    "DeleteTag",
    "ExperimentRef",
    "ExperimentResponse",
    "FileInfoOut",
    "ListArtifactsResponse",
    "LogBatch",
    "LogInputs",
    "LogMetric",
    "LogModel",
    "LogParam",
    "MetricHistoryResponse",
    "MetricIn",
    "ProxyListResponse",
    "RunInfoResponse",
    "RunRef",
    "RunResponse",
    "SearchDatasets",
    "SearchExperiments",
    "SearchExperimentsResponse",
    "SearchRuns",
    "SearchRunsResponse",
    "SetExperimentTag",
    "SetTag",
    "UpdateExperiment",
    "UpdateRun",
    "plain_log_batch",
]


# -- experiments ---------------------------------------------------------------


class CreateExperiment(RequestModel):
    """``POST experiments/create``."""

    name: str = Field(description="Experiment name (unique).")
    artifact_location: str | None = Field(
        None, description="Where its artifacts go; default: mlflow-artifacts:/<experiment_id>."
    )
    tags: list[KeyValue] = Field(default_factory=list)


class CreateExperimentResponse(BaseModel):
    """The new experiment's id."""

    experiment_id: str


class ExperimentRef(RequestModel):
    """``POST experiments/delete`` and ``experiments/restore``."""

    experiment_id: str


class UpdateExperiment(RequestModel):
    """``POST experiments/update``: rename."""

    experiment_id: str
    new_name: str


class SetExperimentTag(RequestModel):
    """``POST experiments/set-experiment-tag``."""

    payload_fields = ("value",)
    experiment_id: str
    key: str
    value: str = ""


class DeleteExperimentTag(RequestModel):
    """``POST experiments/delete-experiment-tag``."""

    experiment_id: str
    key: str


class SearchDatasets(RequestModel):
    """``POST experiments/search-datasets`` (what MLflow's web UI sends)."""

    experiment_ids: list[str] = Field(default_factory=list)


class SearchExperiments(RequestModel):
    """``POST experiments/search`` (GET takes the same fields as query parameters)."""

    max_results: Int64 = 1000
    page_token: str | None = None
    filter: str | None = Field(None, description="e.g. name LIKE 'churn%'")
    order_by: list[str] = Field(default_factory=list)
    view_type: ViewTypeField = ViewType.ACTIVE_ONLY


class ExperimentResponse(BaseModel):
    """``experiments/get`` and ``experiments/get-by-name``."""

    experiment: ExperimentOut


class SearchExperimentsResponse(BaseModel):
    """A page of experiments; ``next_page_token`` is left out on the last page."""

    experiments: list[ExperimentOut] = Field(default_factory=list)
    next_page_token: str | None = None


# -- runs ----------------------------------------------------------------------


class RunRef(RequestModel):
    """A request naming a run by ``run_id`` (or MLflow's older ``run_uuid``)."""

    run_id: str | None = None
    run_uuid: str | None = Field(None, description="Deprecated spelling of run_id.")

    def resolved_run_id(self) -> str:
        """``run_id``, else ``run_uuid``; InvalidParameterError if neither was given."""
        run_id = self.run_id or self.run_uuid
        if not run_id:
            raise InvalidParameterError("Missing value for required parameter 'run_id'.")
        return run_id


class CreateRun(RequestModel):
    """``POST runs/create``."""

    payload_fields = ("experiment_id", "user_id", "run_name", "start_time", "tags")
    experiment_id: str = Field("0", description="Default: the Default experiment.")
    user_id: str | None = None
    run_name: str | None = None
    start_time: Int64 | None = Field(None, description="Epoch milliseconds; default: now.")
    tags: list[KeyValue] = Field(default_factory=list)


class UpdateRun(RunRef):
    """``POST runs/update``: status, end time or name."""

    payload_fields = ("status", "end_time", "run_name")
    status: RunStatusField | None = None
    end_time: Int64 | None = None
    run_name: str | None = None


class LogMetric(RunRef):
    """``POST runs/log-metric``."""

    key: str
    value: Double
    timestamp: Int64 | None = Field(None, description="Epoch milliseconds; default: now.")
    step: Int64 = 0
    model_id: str | None = Field(None, description="A logged model the point is linked to.")
    dataset_name: str | None = None
    dataset_digest: str | None = None


class LogParam(RunRef):
    """``POST runs/log-parameter``."""

    payload_fields = ("value",)
    key: str
    value: str = ""


class SetTag(RunRef):
    """``POST runs/set-tag``."""

    payload_fields = ("value",)
    key: str
    value: str = ""


class LogInputs(RunRef):
    """``POST runs/log-inputs``: data sets and logged models (``models``) a run used."""

    payload_fields = ("datasets", "models")
    datasets: list[DatasetInputBody] = Field(default_factory=list)
    models: list[dict[str, Any]] = Field(default_factory=list)


class DeleteTag(RunRef):
    """``POST runs/delete-tag``."""

    key: str


class MetricIn(RequestModel):
    """A metric point of a batch."""

    key: str
    value: Double
    timestamp: Int64
    step: Int64 = 0
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class LogBatch(RunRef):
    """``POST runs/log-batch``: up to 1000 metrics, 100 params, 100 tags, all or nothing.

    A body with none of the three is a no-op, unless it has fields this server does
    not know (then it is refused, naming them).
    """

    payload_fields = ("metrics", "params", "tags")
    metrics: list[MetricIn] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


_POINT_FIELDS = itemgetter("key", "value", "timestamp", "step")
_DICT_ONLY = frozenset((dict,))


def plain_log_batch(body: bytes) -> tuple[str, list[Metric]] | None:
    """``(run_id, metrics)`` of a log-batch body of metrics alone, each a plain
    ``{key, value, timestamp, step}`` object of exact JSON types; ``None`` for
    anything else.

    The hot path of every client: parsed in Rust (pydantic-core), turned into
    :class:`~tracking.entities.Metric` tuples by C-level ``map``s and checked
    column-wise (:func:`~tracking.validation.plain_metrics`), with no model in
    between. What this leaves (params or tags, a missing ``step``, numbers as
    strings, a malformed body) goes through :class:`LogBatch` and its error messages.
    """
    try:
        data = from_json(body)
    except ValueError:
        return None
    if type(data) is not dict:
        return None
    run_id, items = data.get("run_id") or data.get("run_uuid"), data.get("metrics")
    if type(run_id) is not str or type(items) is not list or data.get("params") or data.get("tags"):
        return None
    if not items or frozenset(map(type, items)) != _DICT_ONLY:
        return None
    if any("model_id" in item for item in items):
        return None  # linked to logged models: LogBatch's route links them
    try:
        metrics = list(map(metric_of, map(_POINT_FIELDS, items)))
    except KeyError:
        return None
    return (run_id, metrics) if plain_metrics(metrics) else None


class LogModel(RunRef):
    """``POST runs/log-model``: record a logged model in the run's history tag."""

    model_json: str


class SearchRuns(RequestModel):
    """``POST runs/search``."""

    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = Field(None, description="e.g. metrics.auc > 0.9 AND params.lr = '0.1'")
    run_view_type: ViewTypeField = ViewType.ACTIVE_ONLY
    max_results: Int64 = 1000
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class RunResponse(BaseModel):
    """``runs/create`` and ``runs/get``."""

    run: RunOut


class RunInfoResponse(BaseModel):
    """``runs/update``."""

    run_info: RunInfoOut


class SearchRunsResponse(BaseModel):
    """A page of runs; ``next_page_token`` is left out on the last page."""

    runs: list[RunOut] = Field(default_factory=list)
    next_page_token: str | None = None


class MetricHistoryResponse(BaseModel):
    """``metrics/get-history``."""

    metrics: list[MetricOut] = Field(default_factory=list)
    next_page_token: str | None = None


# -- artifacts -----------------------------------------------------------------


class FileInfoOut(BaseModel):
    """An artifact listing entry; ``file_size`` is left out for directories."""

    path: str
    is_dir: bool
    file_size: int | None = None


class ListArtifactsResponse(BaseModel):
    """``artifacts/list``: paths relative to the run's artifact root."""

    root_uri: str
    files: list[FileInfoOut] = Field(default_factory=list)


class ProxyListResponse(BaseModel):
    """``mlflow-artifacts/artifacts?path=``: entry names relative to ``path``."""

    files: list[FileInfoOut] = Field(default_factory=list)
