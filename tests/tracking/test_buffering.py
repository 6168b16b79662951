"""Buffered fluent logging: fast calls, batches within the limits, failures that surface.

The SQLite cases gate the store's ``log_batch`` with an event, so "the call
returned before the store was written" is a fact the test controls, not a
timing. The server cases run a real ``trackflow server`` process, kill it in
the middle of a run and start it again on the same port and database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import tracking
from tracking import buffering, fluent
from tracking.client import TrackingClient
from tracking.entities import Metric, Param, RunStatus, RunTag
from tracking.errors import InvalidParameterError, RunNotFoundError, StoreUnavailableError
from tracking.settings import reset_settings
from tracking.store.base import TrackingStore
from tracking.store.registry import clear_store_cache


@pytest.fixture
def uri(fluent_uri: str) -> str:
    """The fluent API on a fresh SQLite file, with fresh fluent and buffer state."""
    return fluent_uri


@pytest.fixture
def reader(uri: str) -> TrackingClient:
    """A client on the same database (it shares the store, so read through it only)."""
    return TrackingClient(uri)


class Batches:
    """Wraps a store's ``log_batch``: records every batch, can hold them, can fail them."""

    def __init__(self, store: TrackingStore) -> None:
        self.store = store
        self.original = store.log_batch
        self.calls: list[tuple[list[Metric], list[Param], list[RunTag]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.failures: list[Exception] = []

    def __call__(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        self.gate.wait(30)
        if self.failures:
            raise self.failures.pop(0)
        self.calls.append((list(metrics), list(params), list(tags)))
        self.original(run_id, metrics, params, tags)


@pytest.fixture
def batches(uri: str, monkeypatch: pytest.MonkeyPatch) -> Batches:
    """The log_batch calls reaching the fluent API's store."""
    store = TrackingClient(uri).store
    spy = Batches(store)
    monkeypatch.setattr(store, "log_batch", spy)
    return spy


def _history(client: TrackingClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


class TestBufferedCalls:
    def test_calls_return_before_the_store_is_written(
        self, reader: TrackingClient, batches: Batches
    ) -> None:
        batches.gate.clear()  # the sender blocks in the store
        with tracking.start_run(buffered=True) as run:
            run_id = run.info.run_id
            for step in range(3000):
                tracking.log_metric("loss", 1.0 / (step + 1), step=step)
            tracking.log_metrics({"a": 1.0, "b": 2.0}, step=7)
            tracking.log_param("lr", 0.1)
            tracking.log_params({"depth": 6, "opt": "adam"})
            tracking.set_tag("stage", "dev")
            tracking.set_tags({"team": "ml"})
            # Every call returned while the store was held: nothing is written yet.
            assert batches.calls == []
            assert buffering.get_buffer().pending_count() > 0
            batches.gate.set()
            tracking.flush()
            assert buffering.get_buffer().pending_count() == 0
            data = reader.get_run(run_id).data
            assert len(_history(reader, run_id, "loss")) == 3000
            assert dict(data.params) == {"lr": "0.1", "depth": "6", "opt": "adam"}
            assert data.tags["stage"] == "dev" and data.tags["team"] == "ml"
            assert data.metrics["a"] == 1.0 and data.metrics["b"] == 2.0
        assert reader.get_run(run_id).info.status is RunStatus.FINISHED

    def test_batches_stay_within_the_limits(self, reader: TrackingClient, batches: Batches) -> None:
        batches.gate.clear()
        with tracking.start_run(buffered=True) as run:
            for step in range(2500):
                tracking.log_metric("m", float(step), step=step)
            tracking.log_params({f"p{i}": i for i in range(150)})
            tracking.set_tags({f"t{i}": i for i in range(120)})
            batches.gate.set()
        sizes = [(len(m), len(p), len(t)) for m, p, t in batches.calls]
        assert all(m <= 1000 and p <= 100 and t <= 100 for m, p, t in sizes)
        assert sum(m for m, _, _ in sizes) == 2500
        assert sum(p for _, p, _ in sizes) == 150
        assert sum(t for _, _, t in sizes) == 120
        assert len(sizes) <= 4  # coalesced, not one call per log
        run_data = reader.get_run(run.info.run_id).data
        assert len(run_data.params) == 150
        assert [s for s, _ in _history(reader, run.info.run_id, "m")] == list(range(2500))

    def test_a_tag_set_twice_keeps_the_last_value(
        self, reader: TrackingClient, batches: Batches
    ) -> None:
        batches.gate.clear()
        with tracking.start_run(buffered=True) as run:
            for value in ("a", "b", "c"):
                tracking.set_tag("k", value)
            batches.gate.set()
        assert reader.get_run(run.info.run_id).data.tags["k"] == "c"
        assert sum(len(t) for _, _, t in batches.calls) == 1

    def test_records_go_out_without_a_flush(self, reader: TrackingClient, batches: Batches) -> None:
        with tracking.start_run(buffered=True) as run:
            for value in (1.0, 2.0):  # the second after the sender went idle
                tracking.log_metric("m", value)
                deadline = time.monotonic() + 10
                while reader.get_run(run.info.run_id).data.metrics.get("m") != value:
                    assert time.monotonic() < deadline, "never sent without a flush"
                    time.sleep(0.02)

    def test_a_closed_buffer_writes_directly(self, reader: TrackingClient, uri: str) -> None:
        with tracking.start_run(buffered=True) as run:
            buffering.get_buffer().close()  # what interpreter exit does
            tracking.log_metric("late", 1.0)
            assert reader.get_run(run.info.run_id).data.metrics == {"late": 1.0}
            with pytest.raises(InvalidParameterError, match="number"):
                tracking.log_metric("late", "x")  # type: ignore[arg-type]

    def test_setting_turns_it_on_and_children_inherit(
        self, monkeypatch: pytest.MonkeyPatch, uri: str
    ) -> None:
        monkeypatch.setenv("TRACKFLOW_BUFFERED_LOGGING", "true")
        reset_settings()
        with tracking.start_run() as parent:
            assert parent.buffered
            with tracking.start_run(nested=True) as child:
                assert child.buffered
            with tracking.start_run(nested=True, buffered=False) as unbuffered:
                assert not unbuffered.buffered
        with tracking.start_run(buffered=False) as run:
            assert not run.buffered

    def test_unbuffered_by_default(self, uri: str) -> None:
        with tracking.start_run() as run:
            assert not run.buffered
            tracking.flush()  # a no-op

    def test_reads_see_buffered_writes(self, batches: Batches) -> None:
        with tracking.start_run(buffered=True) as run:
            tracking.set_tag("k", "v")
            tracking.log_metric("m", 3.0)
            assert tracking.get_run(run.info.run_id).data.tags["k"] == "v"
            assert [r.info.run_id for r in tracking.search_runs(filter_string="metrics.m = 3")] == [
                run.info.run_id
            ]
            tracking.set_tag("gone", "soon")
            tracking.delete_tag("gone")
            assert "gone" not in tracking.get_run(run.info.run_id).data.tags

    def test_exit_drains_the_buffer(self, uri: str, tmp_path: Path, reader: TrackingClient) -> None:
        script = textwrap.dedent(f"""
            import tracking
            tracking.set_tracking_uri({uri!r})
            run = tracking.start_run(buffered=True)
            for step in range(5000):
                tracking.log_metric("m", float(step), step=step)
            tracking.log_param("p", "v")
            print(run.info.run_id)
        """)
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        run_id = done.stdout.strip()
        run = reader.get_run(run_id)
        assert run.info.status is RunStatus.FINISHED
        assert run.data.params == {"p": "v"}
        assert len(_history(reader, run_id, "m")) == 5000


class TestValidationAtTheCall:
    @pytest.mark.parametrize(
        ("call", "message"),
        [
            (lambda: tracking.log_metric("k" * 251, 1.0), "250"),
            (lambda: tracking.log_metric("m", True), "number"),
            (lambda: tracking.log_metric("m", 1.0, step=2**63), "64-bit"),
            (lambda: tracking.log_param("", 1), "empty"),
            (lambda: tracking.log_param("p", "x" * 6001), "6000"),
            (lambda: tracking.set_tag("a,b", "v"), "may only contain"),
            (lambda: tracking.set_tags({"t": "x" * 5001}), "5000"),
            (lambda: tracking.log_metrics({"ok": 1.0, "bad": "x"}), "number"),  # type: ignore[dict-item]
            (lambda: tracking.log_params({"a/../b": 1}), ".."),
        ],
        ids=[
            "key-too-long",
            "bool",
            "step-overflow",
            "empty-key",
            "param-too-long",
            "bad-char",
            "tag-too-long",
            "one-bad-metric",
            "dotdot",
        ],
    )
    def test_bad_input_raises_and_queues_nothing(
        self, reader: TrackingClient, batches: Batches, call: Callable[[], Any], message: str
    ) -> None:
        with tracking.start_run(buffered=True) as run:
            with pytest.raises(InvalidParameterError, match=message):
                call()
            assert buffering.get_buffer().pending_count() == 0
        data = reader.get_run(run.info.run_id).data
        assert data.metrics == {} and data.params == {}
        assert batches.calls == []

    def test_a_param_changed_in_this_process_raises_at_the_call(
        self, reader: TrackingClient, batches: Batches
    ) -> None:
        with tracking.start_run(buffered=True) as run:
            tracking.log_param("lr", 0.1)
            tracking.log_param("lr", "0.1")  # the same value again is fine
            with pytest.raises(InvalidParameterError, match=r"lr.*0\.1.*0\.2"):
                tracking.log_param("lr", 0.2)
        assert reader.get_run(run.info.run_id).data.params == {"lr": "0.1"}


class TestFailures:
    def test_a_conflict_from_elsewhere_surfaces_at_flush(
        self, reader: TrackingClient, batches: Batches
    ) -> None:
        with tracking.start_run(buffered=True) as run:
            run_id = run.info.run_id
            reader.log_param(run_id, "lr", "0.1")  # another process, say
            batches.gate.clear()
            tracking.log_param("lr", "0.5")
            tracking.log_param("depth", 3)
            tracking.log_metric("m", 1.0)
            tracking.set_tag("t", "v")
            batches.gate.set()
            with pytest.raises(InvalidParameterError, match=r"lr.*0\.5") as caught:
                tracking.flush()
            assert any(run_id in note for note in caught.value.__notes__)
            tracking.flush()  # raised once, then cleared
            # Only the conflicting param was lost: the rest of its batch went through.
            data = reader.get_run(run_id).data
            assert dict(data.params) == {"lr": "0.1", "depth": "3"}
            assert data.metrics == {"m": 1.0} and data.tags["t"] == "v"
        # A param was lost: the run does not claim to have FINISHED whole.
        assert reader.get_run(run_id).info.status is RunStatus.FAILED

    def test_a_rejected_param_does_not_bind_later_calls(
        self, reader: TrackingClient, uri: str
    ) -> None:
        with tracking.start_run(buffered=True) as run:
            reader.log_param(run.info.run_id, "lr", "0.1")
            tracking.log_param("lr", "0.5")
            with pytest.raises(InvalidParameterError):
                tracking.flush()
            tracking.log_param("lr", "0.1")  # what the store has: fine
            tracking.flush()

    def test_end_run_raises_and_the_run_fails(self, reader: TrackingClient, uri: str) -> None:
        run = tracking.start_run(buffered=True)
        reader.log_param(run.info.run_id, "lr", "0.1")
        tracking.log_param("lr", "0.9")
        with pytest.raises(InvalidParameterError, match="lr"):
            tracking.end_run()
        assert tracking.active_run() is None
        assert reader.get_run(run.info.run_id).info.status is RunStatus.FAILED

    def test_killed_stays_killed(self, reader: TrackingClient, uri: str) -> None:
        run = tracking.start_run(buffered=True)
        reader.log_param(run.info.run_id, "lr", "0.1")
        tracking.log_param("lr", "0.9")
        with pytest.raises(InvalidParameterError):
            tracking.end_run("KILLED")
        assert reader.get_run(run.info.run_id).info.status is RunStatus.KILLED

    def test_a_propagating_exception_carries_the_failure(
        self, reader: TrackingClient, uri: str
    ) -> None:
        with (  # noqa: PT012
            pytest.raises(ZeroDivisionError) as caught,
            tracking.start_run(buffered=True) as run,
        ):
            reader.log_param(run.info.run_id, "lr", "0.1")
            tracking.log_param("lr", "0.9")
            1 / 0  # noqa: B018
        assert any("InvalidParameterError" in note for note in caught.value.__notes__)
        assert reader.get_run(run.info.run_id).info.status is RunStatus.FAILED

    def test_nested_runs_are_all_ended_before_raising(
        self, reader: TrackingClient, uri: str
    ) -> None:
        parent = tracking.start_run(buffered=True)
        child = tracking.start_run(nested=True)
        reader.log_param(child.info.run_id, "lr", "0.1")
        tracking.log_param("lr", "0.9")
        with pytest.raises(InvalidParameterError):
            tracking.end_run()  # the child
        assert reader.get_run(child.info.run_id).info.status is RunStatus.FAILED
        tracking.end_run()
        assert reader.get_run(parent.info.run_id).info.status is RunStatus.FINISHED

    def test_a_deleted_run_fails_its_whole_batch(self, reader: TrackingClient, uri: str) -> None:
        with tracking.start_run(buffered=True) as run:
            tracking.flush()
            reader.store.delete_run(run.info.run_id)
            tracking.log_metric("m", 1.0)
            with pytest.raises(tracking.InvalidStateError) as caught:
                tracking.flush()
            assert any("1 metrics, 0 params, 0 tags" in n for n in caught.value.__notes__)
            reader.restore_run(run.info.run_id)

    def test_a_missing_run(self, reader: TrackingClient, uri: str) -> None:
        buffering.add(reader, "f" * 32, metrics=[Metric("m", 1.0, 1, 0)])
        with pytest.raises(RunNotFoundError):
            tracking.flush()


class TestOutages:
    def test_a_store_that_comes_back_loses_nothing(
        self, reader: TrackingClient, batches: Batches
    ) -> None:
        batches.failures = [StoreUnavailableError("down")] * 3
        with tracking.start_run(buffered=True) as run:
            for step in range(100):
                tracking.log_metric("m", float(step), step=step)
            tracking.flush()
        assert len(_history(reader, run.info.run_id, "m")) == 100

    def test_a_store_that_stays_away_is_given_up(
        self, reader: TrackingClient, batches: Batches
    ) -> None:
        buffering.configure(retry_timeout=0.3)
        batches.failures = [StoreUnavailableError("down")] * 1000
        run = tracking.start_run(buffered=True)
        for step in range(10):
            tracking.log_metric("m", float(step), step=step)
        with pytest.raises(StoreUnavailableError, match="down") as caught:
            tracking.flush()
        assert any("10 metrics" in note for note in caught.value.__notes__)
        batches.failures.clear()
        tracking.log_metric("after", 1.0)
        tracking.end_run()  # the failure was raised by flush already: not again
        ended = reader.get_run(run.info.run_id)
        assert ended.data.metrics == {"after": 1.0}
        # Points were lost, so the run does not claim to have FINISHED.
        assert ended.info.status is RunStatus.FAILED
        assert "could not be written" in ended.data.tags["trackflow.failureReason"]


# -- against a real server ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``trackflow server`` on a fixed port and SQLite file; stop and start it at will."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_uri = f"sqlite:///{workdir / 'server.db'}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        script = Path(sys.executable).with_name("trackflow")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "tracking.cli"]
        self.starts += 1
        log = open(self.workdir / f"server-{self.starts}.log", "wb")  # noqa: SIM115
        with log:
            self.process = subprocess.Popen(
                [
                    *command,
                    "server",
                    "--backend-store-uri",
                    self.db_uri,
                    "--artifacts-destination",
                    str(self.workdir / "artifacts"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.log()
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server did not come up:\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as a deployment restarting the server would send."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)

    def log(self) -> str:
        return (self.workdir / f"server-{self.starts}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server process for the module's cases that do not stop it."""
    process = ServerProcess(tmp_path_factory.mktemp("buffering-server"))
    process.start()
    yield process
    process.stop()


def _point_fluent_at(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_HTTP_MAX_RETRIES", "1")  # the buffer does the waiting
    reset_settings()
    fluent._reset_for_tests()
    clear_store_cache()
    tracking.set_tracking_uri(url)


@pytest.fixture
def server(
    shared_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServerProcess]:
    """The shared server; the fluent API points at it."""
    _point_fluent_at(shared_server.url, monkeypatch)
    yield shared_server
    fluent._reset_for_tests()
    clear_store_cache()


@pytest.fixture
def own_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """A server process of the test's own (to stop and restart); the fluent API points at it."""
    process = ServerProcess(tmp_path)
    process.start()
    _point_fluent_at(process.url, monkeypatch)
    yield process
    fluent._reset_for_tests()
    clear_store_cache()
    process.stop()


class TestAgainstAServer:
    def test_everything_arrives_after_flush(self, server: ServerProcess) -> None:
        reader = TrackingClient(server.url)
        with tracking.start_run(buffered=True) as run:
            started = time.perf_counter()
            for step in range(2000):
                tracking.log_metric("loss", float(step), step=step)
            tracking.log_params({f"p{i}": i for i in range(120)})
            tracking.set_tag("stage", "dev")
            elapsed = time.perf_counter() - started
            tracking.flush()
            assert len(reader.get_metric_history(run.info.run_id, "loss")) == 2000
            assert len(reader.get_run(run.info.run_id).data.params) == 120
        # Not a benchmark, a sanity bound: 2000 HTTP round trips would take far longer.
        assert elapsed < 2.0
        assert reader.get_run(run.info.run_id).info.status is RunStatus.FINISHED

    def test_a_rejected_param_surfaces_at_end_run(self, server: ServerProcess) -> None:
        reader = TrackingClient(server.url)
        run = tracking.start_run(buffered=True)
        reader.log_param(run.info.run_id, "lr", "0.1")
        tracking.log_param("lr", "0.3")
        tracking.log_metric("m", 1.0)
        with pytest.raises(InvalidParameterError, match=r"lr.*0\.3"):
            tracking.end_run()
        final = reader.get_run(run.info.run_id)
        assert final.info.status is RunStatus.FAILED
        assert final.data.metrics == {"m": 1.0} and final.data.params == {"lr": "0.1"}

    @pytest.mark.slow
    def test_server_restart_in_the_middle(self, own_server: ServerProcess) -> None:
        server = own_server
        steps = iter(range(1_000_000))

        def log_some(n: int) -> None:
            for _ in range(n):
                step = next(steps)
                tracking.log_metric("loss", step / 7, step=step)
                if step % 100 == 0:
                    tracking.log_param(f"p{step}", step)
                    tracking.set_tag("last", step)

        with tracking.start_run(buffered=True) as run:
            run_id = run.info.run_id
            log_some(1500)
            server.stop()  # the sender may be in the middle of a batch
            log_some(2500)  # calls keep returning while the server is away
            time.sleep(1.5)  # long enough for the sender to fail and back off
            assert buffering.get_buffer().pending_count() > 0  # held, not dropped
            log_some(1000)
            server.start()  # same port, same database
            log_some(1000)
            tracking.flush()
        reader = TrackingClient(server.url)
        history = reader.get_metric_history(run_id, "loss")
        assert [m.step for m in history] == list(range(6000))  # each point once
        final = reader.get_run(run_id)
        assert len(final.data.params) == 60
        assert final.data.tags["last"] == "5900"
        assert final.info.status is RunStatus.FINISHED
