"""Ending the fluent runs of a process that exits: atexit, excepthook and SIGTERM.

A run is never left RUNNING by a process that exits in any way short of
SIGKILL (or ``os._exit``, or a crash of the interpreter itself); those runs
stop heartbeating, and :meth:`TrackingClient.reap_stale_runs` fails them.

* **Interpreter exit** (the script ends, ``sys.exit``, an uncaught exception):
  an ``atexit`` handler ends every run still open, FINISHED like MLflow (also
  after ``sys.exit(1)``: an atexit handler cannot see the exit code), unless
  the interpreter is exiting because of an uncaught exception, which a
  ``sys.excepthook`` wrapper remembers: then FAILED (KILLED for an uncaught
  ``KeyboardInterrupt``). Runs in ``with`` blocks have ended by then with
  their own status (see :mod:`tracking.fluent`).
* **SIGTERM**: a handler ends every open run KILLED, then hands the signal on.
  If a Python handler was installed before ours, it is called. If the
  disposition was the default, the default is restored and the signal sent
  again, so the process still dies *by SIGTERM* (exit status -15 / 143 as its
  parent sees it) without running ``finally`` blocks or ``atexit`` handlers,
  exactly as it would have without trackflow. An ignored SIGTERM, or a handler
  installed by C code, is left alone.

Everything is installed lazily by :func:`install`, which ``start_run`` calls:
importing :mod:`tracking` changes no process-wide state. The SIGTERM handler
can only be installed from the main thread; until a run is started there it is
not installed (the atexit handler still is).

The SIGTERM handler interrupts the main thread at an arbitrary point, perhaps
in the middle of a database transaction of its own, so the runs are ended by a
helper thread that the handler waits for at most :data:`SIGTERM_GRACE` seconds:
if the store cannot be reached in time the process dies anyway and the runs
are left to the reaper.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from tracking import _heartbeat, _run_registry
from tracking.entities import RunStatus

__all__ = ["SIGTERM_GRACE", "end_all_runs", "install", "install_sigterm_handler"]

#: Seconds the SIGTERM handler waits for the store before letting the process die.
SIGTERM_GRACE = 10.0

_log = logging.getLogger(__name__)

_ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]

_installed = False  # everything, the SIGTERM handler included
_atexit_installed = False
_exit_status = RunStatus.FINISHED
_previous_excepthook: _ExceptHook | None = None
_previous_sigterm: Any = None


def install() -> None:
    """Install the exit hooks, once; the SIGTERM handler once on the main thread."""
    global _installed, _atexit_installed, _previous_excepthook
    if _installed:
        return
    if not _atexit_installed:
        _atexit_installed = True
        atexit.register(_at_exit)
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
    if threading.current_thread() is threading.main_thread():
        _installed = True
        install_sigterm_handler()


def install_sigterm_handler() -> bool:
    """Install the SIGTERM handler over a Python or default one; True if installed.

    Must be called from the main thread.
    """
    global _previous_sigterm
    if not hasattr(signal, "SIGTERM"):  # pragma: no cover - every POSIX has it
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current is signal.SIG_IGN or current is None:
        # Ignored on purpose, or owned by C code we could not chain to.
        return False
    _previous_sigterm = current
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def end_all_runs(status: RunStatus, timeout: float | None = None) -> int:
    """End every run this process opened with ``status``; returns how many.

    With ``timeout`` the runs are ended by a helper thread waited for at most
    that long. Failures are logged, never raised.
    """
    runs = _run_registry.claim_all()
    if not runs:
        return 0

    def work() -> None:
        from tracking import buffering

        # Buffered records go out before their runs end (bounded by the timeout).
        try:
            buffering.wait()
        except Exception:
            _log.exception("trackflow: could not send buffered records before ending runs")
        for run in runs:
            try:
                run.client.set_terminated(run.run_id, status)
            except Exception:
                _log.exception("trackflow: could not end run %s as %s", run.run_id, status.value)

    if timeout is None:
        work()
    else:
        helper = threading.Thread(target=work, name="trackflow-end-runs", daemon=True)
        helper.start()
        helper.join(timeout)
        if helper.is_alive():
            _log.error("trackflow: gave up ending %d run(s) after %.0fs", len(runs), timeout)
    return len(runs)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    global _exit_status
    # In an interactive session an uncaught exception does not end the process.
    if not hasattr(sys, "ps1"):
        _exit_status = (
            RunStatus.KILLED if issubclass(exc_type, KeyboardInterrupt) else RunStatus.FAILED
        )
    hook = _previous_excepthook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _at_exit() -> None:
    _heartbeat.stop()
    end_all_runs(_exit_status)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    end_all_runs(RunStatus.KILLED, timeout=SIGTERM_GRACE)
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    # The default disposition: die by the signal, as without us.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    raise SystemExit(128 + signum)  # pragma: no cover - the kill does not return


def _after_fork_in_child() -> None:
    global _exit_status
    # The child's own exit decides its status, not an exception seen by the parent.
    _exit_status = RunStatus.FINISHED


os.register_at_fork(after_in_child=_after_fork_in_child)
