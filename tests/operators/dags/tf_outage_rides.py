"""For the server-restart case: the task's own logging call is made while the tracking
server is down and must wait until it is back (the test restarts it)."""

from __future__ import annotations

import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

import tracking


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


@dag(
    dag_id="tf_outage_rides",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
)
def tf_outage_rides() -> None:
    @task
    def logs_through_a_restart(params=None) -> None:  # type: ignore[no-untyped-def]
        """Starts tracked; logs while the server is down (unbuffered, the default: the
        call itself meets the outage)."""
        markers = Path(params["markers"])
        (markers / "started").touch()
        _wait_for(markers / "server-down")
        (markers / "logging").touch()
        tracking.log_metric("logged_while_down", 1.0)

    logs_through_a_restart()


tf_outage_rides()
