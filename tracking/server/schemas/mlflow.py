"""Request and response bodies of MLflow's REST API 2.0 (``mlflow/protos/service.proto``).

Field names and defaults follow the protobuf messages; where MLflow accepts
``run_uuid`` as an old spelling of ``run_id`` so do these models (see
:meth:`RunRef.resolved_run_id`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ModelWrapValidatorHandler, model_validator

from tracking.entities import Metric, ViewType
from tracking.errors import InvalidParameterError
from tracking.server.schemas.common import (
    INT64_MAX,
    INT64_MIN,
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

__all__ = [
    "CreateExperiment",
    "CreateExperimentResponse",
    "CreateRun",
    "DeleteTag",
    "ExperimentRef",
    "ExperimentResponse",
    "FileInfoOut",
    "ListArtifactsResponse",
    "LogBatch",
    "LogMetric",
    "LogModel",
    "LogParam",
    "MetricHistoryResponse",
    "MetricIn",
    "ProxyListResponse",
    "RunInfoResponse",
    "RunRef",
    "RunResponse",
    "SearchExperiments",
    "SearchExperimentsResponse",
    "SearchRuns",
    "SearchRunsResponse",
    "SetExperimentTag",
    "SetTag",
    "UpdateExperiment",
    "UpdateRun",
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

    experiment_id: str
    key: str
    value: str = ""


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

    experiment_id: str = Field("0", description="Default: the Default experiment.")
    user_id: str | None = None
    run_name: str | None = None
    start_time: Int64 | None = Field(None, description="Epoch milliseconds; default: now.")
    tags: list[KeyValue] = Field(default_factory=list)


class UpdateRun(RunRef):
    """``POST runs/update``: status, end time or name."""

    status: RunStatusField | None = None
    end_time: Int64 | None = None
    run_name: str | None = None


class LogMetric(RunRef):
    """``POST runs/log-metric``."""

    key: str
    value: Double
    timestamp: Int64 | None = Field(None, description="Epoch milliseconds; default: now.")
    step: Int64 = 0


class LogParam(RunRef):
    """``POST runs/log-parameter``."""

    key: str
    value: str = ""


class SetTag(RunRef):
    """``POST runs/set-tag``."""

    key: str
    value: str = ""


class DeleteTag(RunRef):
    """``POST runs/delete-tag``."""

    key: str


class MetricIn(RequestModel):
    """A metric point of a batch."""

    key: str
    value: Double
    timestamp: Int64
    step: Int64 = 0


class LogBatch(RunRef):
    """``POST runs/log-batch``: up to 1000 metrics, 100 params, 100 tags, all or nothing.

    After validation ``metrics`` may hold :class:`~tracking.entities.Metric`
    tuples instead of ``MetricIn`` models (see :meth:`_plain_metrics`); both
    have ``key``, ``value``, ``timestamp`` and ``step``.
    """

    metrics: list[MetricIn] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _plain_metrics(cls, value: Any, handler: ModelWrapValidatorHandler[LogBatch]) -> LogBatch:
        # The hot path of every client: a thousand plain {key, value, timestamp,
        # step} objects. Checking those in Python costs a fifth of what field
        # validators do; anything else (strings for numbers, booleans, missing or
        # out-of-range fields) takes the full validation and its error messages.
        metrics = _plain_metric_list(value.get("metrics") if type(value) is dict else None)
        if metrics is None:
            return handler(value)
        batch = handler({**value, "metrics": []})
        batch.metrics = metrics  # type: ignore[assignment]
        return batch


_METRIC_FIELDS = frozenset(("key", "value", "timestamp", "step"))


def _plain_metric_list(items: Any) -> list[Metric] | None:
    """The metrics as tuples if every one is a plain, in-range point; else ``None``."""
    if type(items) is not list or not items:
        return None
    metrics = []
    for item in items:
        if type(item) is not dict or not item.keys() <= _METRIC_FIELDS:
            return None
        key, value, timestamp = item.get("key"), item.get("value"), item.get("timestamp")
        step = item.get("step", 0)
        if (
            type(key) is not str
            or (type(value) is not float and type(value) is not int)
            or type(timestamp) is not int
            or type(step) is not int
            or not INT64_MIN <= timestamp <= INT64_MAX
            or not INT64_MIN <= step <= INT64_MAX
        ):
            return None
        metrics.append(Metric(key, value, timestamp, step))
    return metrics


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
