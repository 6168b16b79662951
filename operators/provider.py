"""Provider metadata, behind the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

__all__ = ["get_provider_info"]


def get_provider_info() -> dict[str, Any]:
    """What Airflow's providers manager reads: the connection type, the
    ``@task.trackflow`` decorator, operators, sensor, hook and extra link."""
    try:
        current = version("trackflow")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        current = "0.0.0"
    return {
        "package-name": "trackflow",
        "name": "trackflow",
        "description": "Experiment tracking for Airflow: DAG runs and tasks become tracked runs.",
        "versions": [current],
        "integrations": [
            {
                "integration-name": "trackflow",
                "external-doc-url": "https://github.com/trackflow/trackflow",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "trackflow",
                "python-modules": ["operators.python", "operators.champion"],
            }
        ],
        "sensors": [{"integration-name": "trackflow", "python-modules": ["operators.sensors"]}],
        "hooks": [{"integration-name": "trackflow", "python-modules": ["operators.hooks"]}],
        "connection-types": [
            {
                "connection-type": "trackflow",
                "hook-class-name": "operators.hooks.TrackflowHook",
                "hook-name": "trackflow",
            }
        ],
        "task-decorators": [
            {"name": "trackflow", "class-name": "operators.decorators.tracked_task"}
        ],
        "extra-links": ["operators.links.TrackflowRunLink"],
    }
