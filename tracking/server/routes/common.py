"""Pieces every route module uses: documented error responses, run rendering,
the fast-lane route of the log calls."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from tracking.entities import Run
from tracking.server.errors import ErrorBody
from tracking.server.render import run_json
from tracking.server.responses import empty_response
from tracking.server.state import ServerState

__all__ = ["ERRORS", "FastLaneRoute", "render_runs"]

#: The error responses every endpoint may give, for the OpenAPI schema.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid parameter, malformed JSON, bad state"},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "No such experiment, run, artifact or endpoint"},
    413: {"model": ErrorBody, "description": "Request body too large"},
}


def render_runs(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Runs as MLflow JSON, their metrics with the step and timestamp of the latest point."""
    return [run_json(run) for run in runs]


class FastLaneRoute(APIRoute):
    """A write route with a fast lane for what clients send hundreds of times a second.

    Subclasses give :meth:`lane`. A JSON body the lane takes (plain metric
    points, say) skips FastAPI's model validation, a third of such a request's
    time; the call it returns runs through :meth:`ServerState.quick` and answers
    ``{}``. Any other body takes FastAPI's request handling: model validation,
    its error messages, the endpoint function. Both end in the same validation
    (the server's :class:`~tracking.client.TrackingClient`) and the same
    transaction. The OpenAPI schema is the endpoint's, unchanged.
    """

    def lane(self, state: ServerState, body: bytes) -> Callable[[], object] | None:
        """The store call (a ``functools.partial``) for a JSON ``body``, or ``None``
        to leave the body to FastAPI."""
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        lane = self.lane

        async def handler(request: Request) -> Response:
            if request.headers.get("content-type", "").startswith("application/json"):
                state: ServerState = request.app.state.trackflow
                call = lane(state, await request.body())
                if call is not None:
                    await state.quick(call)
                    return empty_response()
            return await standard(request)

        return handler
