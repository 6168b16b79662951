"""Deferred writes of the REST store (``RestTrackingStore.deferring``, the coalescer's
``defer``/``flush``), against a real ``trackflow server`` process: the caller does not
wait, the write travels ahead of the next one or from the background, the process reads
its own writes, a refused write is raised by ``flush`` (once), an unreachable server
keeps the writes queued until it is back, and the process's exit delivers the rest."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _server_support import ServerProcess, start_server

from tracking import RunStatus, TrackingClient
from tracking.entities import RunTag
from tracking.errors import InvalidStateError, RunNotFoundError, StoreUnavailableError
from tracking.store import rest_batch
from tracking.store.rest import DeferredWriteError, RestTrackingStore

pytestmark = pytest.mark.timeout(300)

#: Long enough that the background sender never goes first in a test that says so.
NEVER = 600.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with start_server(tmp_path_factory.mktemp("deferred-server")) as process:
        yield process


class _Counting:
    """The requests a store sends, by path (an httpx event hook on its real client)."""

    def __init__(self, store: RestTrackingStore) -> None:
        self.paths: Counter[str] = Counter()
        self._lock = threading.Lock()
        store.http.client.event_hooks["request"].append(self._seen)

    def _seen(self, request: httpx.Request) -> None:
        with self._lock:
            self.paths[request.url.path.rsplit("/api/2.0/", 1)[-1]] += 1

    @property
    def total(self) -> int:
        return sum(self.paths.values())


def _store(url: str, linger: float, **kwargs: object) -> tuple[TrackingClient, RestTrackingStore]:
    store = RestTrackingStore(url, **kwargs)  # type: ignore[arg-type]
    store._writes.linger = linger
    return TrackingClient.from_store(store, url), store


def _deferring(client: TrackingClient, store: RestTrackingStore, run_id: str) -> TrackingClient:
    view = store.deferring(client.get_run(run_id).info)
    return TrackingClient.from_store(view, client.tracking_uri)


class TestDeferred:
    def test_the_caller_does_not_wait_and_flush_delivers(self, server: ServerProcess) -> None:
        client, store = _store(server.url, NEVER)
        experiment_id = client.create_experiment("deferred-flush")
        run = client.create_run(experiment_id)
        view = _deferring(client, store, run.info.run_id)
        counting = _Counting(store)

        info = view.set_terminated(run.info.run_id, RunStatus.FAILED)
        view.set_tag(run.info.run_id, "why", "a reason")

        # Answered from what the write will make, with nothing sent yet.
        assert info.status is RunStatus.FAILED and info.end_time is not None
        assert info.experiment_id == experiment_id
        assert counting.total == 0 and store._writes.pending == 2
        other = TrackingClient(server.url)  # another store: no read of ours flushes
        assert other.get_run(run.info.run_id).info.status is RunStatus.RUNNING

        store.flush()
        assert counting.paths == Counter({"trackflow/batch": 1})
        found = other.get_run(run.info.run_id)
        assert found.info.status is RunStatus.FAILED
        assert found.info.end_time == info.end_time
        assert found.data.tags["why"] == "a reason"
        assert store._writes.pending == 0

    def test_they_travel_ahead_of_the_next_write(self, server: ServerProcess) -> None:
        client, store = _store(server.url, NEVER)
        experiment_id = client.create_experiment("deferred-ahead")
        first = client.create_run(experiment_id)
        _deferring(client, store, first.info.run_id).set_terminated(first.info.run_id)
        counting = _Counting(store)

        second = client.create_run(experiment_id)  # the caller waits for this one

        assert counting.paths == Counter({"trackflow/batch": 1})
        other = TrackingClient(server.url)
        assert other.get_run(first.info.run_id).info.status is RunStatus.FINISHED
        assert second.info.status is RunStatus.RUNNING

    def test_the_process_reads_its_own_writes(self, server: ServerProcess) -> None:
        client, store = _store(server.url, NEVER)
        run = client.create_run(client.create_experiment("deferred-read"))
        _deferring(client, store, run.info.run_id).set_terminated(run.info.run_id)

        assert client.get_run(run.info.run_id).info.status is RunStatus.FINISHED
        assert store._writes.pending == 0

    def test_the_background_sends_them_when_nothing_else_goes(self, server: ServerProcess) -> None:
        client, store = _store(server.url, 0.05)
        run = client.create_run(client.create_experiment("deferred-background"))
        _deferring(client, store, run.info.run_id).set_terminated(run.info.run_id)

        other = TrackingClient(server.url)
        deadline = time.monotonic() + 30
        while other.get_run(run.info.run_id).info.status is not RunStatus.FINISHED:
            assert time.monotonic() < deadline, "the deferred end never arrived"
            time.sleep(0.05)
        assert store._writes.pending == 0

    def test_only_the_views_run_is_deferred(self, server: ServerProcess) -> None:
        client, store = _store(server.url, NEVER)
        experiment_id = client.create_experiment("deferred-scope")
        mine, other = client.create_run(experiment_id), client.create_run(experiment_id)
        view = _deferring(client, store, mine.info.run_id)

        view.set_terminated(other.info.run_id)  # sent, and waited for
        view.log_param(mine.info.run_id, "p", "1")  # a param's conflict is the caller's

        assert store._writes.pending == 0
        fresh = TrackingClient(server.url)
        assert fresh.get_run(other.info.run_id).info.status is RunStatus.FINISHED
        assert fresh.get_run(mine.info.run_id).data.params == {"p": "1"}

    def test_a_refused_write_is_raised_by_flush_once(self, server: ServerProcess) -> None:
        client, store = _store(server.url, NEVER)
        experiment_id = client.create_experiment("deferred-refused")
        good, gone = client.create_run(experiment_id), client.create_run(experiment_id)
        missing = dataclasses.replace(good.info, run_id="f" * 32)
        client.delete_run(gone.info.run_id)

        store.deferring(good.info).update_run_info(good.info.run_id, RunStatus.FINISHED, 1, None)
        store.deferring(missing).update_run_info(missing.run_id, RunStatus.FINISHED, 1, None)
        store.deferring(gone.info).log_batch(gone.info.run_id, tags=[RunTag("k", "v")])
        store.deferring(gone.info).update_run_info(gone.info.run_id, RunStatus.KILLED, 1, None)

        with pytest.raises(DeferredWriteError) as raised:
            store.flush()
        errors = {call.describe(): call.error for call in raised.value.refused}
        assert isinstance(errors[f"runs/update of run {missing.run_id}"], RunNotFoundError)
        assert isinstance(errors[f"runs/update of run {gone.info.run_id}"], InvalidStateError)
        assert f"runs/update of run {missing.run_id}" in str(raised.value)
        # The write the server took went in all the same; the error is raised once.
        assert client.get_run(good.info.run_id).info.status is RunStatus.FINISHED
        store.flush()

    def test_on_error_hears_of_a_refused_write_instead_of_flush(
        self, server: ServerProcess
    ) -> None:
        client, store = _store(server.url, NEVER)
        run = client.create_run(client.create_experiment("deferred-on-error"))
        missing = dataclasses.replace(run.info, run_id="d" * 32)
        heard: list[BaseException] = []
        view = store.deferring(missing, on_error=heard.append)
        view.update_run_info(missing.run_id, RunStatus.FINISHED, 1, None)

        store.flush()  # nothing to raise: it was reported where it was asked to be
        assert len(heard) == 1 and isinstance(heard[0], RunNotFoundError), heard
        assert "d" * 32 in str(heard[0])

    def test_a_store_closed_with_refused_writes_says_so(self, server: ServerProcess) -> None:
        client, store = _store(server.url, NEVER)
        run = client.create_run(client.create_experiment("deferred-close"))
        missing = dataclasses.replace(run.info, run_id="e" * 32)
        store.deferring(missing).update_run_info(missing.run_id, RunStatus.FINISHED, 1, None)

        with pytest.raises(DeferredWriteError, match="e" * 32):
            store.close()


class TestServerAway:
    def test_the_writes_wait_for_the_server_to_come_back(self, tmp_path: Path) -> None:
        with start_server(tmp_path / "server") as first:
            url, port = first.url, int(first.url.rsplit(":", 1)[1])
            client, store = _store(url, 0.05, max_retries=1, retry_timeout=1.0, backoff=0.01)
            run = client.create_run(client.create_experiment("deferred-outage"))
        # The server is down: the end is queued, tried in the background, kept.
        heard: list[BaseException] = []
        store.deferring(run.info).update_run_info(run.info.run_id, RunStatus.FINISHED, 1, None)
        store.deferring(run.info, on_error=heard.append).set_tag(
            run.info.run_id, RunTag("after", "outage")
        )
        with pytest.raises(StoreUnavailableError, match="sent again later"):
            store.flush()
        with pytest.raises(StoreUnavailableError):
            store.flush()
        assert store._writes.pending == 2
        # Told of the outage once, however often the write is tried.
        assert len(heard) == 1 and isinstance(heard[0], StoreUnavailableError), heard

        with start_server(tmp_path / "server", port=port) as again:
            assert again.url == url
            store.flush()
            found = TrackingClient(url).get_run(run.info.run_id)
            assert found.info.status is RunStatus.FINISHED
            assert found.data.tags["after"] == "outage"

    def test_what_is_left_at_exit_is_delivered(self, server: ServerProcess, tmp_path: Path) -> None:
        client = TrackingClient(server.url)
        run = client.create_run(client.create_experiment("deferred-exit"))
        script = textwrap.dedent(
            f"""
            from tracking import RunStatus
            from tracking.store.rest import RestTrackingStore

            store = RestTrackingStore({server.url!r})
            store._writes.linger = {NEVER}
            info = store.get_run({run.info.run_id!r}).info
            store.deferring(info).update_run_info(info.run_id, RunStatus.KILLED, 7, None)
            assert store._writes.pending == 1
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        found = client.get_run(run.info.run_id)
        assert found.info.status is RunStatus.KILLED
        assert found.info.end_time == 7


