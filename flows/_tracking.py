"""Prefect's flow and task runs translated into :mod:`tracking.pipelines` calls.

A flow run is a pipeline run (a subflow's names its parent flow's run as
parent); a task run is a step of its flow run. Run ids come from Prefect's own
ids, so every process that touches a run (a retry, a hook in the runner) lands
on the same one with no search.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flows.blocks import ResolvedConfig
from tracking import fluent
from tracking.client import TrackingClient
from tracking.connection import enter_step_env, leave_step_env, patient_client
from tracking.entities import Param, Run, RunInfo, RunStatus, RunTag
from tracking.errors import (
    InvalidParameterError,
    InvalidStateError,
    RunNotFoundError,
    TrackingError,
)
from tracking.pipelines import (
    ATTEMPT_TAG,
    FAILURE_REASON_TAG,
    NeverBreak,
    PipelineHeartbeat,
    PipelineRun,
    PipelineTracker,
    Step,
    artifact_refs,
)
from tracking.store.rest import DeferredWriteError, RestTrackingStore
from tracking.validation import (
    MAX_BATCH_PARAMS,
    MAX_ENTITY_KEY_LENGTH,
    MAX_PARAM_VALUE_LENGTH,
    validate_experiment_name,
)

__all__ = [
    "SKIPPED_PARAMS_TAG",
    "FlowScope",
    "artifact_refs",
    "catch_up",
    "enter_scope",
    "flow_pipeline",
    "leave_scope",
    "scope_of",
    "task_step",
    "tracking_for",
]

_log = logging.getLogger("flows")
ORCHESTRATOR = "prefect"
#: Parameters that were not logged (too long), and why.
SKIPPED_PARAMS_TAG = "trackflow.skippedParams"
#: A task run whose result came from Prefect's cache.
CACHED_TAG = "trackflow.cached"
_KIND = "flow-run"
#: Beats for the flow runs this process runs, so that a reaper can end those whose
#: process died (``flows.maintenance.reap_lost_runs``).
HEARTBEAT = PipelineHeartbeat(logger=_log)


def flow_pipeline(flow_run_id: str) -> PipelineRun:
    """The pipeline run of a Prefect flow run (its id alone identifies it)."""
    return PipelineRun(ORCHESTRATOR, _KIND, str(flow_run_id))


def task_step(
    flow_run_id: str, task_run_id: str, attempt: int = 1, name: str | None = None
) -> Step:
    """The step of a Prefect task run of a flow run."""
    return Step(flow_pipeline(flow_run_id), str(task_run_id), attempt=attempt, name=name)


def flatten_params(
    values: Mapping[str, Any], prefix: str = "", depth: int = 0
) -> tuple[list[Param], list[str]]:
    """Call parameters as run params: dicts flattened to ``a.b``, values as strings;
    keys or values over MLflow's limits (and ArtifactRefs) returned apart, by name."""
    logged: list[Param] = []
    skipped: list[str] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if any(True for _ in artifact_refs(value)):
            continue  # a reference is lineage, not a param
        if isinstance(value, Mapping) and value and depth < 3:
            more, less = flatten_params(value, f"{name}.", depth + 1)
            logged += more
            skipped += less
            continue
        text = value if isinstance(value, str) else str(value)
        if len(name) > MAX_ENTITY_KEY_LENGTH or len(text) > MAX_PARAM_VALUE_LENGTH:
            skipped.append(name)
            continue
        logged.append(Param(name, text))
    return logged, skipped


@dataclass(frozen=True)
class FlowScope:
    """What a tracked flow run hands down to its task runs, mapped runs and subflow
    runs: its configuration (the one resolver's answer for the flow run), its
    experiment and its run as opened."""

    flow_run_id: str
    config: ResolvedConfig
    experiment: str
    run: Run | None

    @property
    def run_info(self) -> RunInfo | None:
        """The flow run's run, as it was when the flow run started."""
        return self.run.info if self.run is not None else None


# Every thread of a task runner looks its flow run up by id (a ContextVar copied
# into a thread would do too, but not for a thread the runner started before).
_scopes: dict[str, FlowScope] = {}
_scopes_lock = threading.Lock()
_current: ContextVar[FlowScope | None] = ContextVar("trackflow_flow_scope", default=None)


def enter_scope(scope: FlowScope) -> None:
    """``scope`` is its flow run's, in this process, until :func:`leave_scope`."""
    with _scopes_lock:
        _scopes[scope.flow_run_id] = scope
    _current.set(scope)


