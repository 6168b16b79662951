"""``tracked_flow`` and ``tracked_task``: Prefect flows and tasks whose runs are tracked.

They return real Prefect ``Flow`` and ``Task`` objects (``.with_options``,
``.map``, ``.submit``, deployments and ``serve`` keep working) and take
everything ``@flow`` / ``@task`` take, plus ``experiment``, ``run_name``,
``log_params`` and ``config`` (a :class:`~flows.TrackflowConfig` block or its
name; ``tracking_uri`` for a plain URI)::

    @tracked_task(retries=2, log_params=True)
    def train(lr: float, data: ArtifactRef) -> float:
        rows = load(tracking.use_artifact(data))   # lineage recorded
        tracking.log_metric("loss", ...)            # into this task run's run
        return score

    @tracked_flow(experiment="churn")
    def sweep(grid: list[float]) -> None:
        train.map(grid, data=unmapped(extract()))

A flow run is a run; a subflow run a child of its parent flow's run; a task run
a child of its flow run's (a mapped one named ``task[i]``). A retry is the same
run (SCHEDULED, then RUNNING again). Inside, the run is the active run.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, overload
from uuid import UUID

from prefect import Flow, Task
from prefect.context import FlowRunContext, TaskRunContext

from flows import _tracking
from flows.blocks import ResolvedConfig, TrackflowConfig, load_block, resolve_config
from tracking.entities import RunStatus
from tracking.errors import TrackingError
from tracking.links import run_url
from tracking.pipelines import owner_tags

__all__ = ["MAP_INDEX_PARAM", "TrackedTask", "tracked_flow", "tracked_task"]

_log = logging.getLogger("flows")

#: Why a flow run ended, when Prefect cancelled it.
CANCELLED_THROUGH_PREFECT = "the flow run was cancelled through Prefect"


class _Options:
    def __init__(
        self,
        experiment: str | None,
        run_name: str | None,
        log_params: bool,
        config: TrackflowConfig | str | None,
        tracking_uri: str | None,
    ) -> None:
        _tracking.check_experiment(experiment)
        self.experiment = experiment
        self.run_name = run_name
        self.log_params = log_params
        self.config = config
        self.tracking_uri = tracking_uri

    @property
    def explicit(self) -> bool:
        """Whether the decorator names a store of its own (else it inherits one)."""
        return self.config is not None or self.tracking_uri is not None

    def resolved(self, what: str) -> ResolvedConfig:
        """The decorator's own configuration, else the ``TRACKFLOW_*`` settings (an
        error naming ``what`` when they name no store)."""
        if isinstance(self.config, str):
            # A block is loaded from the Prefect API once per process, not per task run.
            self.config = load_block(self.config)
        return resolve_config(self.config, self.tracking_uri, what=what)

    def tracking(self, what: str = "this flow") -> _tracking.PrefectTracking:
        return _tracking.tracking_for(self.resolved(what))


def _options_of(fn: Any) -> _Options | None:
    options: _Options | None = getattr(fn, "__trackflow_options__", None)
    return options


def _flow_config(
    options: _Options, parent: _tracking.FlowScope | None, what: str
) -> ResolvedConfig:
    """The one resolver of a flow run's configuration: the flow's own, else its parent
    flow run's, else the process's ``TRACKFLOW_*`` settings."""
    if options.explicit or parent is None:
        return options.resolved(what)
    return parent.config


def _task_config(
    options: _Options, flow_run_id: str, flow_ctx: FlowRunContext | None, what: str
) -> tuple[ResolvedConfig, _tracking.FlowScope | None]:
    """A task run's configuration: the task's own, else its flow run's (in this process
    by id; in a process of the task runner, the flow's decorator, else the environment
    the flow's process handed down), else the process's settings."""
    scope = _tracking.scope_of(flow_run_id)
    if options.explicit:
        return options.resolved(what), scope
    if scope is not None:
        return scope.config, scope
    flow_options = _options_of(flow_ctx.flow.fn) if flow_ctx and flow_ctx.flow else None
    if flow_options is not None and flow_options.explicit:
        return flow_options.resolved(what), None
    return options.resolved(what), None


def _resolved_signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with its annotations evaluated in its own module: Prefect
    builds its parameter model from the wrapper's, which lives in another module."""
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:  # a name only imported for type checking: leave them as strings
        return inspect.signature(fn)


