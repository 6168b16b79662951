"""The dispatcher listeners hand their I/O to: in order, off the caller's thread,
retried while it fails, flushed on demand, empty after a fork."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from tracking.dispatch import Dispatcher


class TestOrderAndThread:
    def test_calls_run_in_order_on_its_own_thread(self) -> None:
        dispatcher = Dispatcher("test")
        seen: list[tuple[int, int]] = []
        for n in range(50):
            dispatcher.submit(f"call {n}", lambda n=n: seen.append((n, threading.get_ident())))
        assert dispatcher.flush(10)
        assert [n for n, _ in seen] == list(range(50))
        assert {ident for _, ident in seen} != {threading.get_ident()}
        assert len({ident for _, ident in seen}) == 1
        assert dispatcher.pending == 0

    def test_submit_returns_while_a_call_is_slow(self) -> None:
        dispatcher = Dispatcher("test")
        gate = threading.Event()
        dispatcher.submit("slow", gate.wait)
        dispatcher.submit("after", lambda: None)
        assert dispatcher.pending == 2  # both queued; the caller was not held up
        assert not dispatcher.flush(0.2)
        gate.set()
        assert dispatcher.flush(10)


class TestRetry:
    def test_a_failing_call_is_tried_again_until_it_works(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        dispatcher = Dispatcher("test", first_backoff=0.05, max_backoff=0.1, retry_for=30)
        tries: list[float] = []

        def store_down_twice() -> None:
            tries.append(time.monotonic())
            if len(tries) < 3:
                raise ConnectionError("connection refused")

        with caplog.at_level(logging.ERROR, logger="tracking.dispatch"):
            dispatcher.submit("retrain/manual__1 success", store_down_twice)
            deadline = time.monotonic() + 10
            while len(tries) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert dispatcher.flush(10)
        assert len(tries) == 3
        messages = [r.getMessage() for r in caplog.records]
        assert len(messages) == 2
        assert (
            "retrain/manual__1 success failed (ConnectionError: connection refused)"
            in (messages[0])
        )
        assert "trying again" in messages[0]

    def test_it_gives_up_after_retry_for(self, caplog: pytest.LogCaptureFixture) -> None:
        dispatcher = Dispatcher("test", retry_for=0)
        calls: list[int] = []

        def broken() -> None:
            calls.append(1)
            raise ValueError("bad")

        with caplog.at_level(logging.ERROR, logger="tracking.dispatch"):
            dispatcher.submit("broken", broken)
            assert dispatcher.flush(10)
        assert calls == [1]
        assert "giving up" in caplog.records[-1].getMessage()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_empty() -> None:
    dispatcher = Dispatcher("test")
    gate = threading.Event()
    dispatcher.submit("held", gate.wait)
    pid = os.fork()
    if pid == 0:  # the child: the parent's queued call is not its own
        os._exit(0 if dispatcher.pending == 0 and dispatcher.flush(1) else 1)
    _, status = os.waitpid(pid, 0)
    gate.set()
    assert dispatcher.flush(10)
    assert os.waitstatus_to_exitcode(status) == 0
