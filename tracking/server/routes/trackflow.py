"""trackflow's own endpoints under ``/api/2.0/trackflow/``, and ``/health``.

They carry what MLflow's API has no call for: runs created with a
caller-chosen id (idempotent retries), run trees, heartbeats and reaping,
metric series sampled down for charts, and the two hot calls in leaner
JSON: a log-batch whose points travel as columns, a run search whose runs
carry their params, tags and metrics as objects. trackflow's HTTP client store
codes against exactly these shapes.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from tracking import validation
from tracking.client import TrackingClient
from tracking.entities import Param, Run, RunTag
from tracking.errors import InvalidParameterError, StoreUnavailableError, TrackingError
from tracking.server import params
from tracking.server.errors import validation_message
from tracking.server.render import (
    compact_run_json,
    metrics_json,
    run_info_json,
    series_columns_json,
)
from tracking.server.responses import MlflowJSONResponse, empty_response
from tracking.server.routes.common import ERRORS, add_fast_lane_route, render_runs
from tracking.server.routes.runs import check_param_keys, run_response, search_page
from tracking.server.schemas.mlflow import LogBatch, SearchRuns, UpdateRun
from tracking.server.schemas.trackflow import (
    BatchRequest,
    BatchResponse,
    ChildrenResponse,
    CompactSearchResponse,
    CreateRunRequest,
    CreateRunResponse,
    HealthResponse,
    HeartbeatRequest,
    LineageEdgeBody,
    LineageResponse,
    LogBatchColumns,
    ReapStaleRequest,
    ReapStaleResponse,
    SampledHistoryBulkResponse,
    SampledHistoryResponse,
    plain_column_batch,
)
from tracking.server.state import ServerState, StateDep
from tracking.store.rest_json import lineage_edge_json
from tracking.store.sql.sampling import MAX_SAMPLED_POINTS

__all__ = ["health_router", "router"]

router = APIRouter(tags=["trackflow"], responses=ERRORS)
health_router = APIRouter(tags=["health"])


def _create_run(client: TrackingClient, body: CreateRunRequest) -> Run:
    return client.create_run(
        params.experiment_id(body.experiment_id),
        run_name=body.run_name,
        tags={tag.key: tag.value for tag in body.tags},
        start_time=body.start_time,
        parent_run_id=body.parent_run_id,
        run_id=body.run_id,
        status=body.status,
        user_id=body.user_id,
    )


@router.post("/runs/create", response_model=CreateRunResponse)
async def create_run(body: CreateRunRequest, state: StateDep) -> Response:
    """Create a run; with a ``run_id`` that exists in the experiment, return that run."""
    return run_response(await state.quick(_create_run, state.client, body))


_BATCH_BODIES: dict[str, type[BaseModel]] = {
    "runs/create": CreateRunRequest,
    "runs/update": UpdateRun,
    "runs/log-batch": LogBatch,
}
#: Up to this many calls a batch runs inline on SQLite (as a single write would).
_INLINE_BATCH = 4


def _error_answer(exc: TrackingError) -> dict[str, Any]:
    body = {"error_code": exc.error_code, "message": str(exc), "error_class": type(exc).__name__}
    return {"status": exc.http_status, "body": body}


def _batch_call(state: ServerState, name: str, body: Any) -> dict[str, Any]:
    client = state.client
    if name == "runs/create":
        (rendered,) = render_runs([_create_run(client, body)])
        return {"run": rendered}
    if name == "runs/update":
        info = client.update_run(
            body.resolved_run_id(), status=body.status, name=body.run_name, end_time=body.end_time
        )
        return {"run_info": run_info_json(info)}
    if body.metrics:
        raise InvalidParameterError(
            "Invalid value for parameter 'metrics': a batch's runs/log-batch carries params "
            "and tags only (metric points go to runs/log-batch itself)"
        )
    params_ = [Param(p.key, p.value) for p in body.params]
    check_param_keys(params_)
    client.log_batch(
        body.resolved_run_id(), [], params_, [RunTag(t.key, t.value) for t in body.tags]
    )
    return {}


def _run_batch(state: ServerState, calls: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Each call in its own transaction, as if sent alone; a database that cannot be
    reached fails the whole batch (503: the client sends it again, every call being
    idempotent)."""
    answers = []
    for name, body in calls:
        if isinstance(body, TrackingError):
            answers.append(_error_answer(body))
            continue
        try:
            answers.append({"status": 200, "body": _batch_call(state, name, body)})
        except StoreUnavailableError:
            raise
        except TrackingError as exc:
            answers.append(_error_answer(exc))
    return answers


@router.post("/batch", response_model=BatchResponse)
async def batch(body: BatchRequest, state: StateDep) -> Response:
    """Idempotent writes from many threads of one client in one request (trackflow's
    client coalesces what its threads send while a request is on the wire). Each call
    is answered as its own endpoint would answer it, status and body."""
    calls: list[tuple[str, Any]] = []
    for item in body.calls:
        try:
            parsed: Any = _BATCH_BODIES[item.call].model_validate(item.body)
        except ValidationError as exc:
            parsed = InvalidParameterError(validation_message(exc.errors()))
        calls.append((item.call, parsed))
    run = state.quick if len(calls) <= _INLINE_BATCH else state.run
    answers = await run(_run_batch, state, calls)
    return MlflowJSONResponse({"answers": answers})


@router.post("/runs/search", response_model=CompactSearchResponse)
async def search_runs(body: SearchRuns, state: StateDep) -> Response:
    """MLflow's ``runs/search`` (the same body) answered in the compact run shape:
    half the JSON, and what trackflow's client asks for."""
    page = await search_page(state, body)
    out: dict[str, Any] = {"runs": [compact_run_json(run) for run in page]}
    if page.token:
        out["next_page_token"] = page.token
    return MlflowJSONResponse(out)


