"""Ending the runs of DAG runs whose end never reached the store: the scheduler's reaper.

The scheduler ends a tracked DAG run's run through the listener's DAG-run hooks,
queued on :class:`~tracking.dispatch.Dispatcher`, which retries for 10 minutes.
When the end cannot reach the store (a store down for longer, a scheduler killed
with events still queued, a DAG run deleted or ended by a process that has no
listener), the run would stay RUNNING forever. Every scheduler therefore runs a
reaper: every ``TRACKFLOW_AIRFLOW_REAP_INTERVAL`` seconds (300 by default; 0
turns it off) its dispatcher thread looks up the runs of DAG runs still RUNNING
in the store and asks Airflow's metadata database, in a session of its own, what
became of each:

- ended ``success`` or ``failed`` more than ``TRACKFLOW_AIRFLOW_REAP_GRACE``
  seconds ago (120 by default: the scheduler's own end has that long to land):
  the run ends as the DAG run did, its task runs caught up and closed as at a
  DAG run's end, with a reason saying the reaper found it;
- no longer in Airflow (deleted): the run, and every run under it still open,
  ends FAILED, with a reason saying so;
- still queued or running: left alone, however long it takes.

A DAG run whose end was lost so ends within the interval plus the grace (7
minutes with the defaults). The same sweep runs on demand, in any process with
the metadata database (``airflow`` CLI environment)::

    from operators.maintenance import reap_ended_dag_runs
    reap_ended_dag_runs(grace=0)
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from operators._tracking import (
    DagRunEvent,
    airflow_tracking,
    pipeline_for,
)
from tracking.entities import RunStatus
from tracking.pipelines import PipelineTracker, running_runs_tagged

__all__ = ["DagRunReaper", "ReaperSettings", "reap_ended_dag_runs"]

_log = logging.getLogger("operators")

#: DAG-run states Airflow ends a DAG run with, as run statuses.
_ENDED = {"success": RunStatus.FINISHED, "failed": RunStatus.FAILED}


class ReaperSettings(BaseSettings):
    """The scheduler's reaper; each field is ``TRACKFLOW_AIRFLOW_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="TRACKFLOW_AIRFLOW_", extra="ignore")

    reap_interval: float = Field(
        300.0,
        ge=0,
        description="Seconds between the scheduler's sweeps for runs of DAG runs whose end "
        "never reached the store; 0 turns the sweeps off.",
    )
    reap_grace: float = Field(
        120.0,
        ge=0,
        description="Seconds after a DAG run's end before the reaper ends its run: the "
        "scheduler's own end event has that long to land.",
    )


def reap_ended_dag_runs(grace: float | None = None, *, now: dt.datetime | None = None) -> list[str]:
    """End the runs of DAG runs still RUNNING in the store that Airflow ended more than
    ``grace`` seconds ago (default ``TRACKFLOW_AIRFLOW_REAP_GRACE``) or no longer has;
    returns their run ids. Runs in this process's dispatcher's thread or any process
    with Airflow's metadata database (see the module docstring)."""
    from operators import _metadb

    if grace is None:
        grace = ReaperSettings().reap_grace
    now = now or dt.datetime.now(dt.UTC)
    tracking = airflow_tracking()
    client = tracking.client()
    ended: list[str] = []
    for run in running_runs_tagged(client, "airflow.run_id"):
        if "airflow.task_id" in run.data.tags:
            continue  # a task run: the DAG run's run carries no task id
        dag_id = run.data.tags.get("airflow.dag_id")
        run_id = run.data.tags["airflow.run_id"]
        if not dag_id or pipeline_for(dag_id, run_id).run_id != run.info.run_id:
            continue  # not a run the listener made
        found = _metadb.dag_run_state(dag_id, run_id)
        if found is None:
            reason = (
                f"lost: DAG run {run_id} of {dag_id} no longer exists in Airflow (deleted); "
                "ended by the scheduler's trackflow reaper"
            )
            PipelineTracker(client, "Default").pipeline_run_ended(
                run.info.run_id, RunStatus.FAILED, reason=reason, open_steps=RunStatus.FAILED
            )
            ended.append(run.info.run_id)
            continue
        state, end_date = found
        status = _ENDED.get(state or "")
        if status is None:
            continue  # queued or running: the scheduler will end it
        if end_date is not None and (now - end_date).total_seconds() < grace:
            continue  # the scheduler's own end may still be on its way
        msg = (
            f"the DAG run ended {state} in Airflow; its end never reached the store, and "
            "the scheduler's trackflow reaper ended the run"
        )
        event = DagRunEvent(dag_id, run_id, run.info.run_name or "", {}, None, None, status, msg)
        tracking.end_dag_run(event)
        ended.append(run.info.run_id)
    if ended:
        _log.warning("trackflow: ended %d run(s) of DAG runs whose end was lost", len(ended))
    return ended


class DagRunReaper:
    """A daemon thread that queues :func:`reap_ended_dag_runs` on the listener's
    dispatcher every ``interval`` seconds (the scheduler starts one: see
    :mod:`operators.listener`). It only waits and queues: the sweep runs on the
    dispatcher's thread, in order with the DAG-run events."""

    def __init__(self, interval: float, grace: float, job: Any = None) -> None:
        self.interval = interval
        self._job = job
        self.grace = grace
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sweeping (a no-op when already started)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="trackflow-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sweeping (a sweep already queued still runs)."""
        self._stop.set()

    def _loop(self) -> None:
        dispatcher = airflow_tracking().dispatcher
        while not self._stop.wait(self.interval):
            if self._job is not None:
                # Set by the job's runner after on_starting; read from the loaded
                # values, never through the ORM (no SQL, nothing of the scheduler's).
                if vars(self._job).get("job_type") != "SchedulerJob":
                    return  # a triggerer's or a dag-processor's job: no reaper
                self._job = None
            dispatcher.submit("reaping runs of ended DAG runs", reap_ended_dag_runs, self.grace)


_reaper: DagRunReaper | None = None
_reaper_lock = threading.Lock()


def start_scheduler_reaper(job: Any = None) -> DagRunReaper | None:
    """The scheduler's reaper, started once per process (None: turned off). With the
    ``job`` Airflow is starting, it stops at its first tick unless that is a
    scheduler's."""
    global _reaper
    try:
        settings = ReaperSettings()
    except ValueError as exc:
        _log.error("trackflow: the scheduler's reaper is off: %s", exc)
        return None
    if settings.reap_interval == 0:
        return None
    with _reaper_lock:
        if _reaper is None:
            _reaper = DagRunReaper(settings.reap_interval, settings.reap_grace, job)
        _reaper.start()
        return _reaper


def stop_scheduler_reaper() -> None:
    """Stop the scheduler's reaper, if one runs."""
    with _reaper_lock:
        if _reaper is not None:
            _reaper.stop()
