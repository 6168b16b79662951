"""Flows the real-deployment tests deploy to a process work pool. Their only
configuration is the flow's own ``config="tf-deploy"`` (a TrackflowConfig block on
the Prefect server): the worker and its flow-run processes have no ``TRACKFLOW_*``
store setting."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS
from prefect.context import FlowRunContext

import tracking
from flows import tracked_flow, tracked_task
from flows.retrain import retrain_flow
from flows.sweep import sweep_flow

CONFIG = "tf-deploy"

retrain = retrain_flow(experiment="deploy-retrain", config=CONFIG, name="deploy-retrain")
sweep = sweep_flow(experiment="deploy-sweep", config=CONFIG, name="deploy-sweep")


def _flow_run_id() -> str:
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    return str(ctx.flow_run.id)


@tracked_task
def item(x: int) -> int:
    tracking.log_metric("x", x)
    return x


@tracked_flow
def part(xs: list[int]) -> int:
    """A subflow with no configuration of its own."""
    return sum(f.result() for f in item.map(xs))


@tracked_flow(config=CONFIG, experiment="deploy-mapped")
def mapped(n: int = 300) -> dict[str, Any]:
    total = sum(f.result() for f in item.map(list(range(n))))
    return {"id": _flow_run_id(), "total": total, "sub": part([1, 2, 3])}


_tries = Path(os.environ.get("TF_DEPLOY_MARKERS", "/tmp")) / "tries"


@tracked_task(retries=1, retry_delay_seconds=0)
def flaky(key: str) -> int:
    marker = _tries / f"task-{key}"
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        raise RuntimeError("transient")
    return 2


@tracked_flow(config=CONFIG, experiment="deploy-retries", retries=1, retry_delay_seconds=0)
def retried(key: str) -> int:
    value = flaky(key)
    marker = _tries / f"flow-{key}"
    if not marker.exists():
        marker.touch()
        raise RuntimeError("flow attempt 1 fails")
    return value


@tracked_task
def nap(marker: str) -> None:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(300)


@tracked_flow(config=CONFIG, experiment="deploy-sleepy")
def sleepy(marker: str) -> None:
    nap(marker)


@tracked_task(cache_policy=INPUTS, persist_result=True)
def expensive(x: int) -> int:
    tracking.log_metric("computed", x)
    return x * 10


@tracked_flow(config=CONFIG, experiment="deploy-caching")
def caching(x: int) -> int:
    return expensive(x)
