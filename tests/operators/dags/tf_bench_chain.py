"""For the real-scheduler benchmark (tests/benchmarks/airflow_deploy_bench.py): tracked
tasks that do nothing, so what is timed is trackflow's hooks."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

WIDTH = int(os.environ.get("BENCH_WIDTH", "10"))


@dag(
    dag_id="tf_bench_chain",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
)
def tf_bench_chain() -> None:
    @task
    def nothing(i: int) -> int:
        return i

    nothing.expand(i=list(range(WIDTH)))


tf_bench_chain()
