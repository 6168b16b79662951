"""MLflow's experiment endpoints: ``experiments/create``, ``get``, ``search`` ..."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from tracking.artifacts import normalize_artifact_path, uri_scheme
from tracking.entities import Experiment, PagedList
from tracking.errors import ExperimentNotFoundError, InvalidParameterError
from tracking.server import params
from tracking.server.render import experiment_json
from tracking.server.responses import MlflowJSONResponse, empty_response
from tracking.server.routes.common import ERRORS, check_max_results
from tracking.server.schemas.mlflow import (
    CreateExperiment,
    CreateExperimentResponse,
    DeleteExperimentTag,
    ExperimentRef,
    ExperimentResponse,
    SearchDatasets,
    SearchExperiments,
    SearchExperimentsResponse,
    SetExperimentTag,
    UpdateExperiment,
)
from tracking.server.state import ServerState, StateDep

__all__ = ["router"]

router = APIRouter(prefix="/experiments", tags=["experiments"], responses=ERRORS)


@router.post("/create", response_model=CreateExperimentResponse)
async def create_experiment(body: CreateExperiment, state: StateDep) -> Response:
    """Create an experiment; RESOURCE_ALREADY_EXISTS if the name is taken.

    An ``artifact_location`` outside the server's artifacts destination and
    allowed roots is refused (400), so no client can point the server at its
    own disk.
    """
    tags = {tag.key: tag.value for tag in body.tags}
    location = _location(state, body.artifact_location) if body.artifact_location else None
    new_id = await state.run(state.client.create_experiment, body.name, location, tags)
    return MlflowJSONResponse({"experiment_id": new_id})


def _location(state: ServerState, location: str) -> str:
    """An experiment's ``artifact_location`` as the server may use it.

    A relative path (``"my_location"``) is resolved under the artifacts
    destination, as ``mlflow-artifacts:/my_location`` (MLflow resolves it
    against its own working directory); anything else must lie under an
    allowed root.
    """
    if uri_scheme(location) is None and not location.startswith(("/", "~")):
        rel = normalize_artifact_path(location, field="artifact_location", allow_root=False)
        return f"mlflow-artifacts:/{rel}"
    return state.proxy.confine(location)


#: An id MLflow would look up (and not find) rather than reject: ``-1337``.
_SIGNED_ID = re.compile(r"^-[0-9]{1,18}$")


@router.get("/get", response_model=ExperimentResponse)
async def get_experiment(state: StateDep, experiment_id: str) -> Response:
    """An experiment by id (deleted ones too); a negative id is simply not found."""
    if _SIGNED_ID.match(experiment_id):
        raise ExperimentNotFoundError(f"No Experiment with id={experiment_id} exists")
    found = await state.run(state.client.get_experiment, params.experiment_id(experiment_id))
    return MlflowJSONResponse({"experiment": experiment_json(found)})


@router.get("/get-by-name", response_model=ExperimentResponse)
async def get_experiment_by_name(state: StateDep, experiment_name: str) -> Response:
    """An experiment by name; RESOURCE_DOES_NOT_EXIST if there is none."""
    found = await state.run(state.client.get_experiment_by_name, experiment_name)
    if found is None:
        raise ExperimentNotFoundError(f"Could not find experiment with name '{experiment_name}'")
    return MlflowJSONResponse({"experiment": experiment_json(found)})


async def _search(state: StateDep, request: SearchExperiments) -> Response:
    check_max_results(request.max_results)
    page: PagedList[Experiment] = await state.run(
        state.client.search_experiments,
        request.view_type,
        request.max_results,
        request.filter or "",
        request.order_by or None,
        request.page_token or None,
    )
    body: dict[str, object] = {"experiments": [experiment_json(e) for e in page]}
    if page.token:
        body["next_page_token"] = page.token
    return MlflowJSONResponse(body)


@router.post("/search", response_model=SearchExperimentsResponse)
async def search_experiments(body: SearchExperiments, state: StateDep) -> Response:
    """Experiments matching a filter such as ``name LIKE 'churn%'``, a page at a time."""
    return await _search(state, body)


@router.get("/search", response_model=SearchExperimentsResponse)
async def search_experiments_get(
    query: Annotated[SearchExperiments, Query()], state: StateDep
) -> Response:
    """The same search with its fields as query parameters."""
    return await _search(state, query)


@router.post("/update", response_model=dict[str, str])
async def update_experiment(body: UpdateExperiment, state: StateDep) -> Response:
    """Rename an experiment."""
    await state.run(
        state.client.rename_experiment, params.experiment_id(body.experiment_id), body.new_name
    )
    return empty_response()


@router.post("/delete", response_model=dict[str, str])
async def delete_experiment(body: ExperimentRef, state: StateDep) -> Response:
    """Move an experiment and its runs to the deleted stage."""
    await state.run(state.client.delete_experiment, params.experiment_id(body.experiment_id))
    return empty_response()


@router.post("/restore", response_model=dict[str, str])
async def restore_experiment(body: ExperimentRef, state: StateDep) -> Response:
    """Bring a deleted experiment back, with the runs deleted along with it."""
    await state.run(state.client.restore_experiment, params.experiment_id(body.experiment_id))
    return empty_response()


#: MLflow's limit of experiments per ``search-datasets`` request.
MAX_DATASET_EXPERIMENTS = 20


@router.post("/search-datasets", response_model=dict[str, Any])
async def search_datasets(body: SearchDatasets, state: StateDep) -> Response:
    """The data sets the runs of some experiments used, once per context."""
    if not body.experiment_ids:
        raise InvalidParameterError(
            "SearchDatasets request must specify at least one experiment_id."
        )
    if len(body.experiment_ids) > MAX_DATASET_EXPERIMENTS:
        raise InvalidParameterError(
            f"SearchDatasets request cannot specify more than {MAX_DATASET_EXPERIMENTS} "
            f"experiment_ids. Received {len(body.experiment_ids)} experiment_ids."
        )
    found = await state.run(
        state.store.search_dataset_summaries, params.experiment_ids(body.experiment_ids)
    )
    summaries = []
    for experiment_id, name, digest, context in found:
        summary = {"experiment_id": experiment_id, "name": name, "digest": digest}
        if context is not None:
            summary["context"] = context
        summaries.append(summary)
    return MlflowJSONResponse({"dataset_summaries": summaries})


@router.post("/delete-experiment-tag", response_model=dict[str, str])
async def delete_experiment_tag(body: DeleteExperimentTag, state: StateDep) -> Response:
    """Remove an experiment tag; RESOURCE_DOES_NOT_EXIST if there is no such tag."""
    await state.run(
        state.client.delete_experiment_tag, params.experiment_id(body.experiment_id), body.key
    )
    return empty_response()


@router.post("/set-experiment-tag", response_model=dict[str, str])
async def set_experiment_tag(body: SetExperimentTag, state: StateDep) -> Response:
    """Set (or overwrite) an experiment tag."""
    await state.run(
        state.client.set_experiment_tag,
        params.experiment_id(body.experiment_id),
        body.key,
        body.value,
    )
    return empty_response()
