"""MLflow's fluent API: ``start_run()``, ``log_metric()`` ... on an implicit active run.

Example::

    import tracking

    tracking.set_experiment("churn")
    with tracking.start_run(run_name="baseline") as run:
        tracking.log_params({"lr": 0.01, "depth": 6})
        for step, auc in enumerate(train()):
            tracking.log_metric("auc", auc, step=step)
        with tracking.start_run(run_name="fold-1", nested=True):
            ...

Where the active run lives
--------------------------
MLflow keeps one global stack of active runs. Here the stack is an immutable
tuple in a :class:`contextvars.ContextVar`, so every thread and every asyncio
task has its own:

* A new ``threading.Thread`` starts with an empty context, hence **no active
  run**: it can start a top-level run of its own, or nest under a run of
  another thread (or another process) with ``start_run(parent_run_id=...)``.
* An asyncio task gets a *copy* of the context it was created in: it sees
  the runs active at that moment (``start_run(nested=True)`` nests under
  them), and runs it starts stay its own. ``asyncio.to_thread`` and
  ``contextvars.copy_context().run`` carry the caller's runs along likewise.

An orchestrator's step (an Airflow task, a Prefect task or flow run) has its run
attached to the step's context (:func:`attach_run`), so its code logs there, whatever
other steps run in other threads of the process. A step that started while the store
was away has a :class:`PendingRun` in its place, made when its code first needs it
(:func:`attach_pending_run`). Only a context with no active run at all falls back to
``TRACKFLOW_RUN_ID`` (else ``MLFLOW_RUN_ID``): what a step hands the processes it
starts. It is process-wide, so with steps side by side in threads it names the newest
of them; a thread a step starts should carry the step's context along
(``contextvars.copy_context().run``, ``asyncio.to_thread``) to log into the step's run.

The tracking URI and the current experiment are process-wide, as in MLflow:
``set_tracking_uri`` and ``set_experiment`` override ``TRACKFLOW_TRACKING_URI``
and ``TRACKFLOW_EXPERIMENT_NAME``; without either, runs go to the experiment
named by ``TRACKFLOW_EXPERIMENT_NAME`` (created if missing), else to the
Default experiment ``"0"``.

How runs end
------------
``with start_run():`` ends the run FINISHED on a normal exit, FAILED when an
exception escapes and KILLED on ``KeyboardInterrupt`` (``SystemExit`` with
code 0 or ``None`` counts as normal). Runs still open when the process exits
are ended for it, KILLED on SIGTERM (see :mod:`tracking._shutdown`), and a
daemon thread refreshes their heartbeat meanwhile (:mod:`tracking._heartbeat`).

Like MLflow, the ``log_*`` functions start a run when none is active; it stays
active until :func:`end_run` or the end of the process.

Buffered logging
----------------
With ``start_run(buffered=True)`` (or ``TRACKFLOW_BUFFERED_LOGGING=true``)
``log_metric``, ``log_param``, ``set_tag`` and their plural forms validate
their arguments and return at once; a background thread sends the records in
batches (see :mod:`tracking.buffering`). :func:`flush` waits for them and
raises what failed; ending the run flushes it, and ends it FAILED (and raises)
if some of its records could not be written.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import getpass
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from tracking import _heartbeat, _run_registry, _shutdown, buffering, settings, validation
from tracking.client import TrackingClient
from tracking.entities import (
    ArtifactRef,
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    LifecycleStage,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    ModelRef,
    ModelVersion,
    Param,
    Run,
    RunStatus,
    RunTag,
    ViewType,
)
from tracking.errors import (
    AlreadyExistsError,
    ArtifactIntegrityError,
    InvalidParameterError,
    InvalidStateError,
    RunNotFoundError,
    TrackingError,
)
from tracking.settings import get_settings
from tracking.validation import (
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    MAX_SEARCH_RESULTS,
)

__all__ = [
    "ActiveRun",
    "PendingRun",
    "active_run",
    "attach_pending_run",
    "attach_run",
    "delete_tag",
    "detach_run",
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
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "register_model",
    "search_runs",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "use_artifact",
    "use_model",
]

_DEFAULT_EXPERIMENT_ID = "0"
_NOTE_TAG = "mlflow.note.content"
_FAILURE_TAG = "trackflow.failureReason"
_LOST_REASON = "some buffered log records could not be written to the tracking store"

#: The active runs of this thread or task, innermost last (an orchestrator's run that
#: is not made yet is a :class:`PendingRun` until a call needs it).
_stack: contextvars.ContextVar[tuple[ActiveRun | PendingRun, ...]] = contextvars.ContextVar(
    "trackflow_active_runs", default=()
)
#: The id of the run this context ended last, for :func:`last_active_run`.
_last_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "trackflow_last_active_run_id", default=None
)


class _ChosenExperiment:
    """What ``set_experiment`` chose, and in which store it resolved it."""

    __slots__ = ("experiment_id", "name", "tracking_uri")

    def __init__(self, experiment_id: str, name: str | None, tracking_uri: str) -> None:
        self.experiment_id = experiment_id
        self.name = name
        self.tracking_uri = tracking_uri


_lock = threading.Lock()
_experiment: _ChosenExperiment | None = None
_clients: dict[tuple[str, str | None], TrackingClient] = {}
_experiment_ids: dict[tuple[str, str], str] = {}


class ActiveRun(Run):
    """The run :func:`start_run` returns: a :class:`~tracking.Run` and a context manager.

    ``info`` and ``data`` are as of the start of the run (call :func:`get_run`
    for fresh data), as with MLflow's ``ActiveRun``. Leaving the ``with`` block
    ends the run (and any run nested in it that is still open)::

        with tracking.start_run() as run:
            print(run.info.run_id)
    """

    __slots__ = ("_attached", "_buffered", "_client", "_token")
    _client: TrackingClient
    _token: int
    _buffered: bool
    _attached: bool

    def __init__(
        self,
        run: Run,
        client: TrackingClient,
        token: int,
        buffered: bool = False,
        attached: bool = False,
    ) -> None:
        super().__init__(run.info, run.data, run.inputs)
        # Run is frozen; these are private and set once.
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_token", token)
        object.__setattr__(self, "_buffered", buffered)
        object.__setattr__(self, "_attached", attached)

    @property
    def attached(self) -> bool:
        """Whether an orchestrator owns this run (see :func:`attach_run`): leaving a
        ``with`` block or :func:`end_run` does not end it, the orchestrator does."""
        return self._attached

    @property
    def client(self) -> TrackingClient:
        """The client this run writes through."""
        return self._client

    @property
    def buffered(self) -> bool:
        """Whether the fluent ``log_*`` calls of this run are buffered."""
        return self._buffered

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _finish(self, _exit_status(exc), propagating=exc)


class PendingRun:
    """An orchestrator's run that is active in a context before it exists: its step
    started while the store could not be reached (see :func:`attach_pending_run`).

    The first fluent call that needs the active run (in the context it was attached
    in, or in any copy of that context: a thread of the step, an asyncio task) calls
    ``resolve``, once for all of them, and the run it returns becomes the active run
    of each (the same :class:`ActiveRun`). Until then nothing is written anywhere:
    while ``resolve`` raises, the call raises, and the next call tries again.
    """

    __slots__ = ("_active", "_buffered", "_client", "_lock", "_resolve", "run_id")

    def __init__(
        self, run_id: str, resolve: Callable[[], Run], client: TrackingClient, buffered: bool
    ) -> None:
        #: The run's id, known before the run is made (an orchestrator's step derives it).
        self.run_id = run_id
        self._resolve = resolve
        self._client = client
        self._buffered = buffered
        self._lock = threading.Lock()
        self._active: ActiveRun | None = None

    def __repr__(self) -> str:
        state = "attached" if self._active is not None else "pending"
        return f"PendingRun({self.run_id!r}, {state})"

    @property
    def active(self) -> ActiveRun | None:
        """The run once a call made it active, else None."""
        return self._active

    def activate(self) -> ActiveRun:
        """The run, made now by ``resolve`` if no call made it yet (raises what
        ``resolve`` raises: the store is still away)."""
        with self._lock:  # the step's threads and tasks: one resolve
            if self._active is None:
                run = self._resolve()
                token = _run_registry.add(run.info.run_id, self._client)
                self._active = ActiveRun(run, self._client, token, self._buffered, attached=True)
        return self._active


def _run_id_of(entry: ActiveRun | PendingRun) -> str:
    return entry.run_id if isinstance(entry, PendingRun) else entry.info.run_id


def _top() -> ActiveRun | None:
    """This context's innermost active run, made now if it is pending (see
    :class:`PendingRun`); None if there is none."""
    stack = _stack.get()
    if not stack:
        return None
    top = stack[-1]
    if isinstance(top, PendingRun):
        active = top.activate()
        _stack.set((*stack[:-1], active))
        return active
    return top


def _exit_status(exc: BaseException | None) -> RunStatus:
    if exc is None:
        return RunStatus.FINISHED
    if isinstance(exc, KeyboardInterrupt):
        return RunStatus.KILLED
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return RunStatus.FINISHED
    return RunStatus.FAILED


# -- configuration ----------------------------------------------------------------


def set_tracking_uri(uri: str | os.PathLike[str]) -> None:
    """Send new runs to ``uri`` (overrides ``TRACKFLOW_TRACKING_URI``).

    It holds for the fluent API and for every ``TrackingClient()`` built
    without a URI. Runs already active keep writing where they started.
    """
    settings.set_tracking_uri(uri)


def get_tracking_uri() -> str:
    """The tracking URI that the fluent API and ``TrackingClient()`` use now."""
    return settings.get_tracking_uri()


def _client() -> TrackingClient:
    uri = get_tracking_uri()
    key = (uri, get_settings().artifact_root)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = TrackingClient(uri)
    return client


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment current for new runs, creating it by name if missing.

    Give exactly one of ``experiment_name`` and ``experiment_id``. The choice
    holds for the whole process (overriding ``TRACKFLOW_EXPERIMENT_NAME``); a
    name chosen here is looked up again in a store chosen later with
    :func:`set_tracking_uri`. A deleted experiment raises InvalidStateError;
    restore it with ``TrackingClient.restore_experiment`` first.
    """
    global _experiment
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidParameterError(
            "set_experiment takes exactly one of experiment_name and experiment_id"
        )
    client = _client()
    if experiment_name is not None:
        experiment = _get_or_create_experiment(client, experiment_name)
    else:
        experiment = client.get_experiment(str(experiment_id))
        _check_active(experiment)
    with _lock:
        _experiment = _ChosenExperiment(
            experiment.experiment_id, experiment_name, client.tracking_uri
        )
        _experiment_ids[(client.tracking_uri, experiment.name)] = experiment.experiment_id
    return experiment


