"""A DAG whose runs go to another experiment, by its ``trackflow.experiment=`` tag."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="tf_experiment_tag",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow.experiment=tf_elsewhere"],
)
def tf_experiment_tag() -> None:
    @task
    def only() -> int:
        return 1

    only()


tf_experiment_tag()
