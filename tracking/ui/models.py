"""Models in the web UI: a run's logged models (a section of its page), a logged model's
page with its files, and the model registry (its models, and each one's versions with
the run and the pipeline run they came from).

Pages::

    /experiments/{experiment_id}/models/{model_id}   a logged model (?path= browses its files)
    /logged-models/{model_id}                        on to that page, from the id alone
    /models                                          the registry's models
    /models/{name}                                   a registered model and its versions

Each page is a fixed number of batched reads, however many versions, runs or pipeline
runs it shows (:meth:`~tracking.store.sql.store.SqlTrackingStore.ui_run_origins` walks
the run tree a level per query).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tracking.entities import (
    LifecycleStage,
    LoggedModel,
    ModelVersion,
    RegisteredModel,
    Run,
    RunData,
    RunInfo,
    RunStatus,
)
from tracking.errors import TrackingError
from tracking.server.state import ServerState, StateDep
from tracking.store.sql.browse import version_page
from tracking.ui.model_reads import model_path, registry_path, version_rows
from tracking.ui.render import page
from tracking.ui.run_page import browse_files, user_file_response

__all__ = ["REGISTRY_PAGE", "router"]

router = APIRouter(include_in_schema=False)

#: Registered models per page of the registry.
REGISTRY_PAGE = 100


def _files_of(model: LoggedModel) -> Run:
    """The model's files as the artifact proxy addresses them: by an owner's artifact URI,
    so the model's location passes the same confinement checks as a run's."""
    info = RunInfo(
        model.model_id,
        model.experiment_id,
        model.name,
        "",
        RunStatus.FINISHED,
        None,
        None,
        model.artifact_location,
        LifecycleStage.ACTIVE,
    )
    return Run(info, RunData())


def _not_found(request: Request, title: str, exc: Exception | str) -> Response:
    return page(request, "error.html", status_code=404, title=title, error=str(exc))


# -- a logged model's page ---------------------------------------------------------------


def _model(
    request: Request, state: ServerState, experiment_id: str, model_id: str
) -> LoggedModel | Response:
    try:
        model = state.store.get_logged_model(model_id)
    except TrackingError as exc:
        return _not_found(request, "Model not found", exc)
    if model.experiment_id != experiment_id:
        return page(
            request,
            "error.html",
            status_code=404,
            title="Model not found",
            error=f"Logged model {model_id} is in experiment {model.experiment_id}, "
            f"not {experiment_id}",
            link=model_path(model),
        )
    return model


def _files(state: ServerState, model: LoggedModel, path: str) -> dict[str, Any]:
    """The model's files under ``path`` (a directory), or ``path``'s directory with the
    file and its preview."""
    missing = f"No file {path.strip('/')!r} in model {model.model_id}"
    return browse_files(state, _files_of(model), path, missing)


@router.get("/experiments/{experiment_id}/models/{model_id}")
def model_page(
    request: Request, state: StateDep, experiment_id: str, model_id: str, path: str = ""
) -> Response:
    """A logged model: its info, params, linked metrics, tags, files and the registered
    versions made from it."""
    found = _model(request, state, experiment_id, model_id)
    if isinstance(found, Response):
        return found
    model = found
    store = state.store
    experiment = store.get_experiment(experiment_id)
    metric_runs = {m.run_id for m in model.metrics if m.run_id}
    source = [model.source_run_id] if model.source_run_id else []
    origins = store.ui_run_origins([*source, *sorted(metric_runs)])
    versions = [
        v
        for v in store.ui_model_versions(run_ids=source, model_ids=[model.model_id])
        if v.model_id == model.model_id
    ]
    files = _files(state, model, path)
    tags = sorted(model.tags.items())
    return page(
        request,
        "model.html",
        status_code=404 if files["error"] and path else 200,
        model=model,
        experiment=experiment,
        origins=origins,
        versions=versions,
        registry_path=registry_path,
        files=files,
        metrics=sorted(model.metrics, key=lambda m: (m.key, m.step, m.timestamp)),
        user_tags=[t for t in tags if not t[0].startswith("mlflow.")],
        system_tags=[t for t in tags if t[0].startswith("mlflow.")],
    )


@router.get("/logged-models/{model_id}")
def model_redirect(request: Request, state: StateDep, model_id: str) -> Response:
    """A logged model by id alone (the registry's links): on to its page."""
    try:
        model = state.store.get_logged_model(model_id)
    except TrackingError as exc:
        return _not_found(request, "Model not found", exc)
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(root + model_path(model), status_code=303)


@router.get("/ui/artifact/models/{model_id}/{path:path}")
def raw_model_file(
    request: Request, state: StateDep, model_id: str, path: str, download: bool = False
) -> Response:
    """A file of a logged model: inline for previews (HTML sandboxed by CSP), or as a
    download. Under ``/ui/artifact/`` so a long download holds no page slot."""
    try:
        model = state.store.get_logged_model(model_id)
        stream = state.proxy.open_run_artifact(_files_of(model), path)
    except TrackingError as exc:
        return _not_found(request, "No such file", exc)
    return user_file_response(stream, path, download)


# -- the registry ------------------------------------------------------------------------


def _latest(model: RegisteredModel) -> ModelVersion | None:
    return max(model.latest_versions, key=lambda v: int(v.version), default=None)


@router.get("/models")
def registry_page(request: Request, state: StateDep, q: str = "", page_token: str = "") -> Response:
    """The registered models: name, latest version, aliases, description, last update."""
    error = None
    found: list[RegisteredModel] = []
    token = None
    like = q.replace("'", "\\'")
    try:
        listed = state.store.search_registered_models(
            f"name ILIKE '%{like}%'" if q else "",
            max_results=REGISTRY_PAGE,
            order_by=["name ASC"],
            page_token=page_token or None,
        )
        found, token = list(listed), listed.token
    except TrackingError as exc:
        error = str(exc)
    rows = [
        (m, _latest(m), sorted(m.aliases.items(), key=lambda a: a[0]), registry_path(m.name))
        for m in found
    ]
    return page(
        request,
        "registry.html",
        status_code=400 if error else 200,
        rows=rows,
        q=q,
        next_token=token,
        error=error,
        registry_path=registry_path,
    )


@router.get("/models/{name:path}")
def registered_model_page(
    request: Request, state: StateDep, name: str, before: int | None = None
) -> Response:
    """A registered model: its aliases, tags and versions (each with its logged model, the
    run and the pipeline run it came from), newest first, 100 a page
    (``before``: the versions below that number)."""
    try:
        model = state.store.get_registered_model(name)
    except TrackingError as exc:
        return _not_found(request, "Registered model not found", exc)
    found = version_page(state.store, name, before)
    shown = {v.version for v in found.versions}
    # An alias's version on another page: the page that starts with it.
    aliases = [
        (alias, version, "" if version in shown else f"?before={int(version) + 1}")
        for alias, version in sorted(model.aliases.items(), key=lambda a: a[0])
    ]
    return page(
        request,
        "registry_model.html",
        model=model,
        rows=version_rows(state.store, found.versions),
        total=found.total,
        before=before,
        next_before=found.before,
        aliases=aliases,
        tags=sorted(model.tags.items()),
    )
