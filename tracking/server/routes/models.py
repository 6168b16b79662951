"""MLflow 3's logged models and the model registry, as the stock client calls them.

``logged-models``: create, get, finalize (``PATCH``), delete, tags, params,
search; ``runs/outputs`` links a run to the models it produced. A logged
model's files live under its own artifact location
(``mlflow-artifacts:/<experiment_id>/models/<model_id>/artifacts``), served by
the artifact proxy, so ``mlflow.<flavor>.load_model("models:/<model_id>")``
works.

``registered-models`` and ``model-versions``: the registry, with aliases
(``models:/churn@champion``); stages are deprecated in MLflow and accepted
as the client still sends them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from tracking.entities import LoggedModel, LoggedModelStatus, ModelVersion, RegisteredModel
from tracking.errors import InvalidParameterError
from tracking.server import params
from tracking.server.render import double_json
from tracking.server.responses import MlflowJSONResponse, empty_response
from tracking.server.routes.common import ERRORS, check_max_results
from tracking.server.schemas.models import (
    AliasBody,
    AliasRef,
    CreateLoggedModel,
    CreateModelVersion,
    CreateRegisteredModel,
    FinalizeLoggedModel,
    LatestVersions,
    LogOutputs,
    ModelParams,
    ModelTags,
    ModelVersionRef,
    ModelVersionTag,
    RegisteredModelRef,
    RegisteredModelTag,
    RenameRegisteredModel,
    SearchLoggedModels,
    SearchRegistry,
    TransitionStage,
    UpdateModelVersion,
    UpdateRegisteredModel,
)
from tracking.server.state import StateDep

__all__ = [
    "logged_model_json",
    "logged_models_router",
    "model_version_json",
    "outputs_router",
    "registered_model_json",
    "registry_router",
    "router",
]

logged_models_router = APIRouter(prefix="/logged-models", tags=["logged models"], responses=ERRORS)
outputs_router = APIRouter(prefix="/runs", tags=["logged models"], responses=ERRORS)
registry_router = APIRouter(tags=["model registry"], responses=ERRORS)

_STATUS_JSON = {
    LoggedModelStatus.PENDING: "LOGGED_MODEL_PENDING",
    LoggedModelStatus.READY: "LOGGED_MODEL_READY",
    LoggedModelStatus.FAILED: "LOGGED_MODEL_UPLOAD_FAILED",
}
_STATUS_IN = {
    "LOGGED_MODEL_PENDING": LoggedModelStatus.PENDING,
    "LOGGED_MODEL_READY": LoggedModelStatus.READY,
    "LOGGED_MODEL_UPLOAD_FAILED": LoggedModelStatus.FAILED,
    "1": LoggedModelStatus.PENDING,
    "2": LoggedModelStatus.READY,
    "3": LoggedModelStatus.FAILED,
}
#: What ``search`` returns at most per page unless asked otherwise (MLflow's default).
DEFAULT_SEARCH_RESULTS = 100


def _pairs(items: Iterable[Any]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items]


def logged_model_json(model: LoggedModel) -> dict[str, Any]:
    """A logged model as MLflow's ``LoggedModel`` JSON (``info`` and ``data``)."""
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "experiment_id": model.experiment_id,
        "name": model.name,
        "creation_timestamp_ms": model.creation_timestamp,
        "last_updated_timestamp_ms": model.last_updated_timestamp,
        "artifact_uri": model.artifact_location,
        "status": _STATUS_JSON[model.status],
        "tags": _pairs(model.tags.items()),
    }
    for key, value in (
        ("model_type", model.model_type),
        ("source_run_id", model.source_run_id),
        ("status_message", model.status_message),
    ):
        if value is not None:
            info[key] = value
    metrics = []
    for m in model.metrics:
        point: dict[str, Any] = {
            "key": m.key,
            "value": double_json(m.value),
            "timestamp": m.timestamp,
            "step": m.step,
            "model_id": model.model_id,
        }
        for key, value in (
            ("run_id", m.run_id),
            ("dataset_name", m.dataset_name),
            ("dataset_digest", m.dataset_digest),
        ):
            if value is not None:
                point[key] = value
        metrics.append(point)
    return {"info": info, "data": {"params": _pairs(model.params.items()), "metrics": metrics}}


def _model(model: LoggedModel) -> Response:
    return MlflowJSONResponse({"model": logged_model_json(model)})


@logged_models_router.post("", response_model=dict[str, Any])
async def create_logged_model(body: CreateLoggedModel, state: StateDep) -> Response:
    """Create a PENDING logged model; its ``artifact_uri`` is where its files go."""
    model = await state.run(
        state.client.create_logged_model,
        params.experiment_id(body.experiment_id),
        body.name or None,
        body.source_run_id or None,
        {t.key: t.value for t in body.tags},
        {p.key: p.value for p in body.params},
        body.model_type or None,
    )
    return _model(model)