def _get_or_create_experiment(client: TrackingClient, name: str) -> Experiment:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.get_experiment(client.create_experiment(name))
        except AlreadyExistsError:  # another process created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    _check_active(experiment)
    return experiment


def _check_active(experiment: Experiment) -> None:
    if experiment.lifecycle_stage is not LifecycleStage.ACTIVE:
        raise InvalidStateError(
            f"Cannot set the deleted experiment {experiment.name!r} (id "
            f"{experiment.experiment_id}) as the active experiment: restore it with "
            "TrackingClient.restore_experiment, or choose another name"
        )


def _current_experiment_id(client: TrackingClient) -> str:
    """The experiment new runs go to; resolved once per (tracking URI, name)."""
    chosen = _experiment
    if chosen is not None and (chosen.name is None or chosen.tracking_uri == client.tracking_uri):
        return chosen.experiment_id
    name = chosen.name if chosen is not None else get_settings().experiment_name
    if not name:
        return _DEFAULT_EXPERIMENT_ID
    key = (client.tracking_uri, name)
    experiment_id = _experiment_ids.get(key)
    if experiment_id is None:
        experiment_id = _get_or_create_experiment(client, name).experiment_id
        with _lock:
            _experiment_ids[key] = experiment_id
    return experiment_id


# -- runs -----------------------------------------------------------------------


