"""No trackflow tag, decorator or operator: not tracked (unless TRACKFLOW_AIRFLOW_TRACK_ALL)."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="tf_untracked", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def tf_untracked() -> None:
    @task
    def plain() -> int:
        return 1

    plain()


tf_untracked()
