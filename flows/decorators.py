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

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, overload

from prefect import Flow, Task
from prefect.context import FlowRunContext, TaskRunContext

from flows import _tracking
from flows.blocks import TrackflowConfig, load_block, resolve_config
from tracking import fluent
from tracking.entities import RunStatus
from tracking.links import run_url

__all__ = ["TrackedTask", "tracked_flow", "tracked_task"]


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

    def tracking(self) -> _tracking.PrefectTracking:
        if isinstance(self.config, str):
            # A block is loaded from the Prefect API once per process, not per task run.
            self.config = load_block(self.config)
        return _tracking.tracking_for(resolve_config(self.config, self.tracking_uri))


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
    exc: BaseException | None, run_count: int, retries: int, killed: bool
) -> tuple[RunStatus, str | None, bool]:
    """(status, reason, retrying) of an attempt that raised ``exc`` (None: success)."""
    if exc is None:
        return RunStatus.FINISHED, None, False
    reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
    name = type(exc).__name__
    if (
        killed
        or name in ("CancelledRun", "TerminationSignal")
        or isinstance(exc, KeyboardInterrupt)
    ):
        return RunStatus.KILLED, reason, False
    if not isinstance(exc, Exception):
        return RunStatus.FAILED, f"crashed: {reason}", False
    if run_count <= retries:
        return RunStatus.FAILED, reason, True
    return RunStatus.FAILED, reason, False


# -- flows --------------------------------------------------------------------------------


class _FlowCall:
    """One attempt of a tracked flow run, around the user's function."""

    def __init__(self, options: _Options, fn: Callable[..., Any], args: Any, kwargs: Any):
        ctx = FlowRunContext.get()
        assert ctx is not None and ctx.flow_run is not None, "not inside a flow run"
        assert ctx.flow is not None
        self.flow_run = ctx.flow_run
        self.flow: Flow[Any, Any] = ctx.flow
        self.tracking = options.tracking()
        config = self.tracking.config
        self.flow_run_id = str(self.flow_run.id)
        self.experiment = options.experiment or config.experiment or self.flow.name
        parent = _parent_flow_run_id(self.flow_run)
        parent_run_id = None
        if parent is not None:
            candidate = _tracking.flow_pipeline(parent).run_id
            if _in_stack(candidate):
                parent_run_id = candidate
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
        params = _call_parameters(fn, args, kwargs) if options.log_params else None
        self.opened = self.tracking.open_flow(
            flow_run_id=self.flow_run_id,
            parent_run_id=parent_run_id,
            experiment=self.experiment,
            run_name=options.run_name or str(self.flow_run.name),
            attempt=int(self.flow_run.run_count or 1),
            tags=tags,
            params=params,
            label=f"flow {self.flow.name}/{self.flow_run.name}",
        )
        self._link()

    def _link(self) -> None:
        ui_base = self.tracking.config.ui_base
        run = self.opened.run
        if not ui_base or run is None:
            return
        from prefect.artifacts import create_link_artifact

        url = run_url(ui_base, run.info.experiment_id, run.info.run_id)
        self.tracking.guard.call(
            self.opened.label,
            lambda: create_link_artifact(
                link=url,
                link_text=f"trackflow run {run.info.run_id}",
                key="trackflow-run",
                description=f"This flow run's run in trackflow (experiment {self.experiment}).",
                _sync=True,  # type: ignore[call-arg]  # this code is synchronous, also in an async flow
            ),
        )

    def end(self, exc: BaseException | None) -> None:
        killed = not self.tracking.close(self.opened)
        status, reason, retrying = _outcome(
            exc, int(self.flow_run.run_count or 1), int(self.flow.retries or 0), killed
        )
        self.tracking.flow_ended(self.opened, self.flow_run_id, status, reason, retrying)
        if not retrying:
            self._metrics_table()
            forget_flow_run(self.flow_run_id)

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


def _ui_url(url: Any) -> str | None:
    """A page in the Prefect UI, or None: without a known UI (an ephemeral server)
    ``prefect.runtime`` gives ``"None/flow-runs/..."``."""
    text = str(url) if url else ""
    return text if text.startswith(("http://", "https://")) else None


