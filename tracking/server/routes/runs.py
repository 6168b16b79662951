"""MLflow's run endpoints: ``runs/create``, ``get``, ``update``, ``search``, the log calls.

The log calls (``log-metric``, ``log-batch``, ``log-parameter``, ``set-tag``)
are the hot path: a client sends hundreds a second. They validate through the
server's :class:`~tracking.client.TrackingClient` like every write and run
through :meth:`ServerState.quick`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field
from starlette.responses import Response

from tracking import validation
from tracking.client import TrackingClient
from tracking.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    Metric,
    ModelMetric,
    PagedList,
    Param,
    Run,
    RunTag,
)
from tracking.errors import InvalidParameterError, RunNotFoundError
from tracking.server import params
from tracking.server.render import RunModels, metrics_json, run_info_json
from tracking.server.responses import MlflowJSONResponse, empty_response
from tracking.server.routes.common import (
    ERRORS,
    add_fast_lane_route,
    check_max_results,
    render_runs,
)
from tracking.server.schemas.mlflow import (
    CreateRun,
    DeleteTag,
    LogBatch,
    LogInputs,
    LogMetric,
    LogModel,
    LogParam,
    MetricHistoryResponse,
    RunInfoResponse,
    RunRef,
    RunResponse,
    SearchRuns,
    SearchRunsResponse,
    SetTag,
    UpdateRun,
    plain_log_batch,
)
from tracking.server.state import ServerState, StateDep

__all__ = ["check_param_keys", "metrics_router", "router", "search_page"]

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERRORS)
metrics_router = APIRouter(prefix="/metrics", tags=["runs"], responses=ERRORS)

PARENT_RUN_TAG = "mlflow.parentRunId"
LOGGED_MODELS_TAG = "mlflow.log-model.history"
#: Searches for at most this many runs run as quick calls (see ServerState.quick).
QUICK_SEARCH_RESULTS = 1000


def run_response(run: Run, models: Mapping[str, RunModels] | None = None) -> Response:
    """``{"run": <run json>}``."""
    (rendered,) = render_runs([run], models)
    return MlflowJSONResponse({"run": rendered})


@router.post("/create", response_model=RunResponse)
async def create_run(body: CreateRun, state: StateDep) -> Response:
    """Create a RUNNING run; the tag ``mlflow.parentRunId`` makes it a child run."""
    tags = {tag.key: tag.value for tag in body.tags}
    run = await state.quick(
        _create_run,
        state.client,
        params.experiment_id(body.experiment_id),
        run_name=body.run_name,
        tags=tags,
        start_time=body.start_time,
        parent_run_id=tags.get(PARENT_RUN_TAG) or None,
        user_id=body.user_id,
    )
    return run_response(run)


def _create_run(
    client: TrackingClient, experiment_id: str, *, parent_run_id: str | None, **kwargs: Any
) -> Run:
    try:
        return client.create_run(experiment_id, parent_run_id=parent_run_id, **kwargs)
    except RunNotFoundError:
        if parent_run_id is None:
            raise
    # MLflow keeps the tag of a parent it does not know; so does trackflow, and the run
    # is not linked (a parent that exists makes it a child run). The failed try wrote
    # nothing; the common case (no parent, or one that exists) costs no extra read.
    return client.create_run(experiment_id, parent_run_id=None, **kwargs)


@router.get("/get", response_model=RunResponse)
async def get_run(query: Annotated[RunRef, Query()], state: StateDep) -> Response:
    """A run with its params, tags and latest metrics."""
    run = await state.quick(state.client.get_run, query.resolved_run_id())
    # MLflow 3's model_inputs and model_outputs: the logged models the run used and made.
    models = await state.quick(state.store.get_runs_models, [run.info.run_id])
    return run_response(run, models)


@router.post("/update", response_model=RunInfoResponse)
async def update_run(body: UpdateRun, state: StateDep) -> Response:
    """Change a run's status, end time or name."""
    info = await state.quick(
        state.client.update_run,
        body.resolved_run_id(),
        status=body.status,
        name=body.run_name,
        end_time=body.end_time,
    )
    return MlflowJSONResponse({"run_info": run_info_json(info)})


@router.post("/delete", response_model=dict[str, str])
async def delete_run(body: RunRef, state: StateDep) -> Response:
    """Move a run to the deleted stage."""
    await state.run(state.client.delete_run, body.resolved_run_id())
    return empty_response()