def leave_scope(flow_run_id: str, parent: FlowScope | None) -> None:
    """The flow run ended (no retry to come): forget its scope."""
    with _scopes_lock:
        _scopes.pop(flow_run_id, None)
    _current.set(parent)


def scope_of(flow_run_id: str | None) -> FlowScope | None:
    """The scope of a flow run tracked by this process, if any."""
    if flow_run_id is None:
        return None
    with _scopes_lock:
        return _scopes.get(flow_run_id)


def current_scope() -> FlowScope | None:
    """The innermost tracked flow run of this context."""
    return _current.get()


@dataclass
class _Unopened:
    """A tracked flow run whose run could not be started (the store was away when the
    flow run started): ``begin`` starts it as the flow run's start would have (with
    the patient client if told so)."""

    begin: Callable[[bool], Run]
    opened: Opened
    lock: threading.Lock
    run: Run | None = None


#: Flow runs of this process whose start the store missed, by flow run id.
_unopened: dict[str, _Unopened] = {}


def catch_up(flow_run_id: str, patient: bool = False) -> Run | None:
    """The run of a flow run whose start the store missed, started now as that start
    would have (a subflow's: the child of its parent flow run's run, named after its
    flow), so that its task runs land under it rather than under a run made up on the
    way; None for a flow run that is not waiting for its start. Raises what the store
    raises while it is still away (the next task run, or the flow run's end, tries
    again). ``patient``: for the code of a flow or task run, whose call waits for the
    store within ``TRACKFLOW_RETRY_TIMEOUT`` (a hook's gives up at once)."""
    with _scopes_lock:
        waiting = _unopened.get(flow_run_id)
    if waiting is None:
        return None
    with waiting.lock:  # the flow run's task runs, in many threads: one start
        if waiting.run is None:
            run = waiting.begin(patient)
            waiting.opened.run = run
            waiting.opened.tracker.adopt(run)
            HEARTBEAT.add(run.info.run_id, waiting.opened.tracker.client)
            with _scopes_lock:
                scope = _scopes.get(flow_run_id)
                if scope is not None and scope.run is None:
                    _scopes[flow_run_id] = dataclasses.replace(scope, run=run)
            waiting.run = run
    return waiting.run


def _forget_unopened(flow_run_id: str) -> None:
    with _scopes_lock:
        _unopened.pop(flow_run_id, None)


@dataclass
class Opened:
    """A flow or task run this process tracks now. One whose start the store missed
    has no ``run`` yet: ``active`` is then a :class:`~tracking.fluent.PendingRun`, made
    when the run's code first logs, and ``begin`` (a task run's) makes it as its start
    would have, for the task run's code or at the latest at its end."""

    tracker: PipelineTracker
    run: Run | None
    active: fluent.ActiveRun | fluent.PendingRun | None
    label: str
    env_before: dict[str, str | None]
    begin: Callable[[bool], Run] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def made(self, patient: bool) -> Run:
        """The task run's run, made now by :attr:`begin` if it is not made yet."""
        with self.lock:  # the task run's code, in its threads, and its end: one start
            if self.run is None:
                assert self.begin is not None, "a run that is neither made nor to be made"
                self.run = self.begin(patient)
        return self.run