def _wrapped(fn: Callable[..., Any], begin: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    """``fn`` (sync or async) inside one tracked attempt: ``begin(args, kwargs)`` makes
    the attempt, whose ``end(exc)`` is called with what the call raised (or None)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = begin(args, kwargs)
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            call.end(None)
            return result

    else:

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = begin(args, kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                call.end(exc)
                raise
            call.end(None)
            return result

    wrapper.__signature__ = _resolved_signature(fn)  # type: ignore[attr-defined]
    return wrapper


def _call_parameters(fn: Callable[..., Any], args: Any, kwargs: Any) -> dict[str, Any]:
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {f"arg{i}": v for i, v in enumerate(args)} | dict(kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            out.update({f"{name}{i}": v for i, v in enumerate(value)})
        else:
            out[name] = value
    return out


def _outcome(
    exc: BaseException | None, run_count: int, retries: int, killed: bool, *, flow: bool = False
) -> tuple[RunStatus, str | None, bool]:
    """(status, reason, retrying) of an attempt that raised ``exc`` (None: success);
    ``flow``: a flow run's attempt (a cancellation is its reason, not the signal)."""
    if exc is None:
        return RunStatus.FINISHED, None, False
    name = type(exc).__name__
    reason = f"{name}: {exc}".rstrip(": ")
    if name == "TerminationSignal":
        number = getattr(exc, "signal", None)
        try:
            signame = signal.Signals(int(number)).name if number is not None else "a signal"
        except ValueError:
            signame = f"signal {number}"
        if _runner_cancels():
            if flow:
                return RunStatus.KILLED, f"cancelled: {CANCELLED_THROUGH_PREFECT}", False
            why = CANCELLED_THROUGH_PREFECT
        else:
            why = "the flow run was cancelled, or its process was stopped"
        return RunStatus.KILLED, f"killed: {signame} ({why})", False
    if name == "CancelledRun":
        return RunStatus.KILLED, f"cancelled: {exc}".rstrip(": "), False
    if isinstance(exc, KeyboardInterrupt):
        return RunStatus.KILLED, "killed: interrupted (KeyboardInterrupt)", False
    if killed:
        return RunStatus.KILLED, f"killed: SIGTERM while running ({reason})", False
    if not isinstance(exc, Exception):
        return RunStatus.FAILED, f"crashed: {reason}", False
    if run_count <= retries:
        return RunStatus.FAILED, reason, True
    return RunStatus.FAILED, reason, False


# -- flows --------------------------------------------------------------------------------

#: Flow runs that have their link artifact (a retry in this process makes no other).
_linked: set[str] = set()
_linked_lock = threading.Lock()


class _FlowCall:
    """One attempt of a tracked flow run, around the user's function."""

    def __init__(self, options: _Options, fn: Callable[..., Any], args: Any, kwargs: Any):
        ctx = FlowRunContext.get()
        assert ctx is not None and ctx.flow_run is not None, "not inside a flow run"
        assert ctx.flow is not None
        self.flow_run = ctx.flow_run
        self.flow: Flow[Any, Any] = ctx.flow
        self.flow_run_id = str(self.flow_run.id)
        parent = _parent_flow_run_id(self.flow_run)
        self.parent_scope = _tracking.scope_of(parent)
        what = f"flow {self.flow.name!r}"
        config = _flow_config(options, self.parent_scope, what)
        self.tracking = _tracking.tracking_for(config)
        parent_run_id = None
        experiment_id = None
        if self.parent_scope is not None and self.parent_scope.run is not None:
            parent_run_id = self.parent_scope.run.info.run_id
        # A subflow's runs go where its parent flow run's go, unless it says otherwise.
        own = options.experiment or (config.experiment if options.explicit else None)
        if own:
            self.experiment = own
        elif self.parent_scope is not None:
            self.experiment = self.parent_scope.experiment
            if self.parent_scope.run is not None:
                experiment_id = self.parent_scope.run.info.experiment_id
        else:
            self.experiment = config.experiment or self.flow.name
        from prefect.runtime import deployment, flow_run

        tags = {
            "prefect.flow_name": self.flow.name,
            "prefect.flow_run_id": self.flow_run_id,
            "prefect.flow_run_name": str(self.flow_run.name),
            "prefect.run_count": str(self.flow_run.run_count),
        }
        if url := _ui_url(flow_run.ui_url):
            tags["prefect.url"] = url
        if deployment.id:
            tags["prefect.deployment_id"] = str(deployment.id)
        if parent is not None:
            tags["prefect.parent_flow_run_id"] = parent
        tags.update(owner_tags())  # the first beat: see flows.maintenance
        params = _call_parameters(fn, args, kwargs) if options.log_params else None
        # A subflow run is named after its flow; Prefect's random name is a tag.
        name = options.run_name or (self.flow.name if parent else str(self.flow_run.name))
        self.opened = self.tracking.open_flow(
            flow_run_id=self.flow_run_id,
            parent_run_id=parent_run_id,
            experiment=self.experiment,
            experiment_id=experiment_id,
            own_experiment=bool(own),
            parent_flow_run_id=parent if self.parent_scope is not None else None,
            run_name=name,
            attempt=int(self.flow_run.run_count or 1),
            tags=tags,
            params=params,
            label=f"flow {self.flow.name}/{self.flow_run.name}",
        )
        _tracking.enter_scope(
            _tracking.FlowScope(self.flow_run_id, config, self.experiment, self.opened.run)
        )
        if self.opened.run is not None:
            _tracking.HEARTBEAT.add(self.opened.run.info.run_id, self.opened.tracker.client)
        self._link()

    def _link(self) -> None:
        ui_base = self.tracking.config.ui_base
        run = self.opened.run
        if run is None:
            return
        with _linked_lock:
            if self.flow_run_id in _linked:
                return  # a retry of this flow run
            _linked.add(self.flow_run_id)
        if ui_base:
            where = run_url(ui_base, run.info.experiment_id, run.info.run_id)
        else:
            shown = _without_password(self.tracking.config.tracking_uri)
            where = f"{shown} (trackflow runs tree {run.info.run_id} --tracking-uri '{shown}')"
        # One line per flow run, in the flow run's log (the console and Prefect's UI).
        _run_logger().info("trackflow: run %s at %s", run.info.run_id, where)
        if not ui_base:
            return
        from prefect.artifacts import create_link_artifact

        url = where

        def link() -> None:
            if int(self.flow_run.run_count or 1) > 1 and _has_link(self.flow_run_id):
                return  # an earlier attempt, in another process, made it
            create_link_artifact(
                link=url,
                link_text=f"trackflow run {run.info.run_id}",
                key="trackflow-run",
                description=f"This flow run's run in trackflow (experiment {self.experiment}).",
                _sync=True,  # type: ignore[call-arg]  # this code is synchronous, also in an async flow
            )

        self.tracking.guard.call(self.opened.label, link)

    def end(self, exc: BaseException | None) -> None:
        killed = not self.tracking.close(self.opened)
        status, reason, retrying = _outcome(
            exc, int(self.flow_run.run_count or 1), int(self.flow.retries or 0), killed, flow=True
        )
        self.tracking.flow_ended(self.opened, self.flow_run_id, status, reason, retrying)
        if not retrying:
            self._metrics_table()
            _tracking.leave_scope(self.flow_run_id, self.parent_scope)
            _tracking.HEARTBEAT.discard(_tracking.flow_pipeline(self.flow_run_id).run_id)
            with _linked_lock:
                _linked.discard(self.flow_run_id)

    def _metrics_table(self) -> None:
        if self.opened.run is None:
            return
        from prefect.artifacts import create_table_artifact

        run_id = self.opened.run.info.run_id

        def table() -> None:
            metrics = self.opened.tracker.client.get_run(run_id).data.metrics
            if metrics:
                create_table_artifact(
                    key="trackflow-metrics",
                    table=[{"metric": k, "value": v} for k, v in sorted(metrics.items())],
                    description=f"The final metrics of trackflow run {run_id}.",
                    _sync=True,  # type: ignore[call-arg]
                )

        self.tracking.guard.call(self.opened.label, table)


def _without_password(uri: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except ArgumentError:
        return uri


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger (its lines reach the console and Prefect's UI), else ours."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return _log


def _has_link(flow_run_id: str) -> bool:
    """Whether the flow run has its ``trackflow-run`` artifact already."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)]),
                key=ArtifactFilterKey(any_=["trackflow-run"]),
            ),
            limit=1,
        )
    return bool(found)


def _ui_url(url: Any) -> str | None:
    """A page in the Prefect UI, or None: without a known UI (an ephemeral server)
    ``prefect.runtime`` gives ``"None/flow-runs/..."``."""
    text = str(url) if url else ""
    return text if text.startswith(("http://", "https://")) else None


def _parent_flow_run_id(flow_run: Any) -> str | None:
    from prefect.runtime import flow_run as runtime

    parent = runtime.parent_flow_run_id
    return str(parent) if parent else None


def _state_hook(status: RunStatus) -> Callable[[Any, Any, Any], None]:
    """A flow hook for a state set from outside the flow's process."""

    def hook(flow: Any, flow_run: Any, state: Any) -> None:
        options = _options_of(flow.fn)
        if options is None:
            return
        label = f"flow {flow.name}"
        tracking = _hook_tracking(options, label)
        if tracking is None:
            return
        tracking.ended_from_outside(str(flow_run.id), status, _state_reason(state), label)

    hook.__name__ = f"trackflow_on_{status.value.lower()}"
    return hook


def _hook_tracking(options: _Options, label: str) -> _tracking.PrefectTracking | None:
    """The tracking of a hook Prefect runs outside the flow's process (the runner's):
    the flow's own configuration, else this process's settings; neither is a warning."""
    try:
        return options.tracking(label)
    except TrackingError as exc:
        _log.warning("trackflow: %s is not tracked here: %s", label, exc)
        return None


def _runner_cancels() -> bool:
    """Whether the SIGTERM this process got is a cancellation: Prefect's runner (3.7 and
    later) says so over its control channel just before it sends the signal. Earlier
    Prefects cannot tell; the runner's ``on_cancellation`` hook then gives the reason
    once the process is gone."""
    try:
        from prefect._internal.control_listener import get_intent
    except ImportError:
        return False
    return bool(get_intent() == "cancel")


def _state_reason(state: Any) -> str:
    """Why Prefect ended a flow run from outside, as ``cancelled: ...`` / ``crashed: ...``
    (Prefect's messages repeat the state's name: "Cancelling", "Crashed")."""
    name = str(getattr(state, "name", "") or getattr(state, "type", "")).lower()
    kind = "cancelled" if name.startswith("cancel") else "crashed" if name == "crashed" else name
    message = str(getattr(state, "message", None) or "").strip()
    if message.lower().rstrip(".") in ("", "cancelling", "cancelled", "crashed"):
        message = (
            CANCELLED_THROUGH_PREFECT
            if kind == "cancelled"
            else "the flow run's process ended without reporting a final state"
        )
    return f"{kind}: {message}"


@overload
def tracked_flow(__fn: Callable[..., Any]) -> Flow[Any, Any]: ...


@overload
def tracked_flow(
    __fn: None = None,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    log_params: bool = False,
    config: TrackflowConfig | str | None = None,
    tracking_uri: str | None = None,
    **flow_kwargs: Any,
) -> Callable[[Callable[..., Any]], Flow[Any, Any]]: ...


def tracked_flow(
    __fn: Callable[..., Any] | None = None,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    log_params: bool = False,
    config: TrackflowConfig | str | None = None,
    tracking_uri: str | None = None,
    **flow_kwargs: Any,
) -> Any:
    """``@flow`` whose runs are tracked (see the module docstring)."""
    options = _Options(experiment, run_name, log_params, config, tracking_uri)

    def decorate(fn: Callable[..., Any]) -> Flow[Any, Any]:
        wrapper = _wrapped(fn, lambda args, kwargs: _FlowCall(options, fn, args, kwargs))
        wrapper.__trackflow_options__ = options  # type: ignore[attr-defined]
        hooks = {
            "on_cancellation": [_state_hook(RunStatus.KILLED)],
            "on_crashed": [_state_hook(RunStatus.FAILED)],
        }
        for name, ours in hooks.items():
            flow_kwargs[name] = [*ours, *(flow_kwargs.get(name) or [])]
        return Flow(fn=wrapper, **flow_kwargs)

    return decorate(__fn) if __fn is not None else decorate


# -- tasks --------------------------------------------------------------------------------

#: The keyword ``TrackedTask.map`` gives each mapped run: its index, known when it starts.
MAP_INDEX_PARAM = "trackflow_map_index"


def _with_map_index(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature plus the keyword-only :data:`MAP_INDEX_PARAM` (default None)."""
    signature = _resolved_signature(fn)
    params = list(signature.parameters.values())
    extra = inspect.Parameter(
        MAP_INDEX_PARAM, inspect.Parameter.KEYWORD_ONLY, default=None, annotation="int | None"
    )
    at = len(params)
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        at -= 1
    return signature.replace(parameters=[*params[:at], extra, *params[at:]])


def _without_map_index(policy: Any) -> Any:
    """``policy`` with the map index left out of its inputs: a mapped item's cache key
    does not depend on where in the map it is."""
    from prefect.cache_policies import CompoundCachePolicy, Inputs

    if isinstance(policy, Inputs) and MAP_INDEX_PARAM not in policy.exclude:
        return dataclasses.replace(policy, exclude=[*policy.exclude, MAP_INDEX_PARAM])
    if isinstance(policy, CompoundCachePolicy):
        return dataclasses.replace(
            policy, policies=[_without_map_index(p) for p in policy.policies]
        )
    return policy


def _map_length(task: Task[Any, Any], args: Any, kwargs: Any) -> tuple[Any, Any, int] | None:
    """``(args, kwargs, n)``: the call's arguments with one-shot iterables made lists
    (so Prefect can read them after us) and the number of runs ``.map`` will make;
    None when the call is not one Prefect maps (it raises its own error then)."""
    from prefect.client.schemas.objects import State
    from prefect.futures import PrefectFuture
    from prefect.utilities.annotations import BaseAnnotation, unmapped
    from prefect.utilities.collections import isiterable

    try:
        bound = inspect.signature(task.fn).bind_partial(*args, **kwargs)
    except TypeError:
        return None
    lengths: set[int] = set()
    for name, value in list(bound.arguments.items()):
        kind = bound.signature.parameters[name].kind
        values = value if kind is inspect.Parameter.VAR_KEYWORD else {name: value}
        for key, item in list(values.items()):
            inner = item.unwrap() if isinstance(item, BaseAnnotation) else item
            if isinstance(inner, unmapped) or isinstance(item, unmapped):
                continue
            if isinstance(inner, PrefectFuture | State):
                return None  # resolved by Prefect only: no index for this call
            if not isiterable(inner):
                continue
            if not hasattr(inner, "__len__"):
                inner = list(inner)
                made = item.rewrap(inner) if isinstance(item, BaseAnnotation) else inner
                if kind is inspect.Parameter.VAR_KEYWORD:
                    bound.arguments[name] = {**bound.arguments[name], key: made}
                else:
                    bound.arguments[name] = made
            lengths.add(len(inner))
    if len(lengths) != 1:
        return None
    return bound.args, bound.kwargs, lengths.pop()


class TrackedTask(Task[Any, Any]):
    """A Prefect ``Task`` whose ``.map`` hands each mapped run its index (the keyword
    :data:`MAP_INDEX_PARAM`), so each is named ``task[i]`` from its start."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache_policy = _without_map_index(self.cache_policy)

    def map(self, *args: Any, **kwargs: Any) -> Any:
        """``Task.map``; the runs it makes are numbered from 0."""
        if MAP_INDEX_PARAM not in kwargs and hasattr(self.fn, "__trackflow_options__"):
            known = _map_length(self, args, kwargs)
            if known is not None:
                args, kwargs, n = known
                kwargs = {**kwargs, MAP_INDEX_PARAM: list(range(n))}
        return super().map(*args, **kwargs)

    def with_options(self, *args: Any, **kwargs: Any) -> TrackedTask:
        """``Task.with_options``, still a ``TrackedTask``."""
        task = super().with_options(*args, **kwargs)
        task.__class__ = TrackedTask
        task.cache_policy = _without_map_index(task.cache_policy)
        return task  # type: ignore[return-value]


class _TaskCall:
    """One attempt of a tracked task run, around the user's function."""

    def __init__(self, options: _Options, fn: Callable[..., Any], args: Any, kwargs: Any):
        ctx = TaskRunContext.get()
        assert ctx is not None, "not inside a task run"
        task_run, task = ctx.task_run, ctx.task
        index = kwargs.pop(MAP_INDEX_PARAM, None)
        self.retries = int(task.retries or 0)
        self.run_count = int(task_run.run_count or 1)
        flow_ctx = FlowRunContext.get()
        flow_run_id = str(task_run.flow_run_id or task_run.id)
        config, scope = _task_config(options, flow_run_id, flow_ctx, f"task {task.name!r}")
        self.tracking = _tracking.tracking_for(config)
        name = options.run_name or (f"{task.name}[{index}]" if index is not None else task.name)
        self.step = _tracking.task_step(flow_run_id, str(task_run.id), self.run_count, name)
        tags = _task_tags(task, task_run, flow_ctx, index, self.run_count)
        if key := _caching_key():
            tags[CACHE_KEY_TAG] = key
        values = _call_parameters(fn, args, kwargs)
        parent: str | None = _tracking.flow_pipeline(flow_run_id).run_id
        parent_info = scope.run_info if scope is not None else None
        if parent_info is None and not _flow_is_tracked(flow_ctx):
            parent = None  # an untracked flow: its run is made on the way
        self.opened = self.tracking.open_task(
            step=self.step,
            parent_run_id=parent,
            parent_info=parent_info,
            experiment=options.experiment
            or (scope.experiment if scope else None)
            or config.experiment
            or tags["prefect.flow_name"],
            tags=tags,
            params=values if options.log_params else None,
            inputs=values,
            label=f"task {task_run.name}",
        )

    def end(self, exc: BaseException | None) -> None:
        killed = not self.tracking.close(self.opened)
        status, reason, retrying = _outcome(exc, self.run_count, self.retries, killed)
        self.tracking.task_ended(self.opened, self.step, status, reason, retrying)


def _flow_is_tracked(flow_ctx: FlowRunContext | None) -> bool:
    return bool(flow_ctx and flow_ctx.flow and _options_of(flow_ctx.flow.fn) is not None)


def _task_tags(
    task: Any, task_run: Any, flow_ctx: FlowRunContext | None, index: int | None, run_count: int
) -> dict[str, str]:
    """The tags of a task run's run (a cached one's too)."""
    from prefect.runtime import task_run as runtime

    flow_name = flow_ctx.flow.name if flow_ctx is not None and flow_ctx.flow else task.name
    tags = {
        "prefect.flow_name": flow_name,
        "prefect.flow_run_id": str(task_run.flow_run_id or task_run.id),
        "prefect.task_run_id": str(task_run.id),
        "prefect.task_run_name": str(task_run.name),
        "prefect.map_index": str(index if index is not None else -1),
        "prefect.run_count": str(run_count),
    }
    if url := _ui_url(runtime.ui_url):
        tags["prefect.url"] = url
    return tags


#: The cache key of a task run whose result Prefect caches (never a storage path).
CACHE_KEY_TAG = "prefect.cache_key"


def _caching_key() -> str | None:
    """The key Prefect caches this task run's result under, if it caches it: the
    transaction's key when the result is written (a cache policy and persisted
    results), else None."""
    from prefect.transactions import get_transaction

    txn = get_transaction()
    key = getattr(txn, "key", None) if txn is not None else None
    if not key or not getattr(txn, "write_on_commit", False):
        return None
    return _key_only(str(key))


def _key_only(key: str) -> str:
    """A cache key without the folder a storage may prefix it with."""
    return key.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1][:5000]


def _cached_key(state: Any) -> str | None:
    """The cache key a Cached state's result was read under."""
    key = getattr(getattr(state, "state_details", None), "cache_key", None)
    if not key:
        record = getattr(state, "data", None)
        key = getattr(getattr(record, "metadata", None), "storage_key", None)
    return _key_only(str(key)) if key else None


def _cached_hook(task: Any, task_run: Any, state: Any) -> None:
    """A task run answered from Prefect's cache never calls the function: its run is
    recorded here, FINISHED, tagged as cached (with the tags of any task run), with
    the run that computed the result."""
    options = _options_of(task.fn)
    if options is None or getattr(state, "name", None) != "Cached":
        return
    ctx = TaskRunContext.get()
    flow_ctx = FlowRunContext.get()
    flow_run_id = str(task_run.flow_run_id or task_run.id)
    label = f"task {task_run.name}"
    try:
        config, scope = _task_config(options, flow_run_id, flow_ctx, f"task {task.name!r}")
    except TrackingError as exc:
        _log.warning("trackflow: %s is not tracked: %s", label, exc)
        return
    tracking = _tracking.tracking_for(config)
    parameters = (ctx.parameters if ctx is not None else None) or {}
    index = parameters.get(MAP_INDEX_PARAM)
    run_count = int(task_run.run_count or 1)
    name = options.run_name or (f"{task.name}[{index}]" if index is not None else task.name)
    step = _tracking.task_step(flow_run_id, str(task_run.id), run_count, name)
    key = _cached_key(state)

    def record() -> None:
        client = tracking.client()
        parent = _tracking.flow_pipeline(flow_run_id).run_id
        parent_info = scope.run_info if scope is not None else None
        if parent_info is None:
            caught = _tracking.catch_up(flow_run_id)  # its flow run's start, missed
            parent_info = caught.info if caught is not None else client.get_run(parent).info
        tags = _task_tags(task, task_run, flow_ctx, index, run_count)
        tags[_tracking.CACHED_TAG] = "true"
        if key:
            tags[CACHE_KEY_TAG] = key
            computed = client.search_runs(
                [parent_info.experiment_id],
                filter_string=f"tags.`{CACHE_KEY_TAG}` = '{key}' and "
                f"attributes.status = 'FINISHED'",
                max_results=10,
                order_by=["attributes.start_time ASC"],
            )
            origin = [r for r in computed if _tracking.CACHED_TAG not in r.data.tags]
            if origin:
                tags["trackflow.cachedFrom"] = origin[0].info.run_id
        tracker = tracking.tracker(scope.experiment if scope else tags["prefect.flow_name"])
        tracker.step_running(step, tags=tags, parent_run_id=parent, parent_info=parent_info)
        tracker.step_ended(step, RunStatus.FINISHED)

    tracking.guard.call(label, record)


@overload
def tracked_task(__fn: Callable[..., Any]) -> TrackedTask: ...


@overload
def tracked_task(
    __fn: None = None,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    log_params: bool = False,
    config: TrackflowConfig | str | None = None,
    tracking_uri: str | None = None,
    **task_kwargs: Any,
) -> Callable[[Callable[..., Any]], TrackedTask]: ...


def tracked_task(
    __fn: Callable[..., Any] | None = None,
    *,
    experiment: str | None = None,
    run_name: str | None = None,
    log_params: bool = False,
    config: TrackflowConfig | str | None = None,
    tracking_uri: str | None = None,
    **task_kwargs: Any,
) -> Any:
    """``@task`` whose runs are tracked, each a child of its flow run's run."""
    options = _Options(experiment, run_name, log_params, config, tracking_uri)

    def decorate(fn: Callable[..., Any]) -> TrackedTask:
        wrapper = _wrapped(fn, lambda args, kwargs: _TaskCall(options, fn, args, kwargs))
        wrapper.__trackflow_options__ = options  # type: ignore[attr-defined]
        wrapper.__signature__ = _with_map_index(fn)  # type: ignore[attr-defined]
        task_kwargs["on_completion"] = [_cached_hook, *(task_kwargs.get("on_completion") or [])]
        return TrackedTask(fn=wrapper, **task_kwargs)

    return decorate(__fn) if __fn is not None else decorate