def _parent_flow_run_id(flow_run: Any) -> str | None:
    from prefect.runtime import flow_run as runtime

    parent = runtime.parent_flow_run_id
    return str(parent) if parent else None


def _in_stack(run_id: str) -> bool:
    return any(r.info.run_id == run_id for r in fluent._stack.get())


def _state_hook(status: RunStatus) -> Callable[[Any, Any, Any], None]:
    """A flow hook for a state set from outside the flow's process."""

    def hook(flow: Any, flow_run: Any, state: Any) -> None:
        options: _Options | None = getattr(flow.fn, "__trackflow_options__", None)
        if options is None:
            return
        tracking = options.tracking()
        message = getattr(state, "message", None) or getattr(state, "name", "")
        reason = f"{state.name}: {message}" if message else str(state.name)
        tracking.ended_from_outside(str(flow_run.id), status, reason, f"flow {flow.name}")

    hook.__name__ = f"trackflow_on_{status.value.lower()}"
    return hook


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


class _Mapped:
    """The task runs one ``.map`` call made, by task run id -> index."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.index: dict[str, int] = {}


#: The ``.map`` calls of each (flow run, task key) in this process.
_maps: dict[tuple[str, str], list[_Mapped]] = {}
_maps_lock = threading.Lock()
#: How long a mapped run waits for its ``.map`` call to hand out the indexes.
_MAP_WAIT_S = 5.0


def _map_index(flow_run_id: str, task_key: str, task_run_id: str) -> int | None:
    with _maps_lock:
        calls = list(_maps.get((flow_run_id, task_key), ()))
    for call in calls:
        # A mapped run may start before .map returned (a thread pool): wait for it.
        call.done.wait(_MAP_WAIT_S)
        if task_run_id in call.index:
            return call.index[task_run_id]
    return None


def forget_flow_run(flow_run_id: str) -> None:
    """Drop what the ``.map`` calls of a finished flow run left."""
    with _maps_lock:
        for key in [k for k in _maps if k[0] == flow_run_id]:
            del _maps[key]


class TrackedTask(Task[Any, Any]):
    """A Prefect ``Task`` whose ``.map`` remembers which runs it made, so each mapped
    run is named ``task[i]``."""

    def map(self, *args: Any, **kwargs: Any) -> Any:
        """``Task.map``; the runs it makes are numbered from 0."""
        ctx = FlowRunContext.get()
        call: _Mapped | None = None
        if ctx is not None and ctx.flow_run is not None:
            call = _Mapped()
            with _maps_lock:
                _maps.setdefault((str(ctx.flow_run.id), self.task_key), []).append(call)
        try:
            futures = super().map(*args, **kwargs)
            if call is not None:
                for i, future in enumerate(futures):
                    call.index[str(future.task_run_id)] = i
        finally:
            if call is not None:
                call.done.set()
        return futures


class _TaskCall:
    """One attempt of a tracked task run, around the user's function."""

    def __init__(self, options: _Options, fn: Callable[..., Any], args: Any, kwargs: Any):
        ctx = TaskRunContext.get()
        assert ctx is not None, "not inside a task run"
        task_run, task = ctx.task_run, ctx.task
        self.tracking = options.tracking()
        self.retries = int(task.retries or 0)
        self.run_count = int(task_run.run_count or 1)
        flow_ctx = FlowRunContext.get()
        flow_run_id = str(task_run.flow_run_id or task_run.id)
        flow_name = flow_ctx.flow.name if flow_ctx is not None and flow_ctx.flow else task.name
        flow_options: _Options | None = None
        if flow_ctx is not None and flow_ctx.flow is not None:
            flow_options = getattr(flow_ctx.flow.fn, "__trackflow_options__", None)
        experiment = (
            options.experiment
            or (flow_options.experiment if flow_options else None)
            or self.tracking.config.experiment
            or flow_name
        )
        index = _map_index(flow_run_id, task.task_key, str(task_run.id))
        name = options.run_name or (f"{task.name}[{index}]" if index is not None else task.name)
        self.step = _tracking.task_step(flow_run_id, str(task_run.id), self.run_count, name)
        parent = _tracking.flow_pipeline(flow_run_id).run_id
        from prefect.runtime import task_run as runtime

        tags = {
            "prefect.flow_name": flow_name,
            "prefect.flow_run_id": flow_run_id,
            "prefect.task_run_id": str(task_run.id),
            "prefect.task_run_name": str(task_run.name),
            "prefect.map_index": str(index if index is not None else -1),
            "prefect.run_count": str(self.run_count),
        }
        if url := _ui_url(runtime.ui_url):
            tags["prefect.url"] = url
        values = _call_parameters(fn, args, kwargs)
        self.opened = self.tracking.open_task(
            step=self.step,
            # An untracked flow (or one running elsewhere) gets its run on the way.
            parent_run_id=parent if _in_stack(parent) else None,
            experiment=experiment,
            tags=tags,
            params=values if options.log_params else None,
            inputs=values,
            label=f"task {task_run.name}",
        )

    def end(self, exc: BaseException | None) -> None:
        killed = not self.tracking.close(self.opened)
        status, reason, retrying = _outcome(exc, self.run_count, self.retries, killed)
        self.tracking.task_ended(self.opened, self.step, status, reason, retrying)


