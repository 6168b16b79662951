"""Airflow's events translated into :mod:`tracking.pipelines` calls.

The listener (:mod:`operators.listener`) and the explicit operators both come
here, so a task is tracked the same way whoever notices it first. What lives
here is only the Airflow side: which DAGs are tracked, the identity of a task
instance, tags and links, how Airflow's states and errors map onto run
statuses. Ids, idempotence and straggler closing are
:class:`~tracking.pipelines.PipelineTracker`'s.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import tracking
from operators import _serde  # noqa: F401  (ArtifactRef through XCom)
from tracking import fluent
from tracking.connection import enter_step_env, leave_step_env, patient_client
from tracking.dispatch import Dispatcher
from tracking.entities import Param, Run, RunStatus, RunTag
from tracking.errors import RunNotFoundError, StoreNotConfiguredError
from tracking.links import run_url
from tracking.pipelines import NeverBreak, PipelineRun, PipelineTracker, Step
from tracking.validation import MAX_BATCH_PARAMS, MAX_PARAM_VALUE_LENGTH

__all__ = [
    "SKIPPED_PARAMS_TAG",
    "TRACKED_TAG",
    "TRACK_ALL_ENV",
    "AirflowTracking",
    "DagRunEvent",
    "TaskKey",
    "airflow_tracking",
    "is_tracked",
    "pipeline_for",
    "pipeline_run_name",
    "step_for",
]

_log = logging.getLogger("operators")

ORCHESTRATOR = "airflow"
#: A DAG with this tag is tracked.
TRACKED_TAG = "trackflow"
#: A DAG tag ``trackflow.experiment=<name>`` puts its runs in that experiment.
EXPERIMENT_TAG_PREFIX = "trackflow.experiment="
#: Set to true to track every DAG.
TRACK_ALL_ENV = "TRACKFLOW_AIRFLOW_TRACK_ALL"
#: DAG-run params that were not logged (too long), and why.
SKIPPED_PARAMS_TAG = "trackflow.skippedParams"
#: The classes whose use in a DAG makes it tracked (serialised DAGs know tasks by class name).
TRACKED_OPERATORS = frozenset(
    {
        "TrackedPythonOperator",
        "_TrackflowDecoratedOperator",
        "ChampionChallengerOperator",
        "PromoteRunOperator",
        "TrackflowRunSensor",
    }
)
_TRUE = frozenset({"1", "true", "yes", "on"})


def is_tracked(dag: Any) -> bool:
    """Whether a DAG's runs are tracked: tagged ``trackflow``, using a trackflow
    decorator or operator, or every DAG with ``TRACKFLOW_AIRFLOW_TRACK_ALL=true``."""
    if os.environ.get(TRACK_ALL_ENV, "").strip().lower() in _TRUE:
        return True
    if dag is None:
        return False
    tags = getattr(dag, "tags", None) or ()
    if TRACKED_TAG in tags or any(str(t).startswith(EXPERIMENT_TAG_PREFIX) for t in tags):
        return True
    tasks = getattr(dag, "tasks", None) or ()
    return any(
        getattr(t, "task_type", type(t).__name__) in TRACKED_OPERATORS
        or getattr(t, "_trackflow_tracked", False)
        for t in tasks
    )


def experiment_for(dag_id: str, dag: Any) -> str:
    """The experiment of a DAG's runs: its ``trackflow.experiment=`` tag, else the dag_id."""
    for tag in getattr(dag, "tags", None) or ():
        if str(tag).startswith(EXPERIMENT_TAG_PREFIX):
            name = str(tag)[len(EXPERIMENT_TAG_PREFIX) :].strip()
            if name:
                return name
    return dag_id


def pipeline_for(dag_id: str, run_id: str) -> PipelineRun:
    """The pipeline run of a DAG run."""
    return PipelineRun(ORCHESTRATOR, dag_id, run_id)


def step_for(ti: Any, *, name: str | None = None) -> Step:
    """The step of a task instance (its try number is the attempt)."""
    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else int(map_index)
    return Step(
        pipeline_for(ti.dag_id, ti.run_id),
        ti.task_id,
        map_index=map_index if map_index >= 0 else None,
        attempt=max(int(getattr(ti, "try_number", 1) or 1), 1),
        name=name,
    )


def airflow_ui_base() -> str:
    """The Airflow UI's base URL (``[api] base_url``)."""
    from airflow.configuration import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/")).rstrip("/")


