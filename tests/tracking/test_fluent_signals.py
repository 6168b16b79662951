"""How fluent runs end when their process ends, in real processes.

Each case runs a small script that opens a run and a nested run on a SQLite
file, prints ``ready`` and their ids, then does what the case says (sleep,
raise, exit); the test signals it or waits for it, then reads the statuses.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tracking.client import TrackingClient
from tracking.entities import RunStatus
from tracking.store.registry import clear_store_cache

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SCRIPT = textwrap.dedent(
    """
    import json, signal, sys, time
    import tracking

    uri, mode = sys.argv[1], sys.argv[2]
    tracking.set_tracking_uri(uri)


    def ready(*runs):
        print("ready", json.dumps([r.info.run_id for r in runs]), flush=True)


    if mode == "chained-handler":
        def previous(signum, frame):
            print("previous handler", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, previous)
    if mode == "ignored-sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    if mode in ("sleep-in-with", "raise-in-with", "normal-exit"):
        with tracking.start_run() as parent, tracking.start_run(nested=True) as child:
            ready(parent, child)
            if mode == "raise-in-with":
                raise RuntimeError("boom")
            if mode == "sleep-in-with":
                time.sleep(120)
    else:  # runs left open: only the exit hooks can end them
        parent = tracking.start_run()
        child = tracking.start_run(nested=True)
        ready(parent, child)
        if mode == "raise-bare":
            raise RuntimeError("boom")
        if mode == "exit-0-bare":
            sys.exit(0)
        if mode == "exit-1-bare":
            sys.exit(1)
        if mode != "end-bare":
            time.sleep(120)
    """
)


class Child:
    """A running script: its process and the ids of its two runs."""

    def __init__(self, proc: subprocess.Popen[str], run_ids: list[str]) -> None:
        self.proc = proc
        self.run_ids = run_ids

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.read()


Spawn = Callable[[str], Child]


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 60) -> list[str]:
    """The run ids of the child's ``ready [...]`` line (one line, so one select is enough)."""
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if readable else ""
    if not line.startswith("ready "):
        proc.kill()
        stderr = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"child not ready ({line!r}):\n{stderr}")
    run_ids: list[str] = json.loads(line.removeprefix("ready "))
    return run_ids


@pytest.fixture
def spawn(tmp_path: Path, sqlite_url: str) -> Iterator[Spawn]:
    script = tmp_path / "child.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TRACKFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts")}
    children: list[subprocess.Popen[str]] = []

    def start(mode: str) -> Child:
        proc = subprocess.Popen(
            [sys.executable, str(script), sqlite_url, mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        children.append(proc)
        run_ids = _wait_ready(proc)
        return Child(proc, run_ids)

    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    clear_store_cache()


@pytest.fixture
def client(sqlite_url: str) -> TrackingClient:
    return TrackingClient(sqlite_url)


def _statuses(client: TrackingClient, child: Child) -> list[RunStatus]:
    infos = [client.get_run(run_id).info for run_id in child.run_ids]
    for info in infos:
        if info.status.is_terminated:
            assert info.end_time is not None
            assert info.end_time >= (info.start_time or 0)
    return [info.status for info in infos]


class TestSignals:
    @pytest.mark.parametrize("mode", ["sleep-in-with", "sleep-bare"])
    def test_sigterm_kills_runs_and_the_process(
        self, spawn: Spawn, client: TrackingClient, mode: str
    ) -> None:
        child = spawn(mode)
        child.proc.send_signal(signal.SIGTERM)
        assert child.wait() == -signal.SIGTERM  # still dies by the signal
        assert _statuses(client, child) == [RunStatus.KILLED, RunStatus.KILLED]

    def test_sigterm_chains_to_the_previous_handler(
        self, spawn: Spawn, client: TrackingClient
    ) -> None:
        child = spawn("chained-handler")
        child.proc.send_signal(signal.SIGTERM)
        assert child.wait() == 3
        assert "previous handler" in child.output()
        assert _statuses(client, child) == [RunStatus.KILLED, RunStatus.KILLED]

    def test_ignored_sigterm_stays_ignored(self, spawn: Spawn, client: TrackingClient) -> None:
        child = spawn("ignored-sigterm")
        child.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert child.proc.poll() is None
        assert _statuses(client, child) == [RunStatus.RUNNING, RunStatus.RUNNING]

    @pytest.mark.parametrize("mode", ["sleep-in-with", "sleep-bare"])
    def test_sigint_kills_runs(self, spawn: Spawn, client: TrackingClient, mode: str) -> None:
        child = spawn(mode)
        child.proc.send_signal(signal.SIGINT)
        assert child.wait() in (-signal.SIGINT, 128 + signal.SIGINT, 1)
        assert _statuses(client, child) == [RunStatus.KILLED, RunStatus.KILLED]

    def test_sigkill_leaves_runs_running(self, spawn: Spawn, client: TrackingClient) -> None:
        child = spawn("sleep-in-with")
        child.proc.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
        # Nothing can run on SIGKILL: the heartbeat stops and the reaper ends these.
        assert _statuses(client, child) == [RunStatus.RUNNING, RunStatus.RUNNING]


class TestExits:
    @pytest.mark.parametrize(
        ("mode", "code", "status"),
        [
            pytest.param("normal-exit", 0, RunStatus.FINISHED, id="with-normal-exit"),
            pytest.param("raise-in-with", 1, RunStatus.FAILED, id="with-uncaught-exception"),
            pytest.param("end-bare", 0, RunStatus.FINISHED, id="atexit-script-end"),
            pytest.param("exit-0-bare", 0, RunStatus.FINISHED, id="atexit-sys-exit-0"),
            pytest.param("exit-1-bare", 1, RunStatus.FINISHED, id="atexit-sys-exit-1"),
            pytest.param("raise-bare", 1, RunStatus.FAILED, id="atexit-uncaught-exception"),
        ],
    )
    def test_exit(
        self, spawn: Spawn, client: TrackingClient, mode: str, code: int, status: RunStatus
    ) -> None:
        child = spawn(mode)
        assert child.wait() == code
        assert _statuses(client, child) == [status, status]
