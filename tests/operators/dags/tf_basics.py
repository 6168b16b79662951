"""A DAG tagged trackflow with no trackflow code in its tasks but tracking.log_metric:
success, a retry, a mapped task, a subprocess joining the task's run."""

from __future__ import annotations

import sys
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag, task

import tracking

CHILD = (
    "import tracking; tracking.log_metric('from_child', 1.0); "
    "run = tracking.start_run(nested=True, run_name='inner'); "
    "tracking.log_metric('inner', 2.0); tracking.end_run()"
)


@dag(
    dag_id="tf_basics",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
    params={"alpha": 0.5, "notes": "n" * 7000},
)
def tf_basics() -> None:
    @task
    def extract() -> list[int]:
        tracking.log_metric("rows", 3)
        return [1, 2, 3]

    @task(retries=1, retry_delay=timedelta(0))
    def flaky(ti=None) -> None:  # type: ignore[no-untyped-def]
        tracking.log_metric("try", ti.try_number)
        if ti.try_number < 2:
            raise RuntimeError("transient failure")

    @task
    def square(x: int) -> int:
        active = tracking.active_run()
        assert active is not None
        tracking.log_metric("sq", x * x)
        return x * x

    @task
    def total(values: list[int]) -> None:
        # start_run() inside a task is the task's run; leaving the block does not end it.
        with tracking.start_run() as run:
            tracking.log_metric("total", sum(values))
            tracking.set_tag("run_seen", run.info.run_id)

    child = BashOperator(task_id="child_process", bash_command=f'{sys.executable} -c "{CHILD}"')

    squares = square.expand(x=extract())
    flaky() >> total(squares) >> child


tf_basics()