class PrefectTracking:
    """The Prefect side of tracking for one configuration (see :func:`tracking_for`)."""

    def __init__(self, config: ResolvedConfig) -> None:
        self.config = config
        self.guard = NeverBreak(_log)
        self._lock = threading.RLock()
        self._trackers: dict[str, PipelineTracker] = {}
        self._client: Any = None
        self._user_client: Any = None
        self._patient_trackers: dict[str, PipelineTracker] = {}
        #: Ends of task runs the store missed, by flow run: sent again at the flow's end.
        self._pending: dict[str, list[Any]] = {}

    def client(self) -> Any:
        """The client of the listener-like calls: few retries, the flow must go on."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self.config.client(max_retries=1, timeout=10.0)
        return self._client

    def user_client(self) -> Any:
        """The client of a tracked flow's or task's own code (its active fluent run,
        artifact uploads): :func:`~tracking.connection.patient_client` of :meth:`client`."""
        if self._user_client is None:
            client = self.client()
            with self._lock:
                if self._user_client is None:
                    self._user_client = patient_client(client)
        return self._user_client

    def tracker(self, experiment: str) -> PipelineTracker:
        """The tracker of ``experiment``."""
        with self._lock:
            tracker = self._trackers.get(experiment)
            if tracker is None:
                tracker = self._trackers[experiment] = PipelineTracker(self.client(), experiment)
        return tracker

    def patient_tracker(self, experiment: str) -> PipelineTracker:
        """The tracker of ``experiment`` over :meth:`user_client`: a flow or task run's
        start that the store missed, made for the run's own code, which waits for it."""
        client = self.user_client()
        with self._lock:
            tracker = self._patient_trackers.get(experiment)
            if tracker is None:
                tracker = PipelineTracker(client, experiment)
                self._patient_trackers[experiment] = tracker
        return tracker

    # -- around a call ------------------------------------------------------------

    def open_flow(
        self,
        *,
        flow_run_id: str,
        parent_run_id: str | None,
        experiment: str,
        run_name: str,
        attempt: int,
        tags: Mapping[str, str],
        params: Mapping[str, Any] | None,
        label: str,
        experiment_id: str | None = None,
        own_experiment: bool = False,
        parent_flow_run_id: str | None = None,
    ) -> Opened:
        """A flow run starts (or a retry of it): its run goes RUNNING and becomes active.
        ``experiment_id`` (a subflow's: its parent's) spares looking ``experiment`` up;
        ``own_experiment`` puts a subflow's run in ``experiment``, not its parent's.
        ``parent_flow_run_id`` is a subflow's tracked parent flow run: when its run is
        not known (``parent_run_id`` None: its start was missed too) it is caught up
        first. A start the store misses is caught up later (see :func:`catch_up`)."""
        tracker = self.tracker(experiment)
        pipeline = flow_pipeline(flow_run_id)

        def begin(patient: bool) -> Run:
            using = self.patient_tracker(experiment) if patient else tracker
            parent, in_experiment = parent_run_id, experiment_id
            if parent is None and parent_flow_run_id is not None:
                above = catch_up(parent_flow_run_id, patient)
                # Not waiting for its start: its run is there (by its id) or this fails.
                parent = above.info.run_id if above else flow_pipeline(parent_flow_run_id).run_id
                if above is not None and in_experiment is None and not own_experiment:
                    in_experiment = above.info.experiment_id
            if own_experiment and in_experiment is None:
                in_experiment = using.experiment_id()
            run = using.pipeline_started(
                pipeline,
                run_name=run_name,
                tags=tags,
                parent_run_id=parent,
                experiment_id=in_experiment,
            )
            seen = _attempt(run)
            if attempt > seen or run.info.status is not RunStatus.RUNNING:
                using.client.log_batch(
                    run.info.run_id, tags=[RunTag(ATTEMPT_TAG, str(max(attempt, seen)))]
                )
                if run.info.status is not RunStatus.RUNNING:
                    using.client.update_run(run.info.run_id, status=RunStatus.RUNNING)
            if params:
                self._log_params(using.client, run.info.run_id, params)
            return run

        def start() -> Opened:
            run = begin(False)
            active = _attach(
                lambda: fluent.attach_run(run.info.run_id, self.user_client(), run=run)
            )
            return Opened(tracker, run, active, label, {})

        opened: Opened | None = self.guard.call(label, start)
        if opened is None:
            opened = Opened(tracker, None, None, label, {})
            with _scopes_lock:
                _unopened[flow_run_id] = _Unopened(begin, opened, threading.Lock())

            def resolve() -> Run:
                run = catch_up(flow_run_id, patient=True) or opened.run
                if run is None:
                    raise InvalidStateError(f"the run of {label} was not made")
                return run

            opened.active = _attach(
                lambda: fluent.attach_pending_run(pipeline.run_id, resolve, self.user_client())
            )
        else:
            _forget_unopened(flow_run_id)
        _set_env(opened, pipeline.run_id, self.config)
        return opened

    def open_task(
        self,
        *,
        step: Step,
        parent_run_id: str | None,
        experiment: str,
        tags: Mapping[str, str],
        params: Mapping[str, Any] | None,
        inputs: Mapping[str, Any],
        label: str,
        parent_info: RunInfo | None = None,
    ) -> Opened:
        """A task run starts (or a retry of it), under its flow run's run (``parent_info``:
        as this process's flow run knows it, which spares reading it per task run)."""
        tracker = self.tracker(experiment)

        def begin(patient: bool) -> Run:
            using = self.patient_tracker(experiment) if patient else tracker
            parent = parent_info
            if parent is None:
                caught = catch_up(step.pipeline.run_key, patient)  # its flow run's, missed
                if caught is not None:
                    parent = caught.info
            run = using.step_running(
                step, tags=tags, parent_run_id=parent_run_id, parent_info=parent
            )
            if params:
                self._log_params(using.client, run.info.run_id, params)
            for ref in {r for v in inputs.values() for r in artifact_refs(v)}:
                if ref.sha256 and ref.run_id != run.info.run_id:
                    using.client.record_lineage(run.info.run_id, ref.run_id, ref.path, ref.sha256)
            return run

        def start() -> Opened:
            run = begin(False)
            active = _attach(
                lambda: fluent.attach_run(run.info.run_id, self.user_client(), run=run)
            )
            return Opened(tracker, run, active, label, {})

        opened: Opened | None = self.guard.call(label, start)
        if opened is None:
            # The store is away: the task goes on, and its run is made once the store
            # answers, for the task's code when it first logs (which waits for it), at
            # the latest at the task run's end. Meanwhile its code's active run is its
            # own, pending: never its flow run's, nor what the environment names.
            missed = opened = Opened(tracker, None, None, label, {}, begin=begin)
            opened.active = _attach(
                lambda: fluent.attach_pending_run(
                    step.run_id, lambda: missed.made(patient=True), self.user_client()
                )
            )
        _set_env(opened, step.run_id, self.config)
        return opened

    def close(self, opened: Opened) -> bool:
        """Take the run off the context; False if a SIGTERM ended it meanwhile."""
        _restore_env(opened)
        if opened.active is None:
            return True
        try:
            return fluent.detach_run(opened.active)
        except TrackingError as exc:
            _log.warning("trackflow: buffered records of %s were lost: %s", opened.label, exc)
            return True

    def flow_ended(
        self,
        opened: Opened,
        flow_run_id: str,
        status: RunStatus,
        reason: str | None,
        retrying: bool,
    ) -> None:
        """The flow run's attempt ended: SCHEDULED for a retry, else its run ends (after
        closing the task runs still open)."""
        pipeline = flow_pipeline(flow_run_id)
        with self._lock:
            missed = self._pending.pop(flow_run_id, [])

        def end() -> None:
            if opened.run is None:
                catch_up(flow_run_id)  # its start, missed: ended as if it had been made
            client = opened.tracker.client
            self._deliver_task_ends(client, opened.label)
            for again in missed:  # the task runs' ends the store missed, first
                again()
            if retrying:
                client.update_run(pipeline.run_id, status=RunStatus.SCHEDULED)
                if reason:
                    client.set_tag(pipeline.run_id, FAILURE_REASON_TAG, reason[:5000])
                return
            opened.tracker.pipeline_ended(pipeline, status, reason=reason)

        self.guard.call(opened.label, end)
        if not retrying:
            _forget_unopened(flow_run_id)

    def task_ended(
        self, opened: Opened, step: Step, status: RunStatus, reason: str | None, retrying: bool
    ) -> None:
        """The task run's attempt ended. Against a server, when this process runs the
        task run's flow run with the same store, the writes that say so are deferred
        (the task's thread does not wait for them): they go ahead of the next call to
        the server, or from a background thread, and :meth:`flow_ended` delivers them
        before it ends the flow run's run. A task run in a process of its own (a
        distributed task runner) ends as before: its flow run may end before its
        process would have sent a deferred end."""
        scope = scope_of(step.pipeline.run_key)
        deferred = scope is not None and scope.config == self.config

        def failed(error: BaseException) -> None:
            """A deferred end the server refused, or could not be reached for (it waits
            for the next try): the task run's warning, as if the hook had sent it."""

            def again() -> None:
                raise error

            self.guard.call(opened.label, again)

        def end() -> bool:
            tracker = opened.tracker
            if opened.run is None and opened.begin is not None:
                opened.made(patient=False)  # its start, missed: made as it would have been
            store = tracker.client.store
            if deferred and opened.run is not None and isinstance(store, RestTrackingStore):
                deferring = store.deferring(opened.run.info, on_error=failed)
                client = TrackingClient.from_store(deferring, tracker.client.tracking_uri)
                tracker = PipelineTracker(client, tracker.experiment)
            tracker.step_ended(step, status, reason=reason, retrying=retrying, current=opened.run)
            return True

        if not self.guard.call(opened.label, end):
            with self._lock:
                self._pending.setdefault(step.pipeline.run_key, []).append(end)

    def ended_from_outside(
        self, flow_run_id: str, status: RunStatus, reason: str | None, label: str
    ) -> None:
        """A state Prefect set outside the flow's process (a cancellation, a crash the
        runner noticed): the flow run's run, and its open task runs, end with it."""
        pipeline = flow_pipeline(flow_run_id)

        def end() -> None:
            tracker = PipelineTracker(self.client(), "Default")
            try:
                run = tracker.client.get_run(pipeline.run_id)
            except RunNotFoundError:
                return
            if run.info.status.is_terminated and run.info.status is status:
                # Ended so already (the flow's process, on the runner's SIGTERM): the
                # reason is what the runner knows, over the process's "killed: SIGTERM".
                known = run.data.tags.get(FAILURE_REASON_TAG, "")
                if reason and (not known or known.startswith("killed: ")):
                    tracker.client.set_tag(pipeline.run_id, FAILURE_REASON_TAG, reason[:5000])
                return
            tracker.pipeline_ended(pipeline, status, reason=reason)

        self.guard.call(label, end)

    # -- helpers --------------------------------------------------------------------

    def _deliver_task_ends(self, client: Any, label: str) -> None:
        """The task runs' ends still deferred, delivered before the flow run's run ends
        (nobody may see it FINISHED with task runs still open). Those the server
        refused are a warning and the flow run ends all the same; a server that cannot
        be reached fails the flow run's end too (the guard's warning)."""
        store = client.store
        if not isinstance(store, RestTrackingStore):
            return
        try:
            store.flush()
        except DeferredWriteError as exc:
            _log.warning("trackflow: %s: %s", label, exc)

    def _log_params(self, client: Any, run_id: str, values: Mapping[str, Any]) -> None:
        params, skipped = flatten_params(values)
        if skipped:
            client.set_tag(
                run_id,
                SKIPPED_PARAMS_TAG,
                f"not logged, over the key ({MAX_ENTITY_KEY_LENGTH}) or value "
                f"({MAX_PARAM_VALUE_LENGTH}) length limit: " + ", ".join(sorted(skipped)),
            )
        for start in range(0, len(params), MAX_BATCH_PARAMS):
            chunk = params[start : start + MAX_BATCH_PARAMS]
            try:
                client.log_batch(run_id, params=chunk)
            except InvalidParameterError:
                # A bad key, or a value changed since an earlier try (params are
                # immutable: the first stays): the others one by one.
                for param in chunk:
                    try:
                        client.log_param(run_id, param.key, param.value)
                    except InvalidParameterError as exc:
                        _log.warning("trackflow: param not logged: %s", exc)