@functools.cache
def _source_tags() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    source = sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>"
    return {"mlflow.user": user, "mlflow.source.name": source, "mlflow.source.type": "LOCAL"}


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    buffered: bool | None = None,
) -> ActiveRun:
    """Start a run, or resume one, and make it the active run of this thread or task.

    * ``nested=True`` makes the run a child of the active run (``parent_run_id``
      and the ``mlflow.parentRunId`` tag). Without it, starting a run while one
      is active raises InvalidStateError.
    * ``parent_run_id`` names the parent explicitly, so a run nests under a run
      of another thread or process, at any depth.
    * ``run_id`` resumes that run: it is set RUNNING again and ``tags``,
      ``run_name`` and ``description`` are applied to it. If no run has that id
      it is created with it in the current experiment (or ``experiment_id``),
      so ``start_run(run_id=tracking.run_id_for(dag, run, task))`` is
      idempotent across retries.
    * ``buffered=True`` makes the run's fluent ``log_*`` calls return at once
      and a background thread send them (see :mod:`tracking.buffering`);
      ``None`` inherits the parent run's choice, else ``TRACKFLOW_BUFFERED_LOGGING``.

    Example::

        with tracking.start_run(run_name="train") as parent:
            with tracking.start_run(run_name="fold-1", nested=True) as child:
                assert child.info.parent_run_id == parent.info.run_id
    """
    stack = _stack.get()
    if stack and not nested and _attached(stack[-1]) and run_id in (None, _run_id_of(stack[-1])):
        # Code inside an orchestrator's step asking for "the run": the step's own.
        top = _top()
        assert top is not None
        return _push_attached(top.info.run_id, top.client, top.buffered, top)
    if not stack and parent_run_id is None and (env_run_id := settings.env_run_id()):
        # A process started by a step joins the step's run (MLflow's MLFLOW_RUN_ID rule);
        # a nested run becomes its child.
        if nested:
            parent_run_id = env_run_id
        elif run_id is None:
            run_id = env_run_id
    active: ActiveRun | None = None
    if stack:
        innermost = _run_id_of(stack[-1])
        if not nested:
            raise InvalidStateError(
                f"Run {innermost} is already active. To start a nested run, call "
                "start_run with nested=True; to start a new top-level run, end the active "
                "one first with end_run()"
            )
        if parent_run_id is not None and parent_run_id != innermost:
            raise InvalidStateError(
                f"The active run {innermost} is not the given parent_run_id "
                f"{parent_run_id}. To nest under {parent_run_id}, end the active run first"
            )
        if run_id is not None and any(_run_id_of(r) == run_id for r in stack):
            raise InvalidStateError(f"Run {run_id} is already active in this context")
        active = _top()  # a pending parent is made first: the child goes under it
        assert active is not None
        stack = _stack.get()
        parent_run_id = active.info.run_id
    # A child goes where its parent is: a parent in another store cannot be referenced.
    client = active.client if active is not None else _client()
    if run_id is None:
        tag_map = {**_source_tags(), **tags} if tags else _source_tags()
        if description is not None:
            tag_map = {**tag_map, _NOTE_TAG: description}
        exp_id = str(experiment_id) if experiment_id is not None else _current_experiment_id(client)
        run = client.create_run(
            exp_id, run_name=run_name, tags=tag_map, parent_run_id=parent_run_id
        )
    else:
        run = _resume_or_create(
            client, run_id, experiment_id, run_name, parent_run_id, tags, description
        )
    if buffered is None:
        buffered = active.buffered if active is not None else get_settings().buffered_logging
    token = _run_registry.add(run.info.run_id, client)
    active_run = ActiveRun(run, client, token, buffered)
    _heartbeat.ensure_running()
    _shutdown.install()
    _stack.set((*stack, active_run))
    return active_run


