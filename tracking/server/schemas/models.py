"""Request bodies of MLflow 3's logged-model API and of the model registry API.

The fields are those of ``service.proto`` (``CreateLoggedModel`` ...) and
``model_registry.proto`` (``CreateRegisteredModel`` ...) as the stock client
sends them; GET requests carry the same fields as query parameters.
"""

from __future__ import annotations

from pydantic import Field

from tracking.server.schemas.common import Int64, KeyValue, RequestModel

__all__ = [
    "AliasBody",
    "AliasRef",
    "CreateLoggedModel",
    "CreateModelVersion",
    "CreateRegisteredModel",
    "FinalizeLoggedModel",
    "LatestVersions",
    "LogOutputs",
    "ModelIdOutput",
    "ModelParams",
    "ModelTags",
    "ModelVersionRef",
    "ModelVersionTag",
    "OrderByBody",
    "RegisteredModelRef",
    "RegisteredModelTag",
    "RenameRegisteredModel",
    "SearchLoggedModels",
    "SearchRegistry",
    "TransitionStage",
    "UpdateModelVersion",
    "UpdateRegisteredModel",
]


# -- logged models -----------------------------------------------------------------


class CreateLoggedModel(RequestModel):
    """``POST logged-models``."""

    experiment_id: str
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class FinalizeLoggedModel(RequestModel):
    """``PATCH logged-models/{model_id}``: ``LOGGED_MODEL_READY`` or ``..._UPLOAD_FAILED``."""

    status: str | int


class ModelTags(RequestModel):
    """``PATCH logged-models/{model_id}/tags``."""

    payload_fields = ("tags",)
    tags: list[KeyValue] = Field(default_factory=list)


class ModelParams(RequestModel):
    """``POST logged-models/{model_id}/params``."""

    payload_fields = ("params",)
    params: list[KeyValue] = Field(default_factory=list)


class DatasetRef(RequestModel):
    """A data set a logged-model search scopes its metrics to."""

    dataset_name: str
    dataset_digest: str | None = None


class OrderByBody(RequestModel):
    """An order of a logged-model search."""

    field_name: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class SearchLoggedModels(RequestModel):
    """``POST logged-models/search``."""

    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    datasets: list[DatasetRef] = Field(default_factory=list)
    max_results: Int64 | None = None
    order_by: list[OrderByBody] = Field(default_factory=list)
    page_token: str | None = None


class ModelIdOutput(RequestModel):
    """A logged model a run produced (``step`` at which it did)."""

    model_id: str
    step: Int64 = 0


class LogOutputs(RequestModel):
    """``POST runs/outputs``: the logged models a run produced."""

    run_id: str
    models: list[ModelIdOutput] = Field(default_factory=list)


# -- the registry ------------------------------------------------------------------


_REQUEST_ID = (
    "trackflow: an id the client chose for this call; a retry with it (the first answer "
    "lost) returns what the first attempt made."
)


class CreateRegisteredModel(RequestModel):
    """``POST registered-models/create``."""

    name: str
    tags: list[KeyValue] = Field(default_factory=list)
    description: str | None = None
    request_id: str | None = Field(None, max_length=64, description=_REQUEST_ID)


class RegisteredModelRef(RequestModel):
    """A body or query naming a registered model."""

    name: str


class RenameRegisteredModel(RegisteredModelRef):
    """``POST registered-models/rename``."""

    new_name: str


class UpdateRegisteredModel(RegisteredModelRef):
    """``PATCH registered-models/update``."""

    description: str | None = None


class RegisteredModelTag(RegisteredModelRef):
    """``POST registered-models/set-tag`` (``DELETE .../delete-tag`` without ``value``)."""

    key: str
    value: str = ""


class LatestVersions(RegisteredModelRef):
    """``POST registered-models/get-latest-versions``."""

    stages: list[str] = Field(default_factory=list)


class AliasRef(RegisteredModelRef):
    """``GET``/``DELETE registered-models/alias``."""

    alias: str


class AliasBody(AliasRef):
    """``POST registered-models/alias``."""

    version: str


class SearchRegistry(RequestModel):
    """``GET registered-models/search`` and ``model-versions/search``."""

    filter: str | None = None
    max_results: Int64 | None = None
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class CreateModelVersion(RegisteredModelRef):
    """``POST model-versions/create``."""

    source: str
    run_id: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)
    run_link: str | None = None
    description: str | None = None
    model_id: str | None = None
    request_id: str | None = Field(None, max_length=64, description=_REQUEST_ID)


class ModelVersionRef(RegisteredModelRef):
    """A body or query naming a model version."""

    version: str


class UpdateModelVersion(ModelVersionRef):
    """``PATCH model-versions/update``."""

    description: str | None = None


class TransitionStage(ModelVersionRef):
    """``POST model-versions/transition-stage`` (stages are deprecated in MLflow)."""

    stage: str
    archive_existing_versions: bool = False


class ModelVersionTag(ModelVersionRef):
    """``POST model-versions/set-tag`` (``DELETE .../delete-tag`` without ``value``)."""

    key: str
    value: str = ""
