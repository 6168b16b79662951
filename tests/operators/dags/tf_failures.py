"""Failing for good, timing out, terminated by SIGTERM, and a task that never ran."""

from __future__ import annotations

import time
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag, task

import tracking


@dag(
    dag_id="tf_failures",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
)
def tf_failures() -> None:
    @task
    def boom() -> None:
        tracking.log_metric("before", 1.0)
        raise ValueError("boom: the input file is empty")

    @task
    def after_boom() -> None:
        """Upstream failed: never runs, so no run."""

    @task(execution_timeout=timedelta(seconds=1))
    def too_slow() -> None:
        time.sleep(30)

    # SIGTERM to the process running the task (here: the dag.test() process), as a
    # worker shutdown or an eviction sends it; on_kill then stops the command. The
    # second's wait first: a signal that comes before Popen() has returned in the task
    # process finds no subprocess for on_kill to stop, and the command then succeeds.
    terminated = BashOperator(
        task_id="terminated",
        bash_command="sleep 1; kill -TERM $PPID; sleep 20",
        trigger_rule="all_done",
    )

    boom() >> after_boom()
    too_slow() >> terminated


tf_failures()