def _resume_or_create(
    client: TrackingClient,
    run_id: str,
    experiment_id: str | None,
    run_name: str | None,
    parent_run_id: str | None,
    tags: Mapping[str, Any] | None,
    description: str | None,
) -> Run:
    try:
        existing = client.get_run(run_id)
    except RunNotFoundError:
        new_tags = {**_source_tags(), **(tags or {})}
        if description is not None:
            new_tags[_NOTE_TAG] = description
        exp_id = str(experiment_id) if experiment_id is not None else _current_experiment_id(client)
        run = client.create_run(
            exp_id, run_name=run_name, tags=new_tags, parent_run_id=parent_run_id, run_id=run_id
        )
        if run.info.status is RunStatus.RUNNING:
            return run
        existing = run  # created meanwhile by another process, and ended
    if existing.info.lifecycle_stage is not LifecycleStage.ACTIVE:
        raise InvalidStateError(
            f"Cannot start run {run_id}: it is deleted. Restore it with "
            "TrackingClient.restore_run first"
        )
    if experiment_id is not None and existing.info.experiment_id != str(experiment_id):
        raise InvalidParameterError(
            f"Run {run_id} belongs to experiment {existing.info.experiment_id}, "
            f"not to the given experiment_id {experiment_id}"
        )
    updates = dict(tags or {})
    if description is not None:
        updates[_NOTE_TAG] = description
    if run_name is not None:
        updates["mlflow.runName"] = run_name
    if updates:
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in updates.items()])
    resumed = existing.info.status is not RunStatus.RUNNING
    if resumed:
        client.update_run(run_id, status=RunStatus.RUNNING)
    return client.get_run(run_id) if resumed or updates else existing


def active_run() -> ActiveRun | None:
    """The innermost active run of this thread or task, or ``None``."""
    return _top()


def _attached(entry: ActiveRun | PendingRun) -> bool:
    return isinstance(entry, PendingRun) or entry.attached


def attach_run(
    run_id: str, client: TrackingClient | None = None, *, run: Run | None = None
) -> ActiveRun:
    """Make an existing run the active run of this context (on top of any active run)
    *for an orchestrator*, which owns its lifecycle: the run is left as it is, and
    neither :func:`end_run`, nor leaving ``with start_run():`` (which returns this
    run again inside the step), nor an exception ends it. :func:`detach_run` takes it
    off again; a SIGTERM ends it KILLED and the heartbeat keeps it alive meanwhile,
    like any fluent run. ``run`` is the run as the caller just read it (saves a
    round trip).

    The Airflow listener and the Prefect decorators call this around each task, so
    plain ``tracking.log_metric(...)`` in the task logs into the task's run::

        active = tracking.fluent.attach_run(step.run_id, client)
        try:
            user_code()
        finally:
            tracking.fluent.detach_run(active)
    """
    client = client or _client()
    # Attached runs may nest (a Prefect task inside its flow, in the same context):
    # the innermost is the active one until it is detached.
    active = _push_attached(run_id, client, get_settings().buffered_logging, run)
    _heartbeat.ensure_running()
    _shutdown.install()
    # Orchestrators install their own SIGTERM handlers per task: ours goes on top again.
    if threading.current_thread() is threading.main_thread():
        _shutdown.install_sigterm_handler()
    return active


