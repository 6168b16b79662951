"""MLflow 3's logged-model search, answered for a store that keeps no logged models.

trackflow has runs and artifacts but not MLflow 3's ``LoggedModel`` objects.
MLflow 3 clients look a run's models up while listing its artifacts
(``logged-models/search`` filtered by name); answering "none" keeps that
listing working. Every other logged-model call (``log_model`` starts by
creating one) is refused with ``NOT_IMPLEMENTED`` and a message saying what to
do instead, rather than an opaque 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.responses import Response

from tracking.errors import NotSupportedError
from tracking.server import params
from tracking.server.responses import MlflowJSONResponse
from tracking.server.routes.common import ERRORS
from tracking.server.schemas.common import Int64, RequestModel

__all__ = ["router"]

router = APIRouter(prefix="/logged-models", tags=["logged models"], responses=ERRORS)


class SearchLoggedModels(RequestModel):
    """``POST logged-models/search`` (MLflow 3)."""

    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    max_results: Int64 | None = None
    order_by: list[dict[str, Any]] = Field(default_factory=list)
    page_token: str | None = None


class SearchLoggedModelsResponse(BaseModel):
    """Always empty: trackflow keeps no logged models."""

    models: list[dict[str, Any]] = Field(default_factory=list)


@router.post("/search", response_model=SearchLoggedModelsResponse)
async def search_logged_models(body: SearchLoggedModels) -> Response:
    """Logged models of some experiments: none, as trackflow keeps none."""
    params.experiment_ids(body.experiment_ids)
    return MlflowJSONResponse({"models": []})


_NOT_KEPT = (
    "trackflow keeps no MLflow 3 logged models, so mlflow.<flavor>.log_model and the "
    "logged-model API are not supported; save the model's files as run artifacts instead "
    "(mlflow.log_artifacts(local_dir, 'model') or tracking.log_artifact)"
)


@router.post("", response_model=dict[str, str])
async def create_logged_model() -> Response:
    """What ``log_model`` calls first in MLflow 3: refused with NOT_IMPLEMENTED (400)."""
    raise NotSupportedError(_NOT_KEPT)


async def logged_model_call(model_path: str) -> Response:
    """Any other logged-model call (get, finalize, tags, delete): NOT_IMPLEMENTED (400)."""
    raise NotSupportedError(_NOT_KEPT)


for _method in ("GET", "POST", "PATCH", "DELETE"):
    router.add_api_route(
        "/{model_path:path}",
        logged_model_call,
        methods=[_method],
        response_model=dict[str, str],
        operation_id=f"logged_model_{_method.lower()}",
    )
