"""``TrackingClient``: MLflow's ``MlflowClient`` API with explicit run ids, no hidden state."""

from __future__ import annotations

import functools
import getpass
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tracking import validation
from tracking.entities import (
    ArtifactRef,
    Dataset,
    DatasetInput,
    Experiment,
    FileInfo,
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
from tracking.errors import InvalidParameterError, NotFoundError
from tracking.settings import get_settings, resolve_tracking_uri
from tracking.store.base import TrackingStore
from tracking.store.model_search import OrderBy
from tracking.store.registry import get_store

__all__ = ["TrackingClient"]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_STALE_REASON = "no heartbeat for {seconds:.0f}s: the process running it died or was killed"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _tag_pairs(tags: Mapping[str, Any] | Iterable[RunTag] | None) -> list[RunTag]:
    if not tags:
        return []
    if isinstance(tags, Mapping):
        return [validation.validate_tag(RunTag(k, v)) for k, v in tags.items()]
    return [validation.validate_tag(RunTag(*t)) for t in tags]


class TrackingClient:
    """Talks to a tracking store by URI; every call names its run explicitly.

    Example::

        client = TrackingClient("sqlite:///trackflow.db")
        exp_id = client.create_experiment("churn")
        run = client.create_run(exp_id, run_name="baseline")
        client.log_metric(run.info.run_id, "auc", 0.91, step=1)
        client.set_terminated(run.info.run_id)

    ``tracking_uri`` is resolved as the fluent API resolves it: the argument,
    else :func:`tracking.set_tracking_uri`'s choice, else ``TRACKFLOW_TRACKING_URI``,
    else ``sqlite:///trackflow.db``. ``artifact_root`` defaults to
    ``TRACKFLOW_ARTIFACT_ROOT``.
    """

    def __init__(
        self, tracking_uri: str | os.PathLike[str] | None = None, artifact_root: str | None = None
    ) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self._store: TrackingStore = get_store(
            self.tracking_uri, artifact_root or get_settings().artifact_root
        )

    @classmethod
    def from_store(cls, store: TrackingStore, tracking_uri: str = "") -> TrackingClient:
        """A client around a store object the caller built (no URI registry, no cache).

        The tracking server uses this to validate every request exactly as a
        local client would before it reaches its own store::

            client = TrackingClient.from_store(SqlTrackingStore("sqlite:///runs.db"))
        """
        client = cls.__new__(cls)
        client.tracking_uri = tracking_uri or getattr(store, "db_uri", "")
        client._store = store
        return client

    @property
    def store(self) -> TrackingStore:
        """The store this client writes to."""
        return self._store

    # -- experiments ------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Create an experiment and return its id."""
        validation.validate_experiment_name(name)
        pairs = [(t.key, t.value) for t in _tag_pairs(tags)]
        return self._store.create_experiment(name, artifact_location, pairs)

    def get_experiment(self, experiment_id: str) -> Experiment:
        """The experiment with that id; ExperimentNotFoundError if none."""
        return self._store.get_experiment(str(experiment_id))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment with that name, or ``None``."""
        return self._store.get_experiment_by_name(name)

    def search_experiments(
        self,
        view_type: ViewType | int | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        """Experiments matching an MLflow-style filter such as ``"name LIKE 'churn%'"``."""
        validation.validate_max_results(max_results)
        return self._store.search_experiments(
            _view(view_type), max_results, filter_string or "", order_by, page_token
        )

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        """Give an experiment a new unique name."""
        validation.validate_experiment_name(new_name)
        self._store.rename_experiment(str(experiment_id), new_name)

    def delete_experiment(self, experiment_id: str) -> None:
        """Move an experiment and its runs to the deleted stage."""
        self._store.delete_experiment(str(experiment_id))

    def restore_experiment(self, experiment_id: str) -> None:
        """Bring a deleted experiment (and the runs deleted with it) back."""
        self._store.restore_experiment(str(experiment_id))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        """Set an experiment tag."""
        tag = validation.validate_tag(RunTag(key, value))
        self._store.set_experiment_tag(str(experiment_id), tag.key, tag.value)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        """Remove an experiment tag; NotFoundError if the experiment has no such tag."""
        validation.validate_key(key, "tag")
        self._store.delete_experiment_tag(str(experiment_id), key)

    # -- runs ---------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        start_time: int | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        status: RunStatus | str = RunStatus.RUNNING,
        user_id: str | None = None,
    ) -> Run:
        """Create a run (RUNNING unless ``status`` says SCHEDULED).

        With ``run_id`` (see :func:`tracking.run_id_for`) the call is idempotent:
        if that run exists in the experiment it is returned unchanged.
        ``user_id`` defaults to the user running this process.
        """
        if user_id is not None and (not isinstance(user_id, str) or len(user_id) > 256):
            raise InvalidParameterError(
                f"user_id must be a string of at most 256 characters, got {user_id!r:.80}"
            )
        if run_name is not None:
            validation.validate_run_name(run_name)
        if run_id is not None:
            validation.validate_run_id(run_id)
        if parent_run_id is not None:
            validation.validate_run_id(parent_run_id, "parent_run_id")
        tag_list = _tag_pairs(tags)
        names = {t.value for t in tag_list if t.key == "mlflow.runName"}
        if run_name is not None and names and names != {run_name}:
            raise InvalidParameterError(
                f"run_name {run_name!r} and tag mlflow.runName {names.pop()!r} disagree"
            )
        if start_time is not None:
            validation.validate_metric(Metric("start_time", 0.0, start_time, 0))
        parsed = _status(status)
        if parsed.is_terminated:
            raise InvalidParameterError(
                f"a run is created RUNNING or SCHEDULED, not {parsed.value}"
            )
        return self._store.create_run(
            str(experiment_id),
            user_id=user_id if user_id is not None else _user(),
            start_time=start_time or _now_ms(),
            tags=tag_list,
            run_name=run_name,
            parent_run_id=parent_run_id,
            run_id=run_id,
            status=parsed,
        )

    def get_run(self, run_id: str) -> Run:
        """The run with that id; RunNotFoundError if none."""
        return self._store.get_run(validation.validate_run_id(run_id))

    def update_run(
        self,
        run_id: str,
        status: RunStatus | str | None = None,
        name: str | None = None,
        end_time: int | None = None,
    ) -> RunInfo:
        """Change a run's status or name; returns the updated info."""
        if name is not None:
            validation.validate_run_name(name)
        parsed = _status(status) if status is not None else None
        return self._store.update_run_info(
            validation.validate_run_id(run_id), parsed, end_time, name
        )

    def set_terminated(
        self,
        run_id: str,
        status: RunStatus | str = RunStatus.FINISHED,
        end_time: int | None = None,
    ) -> RunInfo:
        """End a run: FINISHED, FAILED or KILLED, at ``end_time`` (default now)."""
        parsed = _status(status)
        if not parsed.is_terminated:
            raise InvalidParameterError(
                f"set_terminated takes FINISHED, FAILED or KILLED, not {parsed.value}"
            )
        return self._store.update_run_info(
            validation.validate_run_id(run_id),
            parsed,
            end_time if end_time is not None else _now_ms(),
            None,
        )

    def delete_run(self, run_id: str) -> None:
        """Move a run to the deleted stage."""
        self._store.delete_run(validation.validate_run_id(run_id))

    def restore_run(self, run_id: str) -> None:
        """Bring a deleted run back."""
        self._store.restore_run(validation.validate_run_id(run_id))

    def log_param(self, run_id: str, key: str, value: Any) -> Any:
        """Log a param (stored as ``str(value)``); logging another value later raises."""
        param = validation.validate_param(Param(key, value))
        self._store.log_param(validation.validate_run_id(run_id), param)
        return value

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        """Append a metric point (``timestamp`` in ms, default now; ``step`` default 0)."""
        metric = validation.validate_metric(
            Metric(key, value, _now_ms() if timestamp is None else timestamp, step or 0)
        )
        self._store.log_metric(validation.validate_run_id(run_id), metric)

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        """Set a run tag."""
        tag = validation.validate_tag(RunTag(key, value))
        self._store.set_tag(validation.validate_run_id(run_id), tag)

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a run tag."""
        validation.validate_key(key, "tag")
        self._store.delete_tag(validation.validate_run_id(run_id), key)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Log up to 1000 metrics, 100 params and 100 tags at once: all or nothing."""
        checked = validation.validate_batch(metrics, params, tags)
        self._store.log_batch(validation.validate_run_id(run_id), *checked)

    def log_metric_columns(
        self,
        run_id: str,
        keys: Sequence[str],
        values: Sequence[float],
        timestamps: Sequence[int],
        steps: Sequence[int],
    ) -> None:
        """Log up to 1000 metric points given as four equally long columns: point
        ``i`` is ``(keys[i], values[i], timestamps[i], steps[i])``. The same as
        :meth:`log_batch` with metrics alone, checked a column at a time."""
        metrics = validation.validate_metric_columns(keys, values, timestamps, steps)
        self._store.log_batch(validation.validate_run_id(run_id), metrics, (), ())

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput | Dataset]) -> None:
        """Record the data sets a run used (MLflow's ``log_inputs``).

        Each item is a :class:`~tracking.DatasetInput` (a data set and the tags
        of its use, such as ``mlflow.data.context``) or a bare
        :class:`~tracking.Dataset`. A data set the run already has is kept as
        it is. The run's ``inputs.dataset_inputs`` lists them::

            client.log_inputs(run_id, [DatasetInput(Dataset("train", "9f86d081", "local",
                                                            "/data/train.csv"))])
        """
        checked = validation.validate_dataset_inputs(datasets)
        self._store.log_inputs(validation.validate_run_id(run_id), checked)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of a metric, by step then timestamp."""
        validation.validate_key(key, "metric")
        return list(self._store.get_metric_history(validation.validate_run_id(run_id), key))

    def get_metric_history_sampled(
        self, run_id: str, key: str, max_points: int = 1000
    ) -> list[Metric]:
        """At most ``max_points`` points of a metric, for a chart of a long series.

        The series is cut into ``max_points // 2`` step buckets and each keeps
        its lowest and highest point, so spikes and dips survive; a series of
        at most ``max_points`` points comes back whole. Sampled by the store
        (in SQL, or on the tracking server).
        """
        validation.validate_key(key, "metric")
        return self._store.get_metric_history_sampled(
            validation.validate_run_id(run_id), key, max_points
        )

    def search_runs(
        self,
        experiment_ids: Sequence[str] | str,
        filter_string: str = "",
        run_view_type: ViewType | int | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        """Runs matching an MLflow filter (with OR and parentheses); ``.token`` pages on."""
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        validation.validate_max_results(max_results)
        return self._store.search_runs(
            [str(e) for e in experiment_ids],
            filter_string or "",
            _view(run_view_type),
            max_results,
            list(order_by) if order_by else None,
            page_token,
        )

    # -- nesting, heartbeats --------------------------------------------------

    def get_children(self, run_id: str) -> list[Run]:
        """The direct child runs of a run, oldest first."""
        return self._store.get_children(validation.validate_run_id(run_id), recursive=False)

    def get_subtree(self, run_id: str) -> list[Run]:
        """Every descendant of a run, level by level (one recursive query)."""
        return self._store.get_children(validation.validate_run_id(run_id), recursive=True)

    def heartbeat(self, *run_ids: str) -> None:
        """Record that these runs are alive now."""
        self._store.heartbeat([validation.validate_run_id(r) for r in run_ids], _now_ms())

    def reap_stale_runs(self, older_than: float | Any) -> list[str]:
        """Mark FAILED every RUNNING run whose last heartbeat is older than ``older_than``.

        ``older_than`` is seconds or a ``datetime.timedelta``/``pendulum.Duration``.
        Each reaped run gets a ``trackflow.failureReason`` tag. Returns their ids.
        """
        seconds = older_than.total_seconds() if hasattr(older_than, "total_seconds") else older_than
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise InvalidParameterError(
                f"older_than must be a positive number of seconds or a timedelta, "
                f"got {older_than!r}"
            )
        return self._store.reap_stale_runs(
            int(seconds * 1000), _now_ms(), _STALE_REASON.format(seconds=seconds)
        )

    # -- lineage ----------------------------------------------------------------

    def record_lineage(
        self,
        consumer_run_id: str,
        producer_run_id: str,
        artifact_path: str,
        sha256: str,
        timestamp: int | None = None,
    ) -> None:
        """Record that run ``consumer_run_id`` used the artifact ``artifact_path`` of run
        ``producer_run_id`` (content ``sha256``); recording it again is a no-op.
        :func:`tracking.use_artifact` does this for the active run. ``artifact_path``
        may be ``models:/<model_id>``: the run used that logged model
        (:func:`tracking.use_model`, ``sha256`` the digest of its files)."""
        from tracking.artifacts.paths import normalize_artifact_path

        consumer = validation.validate_run_id(consumer_run_id, "consumer_run_id")
        producer = validation.validate_run_id(producer_run_id, "producer_run_id")
        if isinstance(artifact_path, str) and artifact_path.startswith("models:/"):
            # A logged model handed on (tracking.use_model): the edge names the model.
            path = f"models:/{_model_id(artifact_path.removeprefix('models:/'))}"
        else:
            path = normalize_artifact_path(artifact_path, field="artifact_path", allow_root=False)
        if len(path) > 500:
            raise InvalidParameterError(
                f"artifact_path is {len(path)} characters long; the limit is 500"
            )
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise InvalidParameterError(
                f"sha256 must be 64 lowercase hex digits, got {sha256!r:.80}"
            )
        if timestamp is not None:
            validation.validate_metric(Metric("timestamp", 0.0, timestamp, 0))
        when = _now_ms() if timestamp is None else timestamp
        self._store.record_lineage(LineageEdge(consumer, producer, path, sha256, when))

    def get_lineage(self, run_id: str) -> Lineage:
        """The artifacts a run consumed (each edge names the producing run) and the runs
        that consumed its artifacts."""
        return self._store.get_lineage(validation.validate_run_id(run_id))

    # -- MLflow 3 logged models -------------------------------------------------

    def create_logged_model(
        self,
        experiment_id: str,
        name: str | None = None,
        source_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        model_type: str | None = None,
    ) -> LoggedModel:
        """Create a PENDING logged model (MLflow 3), with its own artifact location;
        upload its files there, then :meth:`finalize_logged_model`. ``name`` defaults
        to a generated one."""
        if name is None:
            from tracking.names import generate_run_name

            name = generate_run_name()
        _check_name(name, "name", 500)
        if model_type is not None:
            _check_name(model_type, "model_type", 500)
        if source_run_id is not None:
            validation.validate_run_id(source_run_id, "source_run_id")
        pairs = [(t.key, t.value) for t in _tag_pairs(tags)]
        checked = [validation.validate_param(Param(k, v)) for k, v in (params or {}).items()]
        return self._store.create_logged_model(
            str(experiment_id),
            name,
            source_run_id,
            pairs,
            [(p.key, p.value) for p in checked],
            model_type,
        )

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        """The logged model with that id; NotFoundError if none."""
        return self._store.get_logged_model(_model_id(model_id), allow_deleted)

    def finalize_logged_model(
        self,
        model_id: str,
        status: LoggedModelStatus | str = LoggedModelStatus.READY,
        status_message: str | None = None,
    ) -> LoggedModel:
        """Mark a logged model READY (its files are uploaded) or FAILED."""
        try:
            parsed = LoggedModelStatus.parse(status)
        except ValueError as exc:
            raise InvalidParameterError(str(exc)) from None
        return self._store.finalize_logged_model(_model_id(model_id), parsed, status_message)

    def delete_logged_model(self, model_id: str) -> None:
        """Mark a logged model deleted."""
        self._store.delete_logged_model(_model_id(model_id))

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, Any]) -> None:
        """Set (or overwrite) tags of a logged model."""
        pairs = [(t.key, t.value) for t in _tag_pairs(tags)]
        self._store.set_logged_model_tags(_model_id(model_id), pairs)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        """Remove a tag of a logged model."""
        validation.validate_key(key, "tag")
        self._store.delete_logged_model_tag(_model_id(model_id), key)

    def log_model_params(self, model_id: str, params: Mapping[str, Any]) -> None:
        """Add params to a logged model (a param never changes value)."""
        checked = [validation.validate_param(Param(k, v)) for k, v in params.items()]
        self._store.log_logged_model_params(
            _model_id(model_id), [(p.key, p.value) for p in checked]
        )

    def log_model_metric(
        self,
        model_id: str,
        key: str,
        value: float,
        *,
        run_id: str | None = None,
        timestamp: int | None = None,
        step: int | None = None,
        dataset_name: str | None = None,
        dataset_digest: str | None = None,
    ) -> None:
        """Link a metric point to a logged model (with the run that measured it and the
        data set it was measured on); with ``run_id`` it is logged to the run too."""
        metric = validation.validate_metric(
            Metric(key, value, _now_ms() if timestamp is None else timestamp, step or 0)
        )
        if run_id is not None:
            self._store.log_metric(validation.validate_run_id(run_id), metric)
        self._store.log_logged_model_metrics(
            [(_model_id(model_id), ModelMetric(*metric, run_id, dataset_name, dataset_digest))]
        )

    def link_model_metrics(self, metrics: Sequence[tuple[str, ModelMetric]]) -> None:
        """Link metric points to logged models: ``(model_id, point)`` pairs, as a
        ``log-batch`` whose metrics carry ``model_id`` does (the run has them already)."""
        checked = []
        for model_id, point in metrics:
            validation.validate_metric(Metric(point.key, point.value, point.timestamp, point.step))
            checked.append((_model_id(model_id), point))
        self._store.log_logged_model_metrics(checked)

    def log_run_models(
        self,
        run_id: str,
        inputs: Sequence[str] = (),
        outputs: Sequence[str | tuple[str, int]] = (),
    ) -> None:
        """Record the logged models a run used (``inputs``) and produced (``outputs``:
        ids, or ``(model_id, step)``)."""
        produced = [(o, 0) if isinstance(o, str) else (o[0], int(o[1])) for o in outputs]
        self._store.log_run_models(
            validation.validate_run_id(run_id),
            [_model_id(m) for m in inputs],
            [(_model_id(m), s) for m, s in produced],
        )

    def get_run_models(self, run_id: str) -> tuple[list[str], list[tuple[str, int]]]:
        """The logged models a run used, and those it produced with their steps."""
        return self._store.get_run_models(validation.validate_run_id(run_id))

    def search_logged_models(
        self,
        experiment_ids: Sequence[str] | str,
        filter_string: str = "",
        datasets: Sequence[Mapping[str, str | None]] = (),
        max_results: int = 100,
        order_by: Sequence[Mapping[str, Any] | str] = (),
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        """Logged models of some experiments matching an MLflow filter such as
        ``"name = 'model' AND metrics.rmse < 0.8"``, newest first unless ``order_by``
        (``"metrics.rmse ASC"`` or MLflow's ``{"field_name": ..., "ascending": ...}``)."""
        if isinstance(experiment_ids, str):
            experiment_ids = [experiment_ids]
        validation.validate_max_results(max_results)
        return self._store.search_logged_models(
            [str(e) for e in experiment_ids],
            filter_string or "",
            [(str(d["dataset_name"]), d.get("dataset_digest")) for d in datasets],
            max_results,
            [_order_by(o) for o in order_by],
            page_token,
        )

    # -- the model registry ---------------------------------------------------

    def create_registered_model(
        self,
        name: str,
        tags: Mapping[str, Any] | None = None,
        description: str | None = None,
        *,
        request_id: str | None = None,
    ) -> RegisteredModel:
        """Create a registered model; AlreadyExistsError if the name is taken.

        ``request_id`` makes a retried call (its first answer lost) return the model
        the first attempt made; the REST store sends one per call by itself."""
        _check_name(name, "name", 256)
        if request_id is not None:
            _check_name(request_id, "request_id", 64)
        pairs = [(t.key, t.value) for t in _tag_pairs(tags)]
        return self._store.create_registered_model(name, pairs, description, request_id)

    def get_registered_model(self, name: str) -> RegisteredModel:
        """A registered model with its tags, aliases and latest version per stage."""
        return self._store.get_registered_model(_check_name(name, "name", 256))

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Give a registered model a new name (its versions and aliases follow)."""
        _check_name(new_name, "new_name", 256)
        return self._store.rename_registered_model(_check_name(name, "name", 256), new_name)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        """Change a registered model's description."""
        return self._store.update_registered_model(_check_name(name, "name", 256), description)

    def delete_registered_model(self, name: str) -> None:
        """Delete a registered model with its versions (their files stay where they are)."""
        self._store.delete_registered_model(_check_name(name, "name", 256))

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        """Set (or overwrite) a tag of a registered model."""
        tag = validation.validate_tag(RunTag(key, value))
        self._store.set_registered_model_tag(_check_name(name, "name", 256), tag.key, tag.value)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        """Remove a tag of a registered model."""
        validation.validate_key(key, "tag")
        self._store.delete_registered_model_tag(_check_name(name, "name", 256), key)

    def search_registered_models(
        self,
        filter_string: str = "",
        max_results: int = 100,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        """Registered models matching ``name LIKE 'churn%'``, ``tags.team = 'a'`` ..."""
        validation.validate_max_results(max_results)
        return self._store.search_registered_models(
            filter_string or "", max_results, list(order_by or ()), page_token
        )

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        run_link: str | None = None,
        description: str | None = None,
        model_id: str | None = None,
        *,
        request_id: str | None = None,
    ) -> ModelVersion:
        """Register the next version of ``name`` from a model's files: ``source`` is a
        logged model's ``models:/<model_id>``, a ``runs:/<run_id>/<path>`` URI or an
        artifact URI. The version's download URI is where the files really are.

        A retried call with the same ``request_id`` returns the version its first
        attempt made (the REST store sends one per call by itself)."""
        _check_name(name, "name", 256)
        if request_id is not None:
            _check_name(request_id, "request_id", 64)
        if not isinstance(source, str) or not source or len(source) > 1000:
            raise InvalidParameterError(
                f"source must be a model URI of at most 1000 characters, got {source!r:.80}"
            )
        if run_id is not None:
            validation.validate_run_id(run_id)
        storage = source
        if model_id is None and source.startswith("models:/"):
            candidate = source.removeprefix("models:/").strip("/")
            if candidate.startswith("m-") and "/" not in candidate:
                model_id = candidate
        if model_id is not None:
            model = self.get_logged_model(model_id)
            storage = model.artifact_location
            run_id = run_id or model.source_run_id
        elif source.startswith("runs:/"):
            rest = source.removeprefix("runs:/")
            source_run, _, path = rest.partition("/")
            run = self.get_run(source_run)
            run_id = run_id or source_run
            storage = _join_uri(run.info.artifact_uri, path) if path else run.info.artifact_uri
        pairs = [(t.key, t.value) for t in _tag_pairs(tags)]
        return self._store.create_model_version(
            name,
            source,
            run_id,
            pairs,
            run_link,
            description,
            model_id,
            _user(),
            storage,
            request_id,
        )

    def get_model_version(self, name: str, version: str | int) -> ModelVersion:
        """One version of a registered model."""
        return self._store.get_model_version(_check_name(name, "name", 256), str(version))

    def update_model_version(
        self, name: str, version: str | int, description: str | None
    ) -> ModelVersion:
        """Change a version's description."""
        return self._store.update_model_version(
            _check_name(name, "name", 256), str(version), description
        )

    def transition_model_version_stage(
        self, name: str, version: str | int, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        """Move a version to a stage (deprecated in MLflow: prefer aliases)."""
        return self._store.transition_model_version_stage(
            _check_name(name, "name", 256), str(version), stage, archive_existing_versions
        )

    def delete_model_version(self, name: str, version: str | int) -> None:
        """Delete a version (and the aliases pointing at it)."""
        self._store.delete_model_version(_check_name(name, "name", 256), str(version))

    def get_latest_versions(self, name: str, stages: Sequence[str] = ()) -> list[ModelVersion]:
        """The newest version in each (deprecated) stage."""
        return self._store.get_latest_versions(_check_name(name, "name", 256), list(stages))

    def search_model_versions(
        self,
        filter_string: str = "",
        max_results: int = 10000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        """Versions matching ``name = 'churn'``, ``run_id = '...'``, ``tags.k = 'v'`` ..."""
        validation.validate_max_results(max_results)
        return self._store.search_model_versions(
            filter_string or "", max_results, list(order_by or ()), page_token
        )

    def set_model_version_tag(self, name: str, version: str | int, key: str, value: Any) -> None:
        """Set (or overwrite) a tag of a version."""
        tag = validation.validate_tag(RunTag(key, value))
        self._store.set_model_version_tag(
            _check_name(name, "name", 256), str(version), tag.key, tag.value
        )

    def delete_model_version_tag(self, name: str, version: str | int, key: str) -> None:
        """Remove a tag of a version."""
        validation.validate_key(key, "tag")
        self._store.delete_model_version_tag(_check_name(name, "name", 256), str(version), key)

    def get_model_version_download_uri(self, name: str, version: str | int) -> str:
        """Where a version's files are (an artifact URI)."""
        return self._store.get_model_version_download_uri(
            _check_name(name, "name", 256), str(version)
        )

    def set_registered_model_alias(self, name: str, alias: str, version: str | int) -> None:
        """Point ``alias`` (``champion``) at a version; an alias moves, it is never copied.
        Serving code loads it as ``models:/<name>@<alias>``."""
        _check_alias(alias)
        self._store.set_registered_model_alias(_check_name(name, "name", 256), alias, str(version))

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""
        _check_alias(alias)
        self._store.delete_registered_model_alias(_check_name(name, "name", 256), alias)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points at; NotFoundError if it is not set."""
        _check_alias(alias)
        return self._store.get_model_version_by_alias(_check_name(name, "name", 256), alias)

    # -- artifacts --------------------------------------------------------------

    def _artifacts(self, run_id: str) -> Any:
        run = self.get_run(run_id)
        return self._repository(run.info.artifact_uri, run.info.run_id, f"run {run_id}")

    def _repository(self, uri: str, owner_id: str, owner: str) -> Any:
        """The artifact repository of ``uri`` (a run's or a logged model's root)."""
        from tracking.artifacts import artifact_repository_for, uri_scheme

        if uri_scheme(uri) == "mlflow-artifacts":
            # Served by the tracking server's artifact proxy: reach it through the
            # store's HTTP session (same pool, token and retries).
            from tracking.artifacts.http_repo import HttpArtifactRepository
            from tracking.store.rest import RestTrackingStore

            if not isinstance(self._store, RestTrackingStore):
                raise InvalidParameterError(
                    f"the artifacts of {owner} ({uri}) are served by a tracking "
                    f"server; set the tracking URI to the server (http://host:port), not "
                    f"{self.tracking_uri!r}"
                )
            return HttpArtifactRepository(uri, owner_id, self._store.http)
        return artifact_repository_for(uri, owner_id)

    def _model_artifacts(self, model_id: str) -> Any:
        model = self.get_logged_model(model_id)
        return self._repository(model.artifact_location, model.model_id, f"model {model_id}")

    def log_model_artifacts(
        self,
        model_id: str,
        local_dir: str | os.PathLike[str],
        artifact_path: str | None = None,
    ) -> list[ArtifactRef]:
        """Copy a local directory tree into a logged model's own artifact location
        (each reference's ``run_id`` is the model id)."""
        refs: list[ArtifactRef] = self._model_artifacts(model_id).log_artifacts(
            os.fspath(local_dir), artifact_path
        )
        return refs

    def log_model_artifact(
        self, model_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactRef:
        """Copy a local file into a logged model's artifact location."""
        ref: ArtifactRef = self._model_artifacts(model_id).log_artifact(
            os.fspath(local_path), artifact_path
        )
        return ref

    def list_model_artifacts(self, model_id: str, path: str | None = None) -> list[FileInfo]:
        """The files and directories directly under ``path`` of a logged model's files."""
        infos: list[FileInfo] = self._model_artifacts(model_id).list_artifacts(path)
        return infos

    def download_model_artifacts(
        self, model_id: str, path: str = "", dst_path: str | None = None
    ) -> str:
        """Download a logged model's files (or ``path`` among them); returns the local path."""
        dst = dst_path or tempfile.mkdtemp(prefix="trackflow-model-")
        local: str = self._model_artifacts(model_id).download_artifacts(path, dst)
        return local

    def resolve_model_uri(self, model_uri: str) -> LoggedModel:
        """The logged model a ``models:/`` URI names: ``models:/<model_id>``,
        ``models:/<name>/<version>``, ``models:/<name>@<alias>`` or
        ``models:/<name>/latest``. A version registered from files that are not a
        logged model raises NotFoundError naming it."""
        if not isinstance(model_uri, str) or not model_uri.startswith("models:/"):
            raise InvalidParameterError(
                f"Invalid model URI {model_uri!r:.120}: expected models:/<model_id>, "
                "models:/<name>/<version> or models:/<name>@<alias>"
            )
        rest = model_uri.removeprefix("models:/").strip("/")
        if _MODEL_ID.fullmatch(rest):
            return self.get_logged_model(rest)
        if "@" in rest and "/" not in rest:
            name, alias = rest.split("@", 1)
            version = self.get_model_version_by_alias(name, alias)
        elif "/" in rest:
            name, number = rest.rsplit("/", 1)
            if number == "latest":
                versions = self.search_model_versions(
                    "name = '" + name.replace("'", "\\'") + "'",
                    order_by=["version_number DESC"],
                    max_results=1,
                )
                if not versions:
                    raise NotFoundError(f"Registered model {name!r} has no versions")
                version = versions[0]
            else:
                version = self.get_model_version(name, number)
        else:
            raise InvalidParameterError(
                f"Invalid model URI {model_uri!r:.120}: expected models:/<model_id>, "
                "models:/<name>/<version> or models:/<name>@<alias>"
            )
        if version.model_id is None:
            raise NotFoundError(
                f"{model_uri} is version {version.version} of {version.name}, registered from "
                f"{version.source}, not from a logged model"
            )
        return self.get_logged_model(version.model_id)

    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactRef:
        """Copy a local file into the run's artifacts; returns where it went and its sha256."""
        ref: ArtifactRef = self._artifacts(run_id).log_artifact(
            os.fspath(local_path), artifact_path
        )
        return ref

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactRef]:
        """Copy a local directory tree into the run's artifacts."""
        refs: list[ArtifactRef] = self._artifacts(run_id).log_artifacts(
            os.fspath(local_dir), artifact_path
        )
        return refs

    def log_text(self, run_id: str, text: str, artifact_file: str) -> ArtifactRef:
        """Save ``text`` as the artifact ``artifact_file`` (UTF-8)."""
        ref: ArtifactRef = self._artifacts(run_id).log_bytes(text.encode("utf-8"), artifact_file)
        return ref

    def log_dict(
        self, run_id: str, dictionary: Mapping[str, Any], artifact_file: str
    ) -> ArtifactRef:
        """Save a dict as JSON (or YAML for ``.yaml``/``.yml`` names) at ``artifact_file``."""
        if artifact_file.endswith((".yaml", ".yml")):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError as exc:
                raise InvalidParameterError(
                    "log_dict to a .yaml file needs PyYAML installed; use a .json name"
                ) from exc
            text = yaml.safe_dump(dict(dictionary), sort_keys=False)
        else:
            text = json.dumps(dictionary, indent=2, default=str)
        return self.log_text(run_id, text, artifact_file)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """The files and directories directly under ``path`` of the run's artifacts."""
        infos: list[FileInfo] = self._artifacts(run_id).list_artifacts(path)
        return infos

    def download_artifacts(self, run_id: str, path: str, dst_path: str | None = None) -> str:
        """Download an artifact file or directory; returns the local path."""
        dst = dst_path or tempfile.mkdtemp(prefix="trackflow-")
        local: str = self._artifacts(run_id).download_artifacts(path, dst)
        return local


_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")
_ALIAS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,255}")


def _model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not _MODEL_ID.fullmatch(model_id):
        raise InvalidParameterError(
            f"Invalid value {model_id!r:.80} for parameter 'model_id' supplied: expected a "
            "logged model id, 'm-' and 32 hex digits"
        )
    return model_id


def _check_name(name: object, field: str, limit: int) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > limit:
        raise InvalidParameterError(
            f"Invalid value {name!r:.80} for parameter '{field}' supplied: expected a "
            f"non-empty string of at most {limit} characters"
        )
    return name


def _check_alias(alias: object) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or re.fullmatch(r"v\d+", alias):
        raise InvalidParameterError(
            f"Invalid alias {alias!r:.80}: expected letters, digits, '_' or '-' starting with a "
            "letter or '_' (at most 256), and not a version reference such as 'v1'"
        )
    return alias


def _order_by(order: Mapping[str, Any] | str) -> OrderBy:
    if isinstance(order, str):
        parts = order.split()
        if (
            not parts
            or len(parts) > 2
            or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC"))
        ):
            raise InvalidParameterError(f"Invalid order_by clause {order!r}")
        return OrderBy(parts[0], len(parts) == 1 or parts[1].upper() == "ASC")
    return OrderBy(
        str(order["field_name"]),
        bool(order.get("ascending", True)),
        order.get("dataset_name"),
        order.get("dataset_digest"),
    )


def _join_uri(base: str, path: str) -> str:
    from tracking.artifacts import join_uri, normalize_artifact_path

    return join_uri(base, normalize_artifact_path(path, field="source"))


def _view(view: ViewType | int | str) -> ViewType:
    try:
        return ViewType.parse(view)
    except ValueError as exc:
        raise InvalidParameterError(str(exc)) from None


def _status(status: RunStatus | str) -> RunStatus:
    try:
        return RunStatus.parse(status)
    except ValueError as exc:
        raise InvalidParameterError(str(exc)) from None


@functools.cache
def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