@logged_models_router.post("/search", response_model=dict[str, Any])
async def search_logged_models(body: SearchLoggedModels, state: StateDep) -> Response:
    """Logged models of some experiments matching a filter, a page at a time."""
    max_results = check_max_results(
        body.max_results if body.max_results is not None else DEFAULT_SEARCH_RESULTS
    )
    page = await state.run(
        state.client.search_logged_models,
        params.experiment_ids(body.experiment_ids),
        body.filter or "",
        [
            {"dataset_name": d.dataset_name, "dataset_digest": d.dataset_digest}
            for d in body.datasets
        ],
        max_results,
        [o.model_dump() for o in body.order_by],
        body.page_token or None,
    )
    out: dict[str, Any] = {"models": [logged_model_json(m) for m in page]}
    if page.token:
        out["next_page_token"] = page.token
    return MlflowJSONResponse(out)


@logged_models_router.get("/{model_id}", response_model=dict[str, Any])
async def get_logged_model(model_id: str, state: StateDep, allow_deleted: bool = False) -> Response:
    """A logged model with its tags, params and linked metrics."""
    return _model(await state.run(state.client.get_logged_model, model_id, allow_deleted))


@logged_models_router.patch("/{model_id}", response_model=dict[str, Any])
async def finalize_logged_model(
    model_id: str, body: FinalizeLoggedModel, state: StateDep
) -> Response:
    """Mark a logged model READY (``LOGGED_MODEL_READY``) or FAILED."""
    status = _STATUS_IN.get(str(body.status).upper())
    if status is None:
        raise InvalidParameterError(
            f"Invalid value {body.status!r} for parameter 'status' supplied: expected "
            "LOGGED_MODEL_READY, LOGGED_MODEL_UPLOAD_FAILED or LOGGED_MODEL_PENDING"
        )
    return _model(await state.run(state.client.finalize_logged_model, model_id, status))


@logged_models_router.delete("/{model_id}", response_model=dict[str, str])
async def delete_logged_model(model_id: str, state: StateDep) -> Response:
    """Mark a logged model deleted."""
    await state.run(state.client.delete_logged_model, model_id)
    return empty_response()


@logged_models_router.patch("/{model_id}/tags", response_model=dict[str, str])
async def set_logged_model_tags(model_id: str, body: ModelTags, state: StateDep) -> Response:
    """Set (or overwrite) tags of a logged model."""
    await state.run(
        state.client.set_logged_model_tags, model_id, {t.key: t.value for t in body.tags}
    )
    return empty_response()


@logged_models_router.delete("/{model_id}/tags/{key:path}", response_model=dict[str, str])
async def delete_logged_model_tag(model_id: str, key: str, state: StateDep) -> Response:
    """Remove a tag of a logged model."""
    await state.run(state.client.delete_logged_model_tag, model_id, key)
    return empty_response()


@logged_models_router.post("/{model_id}/params", response_model=dict[str, str])
async def log_logged_model_params(model_id: str, body: ModelParams, state: StateDep) -> Response:
    """Add params to a logged model (the ones beyond the first hundred)."""
    await state.run(state.client.log_model_params, model_id, {p.key: p.value for p in body.params})
    return empty_response()


@outputs_router.post("/outputs", response_model=dict[str, str])
async def log_outputs(body: LogOutputs, state: StateDep) -> Response:
    """Record the logged models a run produced (what ``log_model`` sends)."""
    await state.run(
        state.client.log_run_models,
        body.run_id,
        (),
        [(m.model_id, m.step) for m in body.models],
    )
    return empty_response()


# -- the registry ------------------------------------------------------------------


def model_version_json(version: ModelVersion) -> dict[str, Any]:
    """A model version as MLflow's ``ModelVersion`` JSON."""
    out: dict[str, Any] = {
        "name": version.name,
        "version": version.version,
        "creation_timestamp": version.creation_timestamp,
        "last_updated_timestamp": version.last_updated_timestamp,
        "current_stage": version.current_stage,
        "source": version.source,
        "status": version.status,
        "tags": _pairs(version.tags.items()),
        "aliases": list(version.aliases),
    }
    for key, value in (
        ("description", version.description),
        ("user_id", version.user_id),
        ("run_id", version.run_id),
        ("run_link", version.run_link),
        ("status_message", version.status_message),
        ("model_id", version.model_id),
    ):
        if value is not None:
            out[key] = value
    return out


