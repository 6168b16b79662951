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
    Metric,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)

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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store is unusable afterwards."""
