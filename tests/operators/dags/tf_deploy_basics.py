"""For the deployment tests (``test_airflow_deployment.py``): a mapped task, a task that fails
once then succeeds, a task two DAG runs are in at the same time, and one a test clears
and runs again. The tasks call ``tracking`` only; the DAG's tag makes it tracked."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

import tracking

#: How long ``meet`` waits for the other DAG run.
MEET_TIMEOUT_S = 120


@dag(
    dag_id="tf_deploy_basics",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
    params={"alpha": 0.5, "meet": ""},
    max_active_runs=4,
)
def tf_deploy_basics() -> None:
    @task
    def extract() -> list[int]:
        tracking.log_metric("rows", 3)
        return [1, 2, 3]

    @task
    def square(x: int) -> int:
        tracking.log_metric("sq", x * x)
        return x * x

    # Short, but long enough for the test to see the run wait between the tries.
    @task(retries=1, retry_delay=timedelta(seconds=3))
    def flaky(ti=None) -> None:  # type: ignore[no-untyped-def]
        tracking.log_metric("try", ti.try_number)
        if ti.try_number < 2:
            raise RuntimeError("transient failure")

    @task
    def meet(params=None, ti=None) -> None:  # type: ignore[no-untyped-def]
        """With ``meet`` naming a folder: stays until two DAG runs are in this task."""
        if not params["meet"]:
            return
        folder = Path(params["meet"])
        (folder / ti.run_id).touch()
        deadline = time.monotonic() + MEET_TIMEOUT_S
        while len(list(folder.iterdir())) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the other DAG run never came")
            time.sleep(0.2)
        tracking.log_metric("met", 1.0)

    @task
    def total(values: list[int], ti=None) -> None:  # type: ignore[no-untyped-def]
        # One point per try: a re-run after a clear adds the second.
        tracking.log_metric("total", sum(values), step=ti.try_number)

    squares = square.expand(x=extract())
    flaky() >> meet() >> total(squares)


tf_deploy_basics()