def registered_model_json(model: RegisteredModel) -> dict[str, Any]:
    """A registered model as MLflow's ``RegisteredModel`` JSON."""
    out: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": model.creation_timestamp,
        "last_updated_timestamp": model.last_updated_timestamp,
        "latest_versions": [model_version_json(v) for v in model.latest_versions],
        "tags": _pairs(model.tags.items()),
        "aliases": [{"alias": a, "version": v} for a, v in sorted(model.aliases.items())],
    }
    if model.description is not None:
        out["description"] = model.description
    return out


def _registered(model: RegisteredModel) -> Response:
    return MlflowJSONResponse({"registered_model": registered_model_json(model)})


def _version(version: ModelVersion) -> Response:
    return MlflowJSONResponse({"model_version": model_version_json(version)})


@registry_router.post("/registered-models/create", response_model=dict[str, Any])
async def create_registered_model(body: CreateRegisteredModel, state: StateDep) -> Response:
    """Create a registered model; RESOURCE_ALREADY_EXISTS if the name is taken."""
    model = await state.run(
        state.client.create_registered_model,
        body.name,
        {t.key: t.value for t in body.tags},
        body.description,
        request_id=body.request_id or None,
    )
    return _registered(model)


@registry_router.get("/registered-models/get", response_model=dict[str, Any])
async def get_registered_model(
    query: Annotated[RegisteredModelRef, Query()], state: StateDep
) -> Response:
    """A registered model with its tags, aliases and latest versions."""
    return _registered(await state.run(state.client.get_registered_model, query.name))


@registry_router.post("/registered-models/rename", response_model=dict[str, Any])
async def rename_registered_model(body: RenameRegisteredModel, state: StateDep) -> Response:
    """Rename a registered model; its versions and aliases follow."""
    return _registered(
        await state.run(state.client.rename_registered_model, body.name, body.new_name)
    )


@registry_router.patch("/registered-models/update", response_model=dict[str, Any])
async def update_registered_model(body: UpdateRegisteredModel, state: StateDep) -> Response:
    """Change a registered model's description."""
    return _registered(
        await state.run(state.client.update_registered_model, body.name, body.description)
    )


@registry_router.delete("/registered-models/delete", response_model=dict[str, str])
async def delete_registered_model(body: RegisteredModelRef, state: StateDep) -> Response:
    """Delete a registered model with its versions, tags and aliases."""
    await state.run(state.client.delete_registered_model, body.name)
    return empty_response()


async def _search_registered(query: SearchRegistry, state: StateDep) -> Response:
    max_results = check_max_results(query.max_results or DEFAULT_SEARCH_RESULTS)
    page = await state.run(
        state.client.search_registered_models,
        query.filter or "",
        max_results,
        query.order_by,
        query.page_token or None,
    )
    out: dict[str, Any] = {"registered_models": [registered_model_json(m) for m in page]}
    if page.token:
        out["next_page_token"] = page.token
    return MlflowJSONResponse(out)


@registry_router.get("/registered-models/search", response_model=dict[str, Any])
async def search_registered_models(
    query: Annotated[SearchRegistry, Query()], state: StateDep
) -> Response:
    """Registered models matching ``name LIKE 'churn%'`` or ``tags.k = 'v'``."""
    return await _search_registered(query, state)


@registry_router.post("/registered-models/search", response_model=dict[str, Any])
async def search_registered_models_post(body: SearchRegistry, state: StateDep) -> Response:
    """The same search with a JSON body."""
    return await _search_registered(body, state)


async def _latest(body: LatestVersions, state: StateDep) -> Response:
    versions = await state.run(state.client.get_latest_versions, body.name, body.stages)
    return MlflowJSONResponse({"model_versions": [model_version_json(v) for v in versions]})


@registry_router.post("/registered-models/get-latest-versions", response_model=dict[str, Any])
async def get_latest_versions(body: LatestVersions, state: StateDep) -> Response:
    """The newest version per (deprecated) stage."""
    return await _latest(body, state)


@registry_router.get("/registered-models/get-latest-versions", response_model=dict[str, Any])
async def get_latest_versions_get(
    query: Annotated[LatestVersions, Query()], state: StateDep
) -> Response:
    """The same with query parameters."""
    return await _latest(query, state)


@registry_router.post("/registered-models/set-tag", response_model=dict[str, str])
async def set_registered_model_tag(body: RegisteredModelTag, state: StateDep) -> Response:
    """Set (or overwrite) a tag of a registered model."""
    await state.run(state.client.set_registered_model_tag, body.name, body.key, body.value)
    return empty_response()


@registry_router.delete("/registered-models/delete-tag", response_model=dict[str, str])
async def delete_registered_model_tag(body: RegisteredModelTag, state: StateDep) -> Response:
    """Remove a tag of a registered model."""
    await state.run(state.client.delete_registered_model_tag, body.name, body.key)
    return empty_response()


