"""How fluent runs end when their process ends, in real processes.

Each case runs a small script that opens a run and a nested run on a SQLite
file, prints ``ready`` and their ids, then does what the case says (sleep,
raise, exit); the test signals it or waits for it, then reads the statuses.
"""

from __future__ import annotations

import json
import os
import selectors
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
    import json, os, signal, sys, time
    import tracking

    uri, mode = sys.argv[1], sys.argv[2]
    action, style = mode.rsplit("-", 1)  # style: "with" blocks, or "bare" runs left open
    tracking.set_tracking_uri(uri)


    def previous_handler(signum, frame):
        print("previous handler", flush=True)
        sys.exit(3)


    if action == "chained":
        signal.signal(signal.SIGTERM, previous_handler)
    if action == "ignored":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


    def ready_then_act(*runs):
        print("ready", json.dumps([r.info.run_id for r in runs]), flush=True)
        if action == "raise":
            raise RuntimeError("boom")
        if action.startswith("exit"):
            sys.exit(int(action.split("_")[1]))
        if action == "fork":
            pid = os.fork()
            if pid == 0:
                sys.exit(0)  # the child's exit hooks must leave the parent's runs alone
            os.waitpid(pid, 0)
            status = tracking.TrackingClient(uri).get_run(runs[0].info.run_id).info.status
            print("after fork", status.value, flush=True)
        if action in ("sleep", "chained", "ignored"):
            time.sleep(120)


    if style == "with":
        with tracking.start_run() as parent, tracking.start_run(nested=True) as child:
            ready_then_act(parent, child)
    else:
        ready_then_act(tracking.start_run(), tracking.start_run(nested=True))
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
    """The run ids of the child's ``ready [...]`` line (one line, so one wait is enough).

    A selector, not ``select.select``: a long suite's process may hold descriptors
    numbered past select's limit of 1024.
    """
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        readable = selector.select(timeout)
    line = proc.stdout.readline() if readable else ""
    if not line.startswith("ready "):
        proc.kill()
        stderr = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"child not ready ({line!r}):\n{stderr}")
    run_ids: list[str] = json.loads(line.removeprefix("ready "))
    return run_ids


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
            # A shell running the suite in the background (``nohup bash .ci/test &``)
            # starts its children with SIGINT ignored, and Python then installs no
            # KeyboardInterrupt handler: give the script the default disposition.
            preexec_fn=_default_sigint,
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
    @pytest.mark.parametrize("mode", ["sleep-with", "sleep-bare"])
    def test_sigterm_kills_runs_and_the_process(
        self, spawn: Spawn, client: TrackingClient, mode: str
    ) -> None:
        child = spawn(mode)
        child.proc.send_signal(signal.SIGTERM)
        assert child.wait() == -signal.SIGTERM  # still dies by the signal
        assert _statuses(client, child) == [RunStatus.KILLED, RunStatus.KILLED]

    @pytest.mark.parametrize("mode", ["chained-with", "chained-bare"])
    def test_sigterm_chains_to_the_previous_handler(
        self, spawn: Spawn, client: TrackingClient, mode: str
    ) -> None:
        child = spawn(mode)
        child.proc.send_signal(signal.SIGTERM)
        assert child.wait() == 3
        assert "previous handler" in child.output()
        assert _statuses(client, child) == [RunStatus.KILLED, RunStatus.KILLED]

    def test_ignored_sigterm_stays_ignored(self, spawn: Spawn, client: TrackingClient) -> None:
        child = spawn("ignored-bare")
        child.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert child.proc.poll() is None
        assert _statuses(client, child) == [RunStatus.RUNNING, RunStatus.RUNNING]

    @pytest.mark.parametrize("mode", ["sleep-with", "sleep-bare"])
    def test_sigint_kills_runs(self, spawn: Spawn, client: TrackingClient, mode: str) -> None:
        child = spawn(mode)
        child.proc.send_signal(signal.SIGINT)
        assert child.wait() in (-signal.SIGINT, 128 + signal.SIGINT, 1)
        assert _statuses(client, child) == [RunStatus.KILLED, RunStatus.KILLED]

    def test_sigkill_leaves_runs_running(self, spawn: Spawn, client: TrackingClient) -> None:
        child = spawn("sleep-with")
        child.proc.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
        # Nothing can run on SIGKILL: the heartbeat stops and the reaper ends these.
        assert _statuses(client, child) == [RunStatus.RUNNING, RunStatus.RUNNING]


class TestExits:
    @pytest.mark.parametrize(
        ("mode", "code", "status"),
        [
            pytest.param("normal-with", 0, RunStatus.FINISHED, id="with-normal-exit"),
            pytest.param("raise-with", 1, RunStatus.FAILED, id="with-uncaught-exception"),
            pytest.param("end-bare", 0, RunStatus.FINISHED, id="atexit-script-end"),
            pytest.param("exit_0-bare", 0, RunStatus.FINISHED, id="atexit-sys-exit-0"),
            pytest.param("exit_1-bare", 1, RunStatus.FINISHED, id="atexit-sys-exit-1"),
            pytest.param("raise-bare", 1, RunStatus.FAILED, id="atexit-uncaught-exception"),
            pytest.param("exit_0-with", 0, RunStatus.FINISHED, id="with-sys-exit-0"),
            pytest.param("exit_1-with", 1, RunStatus.FAILED, id="with-sys-exit-1"),
        ],
    )
    def test_exit(
        self, spawn: Spawn, client: TrackingClient, mode: str, code: int, status: RunStatus
    ) -> None:
        child = spawn(mode)
        assert child.wait() == code
        assert _statuses(client, child) == [status, status]


class TestFork:
    def test_forked_child_leaves_the_parent_runs_open(
        self, spawn: Spawn, client: TrackingClient
    ) -> None:
        child = spawn("fork-bare")
        assert child.wait() == 0
        assert "after fork RUNNING" in child.output()
        assert _statuses(client, child) == [RunStatus.FINISHED, RunStatus.FINISHED]


class TestInstallation:
    def test_sigterm_handler_installed_from_the_main_thread_only(self, sqlite_url: str) -> None:
        code = textwrap.dedent(
            f"""
            import signal, sys, threading
            import tracking

            tracking.set_tracking_uri({sqlite_url!r})

            def in_thread():
                with tracking.start_run():
                    pass

            thread = threading.Thread(target=in_thread)
            thread.start()
            thread.join()
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "installed off main"
            hook = sys.excepthook
            with tracking.start_run():
                pass
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "not installed"
            assert sys.excepthook is hook, "excepthook wrapped twice"
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
