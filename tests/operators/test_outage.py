"""Tracking never breaks a pipeline: with the tracking server down the DAG still
succeeds, the listener warns once per task, and the DAG run's end brings the
runs up to date once the server is back."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _airflow_support import connection_env, run_tree
from _server_support import start_server

from tracking import RunStatus, TrackingClient

pytestmark = pytest.mark.airflow


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_server_down_during_a_dag_run(
    run_dag: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    workdir = tmp_path / "server"
    first = start_server(workdir)
    server = first.__enter__()
    port = server.url.rsplit(":", 1)[1]
    monkeypatch.setenv("AIRFLOW_CONN_TRACKFLOW_DEFAULT", connection_env(server.url))
    second: list[Any] = []

    def operate() -> None:
        # Down once "during" is tracked RUNNING, up again once "outage" started.
        _wait_for(markers / "during-started")
        first.__exit__(None, None, None)
        (markers / "server-down").touch()
        _wait_for(markers / "outage-started")
        time.sleep(0.3)  # its start was not tracked
        again = start_server(workdir, port=int(port))
        second.append((again, again.__enter__()))
        (markers / "server-up").touch()

    # Airflow's logging set-up (run by earlier tests in this process) may disable or
    # re-route the loggers that existed before it: listen on ours directly.
    heard: list[logging.LogRecord] = []
    listener_log = logging.getLogger("operators")
    handler = logging.Handler(logging.WARNING)
    handler.emit = heard.append  # type: ignore[method-assign]
    monkeypatch.setattr(listener_log, "disabled", False)
    monkeypatch.setattr(listener_log, "level", logging.WARNING)
    listener_log.addHandler(handler)
    operator = threading.Thread(target=operate, daemon=True)
    operator.start()
    try:
        with caplog.at_level(logging.WARNING, logger="operators"):
            dag_run = run_dag("tf_outage", run_conf={"markers": str(markers)})
        operator.join(timeout=60)
        assert dag_run.state == "success"
        client = TrackingClient(second[0][1].url)
        parent, children = run_tree(client, "tf_outage", dag_run.run_id)
        assert parent.info.status is RunStatus.FINISHED
        # Each run caught up: "during" ended while the server was down, "outage" started
        # while it was down.
        assert {name: run.info.status for name, run in children.items()} == {
            "before": RunStatus.FINISHED,
            "during": RunStatus.FINISHED,
            "outage": RunStatus.FINISHED,
        }
        warnings = [r.getMessage() for r in heard]
        assert len([w for w in warnings if "tf_outage/during" in w]) == 1, warnings
        assert len([w for w in warnings if "tf_outage/outage" in w]) == 1, warnings
        assert all("goes on untracked" in w for w in warnings)
    finally:
        listener_log.removeHandler(handler)
        if second:
            second[0][0].__exit__(None, None, None)
        else:
            first.__exit__(None, None, None)


def test_task_code_rides_out_a_server_restart(
    run_dag: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task's own logging call, made while the server restarts, waits for it (the
    client's retry budget) instead of failing the task: only the listener's own calls
    give up at once."""
    markers = tmp_path / "markers"
    markers.mkdir()
    workdir = tmp_path / "server"
    first = start_server(workdir)
    server = first.__enter__()
    port = int(server.url.rsplit(":", 1)[1])
    monkeypatch.setenv("AIRFLOW_CONN_TRACKFLOW_DEFAULT", connection_env(server.url))
    monkeypatch.setenv("TRACKFLOW_RETRY_TIMEOUT", "60")
    second: list[Any] = []

    def operate() -> None:
        _wait_for(markers / "started")
        first.__exit__(None, None, None)
        (markers / "server-down").touch()
        _wait_for(markers / "logging")
        time.sleep(1.0)  # the call is waiting
        again = start_server(workdir, port=port)
        second.append((again, again.__enter__()))

    operator = threading.Thread(target=operate, daemon=True)
    operator.start()
    try:
        dag_run = run_dag("tf_outage_rides", run_conf={"markers": str(markers)})
        operator.join(timeout=60)
        assert dag_run.state == "success"
        client = TrackingClient(second[0][1].url)
        parent, children = run_tree(client, "tf_outage_rides", dag_run.run_id)
        task_run = children["logs_through_a_restart"]
        assert task_run.info.status is RunStatus.FINISHED
        assert task_run.data.metrics == {"logged_while_down": 1.0}
        assert parent.info.status is RunStatus.FINISHED
    finally:
        if second:
            second[0][0].__exit__(None, None, None)
        else:
            first.__exit__(None, None, None)