@router.post("/restore", response_model=dict[str, str])
async def restore_run(body: RunRef, state: StateDep) -> Response:
    """Bring a deleted run back."""
    await state.run(state.client.restore_run, body.resolved_run_id())
    return empty_response()


@router.post("/log-metric", response_model=dict[str, str])
async def log_metric(body: LogMetric, state: StateDep) -> Response:
    """Append one metric point (NaN and infinities allowed)."""
    run_id = body.resolved_run_id()
    if body.model_id:
        # Linked to a logged model: one timestamp for the run's point and the model's.
        timestamp = body.timestamp if body.timestamp is not None else time.time_ns() // 1_000_000
        point = ModelMetric(
            body.key,
            body.value,
            timestamp,
            body.step,
            run_id,
            body.dataset_name or None,
            body.dataset_digest or None,
        )
        # The model is checked first: a rejected request writes nothing.
        await state.run(state.client.get_logged_model, body.model_id)
        await state.run(state.client.log_metric, run_id, body.key, body.value, timestamp, body.step)
        await state.run(state.client.link_model_metrics, [(body.model_id, point)])
        return empty_response()
    await state.quick(
        state.client.log_metric, run_id, body.key, body.value, body.timestamp, body.step
    )
    return empty_response()


@router.post("/log-parameter", response_model=dict[str, str])
async def log_param(body: LogParam, state: StateDep) -> Response:
    """Log a param; logging another value for the key later is refused."""
    await state.quick(state.client.log_param, body.resolved_run_id(), body.key, body.value)
    return empty_response()


@router.post("/set-tag", response_model=dict[str, str])
async def set_tag(body: SetTag, state: StateDep) -> Response:
    """Set (or overwrite) a run tag."""
    await state.quick(state.client.set_tag, body.resolved_run_id(), body.key, body.value)
    return empty_response()


@router.post("/delete-tag", response_model=dict[str, str])
async def delete_tag(body: DeleteTag, state: StateDep) -> Response:
    """Remove a run tag."""
    await state.run(state.client.delete_tag, body.resolved_run_id(), body.key)
    return empty_response()


async def log_batch(body: LogBatch, state: StateDep) -> Response:
    """Up to 1000 metrics, 100 params and 100 tags in one transaction: all or nothing."""
    metrics = [Metric(m.key, m.value, m.timestamp, m.step) for m in body.metrics]
    params_ = [Param(p.key, p.value) for p in body.params]
    check_param_keys(params_)
    tags = [RunTag(t.key, t.value) for t in body.tags]
    run_id = body.resolved_run_id()
    linked = [
        (
            m.model_id,
            ModelMetric(
                m.key,
                m.value,
                m.timestamp,
                m.step,
                run_id,
                m.dataset_name or None,
                m.dataset_digest or None,
            ),
        )
        for m in body.metrics
        if m.model_id
    ]
    for model_id in {model_id for model_id, _ in linked}:
        # Checked first: a rejected request writes nothing.
        await state.run(state.client.get_logged_model, model_id)
    await state.quick(state.client.log_batch, run_id, metrics, params_, tags)
    if linked:
        await state.run(state.client.link_model_metrics, linked)
    return empty_response()


def check_param_keys(params_: list[Param]) -> None:
    """MLflow's refusal of a batch naming a param twice, with its wording; trackflow
    accepts a key sent twice with the same value (a retried chunk), not two values."""
    seen: dict[str, str] = {}
    clashes = [p.key for p in params_ if seen.setdefault(p.key, p.value) != p.value]
    if clashes:
        raise InvalidParameterError(
            f"Duplicate parameter keys have been submitted: {sorted(set(clashes))}. Please "
            "ensure the request contains only one param value per param key (trackflow "
            "accepts a key sent twice only with the same value)."
        )


add_fast_lane_route(
    router, "/log-batch", log_batch, lane=plain_log_batch, call=TrackingClient.log_batch
)


