"""Bodies of trackflow's own endpoints under ``/api/2.0/trackflow/``.

These are the contract of trackflow's HTTP client store: change them only
together with it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, Strict
from pydantic_core import from_json

from tracking.server.schemas.common import (
    INT64_MAX,
    INT64_MIN,
    Int64,
    KeyValue,
    MetricOut,
    RequestModel,
    RunInfoOut,
    RunOut,
)
from tracking.validation import MAX_BATCH_METRICS

__all__ = [
    "BATCH_CALLS",
    "BatchAnswer",
    "BatchRequest",
    "BatchResponse",
    "ChildrenResponse",
    "CompactRunOut",
    "CompactSearchResponse",
    "CreateRunRequest",
    "CreateRunResponse",
    "HealthResponse",
    "HeartbeatRequest",
    "LineageEdgeBody",
    "LineageResponse",
    "LogBatchColumns",
    "MetricColumns",
    "ReapStaleRequest",
    "ReapStaleResponse",
    "SampledHistoryResponse",
    "plain_column_batch",
]


#: The writes ``POST batch`` carries: each is idempotent, so a batch may be sent again.
BATCH_CALLS = ("runs/create", "runs/update", "runs/log-batch")


class BatchCallIn(BaseModel):
    """One write of a batch: the endpoint it stands for and that endpoint's body."""

    call: Literal["runs/create", "runs/update", "runs/log-batch"] = Field(
        description="trackflow's runs/create, or MLflow's runs/update or runs/log-batch "
        "(params and tags only)."
    )
    body: dict[str, Any] = Field(description="The body the endpoint takes.")


class BatchRequest(RequestModel):
    """Writes from many threads of one client, sent together (see tracking.store.rest_batch)."""

    calls: list[BatchCallIn] = Field(min_length=1, max_length=100)


class BatchAnswer(BaseModel):
    """What the write's own endpoint would have answered: its status and body."""

    status: int
    body: dict[str, Any]


class BatchResponse(BaseModel):
    """One answer per call, in order."""

    answers: list[BatchAnswer]


class CreateRunRequest(RequestModel):
    """Create a run, or with a known ``run_id`` return the existing one (idempotent)."""

    experiment_id: str = Field(description="Experiment of the run.")
    run_id: str | None = Field(
        None, description="Caller-chosen id (1-32 of [A-Za-z0-9_-]); retries return the run."
    )
    run_name: str | None = None
    start_time: Int64 | None = Field(None, description="Epoch milliseconds; default: now.")
    tags: list[KeyValue] = Field(default_factory=list)
    parent_run_id: str | None = Field(None, description="Makes the run a child of this run.")
    status: Literal["RUNNING", "SCHEDULED"] = "RUNNING"
    user_id: str | None = Field(None, description="Default: the server's user.")


#: A JSON number (NaN and the infinities as the bare tokens ``NaN``, ``Infinity``).
Number = Annotated[float, Strict()]
#: A JSON integer within 64 bits (no strings, no booleans).
StrictInt64 = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]
_COLUMNS = ("key", "value", "timestamp", "step")


class MetricColumns(RequestModel):
    """Metric points as four equally long columns: point ``i`` is
    ``(key[i], value[i], timestamp[i], step[i])``."""

    payload_fields = _COLUMNS
    key: list[str] = Field(default_factory=list, max_length=MAX_BATCH_METRICS)
    value: list[Number] = Field(default_factory=list, max_length=MAX_BATCH_METRICS)
    timestamp: list[StrictInt64] = Field(
        default_factory=list, max_length=MAX_BATCH_METRICS, description="Epoch milliseconds."
    )
    step: list[StrictInt64] = Field(default_factory=list, max_length=MAX_BATCH_METRICS)


class LogBatchColumns(RequestModel):
    """MLflow's ``runs/log-batch`` with the metric points sent as columns.

    The same limits (1000 points, 100 params, 100 tags) and the same all or
    nothing; under half the JSON of MLflow's list of point objects, which is what
    trackflow's client sends.
    """

    payload_fields = ("metrics", "params", "tags")
    run_id: str
    metrics: MetricColumns = Field(default_factory=MetricColumns)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


