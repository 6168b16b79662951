"""Pieces every route module uses: documented error responses, run rendering,
the fast-lane route of the log calls."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from tracking import validation
from tracking.entities import Run
from tracking.errors import InvalidParameterError
from tracking.server.errors import ErrorBody
from tracking.server.render import NO_MODELS, RunModels, run_json
from tracking.server.responses import empty_response
from tracking.server.state import ServerState

__all__ = ["ERRORS", "add_fast_lane_route", "check_max_results", "render_runs"]

#: The error responses every endpoint may give, for the OpenAPI schema.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid parameter, malformed JSON, bad state"},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "No such experiment, run, artifact or endpoint"},
    413: {"model": ErrorBody, "description": "Request body too large"},
}


def check_max_results(max_results: int) -> int:
    """``max_results`` of a search, refused with MLflow's wording when out of range."""
    if not 1 <= max_results <= validation.MAX_SEARCH_RESULTS:
        raise InvalidParameterError(
            f"Invalid value {max_results} for parameter 'max_results' supplied: it must be "
            f"between 1 and {validation.MAX_SEARCH_RESULTS}"
        )
    return max_results


def render_runs(
    runs: Sequence[Run],
    models: Mapping[str, RunModels] | None = None,
    *,
    model_inputs: bool = True,
) -> list[dict[str, Any]]:
    """Runs as MLflow JSON, their metrics with the step and timestamp of the latest point;
    ``models`` (by run id, what ``get_runs_models`` answers) are their logged models
    (MLflow 3's ``outputs``; left out when not given)."""
    if models is None:
        return [run_json(run) for run in runs]
    return [
        run_json(run, models.get(run.info.run_id, NO_MODELS), model_inputs=model_inputs)
        for run in runs
    ]


def add_fast_lane_route(
    router: APIRouter,
    path: str,
    endpoint: Callable[..., Coroutine[Any, Any, Response]],
    *,
    lane: Callable[[bytes], Sequence[Any] | None],
    call: Callable[..., None],
) -> None:
    """Add ``POST path``, a write answering ``{}``, with a fast lane for what clients
    send hundreds of times a second.

    A JSON body that ``lane`` takes (plain metric points, say) skips FastAPI's
    model validation, a third of such a request's time: ``call`` (a
    :class:`~tracking.client.TrackingClient` method) gets the server's client and
    the arguments ``lane`` returned, through :meth:`ServerState.quick`. Any other
    body takes FastAPI's request handling: model validation, its error messages,
    ``endpoint``. Both end in the same validation (the server's client) and the
    same transaction. The OpenAPI schema is ``endpoint``'s, unchanged.
    """

    class FastLaneRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            standard = super().get_route_handler()

            async def handler(request: Request) -> Response:
                if request.headers.get("content-type", "").startswith("application/json"):
                    args = lane(await request.body())
                    if args is not None:
                        state: ServerState = request.app.state.trackflow
                        await state.quick(call, state.client, *args)
                        return empty_response()
                return await standard(request)

            return handler

    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        response_model=dict[str, str],
        route_class_override=FastLaneRoute,
    )
