"""For the deployment tests (``test_airflow_deployment.py``): a task that holds on until the
test has done something to it (marked it failed through the REST API, or SIGKILLed its
process), then lets go by itself after a while."""

from __future__ import annotations

import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

import tracking

#: The longest the task holds on (the test acts within seconds).
HOLD_S = 90


@dag(
    dag_id="tf_deploy_hold",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
    params={"markers": ""},
    max_active_runs=4,
)
def tf_deploy_hold() -> None:
    @task
    def hold(params=None, ti=None) -> None:  # type: ignore[no-untyped-def]
        tracking.log_metric("held", 1.0)
        # The test acts once the task is this far (its run exists and is RUNNING).
        Path(params["markers"], f"{ti.run_id}.holding").touch()
        deadline = time.monotonic() + HOLD_S
        while time.monotonic() < deadline:
            time.sleep(0.2)

    hold()


tf_deploy_hold()