def attach_pending_run(
    run_id: str, resolve: Callable[[], Run], client: TrackingClient | None = None
) -> PendingRun:
    """:func:`attach_run` for a run that is not made yet: an orchestrator's step that
    started while the store could not be reached. The step's code logs as usual; its
    first fluent call that needs the active run calls ``resolve`` (which makes the run,
    say as the step's start would have, waiting for the store within its client's
    retry budget), and everything goes to that run, never to a run further out (its
    flow's) or to the one the environment names: while ``resolve`` raises, the call
    raises. :func:`detach_run` takes it off again, made or not::

        pending = tracking.fluent.attach_pending_run(step.run_id, make_the_run, client)
        try:
            user_code()
        finally:
            tracking.fluent.detach_run(pending)
    """
    client = client or _client()
    pending = PendingRun(run_id, resolve, client, get_settings().buffered_logging)
    _stack.set((*_stack.get(), pending))
    _heartbeat.ensure_running()
    _shutdown.install()
    if threading.current_thread() is threading.main_thread():
        _shutdown.install_sigterm_handler()
    return pending


def detach_run(active: ActiveRun | PendingRun) -> bool:
    """Take an attached run (and whatever is active above it) off this context, without
    ending it; buffered records are sent first. Returns False if a SIGTERM handler
    ended it meanwhile (it is KILLED), else True. A :class:`PendingRun` that no call
    made is taken off (True)."""
    above = _pop_through(active)
    if isinstance(active, PendingRun):
        made = active.active
        if made is None:
            return True
        above = above or _pop_through(made)  # made in this context: it stands in its place
        active = made
    for child in reversed(above):
        if isinstance(child, ActiveRun) and not child.attached:
            _terminate(child, RunStatus.FINISHED)
    if active.buffered:
        buffering.flush_run(active.client, active.info.run_id, forget=True)
    return _run_registry.claim(active._token)


def _push_attached(
    run_id: str, client: TrackingClient, buffered: bool, run: Run | None = None
) -> ActiveRun:
    if run is None or run.info.run_id != run_id:
        run = client.get_run(run_id)
    stack = _stack.get()
    top = stack[-1] if stack else None
    if isinstance(top, ActiveRun) and top.attached and top.info.run_id == run_id:
        token = top._token  # the same open run, entered once in the registry
    else:
        token = _run_registry.add(run_id, client)
    active = ActiveRun(run, client, token, buffered, attached=True)
    _stack.set((*stack, active))
    return active


def last_active_run() -> Run | None:
    """The active run, else the run this thread or task ended last (fetched anew), else None.

    Handy after code that starts and ends its own run.
    """
    top = _top()
    if top is not None:
        return top
    run_id = _last_run_id.get()
    return get_run(run_id) if run_id is not None else None


def end_run(status: RunStatus | str = RunStatus.FINISHED) -> None:
    """End the innermost active run of this thread or task; a no-op if there is none.

    A buffered run is flushed first; if some of its records could not be
    written it ends FAILED (unless ``status`` is KILLED) and the error is raised.
    """
    parsed = _terminal_status(status)
    stack = _stack.get()
    if not stack:
        return
    top = stack[-1]
    if isinstance(top, PendingRun):  # an orchestrator's, which ends it: taken off only
        _pop_through(top)
        _last_run_id.set(top.run_id)
        return
    _finish(top, parsed)


def flush() -> None:
    """Wait until every buffered ``log_*`` call of this process reached its store.

    Raises the first failure since the last flush (the others are added to it
    as notes); a no-op when nothing is buffered. See :mod:`tracking.buffering`.
    """
    buffering.flush()


def _terminal_status(status: RunStatus | str) -> RunStatus:
    try:
        parsed = RunStatus.parse(status)
    except ValueError as exc:
        raise InvalidParameterError(str(exc)) from None
    if not parsed.is_terminated:
        raise InvalidParameterError(f"a run ends FINISHED, FAILED or KILLED, not {parsed.value}")
    return parsed


def _finish(run: ActiveRun, status: RunStatus, propagating: BaseException | None = None) -> None:
    """End ``run``, and before it the runs nested in it still active in this context.

    Failures of buffered records are raised after every run is ended, unless
    an exception is already ``propagating``: it then carries them as notes.
    """
    failures: list[TrackingError] = []
    for child in reversed(_pop_through(run)):
        if isinstance(child, ActiveRun):  # a pending one is an orchestrator's
            failures.extend(_terminate(child, status))
    failures.extend(_terminate(run, status))
    _last_run_id.set(run.info.run_id)
    if not failures:
        return
    if propagating is None:
        for other in failures[1:]:
            failures[0].add_note(f"trackflow: {type(other).__name__}: {other}")
        raise failures[0]
    for failure in failures:
        propagating.add_note(
            f"trackflow: buffered records could not be written: {type(failure).__name__}: {failure}"
        )


def _pop_through(run: ActiveRun | PendingRun) -> tuple[ActiveRun | PendingRun, ...]:
    """Take ``run`` and the runs above it off this context's stack; returns those above
    (innermost last). A run not on the stack changes nothing."""
    stack = _stack.get()
    for depth, candidate in enumerate(stack):
        if candidate is run:
            _stack.set(stack[:depth])
            return stack[depth + 1 :]
    return ()