def _record_logged_model(state: ServerState, run_id: str, model_json: str) -> None:
    try:
        model = json.loads(model_json)
    except ValueError:
        raise InvalidParameterError(
            "Invalid value for parameter 'model_json': it is not valid JSON"
        ) from None
    if not isinstance(model, dict):
        raise InvalidParameterError(
            "Invalid value for parameter 'model_json': expected a JSON object"
        )
    run = state.client.get_run(run_id)
    history: list[Any] = []
    if LOGGED_MODELS_TAG in run.data.tags:
        try:
            history = list(json.loads(run.data.tags[LOGGED_MODELS_TAG]))
        except (ValueError, TypeError):
            history = []
    history.append(model)
    state.client.set_tag(run_id, LOGGED_MODELS_TAG, json.dumps(history))


@router.post("/log-inputs", response_model=dict[str, str])
async def log_inputs(body: LogInputs, state: StateDep) -> Response:
    """Record the data sets (``datasets``) and logged models (``models``) a run used."""
    model_ids = []
    for i, model in enumerate(body.models):
        model_id = model.get("model_id")
        if not isinstance(model_id, str):
            raise InvalidParameterError(
                f"Invalid value {model_id!r} for parameter 'models[{i}].model_id' supplied: "
                "expected a logged model id"
            )
        model_ids.append(model_id)
    for model_id in model_ids:
        # Checked before anything is written: a rejected request writes nothing.
        await state.run(state.client.get_logged_model, model_id)
    inputs = [
        DatasetInput(
            Dataset(
                d.dataset.name,
                d.dataset.digest,
                d.dataset.source_type,
                d.dataset.source,
                d.dataset.schema_,
                d.dataset.profile,
            ),
            tuple(InputTag(t.key, t.value) for t in d.tags),
        )
        for d in body.datasets
    ]
    if inputs or not model_ids:
        await state.run(state.client.log_inputs, body.resolved_run_id(), inputs)
    if model_ids:
        await state.run(state.client.log_run_models, body.resolved_run_id(), model_ids)
    return empty_response()


@router.post("/log-model", response_model=dict[str, str])
async def log_model(body: LogModel, state: StateDep) -> Response:
    """Record a logged model in the run's ``mlflow.log-model.history`` tag, as MLflow does."""
    await state.run(_record_logged_model, state, body.resolved_run_id(), body.model_json)
    return empty_response()


async def search_page(state: ServerState, body: SearchRuns) -> PagedList[Run]:
    """The page of runs a ``runs/search`` body asks for."""
    # A page of a few hundred runs takes a few milliseconds: a quick call.
    check_max_results(body.max_results)
    runner = state.quick if body.max_results <= QUICK_SEARCH_RESULTS else state.run
    return await runner(
        state.client.search_runs,
        params.experiment_ids(body.experiment_ids),
        body.filter or "",
        body.run_view_type,
        body.max_results,
        body.order_by or None,
        body.page_token or None,
    )


@router.post("/search", response_model=SearchRunsResponse)
async def search_runs(body: SearchRuns, state: StateDep) -> Response:
    """Runs of some experiments matching an MLflow filter (``OR`` and parentheses too)."""
    page = await search_page(state, body)
    # MLflow's runs/search gives each run's model_outputs, not its model_inputs.
    models = await state.quick(state.store.get_runs_models, [run.info.run_id for run in page])
    out: dict[str, Any] = {"runs": render_runs(page, models, model_inputs=False)}
    if page.token:
        out["next_page_token"] = page.token
    return MlflowJSONResponse(out)


class _HistoryQuery(RunRef):
    """``metrics/get-history`` query parameters."""

    metric_key: str
    max_results: Annotated[int, Field(ge=1, le=validation.MAX_SEARCH_RESULTS)] | None = None
    page_token: str | None = None


def _history(state: ServerState, query: _HistoryQuery) -> PagedList[Metric]:
    run_id = validation.validate_run_id(query.resolved_run_id())
    key = validation.validate_key(query.metric_key, "metric")
    return state.store.get_metric_history(run_id, key, query.max_results, query.page_token)


@metrics_router.get("/get-history", response_model=MetricHistoryResponse)
async def get_metric_history(query: Annotated[_HistoryQuery, Query()], state: StateDep) -> Response:
    """Every point of a metric by step, a page of ``max_results`` at a time if given."""
    page = await state.run(_history, state, query)
    out: dict[str, Any] = {"metrics": metrics_json(page)}
    if page.token:
        out["next_page_token"] = page.token
    return MlflowJSONResponse(out)


