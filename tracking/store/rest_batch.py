"""Writes to a tracking server from many threads, coalesced (group commit), and
writes whose caller does not wait (deferred).

A pipeline's task runner calls the server from many threads at once: a
``.map()`` over 1,000 items starts and ends 1,000 runs in bursts. Sent one
request each, every run pays a request's whole cost on both sides (HTTP,
routing, validation, a worker-thread hop, a transaction's commit). A
:class:`Coalescer` sends a write at once when nothing else is on the wire,
exactly as before; the writes that arrive while one is on the wire queue up,
and the first of them, when the wire is free, sends them all in one request
to ``POST /api/2.0/trackflow/batch``. Each caller still waits for, and gets,
its own answer or its own error: a caller sees nothing of the coalescing but
fewer requests.

A **deferred** write (:meth:`Coalescer.defer`: an orchestrator's step that
ended, whose caller needs no answer) is queued and its caller goes on at once.
It travels ahead of the next write anyone sends (in the same request), or, if
none comes within ``linger`` seconds, a background thread sends it. Deferred
writes keep their order, and go before any later call of the store, so the
process reads its own writes. :meth:`Coalescer.flush` delivers them and waits:
a deferred write the server refused is raised there
(:class:`DeferredWriteError`), never dropped; one the server could not be
reached for stays queued and is tried again (with a growing pause), and at
the process's exit.

Only idempotent writes are coalesced (run creation with a client-chosen id,
run updates, tags and params), so a batch the server could not finish (it
answers 503 while its database restarts) is sent again whole. A server
without the batch endpoint (an older trackflow, 404) turns coalescing off for
the store; each write then goes on its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracking.errors import RequestLimitExceededError, StoreError, StoreUnavailableError

__all__ = ["DEFAULT_LINGER", "MAX_BATCH_CALLS", "BatchCall", "Coalescer", "DeferredWriteError"]

#: The most writes one batch request carries (the server's limit too).
MAX_BATCH_CALLS = 100
#: Seconds a deferred write waits for another write to travel with: more than the
#: gap between two task runs of a flow (~3 ms), little for anyone watching the run.
DEFAULT_LINGER = 0.05
#: Seconds the background sender pauses after the server could not be reached,
#: by consecutive failure (the last one repeats).
_RETRY_PAUSES = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: Seconds an idle background sender lives on before its thread ends.
_IDLE_S = 30.0
#: Errors after which a deferred write is sent again later rather than reported.
_NOT_DELIVERED = (StoreUnavailableError, RequestLimitExceededError)

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class BatchCall:
    """One write: ``name`` (``runs/create``, ``runs/update``, ``runs/log-batch``) and its
    body; the sender sets ``answer`` or ``error``."""

    name: str
    body: dict[str, Any]
    answer: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    #: Set on the first call of a queued batch: its thread sends the batch.
    lead: list[BatchCall] | None = None
    #: When a deferred write was queued (``time.monotonic()``); None when its caller waits.
    deferred_at: float | None = None
    #: Who hears of a deferred write's failure (else the next flush raises it).
    on_error: Callable[[BaseException], None] | None = None
    #: Whether ``on_error`` heard of it already (a write that waits is retried).
    reported: bool = False
    #: How the write asks to be sent (the sender's business, e.g. a longer retry
    #: budget); None for the sender's default. A request goes via the first of its
    #: calls that has one, so everything travelling with such a write gets it too.
    via: Any = None

    def describe(self) -> str:
        """``runs/update of run <id>``: which write, for an error message."""
        run_id = self.body.get("run_id") or self.body.get("run_uuid")
        return f"{self.name} of run {run_id}" if run_id else self.name


class DeferredWriteError(StoreError):
    """Deferred writes (see :meth:`Coalescer.defer`) that the server refused, each with
    its own error in :attr:`refused` (a run that is gone, a value over a limit)."""

    def __init__(self, refused: Sequence[BatchCall]) -> None:
        self.refused = list(refused)
        shown = "; ".join(
            f"{call.describe()}: {type(call.error).__name__}: {call.error}"
            for call in self.refused[:5]
        )
        more = f" (and {len(self.refused) - 5} more)" if len(self.refused) > 5 else ""
        super().__init__(
            f"{len(self.refused)} write(s) sent in the background were refused by the "
            f"tracking server: {shown}{more}"
        )


class _NotSent(StoreError):
    """The write was not sent: the thread sending its batch was interrupted."""


class Coalescer:
    """Group commit of writes: ``call(name, body)`` returns the write's answer;
    ``defer(name, body)`` queues a write nobody waits for (see the module docstring).

    ``send_one(call)`` sends one write as it always went (its own endpoint) and
    returns its answer; ``send_many(calls)`` sends several in one request and sets
    each call's ``answer`` or ``error`` (raising for a failure of the whole request,
    which then is every call's error). ``linger`` is how long a deferred write waits
    for company before the background thread sends it (default: :data:`DEFAULT_LINGER`
    as it is when the coalescer is made).
    """

    def __init__(
        self,
        send_one: Callable[[BatchCall], Any],
        send_many: Callable[[Sequence[BatchCall]], None],
        max_batch: int = MAX_BATCH_CALLS,
        linger: float | None = None,
    ) -> None:
        self._send_one = send_one
        self._send_many = send_many
        self._max_batch = max_batch
        self.linger = DEFAULT_LINGER if linger is None else linger
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        #: Callers waiting for writes to settle (flush); the background sender, apart:
        #: it is woken only when it sleeps with no deadline (see _send_in_background).
        self._cond = threading.Condition(self._lock)
        self._wake = threading.Condition(self._lock)
        self._sender_idle = False
        self._queue: list[BatchCall] = []
        self._busy = False
        #: Deferred writes not sent yet, oldest first; those on the wire.
        self._deferred: list[BatchCall] = []
        self._flight: set[BatchCall] = set()
        #: Deferred writes the server refused, for the next flush to raise.
        self._refused: list[BatchCall] = []
        #: Times deferred writes went back to the queue, the server unreachable.
        self._outages = 0
        self._failures = 0
        self._unreachable: BaseException | None = None
        self._retry_at = 0.0
        #: Threads in flush(): the background sender waits for nothing meanwhile.
        self._urgent = 0
        #: Threads in flush(via=...): they send the deferred writes themselves, and
        #: the background sender leaves them alone meanwhile.
        self._via_flushes = 0
        self._sender: threading.Thread | None = None

    def _same_process(self) -> None:
        if self._pid != os.getpid():  # a forked child: the parent's queues are not its own
            self._reset()

    @property
    def pending(self) -> int:
        """Deferred writes not delivered yet (queued, or on the wire)."""
        return len(self._deferred) + len(self._flight)

    # -- writes whose caller waits --------------------------------------------------

    def call(self, name: str, body: dict[str, Any], via: Any = None) -> Any:
        """Send the write (alone, or with others that queued meanwhile); its answer.
        ``via`` is the call's :attr:`BatchCall.via`."""
        self._same_process()
        call = BatchCall(name, body, via=via)
        with self._lock:
            if self._busy:
                self._queue.append(call)
                lead = None
            else:
                self._busy = True
                lead = [*self._take_deferred(), call]
        if lead is None:
            call.done.wait()
            lead = call.lead  # woken to send a batch (its own call last), or answered
        if lead is not None:
            try:
                self._send(lead)
            finally:
                self._hand_on(lead, call)
        if call.error is not None:
            raise call.error
        return call.answer

    # -- writes whose caller does not wait --------------------------------------------

    def defer(
        self,
        name: str,
        body: dict[str, Any],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Queue the write and return at once: it goes ahead of the next write sent, or
        within :attr:`linger` seconds from a background thread. If the server refuses
        it, ``on_error(error)`` is called (from the thread that sent it), else the next
        :meth:`flush` raises it; if the server cannot be reached, ``on_error`` hears of
        it the first time (else a warning is logged) and the write waits for the next
        try."""
        self._same_process()
        call = BatchCall(name, body, deferred_at=time.monotonic(), on_error=on_error)
        with self._lock:
            self._deferred.append(call)
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_in_background,
                    args=(self._pid,),
                    name="trackflow-deferred-writes",
                    daemon=True,
                )
                self._sender.start()
            elif self._sender_idle:
                self._wake.notify()
        _with_deferred_writes.add(self)

    def flush(self, *, report: bool = True, via: Any = None) -> None:
        """Deliver the deferred writes queued so far and wait for them (also for those
        another thread has on the wire).

        With ``via`` the writes this thread sends go so (see :attr:`BatchCall.via`),
        and writes another thread could not deliver are sent again at once rather
        than left for the background sender's next try: a caller with a longer retry
        budget waits out an outage, and what it sends next still goes after them.

        With ``report`` (the default) a write the server refused since the last flush
        (one deferred without ``on_error``) raises :class:`DeferredWriteError` (once),
        and a server that could not be reached
        :class:`~tracking.errors.StoreUnavailableError` (the writes stay queued: they
        are sent again later). Without it, this only makes sure they
        went before what the caller sends next (a read sees them).
        """
        self._same_process()
        if self._deferred or self._flight:
            self._deliver(report, via)
        if report and self._refused:
            with self._lock:
                refused, self._refused = self._refused, []
            if refused:
                raise DeferredWriteError(refused)

    def _deliver(self, report: bool, via: Any) -> None:
        with self._lock:
            watched = [*self._deferred, *self._flight]
            outages = self._outages
            self._urgent += 1
            if via is not None:
                self._via_flushes += 1
            else:
                self._wake.notify()
        #: Whether this thread sent them ``via`` already (an outage after that is final).
        sent_via = False
        try:
            while True:
                with self._lock:
                    if all(call.done.is_set() for call in watched):
                        return
                    if self._outages != outages and via is not None and not sent_via:
                        outages = self._outages  # another thread's try: ours, via, next
                    elif self._outages != outages:
                        if not report:
                            return
                        waiting = len(self._deferred) + len(self._flight)
                        raise StoreUnavailableError(
                            f"{waiting} write(s) sent in the background could not be "
                            f"delivered yet ({self._unreachable}); they are sent again later"
                        ) from self._unreachable
                    if self._busy or not self._deferred:
                        self._cond.wait()  # another thread is sending them
                        continue
                    self._busy = True
                    batch = self._take_deferred()
                    if via is not None:
                        sent_via = True
                        for call in batch:
                            call.via = call.via or via
                try:
                    self._send(batch)
                finally:
                    self._hand_on(batch, None)
        finally:
            with self._lock:
                self._urgent -= 1
                if via is not None:
                    self._via_flushes -= 1
                    if self._deferred and self._sender_idle:
                        self._wake.notify()

    def _send_in_background(self, pid: int) -> None:
        """The background sender: deferred writes nobody took along within ``linger``.
        It sleeps until the oldest one is due, and is woken only when it sleeps with no
        deadline (nothing queued, or another thread sending): a flow's task runs defer
        one write each, and waking this thread for each would take the GIL from them."""
        while True:
            with self._lock:
                idle_since = time.monotonic()
                while True:
                    if self._pid != pid:
                        return  # a forked child's copy of the thread's state
                    now = time.monotonic()
                    if self._deferred and not self._busy and not self._via_flushes:
                        first = self._deferred[0].deferred_at or now
                        due = now if self._urgent else max(first + self.linger, self._retry_at)
                        if due <= now:
                            break
                        self._wake.wait(due - now)
                    elif not self._deferred and not self._flight and now - idle_since > _IDLE_S:
                        self._sender = None
                        return
                    else:
                        self._sender_idle = True
                        self._wake.wait(_IDLE_S)
                        self._sender_idle = False
                self._busy = True
                batch = self._take_deferred()
            try:
                self._send(batch)
            except BaseException:  # only an interrupt of _send: the writes stay queued
                _log.debug("trackflow: background sender interrupted", exc_info=True)
            finally:
                self._hand_on(batch, None)

    # -- sending --------------------------------------------------------------------

    def _take_deferred(self) -> list[BatchCall]:
        """Every deferred write queued, now on the wire (the lock is held). In flight
        before out of the queue: :attr:`pending`, read without the lock, never misses it."""
        taken = self._deferred
        self._flight.update(taken)
        self._deferred = []
        return taken

    def _send(self, calls: list[BatchCall]) -> None:
        """Send ``calls`` in order, :data:`MAX_BATCH_CALLS` a request; a request that
        fails is the error of its calls and of those after it (not sent)."""
        for start in range(0, len(calls), self._max_batch):
            chunk = calls[start : start + self._max_batch]
            try:
                if len(chunk) == 1:
                    chunk[0].answer = self._send_one(chunk[0])
                else:
                    self._send_many(chunk)
            except BaseException as exc:
                # An interrupt of the sending thread is that thread's alone: the others
                # get a StoreError, not its KeyboardInterrupt.
                error = (
                    exc
                    if isinstance(exc, Exception)
                    else _NotSent(
                        f"the write was not sent: its sender was interrupted ({type(exc).__name__})"
                    )
                )
                for one in calls[start:]:
                    if one.answer is None and one.error is None:
                        one.error = error
                if error is not exc:
                    raise
                return

    def _hand_on(self, sent: list[BatchCall], own: BatchCall | None) -> None:
        """Settle the deferred writes of ``sent`` and wake its callers; the first queued
        call (if any) sends the next batch, with the deferred writes queued meanwhile."""
        with self._lock:
            unreachable, notices = self._settle(sent)
            queued = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            if queued:
                queued[0].lead = [*self._take_deferred(), *queued]
            else:
                self._busy = False
                if self._deferred and self._sender_idle:
                    self._wake.notify()
            self._cond.notify_all()
        for one in sent:
            if one is not own and one.deferred_at is None:
                one.done.set()
        if queued:
            queued[0].done.set()
        for one, error, final in notices:
            try:
                if one.on_error is not None:
                    one.on_error(error)
            except Exception:  # a listener's bug must not stop the sender
                _log.exception("trackflow: reporting a deferred write's failure failed")
            if final:  # a flush waiting for it returns once it is reported
                one.done.set()
        if unreachable is not None:
            _log.warning(
                "trackflow: writes sent in the background wait for the tracking server, "
                "which could not be reached (%s); they are sent again later",
                unreachable,
            )

    def _settle(
        self, sent: list[BatchCall]
    ) -> tuple[BaseException | None, list[tuple[BatchCall, BaseException, bool]]]:
        """The deferred writes of ``sent``: delivered, refused (to their ``on_error``,
        else kept for flush), or back in the queue when they did not reach the server
        (the lock is held). Returns the error to warn about (the first of an outage, if
        a write without ``on_error`` waits) and the failures to tell ``on_error``s of."""
        back: list[BatchCall] = []
        error: BaseException | None = None
        delivered = False
        unheard = False
        #: (write, error, whether it is settled): for its on_error.
        notices: list[tuple[BatchCall, BaseException, bool]] = []
        for one in sent:
            if one.deferred_at is None:
                continue
            if one.error is None:
                delivered = True
                one.done.set()
            elif isinstance(one.error, (_NotSent, *_NOT_DELIVERED)):
                error = error or one.error
                if one.on_error is None:
                    unheard = True
                elif not one.reported and not isinstance(one.error, _NotSent):
                    one.reported = True
                    notices.append((one, one.error, False))
                one.error = None
                back.append(one)
            elif one.on_error is not None:
                notices.append((one, one.error, True))
            else:
                self._refused.append(one)
                one.done.set()
        if back:  # queued again before out of flight: see _take_deferred
            self._deferred[:0] = back
        self._flight.difference_update(sent)
        if delivered and not back:
            self._failures = 0
        if not back or isinstance(error, _NotSent):
            return None, notices
        self._outages += 1
        self._failures += 1
        self._unreachable = error
        pause = _RETRY_PAUSES[min(self._failures, len(_RETRY_PAUSES)) - 1]
        self._retry_at = time.monotonic() + pause
        return (error if self._failures == 1 and unheard else None), notices


#: Coalescers that deferred writes in this process: delivered at its exit.
_with_deferred_writes: weakref.WeakSet[Coalescer] = weakref.WeakSet()


@atexit.register
def _deliver_at_exit() -> None:
    """The deferred writes still queued when the interpreter exits go now; what cannot
    be delivered is logged (nobody is left to raise to)."""
    for coalescer in list(_with_deferred_writes):
        if coalescer._pid != os.getpid():
            continue
        try:
            coalescer.flush()
        except StoreError as exc:
            _log.warning("trackflow: at exit, %s", exc)
