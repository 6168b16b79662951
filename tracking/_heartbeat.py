"""One daemon thread per process that keeps the heartbeat of open fluent runs fresh.

Every ``TRACKFLOW_HEARTBEAT_INTERVAL`` seconds (read on each beat) the thread
calls :meth:`TrackingClient.heartbeat` once per client with the ids of all
runs the process has open (:mod:`tracking._run_registry`). A run whose process
died without ending it stops beating, and
:meth:`TrackingClient.reap_stale_runs` can then mark it FAILED.

The thread starts with the first run (:func:`ensure_running` is cheap enough
to call on every ``start_run``), exits by itself once the process has no open
run, and is stopped at interpreter exit. A failed beat is logged, never raised:
a tracking store that is briefly unreachable must not take the process down.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from tracking import _run_registry
from tracking.settings import get_settings

if TYPE_CHECKING:
    from tracking.client import TrackingClient

__all__ = ["THREAD_NAME", "beat_once", "ensure_running", "is_running", "stop"]

THREAD_NAME = "trackflow-heartbeat"

_log = logging.getLogger(__name__)

_lock = threading.Lock()
_wake = threading.Event()
_thread: threading.Thread | None = None


def ensure_running() -> None:
    """Start the heartbeat thread unless it runs already."""
    global _thread
    # The thread decides to exit under this lock after seeing no open run, and
    # a run is registered before this is called: so either the thread sees the
    # new run, or it has cleared ``_thread`` by the time we look.
    with _lock:
        if _thread is None:
            _wake.clear()
            _thread = threading.Thread(target=_loop, name=THREAD_NAME, daemon=True)
            _thread.start()


def is_running() -> bool:
    """Whether the heartbeat thread is alive."""
    thread = _thread
    return thread is not None and thread.is_alive()


def stop(timeout: float = 5.0) -> None:
    """Stop the thread and wait for it (at most ``timeout`` seconds)."""
    global _thread
    with _lock:
        thread, _thread = _thread, None
        _wake.set()
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)


def beat_once() -> None:
    """Send one heartbeat for every open run of this process, one call per client."""
    by_client: dict[int, tuple[TrackingClient, list[str]]] = {}
    for run in _run_registry.snapshot():
        entry = by_client.setdefault(id(run.client), (run.client, []))
        if run.run_id not in entry[1]:
            entry[1].append(run.run_id)
    for client, run_ids in by_client.values():
        try:
            client.heartbeat(*run_ids)
        except Exception:
            _log.exception("trackflow: heartbeat of %d run(s) failed", len(run_ids))


def _loop() -> None:
    global _thread
    me = threading.current_thread()
    while True:
        try:
            interval = get_settings().heartbeat_interval
        except Exception:
            _log.exception("trackflow: cannot read the heartbeat interval; using 30s")
            interval = 30.0
        woken = _wake.wait(interval)
        with _lock:
            if _thread is not me:  # stopped (or replaced after a stop)
                return
            if woken or not _run_registry.has_own_runs():
                _thread = None
                return
        beat_once()


def _after_fork_in_child() -> None:
    global _lock, _wake, _thread
    # Threads do not survive a fork; the child starts its own when it opens a run.
    _lock, _wake, _thread = threading.Lock(), threading.Event(), None


os.register_at_fork(after_in_child=_after_fork_in_child)
