"""The process-wide registry of runs the fluent API opened and has not ended yet.

Fluent runs live in context variables, which the exit and signal handlers
cannot see, and the heartbeat thread must know every open run of the process.
So each fluent run is also entered here, under a token of its own (the same
run id may be open twice, say resumed by two threads). Ending a run *claims*
its token first: whoever claims it writes the final status, so a run ended by
the SIGTERM handler is not ended a second time by the ``with`` block it sits
in.

Entries remember the process that opened them: after ``os.fork`` the child
inherits the parent's entries, and must neither heartbeat nor end them at its
exit (an explicit ``end_run`` in the child still does).
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from tracking.client import TrackingClient

__all__ = ["OpenRun", "add", "claim", "claim_all", "clear", "has_own_runs", "snapshot"]


class OpenRun(NamedTuple):
    """A run the fluent API opened: its id, the client that ends it, its process."""

    run_id: str
    client: TrackingClient
    pid: int


_tokens = itertools.count(1)
_runs: dict[int, OpenRun] = {}
# Reentrant: the SIGTERM handler runs on the main thread, possibly while that
# very thread is inside one of the functions below.
_lock = threading.RLock()


def add(run_id: str, client: TrackingClient) -> int:
    """Enter a run; returns the token that :func:`claim` takes."""
    token = next(_tokens)
    with _lock:
        _runs[token] = OpenRun(run_id, client, os.getpid())
    return token


def claim(token: int) -> bool:
    """Remove a run; True if it was still open (the caller must now end it)."""
    with _lock:
        return _runs.pop(token, None) is not None


def claim_all() -> list[OpenRun]:
    """Remove and return every run this process opened, newest first."""
    pid = os.getpid()
    with _lock:
        mine = [(token, run) for token, run in _runs.items() if run.pid == pid]
        for token, _ in mine:
            del _runs[token]
    return [run for _, run in reversed(mine)]


def snapshot() -> list[OpenRun]:
    """The runs this process has open, oldest first."""
    pid = os.getpid()
    with _lock:
        return [run for run in _runs.values() if run.pid == pid]


def has_own_runs() -> bool:
    """Whether this process has any run open."""
    pid = os.getpid()
    with _lock:
        return any(run.pid == pid for run in _runs.values())


def clear() -> None:
    """Forget every entry without ending any run (tests)."""
    with _lock:
        _runs.clear()


def _after_fork_in_child() -> None:
    global _lock
    # Another thread may have held the lock at the fork; in the child it never
    # would be released.
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)
