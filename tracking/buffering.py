"""Buffered logging: fluent ``log_*`` calls return at once, one thread sends batches.

Opt in with ``TRACKFLOW_BUFFERED_LOGGING=true`` or ``start_run(buffered=True)``.
The fluent API then validates each ``log_metric``/``log_param``/``set_tag``
call (and their plural forms) *synchronously*, so a bad key or a value that is
too long still raises at the call, and hands the checked records to the
process's :class:`LogBuffer`. One daemon thread sends them with
``log_batch``: per run, coalesced into batches within the 1000 metrics /
100 params / 100 tags limits, every :attr:`LogBuffer.flush_interval` seconds
(0.1 by default) or as soon as a batch is full::

    with tracking.start_run(buffered=True):
        for step in range(10_000):
            tracking.log_metric("loss", loss(step), step=step)  # returns in microseconds
        tracking.flush()  # optional: end_run (the end of the with block) flushes too

What is guaranteed
------------------
* **Nothing is dropped silently.** :func:`flush` waits until everything logged
  before it has reached the store and raises what failed (the first error,
  with the others noted on it). Ending a run flushes that run and raises its
  failures; at interpreter exit the buffer is drained and failures are logged.
* **A run whose buffered data could not be written ends FAILED**, not
  FINISHED (KILLED stays KILLED), with a ``trackflow.failureReason`` tag, even
  when an earlier :func:`flush` raised the failure already; ``end_run`` raises
  a failure not raised before. When the run ends because an exception leaves
  its ``with`` block, that exception keeps propagating, with the buffering
  failure added as a note. If the store is still unreachable when the run
  ends, the run stays RUNNING there until ``reap_stale_runs`` marks it FAILED
  (its heartbeats stop with the process).
* **A store that is down is waited for.** Connection errors and ``503``s are
  retried with backoff until the store is back, for at most
  :attr:`LogBuffer.retry_timeout` seconds per outage (``TRACKFLOW_RETRY_TIMEOUT``,
  120 by default); then
  the pending data of that store is given up and the error surfaces at the
  next flush. Re-sending is safe: the store deduplicates metric points and
  ignores a param logged again with the same value.
* **A param that changes value raises at the call** when this process logged
  the other value; a conflict with a value logged elsewhere surfaces at the
  next flush, and only the conflicting params are lost: the rest of their
  batch is re-sent without them.
* Reads through the fluent API (``get_run``, ``search_runs``) and
  ``delete_tag`` wait for the pending writes first, so they see them.

The buffer holds at most :attr:`LogBuffer.max_pending` records; beyond that a
logging call waits for room (back-pressure instead of unbounded memory).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from tracking.entities import Metric, Param, RunTag
from tracking.errors import (
    InvalidParameterError,
    RequestLimitExceededError,
    StoreUnavailableError,
    TrackingError,
)
from tracking.settings import get_settings
from tracking.validation import MAX_BATCH_METRICS, MAX_BATCH_PARAMS, MAX_BATCH_TAGS

if TYPE_CHECKING:
    from tracking.client import TrackingClient

__all__ = [
    "THREAD_NAME",
    "LogBuffer",
    "add",
    "configure",
    "flush",
    "flush_run",
    "get_buffer",
    "wait",
]

THREAD_NAME = "trackflow-log-buffer"

_log = logging.getLogger(__name__)

# Errors that say the store is away, not that the data is wrong: wait and send again.
_TRANSIENT = (StoreUnavailableError, RequestLimitExceededError)

_RunKey = tuple[int, str]


class _Batch(NamedTuple):
    metrics: Sequence[Metric]
    params: Sequence[Param]
    tags: Sequence[RunTag]
    #: How many accepted records this batch settles (coalesced ones included).
    settles: int

    def describe(self) -> str:
        return f"{len(self.metrics)} metrics, {len(self.params)} params, {len(self.tags)} tags"


class _Pending:
    """What one run has waiting to be sent, and how much of it is settled."""

    __slots__ = (
        "accepted",
        "client",
        "coalesced",
        "lost",
        "metrics",
        "params",
        "run_id",
        "seen_params",
        "settled",
        "tags",
    )

    def __init__(self, client: TrackingClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.metrics: collections.deque[Metric] = collections.deque()
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        #: Every param value this process logged to the run, sent or not.
        self.seen_params: dict[str, str] = {}
        self.accepted = 0  # records handed to the buffer
        self.settled = 0  # records sent, failed, or merged into a later one
        self.coalesced = 0  # merged records waiting to be counted with the next batch
        #: Whether some record of the run could not be written (raised or not yet).
        self.lost = False

    def has_data(self) -> bool:
        return bool(self.metrics or self.params or self.tags)

    def full(self) -> bool:
        return (
            len(self.metrics) >= MAX_BATCH_METRICS
            or len(self.params) >= MAX_BATCH_PARAMS
            or len(self.tags) >= MAX_BATCH_TAGS
        )

    def take(self) -> _Batch:
        """Remove and return one batch within the limits, oldest records first."""
        metrics = [self.metrics.popleft() for _ in range(min(len(self.metrics), MAX_BATCH_METRICS))]
        params = [Param(k, v) for k, v in _pop_first(self.params, MAX_BATCH_PARAMS)]
        tags = [RunTag(k, v) for k, v in _pop_first(self.tags, MAX_BATCH_TAGS)]
        count = len(metrics) + len(params) + len(tags) + self.coalesced
        self.coalesced = 0
        return _Batch(metrics, params, tags, count)

    def take_all(self) -> _Batch:
        """Remove everything pending (to give it up)."""
        batch = _Batch(
            list(self.metrics),
            [Param(k, v) for k, v in self.params.items()],
            [RunTag(k, v) for k, v in self.tags.items()],
            len(self.metrics) + len(self.params) + len(self.tags) + self.coalesced,
        )
        self.metrics.clear()
        self.params.clear()
        self.tags.clear()
        self.coalesced = 0
        return batch


def _pop_first(items: dict[str, str], limit: int) -> list[tuple[str, str]]:
    if len(items) <= limit:
        taken = list(items.items())
        items.clear()
        return taken
    taken = []
    for key in list(items)[:limit]:
        taken.append((key, items.pop(key)))
    return taken


class LogBuffer:
    """Records waiting to be sent, and the one thread that sends them.

    ``flush_interval`` is how long records wait for company (seconds),
    ``retry_timeout`` how long an unreachable store is waited for before its
    pending data is given up, ``max_pending`` how many records may wait before
    logging calls block. The process's buffer is :func:`get_buffer`.
    """

    def __init__(
        self,
        *,
        flush_interval: float = 0.1,
        retry_timeout: float = 120.0,
        max_pending: int = 500_000,
    ) -> None:
        self.flush_interval = flush_interval
        self.retry_timeout = retry_timeout
        self.max_pending = max_pending
        self._cond = threading.Condition(threading.Lock())
        self._runs: dict[_RunKey, _Pending] = {}
        self._errors: dict[_RunKey, list[TrackingError]] = {}
        self._outages: dict[int, float] = {}  # id(client) -> when its store went away
        self._waiting = 0  # records accepted and not settled
        self._urgent = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the callers' side ------------------------------------------------------

    def add(
        self,
        client: TrackingClient,
        run_id: str,
        metrics: Iterable[Metric] = (),
        params: Iterable[Param] = (),
        tags: Iterable[RunTag] = (),
    ) -> None:
        """Queue validated records for ``run_id``; returns at once (unless the buffer is full).

        A param whose value differs from one this process logged to the run
        before raises InvalidParameterError here, and nothing of the call is queued.
        """
        metrics = list(metrics)
        params = list(params)
        tags = list(tags)
        key = (id(client), run_id)
        with self._cond:
            closed = self._stopping
        if closed:
            # The buffer was drained at exit: a straggler (a late atexit handler, a
            # daemon thread) writes directly, and sees its errors at once.
            client.store.log_batch(run_id, metrics, params, tags)
            return
        with self._cond:
            if self._waiting >= self.max_pending:
                self._urgent = True
                self._cond.notify_all()
                self._cond.wait_for(lambda: self._waiting < self.max_pending or self._stopping)
            pending = self._runs.get(key)
            if pending is None:
                pending = self._runs[key] = _Pending(client, run_id)
            seen = pending.seen_params
            fresh: dict[str, str] = {}
            for param_key, value in params:
                old = seen.get(param_key, fresh.get(param_key))
                if old is not None and old != value:
                    raise InvalidParameterError(
                        f"Changing param values is not allowed. Param with key={param_key!r} "
                        f"was already logged with value={old!r} for run ID={run_id!r}. "
                        f"Attempted logging new value {value!r}."
                    )
                if old is None:
                    fresh[param_key] = value
            seen.update(fresh)
            pending.params.update(fresh)
            pending.metrics.extend(metrics)
            for tag_key, value in tags:
                if tag_key in pending.tags:
                    pending.coalesced += 1  # the older value is overwritten, never sent
                pending.tags[tag_key] = value
            pending.accepted += len(metrics) + len(params) + len(tags)
            # A param logged again with its value is settled at once: the store has it.
            pending.settled += len(params) - len(fresh)
            was_idle = not self._waiting
            self._waiting += len(metrics) + len(fresh) + len(tags)
            if pending.full():
                self._urgent = True
                self._cond.notify_all()
            elif was_idle:
                self._cond.notify_all()  # the sender sleeps until there is work
            self._ensure_thread()

    def wait(self, client: TrackingClient | None = None, run_id: str | None = None) -> None:
        """Wait until what was queued before (for one run, or all) is settled; raise nothing."""
        with self._cond:
            if client is not None and run_id is not None:
                pending = self._runs.get((id(client), run_id))
                targets = [] if pending is None else [(pending, pending.accepted)]
            else:
                targets = [(p, p.accepted) for p in self._runs.values()]
            targets = [(p, n) for p, n in targets if p.settled < n]
            if not targets:
                return
            self._urgent = True
            self._ensure_thread()
            self._cond.notify_all()
            self._cond.wait_for(lambda: all(p.settled >= n for p, n in targets))

    def flush(self) -> None:
        """Send everything queued before this call; raise what failed since the last flush."""
        self.wait()
        with self._cond:
            failures = [error for errors in self._errors.values() for error in errors]
            self._errors.clear()
        _raise(failures)

    def flush_run(self, client: TrackingClient, run_id: str, *, forget: bool = False) -> bool:
        """Send what is queued for one run; raise its failures. Returns whether the run
        ever lost records, even ones whose failure an earlier flush raised already.

        ``forget`` (when the run ends) also drops what the buffer remembers of it.
        """
        self.wait(client, run_id)
        key = (id(client), run_id)
        with self._cond:
            failures = self._errors.pop(key, [])
            pending = self._runs.get(key)
            lost = pending is not None and pending.lost
            if forget and pending is not None and not pending.has_data():
                del self._runs[key]
        _raise(failures)
        return lost

    def pending_count(self) -> int:
        """How many records wait to be sent."""
        with self._cond:
            return self._waiting

    def close(self) -> None:
        """Drain the buffer (logging failures) and stop the thread: interpreter exit."""
        try:
            self.flush()
        except TrackingError:
            _log.exception("trackflow: buffered log records could not be written")
        with self._cond:
            self._stopping = True
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    # -- the sender thread ------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the sender unless it runs (called with the lock held)."""
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
            self._thread.start()
            _register_atexit()

    def _loop(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                if self._thread is not me:
                    return
                if not self._waiting and not self._stopping:
                    self._cond.wait()
                    continue
                if not self._urgent:
                    self._cond.wait_for(lambda: self._urgent or self._stopping, self.flush_interval)
                self._urgent = False
                work = [(p, p.take()) for p in list(self._runs.values()) if p.has_data()]
                # Full batches wait for nobody: come straight back if any remain.
                self._urgent = any(p.full() for p in self._runs.values())
            for pending, batch in work:
                try:
                    self._send(pending, batch)
                except BaseException:  # never let the sender die with records pending
                    _log.exception("trackflow: the log buffer's sender failed")
                finally:
                    self._settle(pending, batch.settles)

    def _settle(self, pending: _Pending, count: int) -> None:
        with self._cond:
            pending.settled += count
            self._waiting -= count
            self._cond.notify_all()

    def _fail(self, pending: _Pending, batch: _Batch, error: TrackingError) -> None:
        error.add_note(
            f"trackflow: raised by a buffered log_batch of run {pending.run_id}: "
            f"{batch.describe()} were not written"
        )
        with self._cond:
            pending.lost = True
            self._errors.setdefault((id(pending.client), pending.run_id), []).append(error)
            # A param that was not written does not bind later calls to its value.
            for key, value in batch.params:
                if pending.seen_params.get(key) == value:
                    del pending.seen_params[key]

    def _send(self, pending: _Pending, batch: _Batch) -> None:
        """Write one batch, waiting out an outage of the store; record what fails."""
        client_id = id(pending.client)
        delay = 0.5
        while True:
            try:
                pending.client.store.log_batch(
                    pending.run_id, batch.metrics, batch.params, batch.tags
                )
            except _TRANSIENT as exc:
                now = time.monotonic()
                with self._cond:
                    since = self._outages.setdefault(client_id, now)
                if now - since < self.retry_timeout:
                    time.sleep(min(delay, max(0.0, since + self.retry_timeout - now)))
                    delay = min(delay * 2, 5.0)
                    continue
                self._fail(pending, batch, exc)
                self._give_up(pending.client, exc)
                return
            except InvalidParameterError as exc:
                if batch.params and len(batch.metrics) + len(batch.params) + len(batch.tags) > 1:
                    # A param that conflicts with one logged elsewhere sinks its whole
                    # batch: send the rest without params, then each param alone.
                    self._split(pending, batch)
                    return
                self._fail(pending, batch, exc)
                return
            except TrackingError as exc:
                self._fail(pending, batch, exc)
                return
            except Exception as exc:  # a bug, not the data: still never lose it silently
                error = TrackingError(f"unexpected {type(exc).__name__} while sending: {exc}")
                error.__cause__ = exc
                self._fail(pending, batch, error)
                return
            with self._cond:
                self._outages.pop(client_id, None)
            return

    def _split(self, pending: _Pending, batch: _Batch) -> None:
        if batch.metrics or batch.tags:
            self._send(pending, _Batch(batch.metrics, (), batch.tags, 0))
        for param in batch.params:
            self._send(pending, _Batch((), (param,), (), 0))

    def _give_up(self, client: TrackingClient, cause: TrackingError) -> None:
        """The store stayed away too long: fail everything pending for it."""
        with self._cond:
            doomed = [
                (p, p.take_all())
                for p in self._runs.values()
                if p.client is client and p.has_data()
            ]
        for pending, batch in doomed:
            error = StoreUnavailableError(
                f"buffered records of run {pending.run_id} were not written: the tracking "
                f"store stayed unreachable for {self.retry_timeout:.0f}s ({cause})"
            )
            error.__cause__ = cause
            self._fail(pending, batch, error)
            self._settle(pending, batch.settles)


def _raise(failures: list[TrackingError]) -> None:
    if not failures:
        return
    first = failures[0]
    for other in failures[1:]:
        first.add_note(
            f"trackflow: another buffered write failed too: {type(other).__name__}: {other}"
        )
    raise first


# -- the process's buffer ---------------------------------------------------------

_lock = threading.Lock()
_buffer: LogBuffer | None = None
_atexit_registered = False


def get_buffer() -> LogBuffer:
    """The buffer of this process (created on first use)."""
    global _buffer
    if _buffer is None:
        with _lock:
            if _buffer is None:
                _buffer = LogBuffer(retry_timeout=get_settings().retry_timeout)
    return _buffer


def configure(
    *,
    flush_interval: float | None = None,
    retry_timeout: float | None = None,
    max_pending: int | None = None,
) -> None:
    """Tune the process's buffer (see :class:`LogBuffer`); None keeps a value."""
    buffer = get_buffer()
    if flush_interval is not None:
        buffer.flush_interval = flush_interval
    if retry_timeout is not None:
        buffer.retry_timeout = retry_timeout
    if max_pending is not None:
        buffer.max_pending = max_pending


def add(
    client: TrackingClient,
    run_id: str,
    metrics: Iterable[Metric] = (),
    params: Iterable[Param] = (),
    tags: Iterable[RunTag] = (),
) -> None:
    """Queue validated records on the process's buffer (see :meth:`LogBuffer.add`)."""
    get_buffer().add(client, run_id, metrics, params, tags)


def flush() -> None:
    """Send every buffered record of this process; raise what failed (a no-op if none)."""
    if _buffer is not None:
        _buffer.flush()


def flush_run(client: TrackingClient, run_id: str, *, forget: bool = False) -> bool:
    """Send the buffered records of one run; raise what failed for it. Returns whether
    the run ever lost records."""
    if _buffer is not None:
        return _buffer.flush_run(client, run_id, forget=forget)
    return False


def wait(client: TrackingClient | None = None, run_id: str | None = None) -> None:
    """Wait until buffered records (of one run, or all) are settled, raising nothing."""
    if _buffer is not None:
        _buffer.wait(client, run_id)


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        # Registered after tracking._shutdown's handler (a run is started first), so it
        # runs before it: the buffer is drained before the open runs are ended.
        atexit.register(_at_exit)


def _at_exit() -> None:
    if _buffer is not None:
        _buffer.close()


def _reset_for_tests() -> None:
    """Drop the process's buffer and everything in it, without sending (tests only)."""
    global _buffer
    with _lock:
        old, _buffer = _buffer, None
    if old is not None:
        with old._cond:
            old._stopping = True
            old._thread = None
            old._cond.notify_all()


def _after_fork_in_child() -> None:
    global _buffer, _lock
    # The parent sends what it queued; the child starts empty, with no thread yet.
    _lock = threading.Lock()
    _buffer = None


os.register_at_fork(after_in_child=_after_fork_in_child)
