"""Template macros, ``{{ macros.trackflow.<name>(...) }}``, for templated fields
that hand a task's run to something Airflow starts elsewhere (a pod, a
container, a remote job)::

    KubernetesPodOperator(
        ...,
        env_vars={
            "TRACKFLOW_RUN_ID": "{{ macros.trackflow.run_id(ti) }}",
            "TRACKFLOW_TRACKING_URI": "{{ macros.trackflow.tracking_uri() }}",
        },
    )

The ids are the ones the listener gives the task's and the DAG run's runs.
"""

from __future__ import annotations

from typing import Any

from operators._tracking import airflow_tracking, pipeline_for, step_for
from tracking.pipelines import Step

__all__ = ["parent_run_id", "run_id", "run_url", "task_run_id", "tracking_uri"]


def run_id(ti: Any) -> str:
    """The run id of a task instance (the same on every try)."""
    return step_for(ti).run_id


def task_run_id(ti: Any, task_id: str, map_index: int | None = None) -> str:
    """The run id of another task of the same DAG run (``map_index`` for one instance)::

    TrackflowRunSensor(task_id="wait", run_id="{{ macros.trackflow.task_run_id(ti, 'train') }}")
    """
    pipeline = pipeline_for(ti.dag_id, ti.run_id)
    return Step(pipeline, task_id, map_index=map_index).run_id


def parent_run_id(ti: Any) -> str:
    """The run id of the task instance's DAG run."""
    return pipeline_for(ti.dag_id, ti.run_id).run_id


def tracking_uri() -> str:
    """The tracking URI of the ``trackflow_default`` connection (or the settings)."""
    return str(airflow_tracking().config().tracking_uri)


def run_url(ti: Any) -> str:
    """The task run's page in the trackflow UI ("" when no UI base URL is known)."""
    from operators._tracking import run_link

    return run_link(ti)
