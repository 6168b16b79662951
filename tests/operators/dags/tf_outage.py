"""For the tracking-server-down cases: the tasks wait on files the test writes while it
stops and restarts the server. In ``tf_outage`` the tasks never call trackflow; in
``tf_outage_rides`` the task's own logging call meets the outage."""

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
    dag_id="tf_outage",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
)
def tf_outage() -> None:
    @task
    def before(params=None) -> None:  # type: ignore[no-untyped-def]
        """Tracked normally."""

    @task
    def during(params=None) -> None:  # type: ignore[no-untyped-def]
        """Starts tracked, ends while the server is down."""
        markers = Path(params["markers"])
        (markers / "during-started").touch()
        _wait_for(markers / "server-down")

    @task
    def outage(params=None) -> None:  # type: ignore[no-untyped-def]
        """Starts while the server is down, ends once it is back."""
        markers = Path(params["markers"])
        (markers / "outage-started").touch()
        _wait_for(markers / "server-up")

    before() >> during() >> outage()


tf_outage()


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
        call itself meets the outage, and must wait until the server is back)."""
        markers = Path(params["markers"])
        (markers / "started").touch()
        _wait_for(markers / "server-down")
        (markers / "logging").touch()
        tracking.log_metric("logged_while_down", 1.0)

    logs_through_a_restart()


tf_outage_rides()