# -- MLflow's bulk history endpoints (what its web UI's charts call) ---------------------

#: MLflow's limits: runs per bulk request, points per run.
MAX_BULK_RUNS = 100
MAX_BULK_HISTORY = 25000
MAX_INTERVAL_RESULTS = 2500


def _run_history(state: ServerState, run_id: str, key: str) -> list[Metric]:
    return list(state.store.get_metric_history(validation.validate_run_id(run_id), key))


def _bulk(state: ServerState, run_ids: list[str], key: str, limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for run_id in sorted(run_ids):
        points = sorted(
            _run_history(state, run_id, key), key=lambda m: (m.timestamp, m.step, m.value)
        )
        out.extend({**m, "run_id": run_id} for m in metrics_json(points[:limit]))
    return out[:limit]


@metrics_router.get("/get-history-bulk", response_model=dict[str, Any])
async def get_metric_history_bulk(
    state: StateDep,
    run_id: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    metric_key: str | None = None,
    max_results: int = MAX_BULK_HISTORY,
) -> Response:
    """Every point of a metric of several runs (MLflow's ``metrics/get-history-bulk``)."""
    if not run_id:
        raise InvalidParameterError(
            "GetMetricHistoryBulk request must specify at least one run_id."
        )
    if len(run_id) > MAX_BULK_RUNS:
        raise InvalidParameterError(
            f"GetMetricHistoryBulk request cannot specify more than {MAX_BULK_RUNS} run_ids. "
            f"Received {len(run_id)} run_ids."
        )
    if metric_key is None:
        raise InvalidParameterError("GetMetricHistoryBulk request must specify a metric_key.")
    limit = min(max(max_results, 1), MAX_BULK_HISTORY)
    points = await state.run(_bulk, state, run_id, metric_key, limit)
    return MlflowJSONResponse({"metrics": points})


def _evenly_spaced(total: int, max_results: int) -> list[int]:
    """At most ``max_results`` indices into ``total`` items, first and last kept (MLflow's)."""
    if total <= max_results:
        return list(range(total))
    if max_results == 1:
        return [total - 1]
    step = (total - 1) / (max_results - 1)
    return sorted({round(i * step) for i in range(max_results)})


def _interval(
    state: ServerState,
    run_ids: list[str],
    key: str,
    max_results: int,
    steps: tuple[int, int] | None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for run_id in run_ids:
        points = [
            m
            for m in _run_history(state, run_id, key)
            if steps is None or steps[0] <= m.step <= steps[1]
        ]
        points.sort(key=lambda m: (m.step, m.timestamp, m.value))
        chosen = [points[i] for i in _evenly_spaced(len(points), max_results)]
        out.extend({**m, "run_id": run_id} for m in metrics_json(chosen))
    return out


@metrics_router.get("/get-history-bulk-interval", response_model=dict[str, Any])
async def get_metric_history_bulk_interval(
    state: StateDep,
    run_ids: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    metric_key: str | None = None,
    start_step: int | None = None,
    end_step: int | None = None,
    max_results: int = MAX_INTERVAL_RESULTS,
) -> Response:
    """Up to ``max_results`` evenly spaced points per run, first and last kept (MLflow's
    ``metrics/get-history-bulk-interval``)."""
    if not run_ids:
        raise InvalidParameterError("Missing value for required parameter 'run_ids'.")
    if len(run_ids) > MAX_BULK_RUNS:
        raise InvalidParameterError(
            f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} "
            f"run_ids. Received {len(run_ids)} run_ids."
        )
    if not metric_key:
        raise InvalidParameterError("Missing value for required parameter 'metric_key'.")
    if not 1 <= max_results <= MAX_INTERVAL_RESULTS:
        raise InvalidParameterError(f"max_results must be between 1 and {MAX_INTERVAL_RESULTS}.")
    if (start_step is None) != (end_step is None):
        raise InvalidParameterError(
            "If either start step or end step are specified, both must be specified."
        )
    steps = None
    if start_step is not None and end_step is not None:
        if start_step > end_step:
            raise InvalidParameterError(
                "end_step must be greater than start_step. "
                f"Found start_step={start_step} and end_step={end_step}."
            )
        steps = (start_step, end_step)
    points = await state.run(_interval, state, run_ids, metric_key, max_results, steps)
    return MlflowJSONResponse({"metrics": points})