def test_the_default_linger_is_read_when_a_store_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rest_batch, "DEFAULT_LINGER", 3.5)
    assert RestTrackingStore("http://127.0.0.1:9")._writes.linger == 3.5


class TestPatientView:
    """``RestTrackingStore.patient``: the same store (its coalescer and deferred writes)
    with the full retry budget, for a pipeline step's own code, while the hooks' store
    gives up at once."""

    def test_it_rides_out_a_restart_the_store_gives_up_on(self, tmp_path: Path) -> None:
        with start_server(tmp_path / "server") as first:
            url, port = first.url, int(first.url.rsplit(":", 1)[1])
            client, store = _store(url, NEVER, max_retries=1, retry_timeout=1.0, backoff=0.01)
            experiment_id = client.create_experiment("patient-outage")
            ended, logged = client.create_run(experiment_id), client.create_run(experiment_id)
        patient = TrackingClient.from_store(store.patient(retry_timeout=60.0), url)
        # The hooks' store, with the server down: it gives up at once, direct or coalesced.
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            client.log_metric(logged.info.run_id, "fast", 1.0)
        with pytest.raises(StoreUnavailableError):
            client.set_tag(logged.info.run_id, "fast", "no")
        assert time.monotonic() - started < 3.0
        # A step's end deferred by the hooks' store before the user code's calls below.
        store.deferring(ended.info).update_run_info(ended.info.run_id, RunStatus.FINISHED, 1, None)

        results: dict[str, object] = {}

        def call(name: str, do: object) -> None:
            try:
                results[name] = do()  # type: ignore[operator]
            except BaseException as exc:
                results[name] = exc

        calls = {
            # A read: after the deferred end (read-your-writes across the views).
            "read": lambda: patient.get_run(ended.info.run_id).info.status,
            # A direct call and a coalesced write.
            "metric": lambda: patient.log_metric(logged.info.run_id, "m", 2.0),
            "tag": lambda: patient.set_tag(logged.info.run_id, "k", "v"),
        }
        threads = [threading.Thread(target=call, args=item) for item in calls.items()]
        for thread in threads:
            thread.start()
        time.sleep(1.5)  # past the hooks' store's budget, the calls still wait
        assert not results, results
        with start_server(tmp_path / "server", port=port) as again:
            assert again.url == url
            for thread in threads:
                thread.join(timeout=60)
            assert results == {"read": RunStatus.FINISHED, "metric": None, "tag": None}
            found = TrackingClient(url).get_run(logged.info.run_id)
            assert found.data.metrics == {"m": 2.0}
            assert found.data.tags["k"] == "v"
            assert store._writes.pending == 0
            # The hooks' store kept its own budget.
            assert store.http.max_retries == 1 and store.http.retry_timeout == 1.0