def _terminate(run: ActiveRun, status: RunStatus) -> list[TrackingError]:
    """End one run; returns the failures of its buffered records."""
    if run.attached:
        return []  # the orchestrator ends it (detach_run)
    # Claiming first: a run the SIGTERM handler (or another context) ended
    # already keeps the status it was given.
    if not _run_registry.claim(run._token):
        return []
    failures: list[TrackingError] = []
    lost = False
    if run._buffered:
        try:
            lost = buffering.flush_run(run.client, run.info.run_id, forget=True)
        except TrackingError as exc:
            failures.append(exc)
            lost = True
    try:
        if lost and status is RunStatus.FINISHED:
            # Its data is incomplete: a FINISHED run would claim otherwise.
            status = RunStatus.FAILED
            run.client.set_tag(run.info.run_id, _FAILURE_TAG, _LOST_REASON)
        run.client.set_terminated(run.info.run_id, status)
    except TrackingError as exc:
        if not failures:
            raise
        failures[0].add_note(f"trackflow: ending run {run.info.run_id} failed too: {exc}")
    return failures


def _run_for_logging() -> ActiveRun:
    top = _top()
    return top if top is not None else start_run()


def get_run(run_id: str) -> Run:
    """The run with that id, read from the store now (after any buffered records)."""
    buffering.wait()
    return _client().get_run(run_id)


