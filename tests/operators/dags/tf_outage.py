"""For the tracking-server-down case: the tasks wait on files the test writes while it
stops and restarts the server (the tasks themselves never call trackflow)."""

from __future__ import annotations

import time
from pathlib import Path

import pendulum
from airflow.sdk import dag, task


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
