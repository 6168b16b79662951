"""A task that sleeps until its worker is killed (the test SIGKILLs the process)."""

from __future__ import annotations

import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, task


@dag(
    dag_id="tf_longrun",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
)
def tf_longrun() -> None:
    @task
    def sleeper(params=None) -> None:  # type: ignore[no-untyped-def]
        Path(params["markers"], "sleeping").touch()
        time.sleep(120)

    sleeper()


tf_longrun()
