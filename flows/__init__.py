"""trackflow for Prefect: flow runs, subflows, tasks and mapped runs become nested runs.

Install ``trackflow[prefect]``, then decorate::

    from flows import tracked_flow, tracked_task

    @tracked_task(log_params=True)
    def train(lr: float) -> float:
        tracking.log_metric("loss", ...)
        return score

    @tracked_flow(experiment="churn")
    def sweep() -> None:
        train.map([0.1, 0.01])

This package's names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flows.blocks import TrackflowConfig
    from flows.decorators import TrackedTask, tracked_flow, tracked_task

__all__ = ["TrackedTask", "TrackflowConfig", "tracked_flow", "tracked_task"]

_WHERE = {
    "TrackedTask": "flows.decorators",
    "TrackflowConfig": "flows.blocks",
    "tracked_flow": "flows.decorators",
    "tracked_task": "flows.decorators",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'flows' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
