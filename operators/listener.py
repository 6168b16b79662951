"""The listener that tracks DAG runs and task instances with no code in the tasks.

Registered by :class:`operators.plugin.TrackflowPlugin`. It never fails a task:
when the store is down a task runs untracked with one warning, and the DAG
run's end brings the runs up to date (see :mod:`operators._tracking`).

Where each hook fires: the task hooks in the process that runs the task (the
worker, or the ``dag.test()`` process), where they also make the task's run
the active fluent run; the DAG-run hooks in the scheduler (``running`` only
there), in ``dag.test()`` and, for runs marked from the UI, in the API server,
which also sends task hooks (``previous_state=None``) for task instances marked
failed or success there.

The DAG-run hooks and the "marked from outside" task hooks run in someone
else's process (the scheduler's loop, an API server's request): they read the
object they are handed, queue one plain value and return in microseconds;
:class:`~tracking.dispatch.Dispatcher`'s thread does the rest (see
:mod:`operators._tracking`). The task hooks of a worker run the task's own
tracking in its own process.

A scheduler also starts the reaper of :mod:`operators.maintenance`, which ends
the runs of DAG runs whose end never reached the store.

``TRACKFLOW_AIRFLOW_HOOK_TIMINGS=/path/file`` makes every hook append
``<hook> <pid> <seconds>`` to that file: what the benchmark reads to measure
the time spent inside the hooks on a real scheduler.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.listeners import hookimpl

from operators._tracking import airflow_tracking
from tracking.entities import RunStatus

__all__ = [
    "before_stopping",
    "on_dag_run_failed",
    "on_dag_run_running",
    "on_dag_run_success",
    "on_starting",
    "on_task_instance_failed",
    "on_task_instance_running",
    "on_task_instance_skipped",
    "on_task_instance_success",
]


def _preload() -> None:
    """Import the client and the stores now, where Airflow loads its plugins (the
    scheduler, a Celery worker, the supervisor), so that the task processes they fork
    find them imported: otherwise the first hook of every task process imports them
    (the SQL store's ORM models alone take ~0.3 s)."""
    import tracking.client
    import tracking.store.rest
    import tracking.store.sql.store  # noqa: F401


_preload()

_F = TypeVar("_F", bound=Callable[..., None])
TIMINGS_ENV = "TRACKFLOW_AIRFLOW_HOOK_TIMINGS"


def _timed(hook: _F) -> _F:
    name = hook.__name__

    @functools.wraps(hook)
    def timed(*args: Any, **kwargs: Any) -> None:
        path = os.environ.get(TIMINGS_ENV)
        if not path:
            hook(*args, **kwargs)
            return
        started = time.perf_counter()
        try:
            hook(*args, **kwargs)
        finally:
            took = time.perf_counter() - started
            with open(path, "a") as out:
                out.write(f"{name} {os.getpid()} {took:.6f}\n")

    return timed  # type: ignore[return-value]


def _from_outside(previous_state: Any, task_instance: Any) -> bool:
    # The worker passes the state it leaves; the API server, marking a task
    # instance from the UI, passes None and an ORM TaskInstance.
    return previous_state is None and not hasattr(task_instance, "get_template_context")


@hookimpl
@_timed
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    """The task's run goes RUNNING (a retry: the same run) and becomes the active run."""
    airflow_tracking().task_started(task_instance)


@hookimpl
@_timed
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """FINISHED; marked success from outside while running: KILLED."""
    if _from_outside(previous_state, task_instance):
        airflow_tracking().task_changed_from_outside(task_instance, "success")
        return
    airflow_tracking().task_ended(task_instance, "success")


@hookimpl
@_timed
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any = None) -> None:
    """SCHEDULED with retries left, FAILED (with the reason) for good, KILLED when
    terminated; marked failed from outside while running: KILLED."""
    if _from_outside(previous_state, task_instance):
        airflow_tracking().task_changed_from_outside(task_instance, "failed")
        return
    airflow_tracking().task_ended(task_instance, "failed", error)


@hookimpl
@_timed
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    """A task that skipped itself ran, and ended: FINISHED, tagged as skipped."""
    if _from_outside(previous_state, task_instance):
        airflow_tracking().task_changed_from_outside(task_instance, "skipped")
        return
    airflow_tracking().task_ended(task_instance, "skipped")


@hookimpl
@_timed
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    """The parent run goes RUNNING (the scheduler; elsewhere the first task does it)."""
    airflow_tracking().dag_run_started(dag_run)


@hookimpl
@_timed
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    """The parent run ends FINISHED; task runs left open are closed."""
    airflow_tracking().dag_run_ended(dag_run, RunStatus.FINISHED, msg)


@hookimpl
@_timed
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    """The parent run ends FAILED; task runs left open are closed."""
    airflow_tracking().dag_run_ended(dag_run, RunStatus.FAILED, msg)


def _is_job(component: Any) -> bool:
    # A scheduler, triggerer or dag-processor Job; which one is known only once its
    # runner has set job_type (after on_starting): the reaper checks at its first tick.
    return type(component).__name__ == "Job"


@hookimpl
def on_starting(component: Any) -> None:
    """A scheduler starts its reaper (a daemon thread that only queues sweeps)."""
    if _is_job(component):
        from operators.maintenance import start_scheduler_reaper

        start_scheduler_reaper(component)


@hookimpl
def before_stopping(component: Any) -> None:
    """A scheduler stops its reaper."""
    if _is_job(component):
        from operators.maintenance import stop_scheduler_reaper

        stop_scheduler_reaper()
