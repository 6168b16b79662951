"""For the deployment tests (``test_airflow_deployment.py``): a task that fails for good, and
one downstream of it that never runs."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

import tracking


@dag(
    dag_id="tf_deploy_failing",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
)
def tf_deploy_failing() -> None:
    @task
    def boom() -> None:
        tracking.log_metric("before", 1.0)
        raise ValueError("boom: the input file is empty")

    @task
    def after_boom() -> None:
        """Upstream failed: never runs, so no run."""

    boom() >> after_boom()


tf_deploy_failing()