def search_runs(
    experiment_ids: Sequence[str] | str | None = None,
    filter_string: str = "",
    run_view_type: ViewType | int | str = ViewType.ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: Sequence[str] | None = None,
) -> list[Run]:
    """Runs matching an MLflow filter, in the current experiment unless told otherwise.

    MLflow returns a pandas DataFrame; trackflow does not depend on pandas and
    returns a list of :class:`~tracking.Run` (build a frame with
    ``pandas.json_normalize`` if you want one). Pages are fetched until
    ``max_results`` runs are in hand.
    """
    client = _client()
    if experiment_ids is None:
        experiment_ids = [_current_experiment_id(client)]
    buffering.wait()
    runs: list[Run] = []
    token: str | None = None
    while len(runs) < max_results:
        page = client.search_runs(
            experiment_ids,
            filter_string,
            run_view_type,
            min(max_results - len(runs), MAX_SEARCH_RESULTS),
            order_by,
            token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


# -- logging to the active run ----------------------------------------------------


def log_param(key: str, value: Any) -> Any:
    """Log a param of the active run (starting one if none is); returns ``value``."""
    run = _run_for_logging()
    if run._buffered:
        buffering.add(
            run.client, run.info.run_id, params=(validation.validate_param(Param(key, value)),)
        )
        return value
    return run.client.log_param(run.info.run_id, key, value)


def log_input(
    dataset: Dataset, context: str | None = None, tags: Mapping[str, Any] | None = None
) -> None:
    """Record that the active run used ``dataset`` (MLflow's ``mlflow.log_input``).

    ``context`` (``"training"``, ``"evaluation"`` ...) is stored as the input tag
    ``mlflow.data.context``, beside any other ``tags`` of this use::

        tracking.log_input(tracking.Dataset("churn", digest, "local", path), context="training")
    """
    pairs = {str(k): str(v) for k, v in (tags or {}).items()}
    if context is not None:
        pairs["mlflow.data.context"] = context
    use = DatasetInput(dataset, tuple(InputTag(k, v) for k, v in pairs.items()))
    run = _run_for_logging()
    if run._buffered:
        buffering.wait(run.client, run.info.run_id)
    run.client.log_inputs(run.info.run_id, [use])


def log_params(params: Mapping[str, Any]) -> None:
    """Log several params of the active run in one batch."""
    _log_batch(params=[Param(k, v) for k, v in params.items()])


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Append a point to a metric of the active run (``timestamp`` in ms, default now)."""
    run = _run_for_logging()
    if run._buffered:
        now = time.time_ns() // 1_000_000 if timestamp is None else timestamp
        metric = validation.validate_metric(Metric(key, value, now, step or 0))
        buffering.add(run.client, run.info.run_id, metrics=(metric,))
        return
    run.client.log_metric(run.info.run_id, key, value, timestamp=timestamp, step=step)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Append one point to each of several metrics of the active run, in one batch."""
    now = time.time_ns() // 1_000_000
    _log_batch(metrics=[Metric(k, v, now, step or 0) for k, v in metrics.items()])


def set_tag(key: str, value: Any) -> None:
    """Set a tag of the active run."""
    run = _run_for_logging()
    if run._buffered:
        buffering.add(
            run.client, run.info.run_id, tags=(validation.validate_tag(RunTag(key, value)),)
        )
        return
    run.client.set_tag(run.info.run_id, key, value)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set several tags of the active run in one batch."""
    _log_batch(tags=[RunTag(k, v) for k, v in tags.items()])


def delete_tag(key: str) -> None:
    """Remove a tag of the active run (after its buffered records, if any)."""
    run = _run_for_logging()
    if run._buffered:
        buffering.wait(run.client, run.info.run_id)
    run.client.delete_tag(run.info.run_id, key)


def _log_batch(
    metrics: Sequence[Metric] = (), params: Sequence[Param] = (), tags: Sequence[RunTag] = ()
) -> None:
    """One ``log_batch``; larger inputs go in several batches, each all or nothing."""
    run = _run_for_logging()
    run_id = run.info.run_id
    if run._buffered:
        # Checked here, whatever the size: the buffer cuts the batches itself.
        checked_metrics, checked_params, checked_tags = validation.validate_records(
            metrics, params, tags
        )
        buffering.add(
            run.client, run_id, metrics=checked_metrics, params=checked_params, tags=checked_tags
        )
        return
    if (
        len(metrics) <= MAX_BATCH_METRICS
        and len(params) <= MAX_BATCH_PARAMS
        and len(tags) <= MAX_BATCH_TAGS
    ):
        run.client.log_batch(run_id, metrics, params, tags)
        return
    for i in range(0, len(params), MAX_BATCH_PARAMS):
        run.client.log_batch(run_id, params=params[i : i + MAX_BATCH_PARAMS])
    for i in range(0, len(tags), MAX_BATCH_TAGS):
        run.client.log_batch(run_id, tags=tags[i : i + MAX_BATCH_TAGS])
    for i in range(0, len(metrics), MAX_BATCH_METRICS):
        run.client.log_batch(run_id, metrics=metrics[i : i + MAX_BATCH_METRICS])


# -- artifacts ------------------------------------------------------------------


def log_artifact(
    local_path: str | os.PathLike[str], artifact_path: str | None = None
) -> ArtifactRef:
    """Copy a local file into the active run's artifacts (under ``artifact_path``)."""
    run = _run_for_logging()
    return run.client.log_artifact(run.info.run_id, local_path, artifact_path)


def log_artifacts(
    local_dir: str | os.PathLike[str], artifact_path: str | None = None
) -> list[ArtifactRef]:
    """Copy a local directory tree into the active run's artifacts."""
    run = _run_for_logging()
    return run.client.log_artifacts(run.info.run_id, local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> ArtifactRef:
    """Save ``text`` (UTF-8) as the artifact ``artifact_file`` of the active run."""
    run = _run_for_logging()
    return run.client.log_text(run.info.run_id, text, artifact_file)


def log_dict(dictionary: Mapping[str, Any], artifact_file: str) -> ArtifactRef:
    """Save a dict as JSON (YAML for ``.yaml``/``.yml``) at ``artifact_file`` of the active run."""
    run = _run_for_logging()
    return run.client.log_dict(run.info.run_id, dictionary, artifact_file)


def use_artifact(ref: ArtifactRef, dst_path: str | os.PathLike[str] | None = None) -> str:
    """Download an artifact another run produced, check it, and record the lineage edge.

    ``ref`` is what ``log_artifact`` returned (any run, any process: it travels
    between pipeline steps as a small record). The file is downloaded into
    ``dst_path`` (default: a new temporary directory) and its sha256 compared
    with ``ref.sha256``; on a mismatch the download is removed and
    :class:`~tracking.errors.ArtifactIntegrityError` raised, and nothing is
    recorded. Otherwise the active run (started if none is) gets the edge
    "consumed ``ref.path`` of ``ref.run_id``" and the local path is returned::

        model = tracking.use_artifact(train_ref)   # in the evaluate step
    """
    import hashlib
    import shutil
    import tempfile

    if not isinstance(ref, ArtifactRef):
        raise InvalidParameterError(
            f"use_artifact takes the ArtifactRef that log_artifact returned, got "
            f"{type(ref).__name__}"
        )
    if not ref.sha256:
        raise InvalidParameterError(
            f"artifact {ref.path!r} of run {ref.run_id} has no sha256 (a directory?): "
            "use one file's ArtifactRef"
        )
    run = _run_for_logging()
    target = os.fspath(dst_path) if dst_path is not None else tempfile.mkdtemp(prefix="trackflow-")
    local = run.client.download_artifacts(ref.run_id, ref.path, target)
    digest = hashlib.sha256()
    with open(local, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != ref.sha256:
        if dst_path is None:
            shutil.rmtree(target, ignore_errors=True)
        else:
            os.remove(local)
        raise ArtifactIntegrityError(
            f"artifact {ref.path!r} of run {ref.run_id} changed since it was logged: sha256 "
            f"{digest.hexdigest()}, expected {ref.sha256}; it was not used"
        )
    run.client.record_lineage(run.info.run_id, ref.run_id, ref.path, ref.sha256)
    return local


def get_artifact_uri(artifact_path: str | None = None) -> str:
    """The URI of the active run's artifact root, or of ``artifact_path`` under it.

    Like MLflow, this starts a run if none is active.
    """
    from tracking.artifacts.paths import join_uri, normalize_artifact_path

    root = _run_for_logging().info.artifact_uri
    path = normalize_artifact_path(artifact_path, field="artifact_path")
    return join_uri(root, path) if path else root


# -- tests ------------------------------------------------------------------------


def _reset_for_tests() -> None:
    """Forget all fluent state of this process without ending any run (tests only)."""
    global _experiment
    _heartbeat.stop()
    buffering._reset_for_tests()
    _run_registry.clear()
    _stack.set(())
    _last_run_id.set(None)
    settings.set_tracking_uri(None)
    with _lock:
        _experiment = None
        _clients.clear()
        _experiment_ids.clear()


# -- logged models and the registry ---------------------------------------------------


def log_model(
    local_dir: str | os.PathLike[str],
    name: str = "model",
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    model_type: str | None = None,
    step: int = 0,
) -> LoggedModel:
    """Log the files of a model (a saved model directory) as a logged model of the
    active run: created in the run's experiment with the run as its source, the files
    uploaded under the model's own artifact location, then marked READY (FAILED, and
    the error raised, if the upload fails). The run records it as an output.

    Its id is the reference to hand on: ``tracking.use_model(model.model_uri)`` in
    another step, or ``mlflow.pyfunc.load_model(model.model_uri)`` where the files
    are an MLflow model::

        with tracking.start_run():
            model = tracking.log_model("out/model", "churn-model", params={"depth": 4})
    """
    run = _run_for_logging()
    buffering.wait()
    client = run.client
    model = client.create_logged_model(
        run.info.experiment_id,
        name,
        source_run_id=run.info.run_id,
        tags=tags,
        params=params,
        model_type=model_type,
    )
    try:
        client.log_model_artifacts(model.model_id, local_dir)
    except BaseException:
        client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    ready = client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_run_models(run.info.run_id, outputs=[(model.model_id, step)])
    return ready


def use_model(
    model: str | LoggedModel | ModelRef, dst_path: str | os.PathLike[str] | None = None
) -> str:
    """Download the files of a logged model and return the local directory. ``model`` is
    a ``models:/`` URI (``models:/<model_id>``, ``models:/<name>/<version>``,
    ``models:/<name>@<alias>``), or the :class:`LoggedModel` or :class:`ModelRef` an
    earlier pipeline step handed on.

    With an active run, the run records the model as an input, and a lineage edge
    from the model's source run to this run naming ``models:/<model_id>`` (with the
    sha256 of its files as downloaded)::

        local_dir = tracking.use_model(model_ref)   # in the consuming step
    """
    consumer = _top()
    # The active run's store (an Airflow connection's, say), else the default one.
    client = consumer.client if consumer is not None else _client()
    if isinstance(model, LoggedModel | ModelRef):
        found = client.get_logged_model(model.model_id)
    elif isinstance(model, str):
        found = client.resolve_model_uri(model)
    else:
        raise InvalidParameterError(
            f"use_model takes a models:/ URI, a LoggedModel or a ModelRef, got "
            f"{type(model).__name__}"
        )
    local = client.download_model_artifacts(
        found.model_id, "", os.fspath(dst_path) if dst_path is not None else None
    )
    if consumer is not None:
        consumer.client.log_run_models(consumer.info.run_id, inputs=[found.model_id])
        producer = found.source_run_id
        if producer and producer != consumer.info.run_id:
            consumer.client.record_lineage(
                consumer.info.run_id, producer, found.model_uri, _tree_sha256(local)
            )
    return local


def _tree_sha256(root: str) -> str:
    """The sha256 of a directory's files: each relative path and its content's digest,
    in path order (a single file: its content's digest)."""
    import hashlib

    if os.path.isfile(root):
        return _file_sha256(root)
    digest = hashlib.sha256()
    entries = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            entries.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    for relative, path in sorted(entries):
        digest.update(f"{relative}\0{_file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _file_sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def register_model(
    model_uri: str, name: str, tags: Mapping[str, Any] | None = None
) -> ModelVersion:
    """Register a model as the next version of ``name`` (created if missing), as
    ``mlflow.register_model`` does: ``model_uri`` is ``models:/<model_id>`` or
    ``runs:/<run_id>/<path>``."""
    client = _client()
    if client.search_registered_models("name = '" + name.replace("'", "\\'") + "'") == []:
        # Created by another process meanwhile: fine.
        with contextlib.suppress(AlreadyExistsError):
            client.create_registered_model(name)
    model_id = None
    if model_uri.startswith("models:/"):
        model_id = client.resolve_model_uri(model_uri).model_id
    return client.create_model_version(name, model_uri, tags=tags, model_id=model_id)
