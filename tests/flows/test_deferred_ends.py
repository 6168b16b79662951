"""Against a server a task run's end is deferred (``RestTrackingStore.deferring``): the
hook sends nothing and waits for nothing; the end goes ahead of the next task run's
start, or from the background, and the flow run's end delivers what is left *before*
it ends the flow run's run. Here the background sender is held back (a linger of ten
minutes), so only those two paths can deliver."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from _prefect_support import flow_tree
from prefect import flow
from prefect.context import FlowRunContext

import tracking
from flows import decorators, tracked_flow, tracked_task
from tracking import RunStatus, TrackingClient
from tracking.connection import StoreConfig
from tracking.pipelines import ATTEMPT_TAG, FAILURE_REASON_TAG, attempts
from tracking.store import rest_batch
from tracking.store.rest import RestTrackingStore

pytestmark = pytest.mark.prefect

N = 5


@pytest.fixture(autouse=True)
def lingering(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deferred writes wait for company for ten minutes: no background send in a test."""
    monkeypatch.setattr(rest_batch, "DEFAULT_LINGER", 600.0)


def _flow_run_id() -> str:
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    return str(ctx.flow_run.id)


@tracked_task
def step(x: int) -> int:
    return x


@tracked_flow
def steps() -> str:
    for i in range(N):
        step(i)
    return _flow_run_id()


_tries: dict[str, int] = {}


@tracked_task(retries=1, retry_delay_seconds=0)
def flaky(key: str) -> int:
    _tries[key] = _tries.get(key, 0) + 1
    if _tries[key] == 1:
        raise RuntimeError("first try fails")
    return _tries[key]


@tracked_flow
def flaky_flow(key: str) -> str:
    flaky(key)
    return _flow_run_id()


@tracked_task
def self_deleting() -> None:
    active = tracking.active_run()
    assert active is not None
    TrackingClient().delete_run(active.info.run_id)


@tracked_flow
def deleting_flow() -> str:
    self_deleting()
    step(1)
    return _flow_run_id()


@flow
def untracked_flow() -> str:
    step(1)
    return _flow_run_id()


class _Requests:
    """HTTP requests the flows' own stores send (an httpx event hook on each)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._lock = threading.Lock()
        made = StoreConfig.client

        def client(config: StoreConfig, **kwargs: Any) -> Any:
            real: TrackingClient = made(config, **kwargs)
            assert isinstance(real.store, RestTrackingStore)
            real.store.http.client.event_hooks["request"].append(self._seen)
            return real

        monkeypatch.setattr(StoreConfig, "client", client)

    def _seen(self, request: Any) -> None:
        with self._lock:
            self.count += 1


class TestDeferredTaskEnds:
    def test_every_task_run_ends_before_the_flow_run(self, served: TrackingClient) -> None:
        parent, runs = flow_tree(served, steps())
        assert parent.info.status is RunStatus.FINISHED
        assert len(runs) == N
        for run in runs:
            # Not closed by the flow run's end as a straggler (which gives a reason).
            assert run.info.status is RunStatus.FINISHED, run.info
            assert FAILURE_REASON_TAG not in run.data.tags
            assert run.info.end_time is not None and parent.info.end_time is not None
            assert run.info.end_time <= parent.info.end_time

    def test_the_end_hook_sends_nothing(
        self, served: TrackingClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        requests = _Requests(monkeypatch)
        in_ends: list[int] = []
        end = decorators._TaskCall.end

        def counted(call: decorators._TaskCall, exc: BaseException | None) -> None:
            before = requests.count
            end(call, exc)
            in_ends.append(requests.count - before)

        monkeypatch.setattr(decorators._TaskCall, "end", counted)
        parent, runs = flow_tree(served, steps())
        assert in_ends == [0] * N
        assert parent.info.status is RunStatus.FINISHED
        assert {run.info.status for run in runs} == {RunStatus.FINISHED}

    def test_a_task_run_without_its_flow_run_here_ends_at_once(
        self, served: TrackingClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Nothing in this process ends the flow run's run (it is not tracked here, as
        # in a task runner's own process): nothing would deliver a deferred end.
        requests = _Requests(monkeypatch)
        in_ends: list[int] = []
        end = decorators._TaskCall.end

        def counted(call: decorators._TaskCall, exc: BaseException | None) -> None:
            before = requests.count
            end(call, exc)
            in_ends.append(requests.count - before)

        monkeypatch.setattr(decorators._TaskCall, "end", counted)
        flow_run_id = untracked_flow()
        assert len(in_ends) == 1 and in_ends[0] >= 1
        _, (run,) = flow_tree(served, flow_run_id)
        assert run.info.status is RunStatus.FINISHED

    def test_a_retry_sees_its_deferred_failure(self, served: TrackingClient) -> None:
        parent, (run,) = flow_tree(served, flaky_flow("deferred-retry"))
        assert parent.info.status is RunStatus.FINISHED
        assert run.info.status is RunStatus.FINISHED
        assert run.data.tags[ATTEMPT_TAG] == "2"
        assert FAILURE_REASON_TAG not in run.data.tags
        history = attempts(run)
        assert [(a["attempt"], a["status"]) for a in history] == [
            (1, "FAILED"),
            (2, "FINISHED"),
        ]

    def test_a_refused_task_end_is_reported_not_dropped(
        self, served: TrackingClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="flows"):
            flow_run_id = deleting_flow()
        parent, runs = flow_tree(served, flow_run_id)
        # The flow run's end stumbles over the deleted run too (closing it as a
        # straggler): end it here, or the session's reaper tests would find it.
        served.set_terminated(parent.info.run_id, RunStatus.KILLED)
        named = {r.info.run_name: r for r in runs}
        gone = named["self_deleting"].info.run_id
        # The task run's own warning, as when its hook sent the end itself.
        said = [r.getMessage() for r in caplog.records if r.name == "flows"]
        refused = [m for m in said if "tracking task self_deleting" in m]
        assert len(refused) == 1, said
        assert f"The run {gone} must be in the 'active' state" in refused[0]
        # The other task run's end, deferred with it, went in.
        assert named["step"].info.status is RunStatus.FINISHED
