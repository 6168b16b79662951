"""Heartbeats of fluent runs: one thread per process, fresh heartbeat_time, reaping.

The reaping story runs in real processes: one is SIGKILLed mid-run, another
stays alive and beats; only the dead one's run is reaped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import tracking
from tracking import _heartbeat, _run_registry
from tracking.client import TrackingClient
from tracking.entities import RunStatus
from tracking.errors import StoreUnavailableError
from tracking.store.registry import clear_store_cache

INTERVAL = 0.1


@pytest.fixture
def interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_HEARTBEAT_INTERVAL", str(INTERVAL))


@pytest.fixture
def uri(interval: None, fluent_uri: str) -> str:
    """The fluent API on a fresh SQLite file, beating every INTERVAL seconds."""
    return fluent_uri


def _heartbeat_time(uri: str, run_id: str) -> int:
    engine = create_engine(uri)
    try:
        with engine.connect() as conn:
            value = conn.execute(
                text("SELECT heartbeat_time FROM runs WHERE run_uuid = :r"), {"r": run_id}
            ).scalar_one()
    finally:
        engine.dispose()
    return int(value)


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == _heartbeat.THREAD_NAME]


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class TestHeartbeatThread:
    def test_not_started_before_the_first_run(self, uri: str) -> None:
        assert not _heartbeat.is_running()

    def test_one_thread_for_many_runs(self, uri: str) -> None:
        done = threading.Event()
        started = threading.Barrier(4, timeout=30)

        def worker() -> None:
            with tracking.start_run():
                started.wait()
                done.wait(30)

        workers = [threading.Thread(target=worker) for _ in range(3)]
        for thread in workers:
            thread.start()
        with tracking.start_run(), tracking.start_run(nested=True):
            started.wait()
            assert len(_run_registry.snapshot()) == 5
            assert len(_heartbeat_threads()) == 1
            assert _heartbeat_threads()[0].daemon
            done.set()
        for thread in workers:
            thread.join(30)

    def test_refreshes_heartbeat_time(self, uri: str) -> None:
        with tracking.start_run() as run:
            first = _heartbeat_time(uri, run.info.run_id)
            assert _wait_for(lambda: _heartbeat_time(uri, run.info.run_id) > first)

    def test_exits_when_no_run_is_open(self, uri: str) -> None:
        with tracking.start_run():
            assert _heartbeat.is_running()
        assert _wait_for(lambda: not _heartbeat.is_running(), timeout=5)
        assert _heartbeat_threads() == []
        with tracking.start_run():  # and comes back with the next run
            assert _heartbeat.is_running()

    def test_stop_joins_the_thread(self, uri: str) -> None:
        tracking.start_run()
        assert _heartbeat.is_running()
        _heartbeat.stop()
        assert not _heartbeat.is_running()
        assert _heartbeat_threads() == []
        tracking.end_run()

    def test_errors_are_logged_not_raised(
        self, uri: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def failing(self: TrackingClient, *run_ids: str) -> None:
            raise StoreUnavailableError("database is down")

        monkeypatch.setattr(TrackingClient, "heartbeat", failing)
        with caplog.at_level(logging.ERROR, logger="tracking._heartbeat"), tracking.start_run():
            assert _wait_for(lambda: len(caplog.records) >= 2)
            assert _heartbeat.is_running()
        assert "heartbeat of 1 run(s) failed" in caplog.records[0].getMessage()
        assert caplog.records[0].exc_info is not None

    def test_one_call_per_client(
        self, uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[tuple[str, tuple[str, ...]]] = []

        def recording(self: TrackingClient, *run_ids: str) -> None:
            calls.append((self.tracking_uri, run_ids))

        monkeypatch.setattr(TrackingClient, "heartbeat", recording)
        other_uri = f"sqlite:///{tmp_path / 'other.db'}"
        with tracking.start_run() as a, tracking.start_run(nested=True) as b:
            tracking.set_tracking_uri(other_uri)
            with run_in_other_thread() as c:
                _heartbeat.stop()  # beat by hand, deterministically
                calls.clear()
                _heartbeat.beat_once()
        assert sorted(calls) == sorted(
            [
                (uri, (a.info.run_id, b.info.run_id)),
                (other_uri, (c,)),
            ]
        )


@contextlib.contextmanager
def run_in_other_thread() -> Iterator[str]:
    """A run started by another thread that stays open inside the block; yields its id."""
    opened, release = threading.Event(), threading.Event()
    run_ids: list[str] = []

    def work() -> None:
        with tracking.start_run() as run:
            run_ids.append(run.info.run_id)
            opened.set()
            release.wait(30)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert opened.wait(30)
        yield run_ids[0]
    finally:
        release.set()
        thread.join(30)


CHILD = textwrap.dedent(
    """
    import sys, time
    import tracking

    tracking.set_tracking_uri(sys.argv[1])
    run = tracking.start_run()
    print(run.info.run_id, flush=True)
    print("ready", flush=True)
    time.sleep(120)
    """
)


def _spawn(tmp_path: Path, uri: str) -> tuple[subprocess.Popen[str], str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {
        **os.environ,
        "TRACKFLOW_HEARTBEAT_INTERVAL": "0.2",
        "TRACKFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), uri],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc, run_id


class TestReaping:
    def test_only_the_dead_process_run_is_reaped(self, tmp_path: Path, sqlite_url: str) -> None:
        client = TrackingClient(sqlite_url)
        killed, killed_run = _spawn(tmp_path, sqlite_url)
        alive, alive_run = _spawn(tmp_path, sqlite_url)
        try:
            killed.send_signal(signal.SIGKILL)
            assert killed.wait(30) == -signal.SIGKILL
            assert client.get_run(killed_run).info.status is RunStatus.RUNNING
            time.sleep(2.0)
            reaped = client.reap_stale_runs(older_than=1.5)
            assert reaped == [killed_run]
            dead = client.get_run(killed_run)
            assert dead.info.status is RunStatus.FAILED
            assert dead.info.end_time is not None
            assert "no heartbeat" in dead.data.tags["trackflow.failureReason"]
            assert client.get_run(alive_run).info.status is RunStatus.RUNNING
        finally:
            alive.send_signal(signal.SIGTERM)
            alive.wait(30)
            killed.kill()
            killed.wait(30)
            clear_store_cache()
        assert client.get_run(alive_run).info.status is RunStatus.KILLED