def _cache_key(state: Any) -> str | None:
    """Where Prefect keeps a cacheable result (its cache key), if the state has one."""
    key = getattr(getattr(state, "state_details", None), "cache_key", None)
    if not key:
        # Prefect 3 keeps it on the result record.
        record = getattr(state, "data", None)
        key = getattr(getattr(record, "metadata", None), "storage_key", None)
    return str(key) if key else None


def _cached_hook(task: Any, task_run: Any, state: Any) -> None:
    """A task run answered from Prefect's cache never calls the function: its run is
    recorded here, FINISHED, tagged as cached, with the run that computed the result."""
    options: _Options | None = getattr(task.fn, "__trackflow_options__", None)
    key = _cache_key(state)
    if options is None or getattr(state, "name", None) not in ("Cached", "Completed"):
        return
    tracking = options.tracking()
    flow_run_id = str(task_run.flow_run_id or task_run.id)
    step = _tracking.task_step(flow_run_id, str(task_run.id), 1, options.run_name or task.name)
    if state.name == "Completed":
        if key:  # the run that computed a cacheable result: later hits point to it
            tracking.guard.call(
                f"task {task_run.name}",
                lambda: tracking.client().set_tag(step.run_id, "prefect.cache_key", key[:5000]),
            )
        return

    def record() -> None:
        client = tracking.client()
        parent = _tracking.flow_pipeline(flow_run_id).run_id
        experiment = client.get_run(parent).info.experiment_id
        tags = {
            "prefect.flow_run_id": flow_run_id,
            "prefect.task_run_id": str(task_run.id),
            "prefect.task_run_name": str(task_run.name),
            _tracking.CACHED_TAG: "true",
        }
        if key:
            tags["prefect.cache_key"] = key[:5000]
            computed = client.search_runs(
                [experiment],
                filter_string=f"tags.`prefect.cache_key` = '{key}' and "
                f"attributes.status = 'FINISHED'",
                max_results=10,
                order_by=["attributes.start_time ASC"],
            )
            origin = [r for r in computed if _tracking.CACHED_TAG not in r.data.tags]
            if origin:
                tags["trackflow.cachedFrom"] = origin[0].info.run_id
        tracker = tracking.tracker(client.get_experiment(experiment).name)
        tracker.step_running(step, tags=tags, parent_run_id=parent)
        tracker.step_ended(step, RunStatus.FINISHED)

    tracking.guard.call(f"task {task_run.name}", record)


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
        task_kwargs["on_completion"] = [_cached_hook, *(task_kwargs.get("on_completion") or [])]
        return TrackedTask(fn=wrapper, **task_kwargs)

    return decorate(__fn) if __fn is not None else decorate
