"""What tracking costs a task run in store calls (each one HTTP request against a
tracking server): its start, and its end; nothing per task run for the flow's sake.
Against a server the end is deferred and travels with the next task run's start: one
request per task run."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest
from prefect.context import FlowRunContext

from flows import tracked_flow, tracked_task
from tracking import TrackingClient
from tracking.connection import StoreConfig
from tracking.store import rest_batch
from tracking.store.rest import RestTrackingStore

pytestmark = pytest.mark.prefect

N = 20


class CountingStore:
    """A store that counts the calls made to it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value) or name.startswith("_"):
            return value

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.calls[name] += 1
            return value(*args, **kwargs)

        return counted


@tracked_task
def nothing(x: int) -> int:
    return x


@tracked_flow
def chain() -> str:
    for i in range(N):
        nothing(i)
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    return str(ctx.flow_run.id)


@tracked_flow
def empty() -> None:
    pass


def _calls(monkeypatch: pytest.MonkeyPatch, flow: Any) -> Counter[str]:
    stores: list[CountingStore] = []
    made = StoreConfig.client

    def client(self: StoreConfig, **kwargs: Any) -> Any:
        real: TrackingClient = made(self, **kwargs)
        store = CountingStore(real.store)
        stores.append(store)
        return TrackingClient.from_store(store, self.tracking_uri)  # type: ignore[arg-type]

    monkeypatch.setattr(StoreConfig, "client", client)
    flow()
    total: Counter[str] = Counter()
    for store in stores:
        total.update(store.calls)
    return total


def test_at_most_two_store_calls_per_task_run(
    embedded: TrackingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import _tracking

    base = _calls(monkeypatch, empty)
    _tracking.reset()
    calls = _calls(monkeypatch, chain)
    per_task = (sum(calls.values()) - sum(base.values())) / N
    assert per_task <= 2.0, (per_task, calls, base)


def _requests(monkeypatch: pytest.MonkeyPatch, flow: Any) -> int:
    """The HTTP requests the flows' stores send while ``flow`` runs."""
    sent: list[str] = []
    made = StoreConfig.client

    def client(self: StoreConfig, **kwargs: Any) -> Any:
        real: TrackingClient = made(self, **kwargs)
        assert isinstance(real.store, RestTrackingStore)
        real.store.http.client.event_hooks["request"].append(lambda r: sent.append(r.url.path))
        return real

    monkeypatch.setattr(StoreConfig, "client", client)
    flow()
    return len(sent)


def test_one_request_per_task_run_against_a_server(
    served: TrackingClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import _tracking

    # No background send: each end goes with the next start, the last at the flow's end.
    monkeypatch.setattr(rest_batch, "DEFAULT_LINGER", 600.0)
    base = _requests(monkeypatch, empty)
    _tracking.reset()
    per_task = (_requests(monkeypatch, chain) - base) / N
    assert 1 <= per_task <= 1 + 1.5 / N, per_task