def dag_run_url(dag_id: str, run_id: str) -> str:
    """The DAG run's page in the Airflow UI."""
    return f"{airflow_ui_base()}/dags/{quote(dag_id)}/runs/{quote(run_id)}"


def task_instance_url(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """The task instance's page in the Airflow UI (per map index)."""
    url = f"{dag_run_url(dag_id, run_id)}/tasks/{quote(task_id)}"
    if map_index is not None and map_index >= 0:
        url += f"/mapped/{map_index}"
    return url


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _enum(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def pipeline_tags(dag_id: str, run_id: str, dag_run: Any) -> dict[str, str]:
    """The parent run's tags, from a DAG run (the task's context or the ORM object)."""
    tags = {
        "airflow.dag_id": dag_id,
        "airflow.run_id": run_id,
        "airflow.url": dag_run_url(dag_id, run_id),
    }
    if dag_run is not None:
        values = {
            "airflow.run_type": _enum(getattr(dag_run, "run_type", None)),
            "airflow.logical_date": _iso(getattr(dag_run, "logical_date", None)),
            "airflow.run_after": _iso(getattr(dag_run, "run_after", None)),
            "airflow.data_interval_start": _iso(getattr(dag_run, "data_interval_start", None)),
            "airflow.data_interval_end": _iso(getattr(dag_run, "data_interval_end", None)),
        }
        tags.update({k: v for k, v in values.items() if v is not None})
    return tags


def pipeline_run_name(dag_id: str, dag_run: Any) -> str:
    """A DAG run's run name a person can read: the dag_id and the logical date (else
    the time it ran after): ``retrain 2026-11-05``, ``retrain 2026-12-02 22:38:13``."""
    when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    if not isinstance(when, datetime):
        return f"{dag_id} {getattr(dag_run, 'run_id', '')}".strip()
    if (when.hour, when.minute, when.second, when.microsecond) == (0, 0, 0, 0):
        return f"{dag_id} {when:%Y-%m-%d}"
    return f"{dag_id} {when:%Y-%m-%d %H:%M:%S}"


@dataclass(frozen=True, slots=True)
class TaskKey:
    """A task instance as plain values (what :func:`step_for` and :func:`step_tags` read)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int = 1

    @classmethod
    def of(cls, ti: Any) -> TaskKey:
        """The key of a task instance object (read in the caller's thread, no I/O)."""
        map_index = getattr(ti, "map_index", -1)
        return cls(
            str(ti.dag_id),
            str(ti.run_id),
            str(ti.task_id),
            -1 if map_index is None else int(map_index),
            int(getattr(ti, "try_number", 1) or 1),
        )


@dataclass(frozen=True, slots=True)
class DagRunEvent:
    """A DAG run's state change as plain values, built in the hook's thread.

    ``tracked`` and ``experiment`` are None when the hook had no DAG at hand (the API
    server): they are read from the metadata database, in a session of our own."""

    dag_id: str
    run_id: str
    run_name: str
    tags: dict[str, str]
    tracked: bool | None
    experiment: str | None
    #: None: the DAG run started.
    status: RunStatus | None = None
    msg: str | None = None

    @classmethod
    def of(cls, dag_run: Any, status: RunStatus | None = None, msg: str | None = None) -> Any:
        """The event of ``dag_run`` (only attributes it has loaded are read)."""
        dag = getattr(dag_run, "dag", None)
        dag_id, run_id = str(dag_run.dag_id), str(dag_run.run_id)
        return cls(
            dag_id,
            run_id,
            pipeline_run_name(dag_id, dag_run),
            pipeline_tags(dag_id, run_id, dag_run),
            is_tracked(dag) if dag is not None else None,
            experiment_for(dag_id, dag) if dag is not None else None,
            status,
            msg,
        )


def _operator_name(task: Any) -> str:
    return str(
        getattr(task, "custom_operator_name", None)
        or getattr(task, "task_type", None)
        or type(task).__name__
    )


def step_tags(ti: Any, task: Any | None) -> dict[str, str]:
    """A task run's tags: where it comes from in Airflow, and its page there."""
    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else int(map_index)
    tags = {
        "airflow.dag_id": ti.dag_id,
        "airflow.run_id": ti.run_id,
        "airflow.task_id": ti.task_id,
        "airflow.map_index": str(map_index),
        "airflow.try_number": str(getattr(ti, "try_number", 1) or 1),
        "airflow.url": task_instance_url(ti.dag_id, ti.run_id, ti.task_id, map_index),
    }
    if task is not None:
        tags["airflow.operator"] = _operator_name(task)
    return tags


def _param_values(params: Any) -> tuple[list[Param], list[str]]:
    """DAG-run params as run params; the keys too long to log are returned apart."""
    logged, skipped = [], []
    items = params.items() if hasattr(params, "items") else ()
    for key, value in items:
        text = value if isinstance(value, str) else repr(value) if value is not None else "None"
        if len(str(key)) > 250 or len(text) > MAX_PARAM_VALUE_LENGTH:
            skipped.append(str(key))
            continue
        logged.append(Param(str(key), text))
    return logged, skipped


def _run_name(ti: Any, task: Any | None, explicit: str | None) -> str | None:
    if explicit:
        return explicit
    rendered = getattr(ti, "rendered_map_index", None)
    if rendered:
        return f"{ti.task_id}[{rendered}]"
    return None


@dataclass
class _Open:
    """A task instance being tracked in this process."""

    step: Step
    tracker: PipelineTracker
    active: fluent.ActiveRun | None
    env_before: dict[str, str | None] = field(default_factory=dict)
    #: The run as step_running left it: what this process knows of it at the end,
    #: unless something else (a SIGTERM, the task's own code) changed it meanwhile.
    run: Run | None = None


def _ours(task: Any) -> bool:
    return bool(getattr(task, "_trackflow_tracked", False))


def _restore_env(entry: _Open) -> None:
    leave_step_env(entry.env_before)


def _key(ti: Any) -> tuple[str, str, str, int]:
    map_index = getattr(ti, "map_index", -1)
    return (ti.dag_id, ti.run_id, ti.task_id, -1 if map_index is None else int(map_index))


class AirflowTracking:
    """The Airflow side of tracking, one per process (:func:`airflow_tracking`).

    ``strict=False`` (the listener) swallows store failures with a warning per
    task; ``strict=True`` (the operators) raises them.
    """

    def __init__(self) -> None:
        self.guard = NeverBreak(_log)
        self._lock = threading.Lock()
        self._trackers: dict[str, PipelineTracker] = {}
        self._open: dict[tuple[str, str, str, int], _Open] = {}
        self._config: Any = None
        self._client: Any = None
        self._user_client: Any = None
        self._params_logged: set[str] = set()
        self.dispatcher = Dispatcher("trackflow-airflow", _log)

    # -- configuration ----------------------------------------------------------

    def config(self) -> Any:
        """The default connection's settings (read once per process)."""
        if self._config is None:
            from operators.hooks import default_config

            # On the dispatcher's thread, never through a running task's supervisor
            # channel (dag.test() runs tasks in this process): see default_config.
            self._config = default_config(server_side=self.dispatcher.on_its_thread())
        return self._config

    def reset(self) -> None:
        """Forget the connection and clients (tests switching stores), once the queued
        events are handled."""
        self.dispatcher.flush(60)
        self.guard = NeverBreak(_log)  # warned once per task: again for the next store
        with self._lock:
            self._config = None
            self._client = None
            self._user_client = None
            self._trackers.clear()
            self._params_logged.clear()

    def client(self) -> Any:
        """The default connection's client, built once per process. Few retries: the
        listener must not hold up a task for long when the store is down."""
        config = self.config()
        with self._lock:
            if self._client is None:
                self._client = config.client(max_retries=1, timeout=10.0)
            return self._client

    def user_client(self) -> Any:
        """The client the task's own code logs through (its active fluent run, artifact
        hand-off): :func:`~tracking.connection.patient_client` of :meth:`client`, so a
        server restart during the task is waited out, where the listener's own calls
        give up at once and leave the task untracked."""
        client = self.client()
        with self._lock:
            if self._user_client is None:
                self._user_client = patient_client(client)
            return self._user_client

    def tracker(self, experiment: str) -> PipelineTracker:
        """The tracker of an experiment, on the default connection's store."""
        client = self.client()
        with self._lock:
            tracker = self._trackers.get(experiment)
            if tracker is None:
                tracker = self._trackers[experiment] = PipelineTracker(client, experiment)
        return tracker

    def is_open(self, ti: Any) -> bool:
        """Whether this process tracks that task instance now."""
        return _key(ti) in self._open

    # -- task instances ---------------------------------------------------------

    def task_started(
        self,
        ti: Any,
        *,
        strict: bool = False,
        experiment: str | None = None,
        run_name: str | None = None,
    ) -> fluent.ActiveRun | None:
        """A task instance started in this process: its run goes RUNNING, becomes the
        active fluent run, and its id and store are put in the environment for the
        processes the task starts. Does nothing for an untracked DAG (unless ``strict``,
        an operator's own call) or for a task already open."""
        task = getattr(ti, "task", None)
        dag = getattr(task, "dag", None)
        if not strict and not is_tracked(dag):
            return None
        # trackflow's operators say where their run goes.
        if _ours(task):
            experiment = experiment or getattr(task, "experiment", None)
            run_name = run_name or getattr(task, "run_name", None)
        key = _key(ti)
        if key in self._open:
            return self._open[key].active
        step = step_for(ti, name=_run_name(ti, task, run_name))
        label = f"{ti.dag_id}/{ti.task_id}" + (
            f"[{step.map_index}]" if step.map_index is not None else ""
        )

        def start() -> fluent.ActiveRun:
            tracker = self.tracker(experiment_for(ti.dag_id, dag))
            self._start_pipeline(tracker, ti)
            exp_id = None
            if experiment is not None:
                exp_id = PipelineTracker(tracker.client, experiment).experiment_id()
            run = tracker.step_running(step, tags=step_tags(ti, task), experiment_id=exp_id)
            active = fluent.attach_run(step.run_id, self.user_client(), run=run)
            self._open[key] = _Open(step, tracker, active, run=run)
            return active

        if strict:
            active = start()
        else:
            active = self.guard.call(label, start)
            if active is None:  # the store is down: the task runs untracked
                tracker = self.tracker(experiment_for(ti.dag_id, dag))
                self._open[key] = _Open(step, tracker, None)
        self._open[key].env_before = enter_step_env(step.run_id, self.config())
        return active

    def ensure_started(
        self, ti: Any, *, experiment: str | None = None, run_name: str | None = None
    ) -> fluent.ActiveRun:
        """The task's active run for an explicit operator: the listener's if it started
        it, else started now, strictly (a store that cannot be reached raises)."""
        entry = self._open.get(_key(ti))
        if entry is not None and entry.active is not None:
            return entry.active
        if entry is not None:  # the listener could not reach the store: try again, loudly
            self._open.pop(_key(ti))
            _restore_env(entry)
        active = self.task_started(ti, strict=True, experiment=experiment, run_name=run_name)
        assert active is not None
        return active

    def _start_pipeline(self, tracker: PipelineTracker, ti: Any) -> None:
        pipeline = pipeline_for(ti.dag_id, ti.run_id)
        if pipeline.run_id in self._params_logged:
            tracker.pipeline_started(pipeline)
            return
        context = ti.get_template_context() if hasattr(ti, "get_template_context") else {}
        dag_run = context.get("dag_run")
        tracker.pipeline_started(
            pipeline,
            run_name=pipeline_run_name(ti.dag_id, dag_run),
            tags=pipeline_tags(ti.dag_id, ti.run_id, dag_run),
        )
        values = dict(context.get("params") or {})
        conf = getattr(dag_run, "conf", None) or {}
        if isinstance(conf, dict):  # conf keys the DAG declares no param for
            values.update({k: v for k, v in conf.items() if k not in values})
        params, skipped = _param_values(values)
        tags: list[RunTag] = []
        if skipped:
            tags.append(
                RunTag(
                    SKIPPED_PARAMS_TAG,
                    f"not logged, longer than {MAX_PARAM_VALUE_LENGTH} characters: "
                    + ", ".join(sorted(skipped)),
                )
            )
        if tags:
            tracker.client.log_batch(pipeline.run_id, tags=tags)
        for start in range(0, len(params), MAX_BATCH_PARAMS):
            chunk = params[start : start + MAX_BATCH_PARAMS]
            try:
                tracker.client.log_batch(pipeline.run_id, params=chunk)
            except tracking.InvalidParameterError:
                # One bad key, or a value changed since an earlier try (params are
                # immutable: the first stays): log the others one by one.
                for param in chunk:
                    try:
                        tracker.client.log_param(pipeline.run_id, param.key, param.value)
                    except tracking.InvalidParameterError as exc:
                        _log.warning("trackflow: DAG-run param not logged: %s", exc)
        self._params_logged.add(pipeline.run_id)

    def task_ended(
        self,
        ti: Any,
        state: str,
        error: BaseException | str | None = None,
        *,
        strict: bool = False,
    ) -> None:
        """A task instance of this process ended in Airflow ``state``."""
        entry = self._open.pop(_key(ti), None)
        if entry is None:
            return
        _restore_env(entry)
        killed = False
        if entry.active is not None:
            try:
                killed = not fluent.detach_run(entry.active)
            except tracking.TrackingError as exc:
                _log.warning("trackflow: buffered records of %s were lost: %s", ti.task_id, exc)
        status, reason, retrying = _outcome(ti, state, error, killed)
        label = f"{ti.dag_id}/{ti.task_id}"

        # What this process knows of the run is enough to write the outcome Airflow
        # decided, even if the task's subprocess ended the run meanwhile (the write
        # overrides it); after a SIGTERM the store is asked again.
        known = None if killed else entry.run

        def end() -> None:
            entry.tracker.step_ended(
                entry.step, status, reason=reason, retrying=retrying, current=known
            )

        if strict:
            end()
        else:
            self.guard.call(label, end)

    def task_changed_from_outside(self, ti: Any, state: str) -> None:
        """A task instance was marked ``state`` from the UI or the API (the API server's
        request thread): a run still open was killed by it (Airflow terminates the
        task). Queued; the dispatcher's thread does the I/O."""
        key = TaskKey.of(ti)
        self.dispatcher.submit(
            f"{key.dag_id}/{key.task_id} marked {state}", self._marked_from_outside, key, state
        )

    def _marked_from_outside(self, key: TaskKey, state: str) -> None:
        step = step_for(key)
        client = self.client()
        try:
            run = client.get_run(step.run_id)
        except RunNotFoundError:
            return  # never tracked
        if run.info.status.is_terminated:
            return
        # The run exists: nothing is created, so any experiment name serves.
        PipelineTracker(client, key.dag_id).step_ended(
            step,
            RunStatus.KILLED,
            reason=f"task instance marked {state} from the Airflow UI or API while running",
            current=run,
        )

    # -- DAG runs ---------------------------------------------------------------
    #
    # The scheduler calls these from its single-threaded loop, inside its database
    # session (the API server, from a request): they only build a DagRunEvent and
    # queue it. Everything else (the connection lookup, the task instances' states,
    # the store) happens on the dispatcher's thread, in sessions of its own.

    def dag_run_started(self, dag_run: Any) -> None:
        """The scheduler started a DAG run: its parent run goes RUNNING."""
        dag = getattr(dag_run, "dag", None)
        if dag is not None and not is_tracked(dag):
            return
        event = DagRunEvent.of(dag_run)
        self.dispatcher.submit(f"{event.dag_id}/{event.run_id} running", self._started, event)

    def dag_run_ended(self, dag_run: Any, status: RunStatus, msg: str | None = None) -> None:
        """A DAG run ended: task runs the store missed are caught up, the ones still
        open are closed (KILLED, FAILED where the task failed), then the parent ends."""
        event = DagRunEvent.of(dag_run, status, msg)
        self.dispatcher.submit(f"{event.dag_id}/{event.run_id} {status.value}", self._ended, event)

    def end_dag_run(self, event: DagRunEvent) -> None:
        """End a DAG run's run now, in this thread, as :meth:`dag_run_ended` would (the
        reaper's, on the dispatcher's thread: see :mod:`operators.maintenance`)."""
        self._ended(event)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the queued DAG-run and marked-task events are handled."""
        return self.dispatcher.flush(timeout)

    def _facts(self, event: DagRunEvent) -> tuple[bool, str]:
        if event.tracked is not None and event.experiment is not None:
            return event.tracked, event.experiment
        from operators import _metadb

        tags = _metadb.dag_tags(event.dag_id)
        dag = _TaggedDag(tags)
        return is_tracked(dag), experiment_for(event.dag_id, dag)

    def _started(self, event: DagRunEvent) -> None:
        tracked, experiment = self._facts(event)
        if not tracked:
            return
        self.tracker(experiment).pipeline_started(
            pipeline_for(event.dag_id, event.run_id), run_name=event.run_name, tags=event.tags
        )

    def _ended(self, event: DagRunEvent) -> None:
        assert event.status is not None
        tracked, experiment = self._facts(event)
        pipeline = pipeline_for(event.dag_id, event.run_id)
        try:
            tracker = self.tracker(experiment)
        except StoreNotConfiguredError:
            if tracked:
                raise
            # An untracked DAG in a process with no store: there is no run to end.
            _log.debug("trackflow: no store; %s is not tracked", event.dag_id, exc_info=True)
            return
        try:
            tracker.adopt(tracker.client.get_run(pipeline.run_id))
        except RunNotFoundError:
            if not tracked:
                return  # a serialised DAG may not tell; no parent run: never tracked
            tracker.pipeline_started(pipeline, run_name=event.run_name, tags=event.tags)
        statuses = self._catch_up(tracker, event, pipeline)
        reason = event.msg if event.status is RunStatus.FAILED else None
        tracker.pipeline_ended(pipeline, event.status, reason=reason, step_statuses=statuses)

    def _catch_up(
        self, tracker: PipelineTracker, event: DagRunEvent, pipeline: PipelineRun
    ) -> dict[str, RunStatus]:
        from operators import _metadb

        try:
            states = _metadb.task_instance_states(event.dag_id, event.run_id)
        except _metadb.NoMetadataDatabaseError:
            _log.debug("trackflow: no task instances for %s", event.run_id, exc_info=True)
            return {}
        runs = {r.info.run_id: r for r in tracker.client.get_subtree(pipeline.run_id)}
        statuses: dict[str, RunStatus] = {}
        for key, state in states:
            status = _TI_STATUS.get(state or "")
            if status is None:
                continue  # never ran: skipped, upstream failed, removed
            step = step_for(key)
            run = runs.get(step.run_id)
            if run is None:
                # It ran while the store was down: its run is created now, as it ended.
                tracker.step_running(step, tags=step_tags(key, None))
                tracker.step_ended(step, status)
            elif not run.info.status.is_terminated:
                statuses[step.run_id] = status
        return statuses


@dataclass(frozen=True, slots=True)
class _TaggedDag:
    """What :func:`is_tracked` and :func:`experiment_for` need of a DAG, from its tags."""

    tags: list[str]


_TI_STATUS = {
    "success": RunStatus.FINISHED,
    "failed": RunStatus.FAILED,
    "up_for_retry": RunStatus.FAILED,
}


def _outcome(
    ti: Any, state: str, error: BaseException | str | None, killed: bool
) -> tuple[RunStatus, str | None, bool]:
    """How an attempt ended: (status, reason, retrying)."""
    if state == "success":
        return RunStatus.FINISHED, None, False
    if state == "skipped":
        return RunStatus.FINISHED, "skipped itself", False
    retrying = _enum(getattr(ti, "state", None)) == "up_for_retry" or state == "up_for_retry"
    reason = _describe(ti, error)
    if retrying:
        return RunStatus.FAILED, reason, True
    if killed or _is_kill(error):
        return RunStatus.KILLED, reason or "terminated", False
    return RunStatus.FAILED, reason, False


def _is_kill(error: BaseException | str | None) -> bool:
    if isinstance(error, KeyboardInterrupt):
        return True
    return type(error).__name__ == "AirflowTaskTerminated"


def _describe(ti: Any, error: BaseException | str | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, str):
        return error
    text = f"{type(error).__name__}: {error}".rstrip(": ")
    if type(error).__name__ == "AirflowTaskTimeout":
        timeout = getattr(getattr(ti, "task", None), "execution_timeout", None)
        limit = f" of {timeout}" if timeout is not None else ""
        text = f"execution_timeout{limit} exceeded ({text})"
    return text


_instance: AirflowTracking | None = None
_instance_lock = threading.Lock()


def airflow_tracking() -> AirflowTracking:
    """This process's :class:`AirflowTracking`."""
    global _instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = AirflowTracking()
    return _instance


def run_link(ti_key: Any) -> str:
    """The trackflow page of a task instance's run ("" without a UI base URL)."""
    tracking_ = airflow_tracking()
    ui_base = tracking_.config().ui_base
    if not ui_base:
        return ""
    step = step_for(ti_key)
    try:
        run = tracking_.client().get_run(step.run_id)
    except RunNotFoundError:
        return ""
    return run_url(ui_base, run.info.experiment_id, step.run_id)
