"""Pieces every route module uses: documented error responses, run rendering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tracking.entities import Run
from tracking.server.errors import ErrorBody
from tracking.server.render import run_json

__all__ = ["ERRORS", "render_runs"]

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
