"""trackflow: experiment tracking with MLflow's API.

The fluent functions keep an active run per thread and asyncio task::

    import tracking

    tracking.set_experiment("churn")
    with tracking.start_run(run_name="baseline"):
        tracking.log_param("lr", 0.01)
        tracking.log_metric("auc", 0.91, step=1)

:class:`TrackingClient` names every run explicitly, like MLflow's
``MlflowClient``. Importing this package is cheap: the database, server and
artifact-storage libraries load on first use.
"""

from __future__ import annotations

from tracking.client import TrackingClient
from tracking.entities import (
    ArtifactRef,
    Dataset,
    DatasetInput,
    Experiment,
    FileInfo,
    InputTag,
    LifecycleStage,
    Metric,
    PagedList,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    ViewType,
)
from tracking.errors import (
    AlreadyExistsError,
    ArtifactNotFoundError,
    ExperimentNotFoundError,
    InvalidParameterError,
    InvalidStateError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    RequestLimitExceededError,
    RunNotFoundError,
    SchemaOutOfDateError,
    SearchSyntaxError,
    StoreError,
    StoreUnavailableError,
    TrackingError,
    UnauthenticatedError,
)
from tracking.fluent import (
    ActiveRun,
    active_run,
    delete_tag,
    end_run,
    flush,
    get_artifact_uri,
    get_run,
    get_tracking_uri,
    last_active_run,
    log_artifact,
    log_artifacts,
    log_dict,
    log_input,
    log_metric,
    log_metrics,
    log_param,
    log_params,
    log_text,
    search_runs,
    set_experiment,
    set_tag,
    set_tags,
    set_tracking_uri,
    start_run,
)
from tracking.ids import run_id_for

__all__ = [
    "ActiveRun",
    "AlreadyExistsError",
    "ArtifactNotFoundError",
    "ArtifactRef",
    "Dataset",
    "DatasetInput",
    "Experiment",
    "ExperimentNotFoundError",
    "FileInfo",
    "InputTag",
    "InvalidParameterError",
    "InvalidStateError",
    "LifecycleStage",
    "Metric",
    "NotFoundError",
    "NotSupportedError",
    "PagedList",
    "Param",
    "PermissionDeniedError",
    "RequestLimitExceededError",
    "Run",
    "RunData",
    "RunInfo",
    "RunInputs",
    "RunNotFoundError",
    "RunStatus",
    "RunTag",
    "SchemaOutOfDateError",
    "SearchSyntaxError",
    "StoreError",
    "StoreUnavailableError",
    "TrackingClient",
    "TrackingError",
    "UnauthenticatedError",
    "ViewType",
    "active_run",
    "delete_tag",
    "end_run",
    "flush",
    "get_artifact_uri",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "run_id_for",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]
