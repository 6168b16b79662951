"""Bodies of trackflow's own endpoints under ``/api/2.0/trackflow/``.

These are the contract of trackflow's HTTP client store: change them only
together with it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from tracking.server.schemas.common import Int64, KeyValue, MetricOut, RequestModel, RunOut

__all__ = [
    "ChildrenResponse",
    "CreateRunRequest",
    "CreateRunResponse",
    "HealthResponse",
    "HeartbeatRequest",
    "ReapStaleRequest",
    "ReapStaleResponse",
    "SampledHistoryResponse",
]


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


class HealthResponse(BaseModel):
    """The server is up."""

    status: Literal["ok"] = "ok"