@registry_router.post("/registered-models/alias", response_model=dict[str, str])
async def set_registered_model_alias(body: AliasBody, state: StateDep) -> Response:
    """Point an alias (``champion``) at a version."""
    await state.run(state.client.set_registered_model_alias, body.name, body.alias, body.version)
    return empty_response()


@registry_router.delete("/registered-models/alias", response_model=dict[str, str])
async def delete_registered_model_alias(body: AliasRef, state: StateDep) -> Response:
    """Remove an alias."""
    await state.run(state.client.delete_registered_model_alias, body.name, body.alias)
    return empty_response()


@registry_router.get("/registered-models/alias", response_model=dict[str, Any])
async def get_model_version_by_alias(
    query: Annotated[AliasRef, Query()], state: StateDep
) -> Response:
    """The version an alias points at."""
    return _version(
        await state.run(state.client.get_model_version_by_alias, query.name, query.alias)
    )


@registry_router.post("/model-versions/create", response_model=dict[str, Any])
async def create_model_version(body: CreateModelVersion, state: StateDep) -> Response:
    """Register the next version of a model from a logged model, a run or an artifact URI."""
    version = await state.run(
        state.client.create_model_version,
        body.name,
        body.source,
        body.run_id or None,
        {t.key: t.value for t in body.tags},
        body.run_link or None,
        body.description,
        body.model_id or None,
        request_id=body.request_id or None,
    )
    return _version(version)


@registry_router.get("/model-versions/get", response_model=dict[str, Any])
async def get_model_version(
    query: Annotated[ModelVersionRef, Query()], state: StateDep
) -> Response:
    """One version of a registered model."""
    return _version(await state.run(state.client.get_model_version, query.name, query.version))


@registry_router.patch("/model-versions/update", response_model=dict[str, Any])
async def update_model_version(body: UpdateModelVersion, state: StateDep) -> Response:
    """Change a version's description."""
    return _version(
        await state.run(
            state.client.update_model_version, body.name, body.version, body.description
        )
    )


@registry_router.post("/model-versions/transition-stage", response_model=dict[str, Any])
async def transition_model_version_stage(body: TransitionStage, state: StateDep) -> Response:
    """Move a version to a stage (deprecated in MLflow; accepted as the client sends it)."""
    return _version(
        await state.run(
            state.client.transition_model_version_stage,
            body.name,
            body.version,
            body.stage,
            body.archive_existing_versions,
        )
    )


@registry_router.delete("/model-versions/delete", response_model=dict[str, str])
async def delete_model_version(body: ModelVersionRef, state: StateDep) -> Response:
    """Delete a version and the aliases pointing at it."""
    await state.run(state.client.delete_model_version, body.name, body.version)
    return empty_response()


async def _search_versions(query: SearchRegistry, state: StateDep) -> Response:
    max_results = check_max_results(query.max_results or 10000)
    page = await state.run(
        state.client.search_model_versions,
        query.filter or "",
        max_results,
        query.order_by,
        query.page_token or None,
    )
    out: dict[str, Any] = {"model_versions": [model_version_json(v) for v in page]}
    if page.token:
        out["next_page_token"] = page.token
    return MlflowJSONResponse(out)


@registry_router.get("/model-versions/search", response_model=dict[str, Any])
async def search_model_versions(
    query: Annotated[SearchRegistry, Query()], state: StateDep
) -> Response:
    """Versions matching ``name = 'churn'``, ``run_id = '...'`` ..."""
    return await _search_versions(query, state)


@registry_router.post("/model-versions/search", response_model=dict[str, Any])
async def search_model_versions_post(body: SearchRegistry, state: StateDep) -> Response:
    """The same search with a JSON body."""
    return await _search_versions(body, state)


@registry_router.get("/model-versions/get-download-uri", response_model=dict[str, Any])
async def get_model_version_download_uri(
    query: Annotated[ModelVersionRef, Query()], state: StateDep
) -> Response:
    """Where a version's files are."""
    uri = await state.run(state.client.get_model_version_download_uri, query.name, query.version)
    return MlflowJSONResponse({"artifact_uri": uri})


@registry_router.post("/model-versions/set-tag", response_model=dict[str, str])
async def set_model_version_tag(body: ModelVersionTag, state: StateDep) -> Response:
    """Set (or overwrite) a tag of a version."""
    await state.run(
        state.client.set_model_version_tag, body.name, body.version, body.key, body.value
    )
    return empty_response()


@registry_router.delete("/model-versions/delete-tag", response_model=dict[str, str])
async def delete_model_version_tag(body: ModelVersionTag, state: StateDep) -> Response:
    """Remove a tag of a version."""
    await state.run(state.client.delete_model_version_tag, body.name, body.version, body.key)
    return empty_response()


#: What the app includes: the logged models, run outputs and the registry.
router = APIRouter()
router.include_router(logged_models_router)
router.include_router(outputs_router)
router.include_router(registry_router)
