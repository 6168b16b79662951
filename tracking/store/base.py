"""The tracking store interface every backend implements.

A store persists experiments and runs; it does no argument validation beyond
what its storage needs (``TrackingClient`` validates first) but it owns the
invariants that need the data: a param never changes value, a deleted run takes
no writes, run ids are idempotent. Stores raise only :mod:`tracking.errors`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from tracking.entities import (
    DatasetInput,
    Experiment,
    Lineage,
    LineageEdge,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    ModelMetric,
    ModelVersion,
    PagedList,
    Param,
    RegisteredModel,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from tracking.store.model_search import OrderBy

__all__ = ["TrackingStore"]


class TrackingStore(abc.ABC):
    """Persistence for experiments, runs, params, metrics and tags."""

    #: The artifact root new experiments get their location under.
    artifact_root: str

    # -- experiments ------------------------------------------------------

    @abc.abstractmethod
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
    ) -> str:
        """Create an experiment and return its id; AlreadyExistsError if the name is taken."""

    @abc.abstractmethod
    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment with that id; ExperimentNotFoundError if none."""

    @abc.abstractmethod
    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment with that name, or ``None``."""

    @abc.abstractmethod
    def search_experiments(
        self,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        """Experiments matching the filter (``name``, ``tags.``, ``creation_time`` ...)."""

    @abc.abstractmethod
    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Give an experiment a new unique name."""

    @abc.abstractmethod
    def delete_experiment(self, experiment_id: str) -> None:
        """Mark an experiment and its runs deleted."""

    @abc.abstractmethod
    def restore_experiment(self, experiment_id: str) -> None:
        """Bring a deleted experiment and its runs back."""

    @abc.abstractmethod
    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        """Set (or overwrite) an experiment tag."""

    @abc.abstractmethod
    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        """Remove an experiment tag; NotFoundError if the experiment has no such tag."""

    # -- runs -------------------------------------------------------------

    @abc.abstractmethod
    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: Sequence[RunTag],
        run_name: str | None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        status: RunStatus = RunStatus.RUNNING,
    ) -> Run:
        """Create a run; with a ``run_id`` that exists in that experiment, return that run."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run:
        """The run with that id; RunNotFoundError if none."""

    @abc.abstractmethod
    def update_run_info(
        self,
        run_id: str,
        status: RunStatus | None,
        end_time: int | None,
        run_name: str | None,
    ) -> RunInfo:
        """Change a run's status, end time or name and return its updated info."""

    @abc.abstractmethod
    def delete_run(self, run_id: str) -> None:
        """Mark a run deleted."""

    @abc.abstractmethod
    def restore_run(self, run_id: str) -> None:
        """Bring a deleted run back."""

    @abc.abstractmethod
    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Write metrics, params and tags in one transaction: all or nothing."""

    def log_metric(self, run_id: str, metric: Metric) -> None:
        """Append one metric point."""
        self.log_batch(run_id, metrics=(metric,))

    def log_param(self, run_id: str, param: Param) -> None:
        """Log a param; InvalidParameterError if it exists with another value."""
        self.log_batch(run_id, params=(param,))

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        """Set (or overwrite) a run tag."""
        self.log_batch(run_id, tags=(tag,))

    @abc.abstractmethod
    def record_lineage(self, edge: LineageEdge) -> None:
        """Store that one run used an artifact of another (kept once per edge)."""

    @abc.abstractmethod
    def get_lineage(self, run_id: str) -> Lineage:
        """What the run consumed, and which runs consumed what it produced."""

    @abc.abstractmethod
    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Record the data sets a run used; those it already has are left as they are."""

    @abc.abstractmethod
    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a run tag; NotFoundError if the run has no such tag."""

    @abc.abstractmethod
    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        """Every point of a metric, ordered by step then timestamp."""

    @abc.abstractmethod
    def get_metric_history_sampled(
        self, run_id: str, key: str, max_points: int = 1000
    ) -> list[Metric]:
        """At most ``max_points`` (2 to 100000) points of a metric for charts, by step.

        Each of ``max_points // 2`` step buckets keeps its lowest and highest
        point, so spikes survive; a shorter series comes back whole.
        """

    @abc.abstractmethod
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        """Runs of the experiments that match the filter, in the requested order."""

    # -- trackflow additions ------------------------------------------------

    @abc.abstractmethod
    def get_children(self, run_id: str, recursive: bool = False) -> list[Run]:
        """Direct children of a run, or with ``recursive`` its whole subtree."""

    @abc.abstractmethod
    def heartbeat(self, run_ids: Sequence[str], timestamp: int) -> None:
        """Record that these runs are alive at ``timestamp`` (ms)."""

    @abc.abstractmethod
    def reap_stale_runs(self, older_than_ms: int, now: int, reason: str) -> list[str]:
        """Mark RUNNING runs whose heartbeat is older than ``now - older_than_ms`` FAILED."""

    # -- MLflow 3 logged models ----------------------------------------------

    @abc.abstractmethod
    def create_logged_model(
        self,
        experiment_id: str,
        name: str,
        source_run_id: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        params: Sequence[tuple[str, str]] = (),
        model_type: str | None = None,
    ) -> LoggedModel:
        """Create a PENDING logged model with its own artifact location."""

    @abc.abstractmethod
    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        """The logged model with that id; NotFoundError if none (or deleted)."""

    @abc.abstractmethod
    def finalize_logged_model(
        self, model_id: str, status: LoggedModelStatus, status_message: str | None = None
    ) -> LoggedModel:
        """Set a logged model's status (READY once its files are uploaded, or FAILED)."""

    @abc.abstractmethod
    def delete_logged_model(self, model_id: str) -> None:
        """Mark a logged model deleted."""

    @abc.abstractmethod
    def set_logged_model_tags(self, model_id: str, tags: Sequence[tuple[str, str]]) -> None:
        """Set (or overwrite) tags of a logged model."""

    @abc.abstractmethod
    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """Remove a tag of a logged model; NotFoundError if it has no such tag."""

    @abc.abstractmethod
    def log_logged_model_params(self, model_id: str, params: Sequence[tuple[str, str]]) -> None:
        """Add params to a logged model (a param never changes value)."""

    @abc.abstractmethod
    def log_logged_model_metrics(self, metrics: Sequence[tuple[str, ModelMetric]]) -> None:
        """Link metric points to logged models: ``(model_id, point)`` pairs."""

    @abc.abstractmethod
    def log_run_models(
        self, run_id: str, inputs: Sequence[str] = (), outputs: Sequence[tuple[str, int]] = ()
    ) -> None:
        """Record logged models a run used (``inputs``) or produced (``(model_id, step)``)."""

    @abc.abstractmethod
    def get_run_models(self, run_id: str) -> tuple[list[str], list[tuple[str, int]]]:
        """The logged models a run used, and those it produced with their steps."""

    @abc.abstractmethod
    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        datasets: Sequence[tuple[str, str | None]] = (),
        max_results: int = 100,
        order_by: Sequence[OrderBy] = (),
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        """Logged models of the experiments matching the filter, newest first by default."""

    # -- the model registry ------------------------------------------------

    @abc.abstractmethod
    def create_registered_model(
        self,
        name: str,
        tags: Sequence[tuple[str, str]] = (),
        description: str | None = None,
        request_id: str | None = None,
    ) -> RegisteredModel:
        """Create a registered model; AlreadyExistsError if the name is taken, unless by
        an earlier attempt of the same ``request_id`` (a retry): then that model."""

    @abc.abstractmethod
    def get_registered_model(self, name: str) -> RegisteredModel:
        """The registered model of that name; NotFoundError if none."""

    @abc.abstractmethod
    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Give a registered model (and its versions, tags, aliases) a new name."""

    @abc.abstractmethod
    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        """Change a registered model's description."""

    @abc.abstractmethod
    def delete_registered_model(self, name: str) -> None:
        """Delete a registered model with its versions, tags and aliases."""

    @abc.abstractmethod
    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        """Set (or overwrite) a tag of a registered model."""

    @abc.abstractmethod
    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Remove a tag of a registered model."""

    @abc.abstractmethod
    def search_registered_models(
        self,
        filter_string: str = "",
        max_results: int = 100,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        """Registered models matching ``name``/``tags.`` comparisons, by name."""

    @abc.abstractmethod
    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        run_link: str | None = None,
        description: str | None = None,
        model_id: str | None = None,
        user_id: str | None = None,
        storage_location: str | None = None,
        request_id: str | None = None,
    ) -> ModelVersion:
        """Add the next version (1, 2, ...) of a registered model, READY at once; a retry
        with the ``request_id`` of an earlier attempt gets the version that one made."""

    @abc.abstractmethod
    def get_model_version(self, name: str, version: str) -> ModelVersion:
        """One version; NotFoundError if none."""

    @abc.abstractmethod
    def update_model_version(
        self, name: str, version: str, description: str | None
    ) -> ModelVersion:
        """Change a version's description."""

    @abc.abstractmethod
    def transition_model_version_stage(
        self, name: str, version: str, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        """Move a version to a (deprecated) stage: None, Staging, Production, Archived."""

    @abc.abstractmethod
    def delete_model_version(self, name: str, version: str) -> None:
        """Delete a version with its tags and the aliases pointing at it."""

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        """Where a version's files are: its storage location (a logged model's artifact
        location, a run's artifact path), else its source."""
        found = self.get_model_version(name, version)
        return found.storage_location or found.source

    @abc.abstractmethod
    def get_latest_versions(self, name: str, stages: Sequence[str] = ()) -> list[ModelVersion]:
        """The newest version in each stage (of ``stages`` if given)."""

    @abc.abstractmethod
    def search_model_versions(
        self,
        filter_string: str = "",
        max_results: int = 10000,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        """Versions matching comparisons of ``name``, ``run_id``, ``tags.`` ..."""

    @abc.abstractmethod
    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        """Set (or overwrite) a tag of a version."""

    @abc.abstractmethod
    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        """Remove a tag of a version."""

    @abc.abstractmethod
    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``alias`` (``champion``) at a version, moving it if it pointed elsewhere."""

    @abc.abstractmethod
    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""

    @abc.abstractmethod
    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points at; NotFoundError if the alias is not set."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store is unusable afterwards."""
