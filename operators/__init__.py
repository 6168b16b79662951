"""trackflow for Airflow: DAG runs and task instances become tracked runs.

Installing ``trackflow[airflow]`` registers a provider (the ``trackflow``
connection type, ``@task.trackflow``) and a plugin (the listener that tracks
DAGs tagged ``trackflow``, macros, links). This package's names load on first
use, so a DAG file that imports it pays for what it uses only::

    from operators import TrackedPythonOperator, ChampionChallengerOperator
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from operators.champion import ChampionChallengerOperator, PromoteRunOperator
    from operators.decorators import tracked_task
    from operators.hooks import TrackflowHook
    from operators.links import TrackflowRunLink
    from operators.python import TrackedPythonOperator
    from operators.sensors import ModelAliasSensor, TrackflowRunSensor

__all__ = [
    "ChampionChallengerOperator",
    "ModelAliasSensor",
    "PromoteRunOperator",
    "TrackedPythonOperator",
    "TrackflowHook",
    "TrackflowRunLink",
    "TrackflowRunSensor",
    "tracked_task",
]

_WHERE = {
    "ChampionChallengerOperator": "operators.champion",
    "ModelAliasSensor": "operators.sensors",
    "PromoteRunOperator": "operators.champion",
    "TrackedPythonOperator": "operators.python",
    "TrackflowHook": "operators.hooks",
    "TrackflowRunLink": "operators.links",
    "TrackflowRunSensor": "operators.sensors",
    "tracked_task": "operators.decorators",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'operators' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
