"""Flows configured only at the flow level, for the configuration-reach tests (a process
pool's workers import them from here)."""

from __future__ import annotations

import os
import threading
from typing import Any

from prefect.context import FlowRunContext
from prefect.futures import wait

import tracking
from flows import tracked_flow, tracked_task


def flow_run_id() -> str:
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    return str(ctx.flow_run.id)


@tracked_task
def item(x: int) -> dict[str, Any]:
    """Logs into its own run; says where it ran."""
    tracking.log_metric("x", x)
    active = tracking.active_run()
    assert active is not None
    return {"run_id": active.info.run_id, "pid": os.getpid(), "thread": threading.get_ident()}


@tracked_flow
def inner(xs: list[int]) -> list[dict[str, Any]]:
    """A subflow with no configuration of its own."""
    return [f.result() for f in item.map(xs)]


def _body(xs: list[int]) -> dict[str, Any]:
    mapped = [f.result() for f in item.map(xs)]
    submitted = [item.submit(x) for x in xs]
    wait(submitted)
    return {
        "id": flow_run_id(),
        "mapped": mapped,
        "submitted": [f.result() for f in submitted],
        "called": item(100),
        "sub": inner(xs),
    }


def configured_flow(uri: str) -> Any:
    """A flow given the store with ``tracking_uri=`` and nothing else."""
    return tracked_flow(tracking_uri=uri, name="reach")(_body)


def pooled_flow(uri: str) -> Any:
    """The same, its tasks in a process pool."""

    def pooled(xs: list[int]) -> dict[str, Any]:
        futures = item.map(xs)
        return {"id": flow_run_id(), "mapped": [f.result() for f in futures]}

    from prefect.task_runners import ProcessPoolTaskRunner  # Prefect 3.5 and later

    return tracked_flow(
        tracking_uri=uri, name="reach-pooled", task_runner=ProcessPoolTaskRunner(max_workers=2)
    )(pooled)


@tracked_flow
def unconfigured_flow() -> None:
    """No configuration anywhere."""
    item(1)
