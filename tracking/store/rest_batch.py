"""Writes to a tracking server from many threads, coalesced (group commit).

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

Only idempotent writes are coalesced (run creation with a client-chosen id,
run updates, tags and params), so a batch the server could not finish (it
answers 503 while its database restarts) is sent again whole. A server
without the batch endpoint (an older trackflow, 404) turns coalescing off for
the store; each write then goes on its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tracking.errors import StoreError

__all__ = ["MAX_BATCH_CALLS", "BatchCall", "Coalescer"]

#: The most writes one batch request carries (the server's limit too).
MAX_BATCH_CALLS = 100


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


class Coalescer:
    """Group commit of writes: ``call(name, body)`` returns the write's answer.

    ``send_one(call)`` sends one write as it always went (its own endpoint) and
    returns its answer; ``send_many(calls)`` sends several in one request and sets
    each call's ``answer`` or ``error`` (raising for a failure of the whole request,
    which then is every call's error).
    """

    def __init__(
        self,
        send_one: Callable[[BatchCall], Any],
        send_many: Callable[[Sequence[BatchCall]], None],
        max_batch: int = MAX_BATCH_CALLS,
    ) -> None:
        self._send_one = send_one
        self._send_many = send_many
        self._max_batch = max_batch
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._queue: list[BatchCall] = []
        self._busy = False

    def call(self, name: str, body: dict[str, Any]) -> Any:
        """Send the write (alone, or with others that queued meanwhile); its answer."""
        if self._pid != os.getpid():  # a forked child: the parent's queue is not its own
            self._reset()
        call = BatchCall(name, body)
        with self._lock:
            if self._busy:
                self._queue.append(call)
                lead = None
            else:
                self._busy = True
                lead = [call]
        if lead is None:
            call.done.wait()
            lead = call.lead  # woken to send a batch (its own call first), or answered
        if lead is not None:
            try:
                self._send(lead)
            finally:
                self._hand_on(lead, call)
        if call.error is not None:
            raise call.error
        return call.answer

    def _send(self, calls: list[BatchCall]) -> None:
        try:
            if len(calls) == 1:
                calls[0].answer = self._send_one(calls[0])
            else:
                self._send_many(calls)
        except BaseException as exc:
            # An interrupt of the sending thread is that thread's alone: the others
            # get a StoreError, not its KeyboardInterrupt.
            error = (
                exc
                if isinstance(exc, Exception)
                else StoreError(
                    f"the write was not sent: its sender was interrupted ({type(exc).__name__})"
                )
            )
            for one in calls:
                if one.answer is None and one.error is None:
                    one.error = error
            if error is not exc:
                raise

    def _hand_on(self, sent: list[BatchCall], own: BatchCall) -> None:
        """Wake the callers of ``sent``; the first queued call (if any) sends the next batch."""
        with self._lock:
            queued = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            if not queued:
                self._busy = False
        for one in sent:
            if one is not own:
                one.done.set()
        if queued:
            queued[0].lead = queued
            queued[0].done.set()
