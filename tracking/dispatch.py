"""Tracking work done off an orchestrator's thread, in order, retried while it fails.

An orchestrator calls its listeners on its own threads: Airflow's scheduler
calls the DAG-run hooks from its single-threaded loop, inside its database
session; its API server from a request. A listener there must take
microseconds and touch nothing of the caller's, so it builds one plain value
(what it read from the object it was handed) and hands it to a
:class:`Dispatcher`; the dispatcher's own thread does the I/O::

    dispatcher = Dispatcher("trackflow-airflow", logger)
    dispatcher.submit("retrain/manual__2026-12-01", tracker_call, event)

Work runs in submission order on one daemon thread per process (so a
pipeline run's "started" is handled before its "ended"). A call that raises
is logged, naming the work and the cause, and tried again later with backoff
for up to ``retry_for`` seconds: a tracking store that is down for a while
catches up instead of losing the event. :meth:`Dispatcher.flush` waits until
everything submitted so far is done (tests, and ``atexit`` with a bound, so a
short-lived process such as ``dag.test()`` does not end with work queued).
A process forked from one with a dispatcher starts with an empty queue.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Dispatcher"]

_log = logging.getLogger("tracking.dispatch")


class Dispatcher:
    """One background thread running submitted calls in order (see the module docstring).

    ``retry_for`` bounds how long a failing call is tried again (0: once only);
    ``exit_timeout`` how long the interpreter's exit waits for queued work.
    """

    def __init__(
        self,
        name: str,
        logger: logging.Logger | None = None,
        *,
        retry_for: float = 600.0,
        first_backoff: float = 1.0,
        max_backoff: float = 60.0,
        exit_timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.retry_for = retry_for
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.exit_timeout = exit_timeout
        self._log = logger or _log
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        # (due, order, label, fn, args, first_try, backoff)
        self._heap: list[tuple[float, int, str, Callable[..., Any], tuple[Any, ...], float, float]]
        self._heap = []
        self._order = itertools.count()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def on_its_thread(self) -> bool:
        """Whether the caller is running on this dispatcher's thread (a submitted call)."""
        return threading.current_thread() is self._thread

    def submit(self, label: str, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)``; returns at once. ``label`` names the work in the log."""
        now = time.monotonic()
        with self._cond:
            heapq.heappush(
                self._heap, (now, next(self._order), label, fn, args, now, self.first_backoff)
            )
            self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call submitted so far has run (or given up); False on timeout.
        Calls waiting for a retry are run at once, and not tried again if they fail."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._heap = [(0.0, *item[1:]) for item in self._heap]
            heapq.heapify(self._heap)
            self._cond.notify_all()
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    @property
    def pending(self) -> int:
        """Calls submitted and not yet done (waiting retries included)."""
        with self._cond:
            return self._pending

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                due, order, label, fn, args, first, backoff = heapq.heappop(self._heap)
            retry = False
            try:
                fn(*args)
            except Exception as exc:
                elapsed = time.monotonic() - first
                retry = elapsed + backoff <= self.retry_for and due > 0
                self._log.error(
                    "trackflow: %s failed (%s: %s); %s",
                    label,
                    type(exc).__name__,
                    exc,
                    f"trying again in {backoff:.0f} s" if retry else "giving up on it",
                )
            with self._cond:
                if retry:
                    later = time.monotonic() + backoff
                    longer = min(backoff * 2, self.max_backoff)
                    heapq.heappush(self._heap, (later, order, label, fn, args, first, longer))
                else:
                    self._pending -= 1
                self._cond.notify_all()


_live: weakref.WeakSet[Dispatcher] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child has none of the parent's threads: its queue starts empty.
    for dispatcher in list(_live):
        dispatcher._reset()


def _at_exit() -> None:
    for dispatcher in list(_live):
        if dispatcher.pending and not dispatcher.flush(dispatcher.exit_timeout):
            dispatcher._log.error(
                "trackflow: %d tracking call(s) of %s still queued at exit were dropped",
                dispatcher.pending,
                dispatcher.name,
            )


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