_Attached = TypeVar("_Attached")


def _attach(attach: Callable[[], _Attached]) -> _Attached:
    """``attach()`` (``fluent.attach_run`` or ``attach_pending_run``), leaving Prefect's
    SIGTERM handler in place: Prefect (3.9 and later) acknowledges a cancellation only
    while its own handler is installed, and the ``TerminationSignal`` it raises ends
    our runs KILLED on the way out."""
    if threading.current_thread() is not threading.main_thread():
        return attach()
    before = signal.getsignal(signal.SIGTERM)
    active = attach()
    prefects = str(getattr(before, "__module__", "") or "").startswith("prefect")
    if prefects and signal.getsignal(signal.SIGTERM) is not before:
        signal.signal(signal.SIGTERM, before)
    return active


def _attempt(run: Run) -> int:
    try:
        return int(run.data.tags.get(ATTEMPT_TAG, "0"))
    except ValueError:
        return 0


def _set_env(opened: Opened, run_id: str, config: ResolvedConfig) -> None:
    opened.env_before = enter_step_env(run_id, config)


def _restore_env(opened: Opened) -> None:
    leave_step_env(opened.env_before)


_instances: dict[ResolvedConfig, PrefectTracking] = {}
_instances_lock = threading.Lock()


def tracking_for(config: ResolvedConfig) -> PrefectTracking:
    """This process's :class:`PrefectTracking` for ``config``."""
    with _instances_lock:
        found = _instances.get(config)
        if found is None:
            found = _instances[config] = PrefectTracking(config)
        return found


def reset() -> None:
    """Forget every configuration's clients and flow runs (tests switching stores)."""
    with _instances_lock:
        _instances.clear()
    with _scopes_lock:
        _scopes.clear()
        _unopened.clear()


def check_experiment(name: str | None) -> None:
    """A clear error now for an experiment name the store would refuse later."""
    if name is not None:
        validate_experiment_name(name)