@router.get("/runs/children", response_model=ChildrenResponse)
async def get_children(state: StateDep, run_id: str, recursive: bool = False) -> Response:
    """The direct children of a run, oldest first, or with ``recursive`` its whole subtree."""
    fetch = state.client.get_subtree if recursive else state.client.get_children
    runs = await state.run(fetch, run_id)
    return MlflowJSONResponse({"runs": render_runs(runs)})


async def log_batch(body: LogBatchColumns, state: StateDep) -> Response:
    """Up to 1000 metric points (as columns), 100 params and 100 tags in one
    transaction: all or nothing."""
    columns = body.metrics
    metrics = validation.validate_metric_columns(
        columns.key, columns.value, columns.timestamp, columns.step
    )
    await state.quick(
        state.client.log_batch,
        body.run_id,
        metrics,
        [Param(p.key, p.value) for p in body.params],
        [RunTag(t.key, t.value) for t in body.tags],
    )
    return empty_response()


add_fast_lane_route(
    router,
    "/runs/log-batch",
    log_batch,
    lane=plain_column_batch,
    call=TrackingClient.log_metric_columns,
)


def _heartbeat(state: ServerState, run_ids: list[str], timestamp: int | None) -> None:
    checked = [validation.validate_run_id(r, f"run_ids[{i}]") for i, r in enumerate(run_ids)]
    now = timestamp if timestamp is not None else time.time_ns() // 1_000_000
    state.store.heartbeat(checked, now)


@router.post("/runs/heartbeat", response_model=dict[str, str])
async def heartbeat(body: HeartbeatRequest, state: StateDep) -> Response:
    """Record that these runs are alive (RUNNING ones get the new heartbeat time)."""
    await state.quick(_heartbeat, state, body.run_ids, body.timestamp)
    return empty_response()


@router.post("/runs/reap-stale", response_model=ReapStaleResponse)
async def reap_stale(body: ReapStaleRequest, state: StateDep) -> Response:
    """Mark FAILED the RUNNING runs with no heartbeat for ``older_than_ms``."""
    reaped = await state.run(state.client.reap_stale_runs, body.older_than_ms / 1000)
    return MlflowJSONResponse({"run_ids": reaped})


@router.get("/metrics/get-history-sampled", response_model=SampledHistoryResponse)
async def get_history_sampled(
    state: StateDep,
    run_id: str,
    metric_key: str,
    max_points: Annotated[int, Query(ge=2, le=MAX_SAMPLED_POINTS)] = 1000,
) -> Response:
    """At most ``max_points`` points of a series by step, each bucket's extremes kept."""
    checked = validation.validate_run_id(run_id)
    key = validation.validate_key(metric_key, "metric")
    points = await state.run(state.store.get_metric_history_sampled, checked, key, max_points)
    return MlflowJSONResponse({"metrics": metrics_json(points)})


#: The most runs one bulk read of sampled series takes (the UI's compare page takes 100).
MAX_BULK_RUNS = 100


@router.get("/metrics/get-history-sampled-bulk", response_model=SampledHistoryBulkResponse)
async def get_history_sampled_bulk(
    state: StateDep,
    run_id: Annotated[list[str], Query(description="Each run, once per run.")],
    metric_key: str,
    max_points: Annotated[int, Query(ge=2, le=MAX_SAMPLED_POINTS)] = 1000,
) -> Response:
    """``get-history-sampled`` of one metric for many runs in one read (a chart of many
    runs), each series as columns; a run without the metric gives empty columns."""
    if len(run_id) > MAX_BULK_RUNS:
        raise InvalidParameterError(
            f"Invalid run_id: at most {MAX_BULK_RUNS} runs per call, got {len(run_id)}"
        )
    checked = [validation.validate_run_id(r) for r in run_id]
    key = validation.validate_key(metric_key, "metric")
    found = await state.run(state.store.get_metric_histories_sampled, checked, key, max_points)
    series = [series_columns_json(rid, points) for rid, points in found.items()]
    return MlflowJSONResponse({"series": series})


@router.post("/lineage/record", response_model=dict[str, str])
async def record_lineage(body: LineageEdgeBody, state: StateDep) -> Response:
    """Store that a run used an artifact of another run (once per edge)."""
    await state.run(
        state.client.record_lineage,
        body.consumer_run_id,
        body.producer_run_id,
        body.artifact_path,
        body.sha256,
        body.timestamp,
    )
    return empty_response()


@router.get("/lineage/get", response_model=LineageResponse)
async def get_lineage(state: StateDep, run_id: str) -> Response:
    """What a run consumed (with the producing runs) and produced (with the consumers)."""
    found = await state.run(state.client.get_lineage, run_id)
    return MlflowJSONResponse(
        {
            "consumed": [lineage_edge_json(e) for e in found.consumed],
            "produced": [lineage_edge_json(e) for e in found.produced],
        }
    )


@health_router.get("/health", response_model=HealthResponse)
async def health() -> Response:
    """Always answers (no token needed) while the server runs."""
    return MlflowJSONResponse(b'{"status":"ok"}')


@router.get("/runs/models", response_model=dict[str, Any])
async def run_models(state: StateDep, run_id: str) -> Response:
    """The logged models a run used (``inputs``) and produced (``outputs``, with steps)."""
    inputs, outputs = await state.run(state.client.get_run_models, run_id)
    return MlflowJSONResponse(
        {"inputs": inputs, "outputs": [{"model_id": m, "step": s} for m, s in outputs]}
    )