#: ``(run_id, keys, values, timestamps, steps)``
ColumnBatch = tuple[str, list[Any], list[Any], list[Any], list[Any]]


def plain_column_batch(body: bytes) -> ColumnBatch | None:
    """``(run_id, keys, values, timestamps, steps)`` of a :class:`LogBatchColumns`
    body that holds metric points alone (any params or tags empty), its four
    columns lists; ``None`` for anything else.

    The columns are not checked here: :meth:`TrackingClient.log_metric_columns`
    does that, a column at a time.
    """
    try:
        data = from_json(body)
    except ValueError:
        return None
    if type(data) is not dict or data.get("params", []) != [] or data.get("tags", []) != []:
        return None
    run_id, metrics = data.get("run_id"), data.get("metrics")
    if type(run_id) is not str or type(metrics) is not dict:
        return None
    columns = [metrics.get(name) for name in _COLUMNS]
    if any(type(column) is not list for column in columns):
        return None
    return (run_id, *columns)  # type: ignore[return-value]


class CompactRunOut(BaseModel):
    """A run in trackflow's compact shape."""

    info: RunInfoOut
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, tuple[float, int, int]] = Field(
        default_factory=dict,
        description="Each metric's latest point as [value, timestamp, step]; NaN and the "
        "infinities as the bare JSON tokens NaN, Infinity, -Infinity.",
    )


class CompactSearchResponse(BaseModel):
    """A page of runs in the compact shape; ``next_page_token`` is left out on the last page."""

    runs: list[CompactRunOut] = Field(default_factory=list)
    next_page_token: str | None = None


class CreateRunResponse(BaseModel):
    """The created (or existing) run."""

    run: RunOut


class ChildrenResponse(BaseModel):
    """Children of a run, oldest first; with ``recursive`` the whole subtree, level by level."""

    runs: list[RunOut] = Field(default_factory=list)


class HeartbeatRequest(RequestModel):
    """Runs that are alive; RUNNING runs among them get ``timestamp`` as their heartbeat."""

    run_ids: list[str] = Field(max_length=1000)
    timestamp: Int64 | None = Field(None, description="Epoch milliseconds; default: now.")


class ReapStaleRequest(RequestModel):
    """Fail RUNNING runs whose last heartbeat is older than ``older_than_ms``."""

    older_than_ms: Int64 = Field(gt=0)


class ReapStaleResponse(BaseModel):
    """The runs that were marked FAILED."""

    run_ids: list[str] = Field(default_factory=list)


class SampledHistoryResponse(BaseModel):
    """At most ``max_points`` points of a series, in step order, its extremes kept."""

    metrics: list[MetricOut] = Field(default_factory=list)


class SampledSeries(BaseModel):
    """One run's sampled series as columns: ``steps[i]``, ``timestamps[i]``, ``values[i]``."""

    run_id: str
    steps: list[int] = Field(default_factory=list)
    timestamps: list[int] = Field(default_factory=list)
    values: list[float | Literal["NaN", "Infinity", "-Infinity"]] = Field(
        default_factory=list,
        description='Numbers, or "NaN", "Infinity", "-Infinity" as MLflow writes them.',
    )


class SampledHistoryBulkResponse(BaseModel):
    """The sampled series of one metric for each run asked for, in that order."""

    series: list[SampledSeries] = Field(default_factory=list)


class LineageEdgeBody(RequestModel):
    """``POST lineage/record`` and each edge of ``lineage/get``: run ``consumer_run_id``
    used ``artifact_path`` of run ``producer_run_id``, whose content had ``sha256``."""

    consumer_run_id: str
    producer_run_id: str
    artifact_path: str
    sha256: str = Field(description="Hex sha256 of the artifact's content (64 characters).")
    timestamp: Int64 | None = Field(None, description="When, in ms (default: now).")


class LineageResponse(BaseModel):
    """A run's edges: what it consumed, and who consumed what it produced."""

    consumed: list[LineageEdgeBody] = Field(default_factory=list)
    produced: list[LineageEdgeBody] = Field(default_factory=list)


class HealthResponse(BaseModel):
    """The server is up."""

    status: Literal["ok"] = "ok"
