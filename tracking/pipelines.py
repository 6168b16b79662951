"""Pipeline steps as runs, for any orchestrator: the layer Airflow and Prefect share.

A **pipeline run** (an Airflow DAG run, a Prefect flow run) is a parent run; each
**step** (a task instance, a task run, one instance of a mapped step) is a child
run. Their run ids come from the orchestrator's own identity of the step
(:meth:`Step.run_id`), so every process that touches a step, on every retry and
every re-sent event, lands on the same run with no search.

Orchestrators send state changes more than once and out of order, so every
method of :class:`PipelineTracker` is idempotent, and an event for an older
attempt of a step never overwrites what a newer attempt did (a late "running"
cannot reopen a finished step; a new attempt can)::

    tracker = PipelineTracker(TrackingClient(), experiment="retrain")
    pipeline = PipelineRun("airflow", "retrain", "scheduled__2026-12-01")
    step = Step(pipeline, "train", attempt=1)
    tracker.step_running(step)
    tracker.step_ended(step, RunStatus.FAILED, reason="OOM", retrying=True)  # SCHEDULED
    tracker.step_running(Step(pipeline, "train", attempt=2))                 # same run
    tracker.step_ended(Step(pipeline, "train", attempt=2), RunStatus.FINISHED)
    tracker.pipeline_ended(pipeline, RunStatus.FINISHED)  # closes stragglers

Nothing here knows Airflow or Prefect: ``operators/`` and ``flows/`` translate
their events into these calls.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracking.client import TrackingClient
from tracking.entities import ArtifactRef, Run, RunInfo, RunStatus, RunTag
from tracking.errors import AlreadyExistsError, RunNotFoundError
from tracking.ids import run_id_for

__all__ = [
    "ATTEMPTS_TAG",
    "ATTEMPT_TAG",
    "FAILURE_REASON_TAG",
    "OWNER_TAG",
    "PIPELINE_HEARTBEAT_TAG",
    "NeverBreak",
    "PipelineHeartbeat",
    "PipelineRun",
    "PipelineTracker",
    "Step",
    "artifact_refs",
    "attempts",
    "reap_lost_pipeline_runs",
    "running_runs_tagged",
]

#: The attempt (Airflow's try_number, Prefect's run_count) a step's run is at.
ATTEMPT_TAG = "trackflow.attempt"
#: Why a run failed.
FAILURE_REASON_TAG = "trackflow.failureReason"
#: Every attempt of a step, as JSON: ``[{"attempt": 1, "start": ms, "end": ms,
#: "status": "FAILED"}, ...]`` (the last :data:`MAX_ATTEMPTS_KEPT`).
ATTEMPTS_TAG = "trackflow.attempts"
MAX_ATTEMPTS_KEPT = 25
#: When the process that owns a pipeline run (a Prefect flow run's) last said it was
#: alive, in ms since the epoch: see :class:`PipelineHeartbeat`.
PIPELINE_HEARTBEAT_TAG = "trackflow.pipelineHeartbeat"
#: Which process owns a pipeline run: ``host pid``.
OWNER_TAG = "trackflow.owner"
_ORCHESTRATOR_TAG = "trackflow.orchestrator"
_MAX_REASON = 5000

_log = logging.getLogger("tracking.pipelines")


@dataclass(frozen=True, slots=True)
class PipelineRun:
    """One run of a pipeline: ``orchestrator`` (``"airflow"``), the pipeline's id
    (the ``dag_id``, the flow's name) and the orchestrator's id of this run."""

    orchestrator: str
    pipeline_id: str
    run_key: str

    @property
    def run_id(self) -> str:
        """The tracking run id of the pipeline run: the same in every process."""
        return run_id_for(self.orchestrator, self.pipeline_id, self.run_key)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a pipeline run; ``map_index`` for one instance of a mapped step,
    ``attempt`` (1, 2, ...) for the try it is at."""

    pipeline: PipelineRun
    step_id: str
    map_index: int | None = None
    attempt: int = 1
    name: str | None = field(default=None, compare=False)

    @property
    def run_id(self) -> str:
        """The tracking run id of the step (all attempts share it)."""
        parts: tuple[object, ...] = (
            self.pipeline.orchestrator,
            self.pipeline.pipeline_id,
            self.pipeline.run_key,
            self.step_id,
        )
        if self.map_index is not None and self.map_index >= 0:
            parts = (*parts, self.map_index)
        return run_id_for(*parts)

    @property
    def run_name(self) -> str:
        """``name`` if given, else ``step_id``, or ``step_id[map_index]`` when mapped."""
        if self.name:
            return self.name
        if self.map_index is not None and self.map_index >= 0:
            return f"{self.step_id}[{self.map_index}]"
        return self.step_id


class PipelineTracker:
    """Moves the runs of pipeline runs and their steps through their states.

    ``experiment`` names the experiment of new pipeline runs (created if
    missing). Every method is idempotent; see the module docstring.
    """

    def __init__(self, client: TrackingClient, experiment: str) -> None:
        self.client = client
        self.experiment = experiment
        self._experiment_id: str | None = None
        self._lock = threading.Lock()
        # Pipeline runs this tracker started: a worker running many steps of one
        # pipeline run asks the store for its parent once.
        self._started: dict[str, Run] = {}

    # -- pipeline runs ----------------------------------------------------------

    def experiment_id(self) -> str:
        """The id of :attr:`experiment`, created if missing (once per tracker)."""
        if self._experiment_id is None:
            with self._lock:
                if self._experiment_id is None:
                    found = self.client.get_experiment_by_name(self.experiment)
                    if found is None:
                        try:
                            self._experiment_id = self.client.create_experiment(self.experiment)
                        except AlreadyExistsError:  # another process, meanwhile
                            again = self.client.get_experiment_by_name(self.experiment)
                            assert again is not None
                            self._experiment_id = again.experiment_id
                    else:
                        self._experiment_id = found.experiment_id
        return self._experiment_id

    def pipeline_started(
        self,
        pipeline: PipelineRun,
        *,
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        experiment_id: str | None = None,
    ) -> Run:
        """The pipeline run's run, created RUNNING if it does not exist yet.

        ``tags`` apply when it is created (a later call with other tags sets them too);
        once started by this tracker the run is answered from memory. A pipeline run
        started by another one (a Prefect subflow) names its run as ``parent_run_id``:
        it goes in the parent's experiment, and the tracker's experiment is not
        created for it. ``experiment_id`` puts the run in that experiment instead."""
        known = self._started.get(pipeline.run_id)
        if known is not None and not tags:
            return known
        all_tags = {_ORCHESTRATOR_TAG: pipeline.orchestrator, **(tags or {})}
        if experiment_id is None:
            if parent_run_id is not None:
                experiment_id = self.client.get_run(parent_run_id).info.experiment_id
            else:
                experiment_id = self.experiment_id()
        run = self.client.create_run(
            experiment_id,
            run_name=run_name or f"{pipeline.pipeline_id}/{pipeline.run_key}",
            tags=all_tags,
            run_id=pipeline.run_id,
            parent_run_id=parent_run_id,
        )
        stale = {k: str(v) for k, v in all_tags.items() if run.data.tags.get(k) != str(v)}
        if stale:  # it existed already, started with fewer tags
            self.client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in stale.items()])
        self._started[pipeline.run_id] = run
        return run

    def adopt(self, run: Run) -> None:
        """Take ``run`` (read from the store) as its pipeline run's run: the calls that
        follow neither ask for it again nor create the tracker's experiment for it."""
        self._started[run.info.run_id] = run

    def pipeline_ended(
        self,
        pipeline: PipelineRun,
        status: RunStatus,
        *,
        reason: str | None = None,
        step_statuses: Mapping[str, RunStatus] | None = None,
    ) -> list[str]:
        """End the pipeline run's run, and first every step still RUNNING or SCHEDULED
        (at any depth): with its status in ``step_statuses`` (by run id) if the
        orchestrator knows it, else FAILED if its last attempt failed, else KILLED.
        Returns the ids of the steps closed."""
        return self.pipeline_run_ended(
            pipeline.run_id, status, reason=reason, step_statuses=step_statuses
        )

    def pipeline_run_ended(
        self,
        run_id: str,
        status: RunStatus,
        *,
        reason: str | None = None,
        step_statuses: Mapping[str, RunStatus] | None = None,
        open_steps: RunStatus | None = None,
    ) -> list[str]:
        """:meth:`pipeline_ended` for a pipeline run known by its run id only (a reaper's);
        ``open_steps`` ends the steps still open so, with ``reason`` as theirs too."""
        closed = []
        self._started.pop(run_id, None)
        try:
            children = self.client.get_subtree(run_id)
        except RunNotFoundError:
            return []
        known = step_statuses or {}
        for child in children:
            if not child.info.status.is_terminated:
                straggler = known.get(child.info.run_id, open_steps)
                if straggler is None or not straggler.is_terminated:
                    failed_before = FAILURE_REASON_TAG in child.data.tags
                    straggler = RunStatus.FAILED if failed_before else RunStatus.KILLED
                why = f"still {child.info.status.value} when the pipeline run ended {status.value}"
                if open_steps is not None and reason:
                    why = f"{reason} ({why})"
                elif straggler is RunStatus.FAILED and FAILURE_REASON_TAG in child.data.tags:
                    why = f"{child.data.tags[FAILURE_REASON_TAG]} ({why})"
                self._end(child.info.run_id, straggler, why)
                closed.append(child.info.run_id)
        current = self.client.get_run(run_id)
        if current.info.status is not status:
            self._end(run_id, status, reason)
        return closed

    # -- steps ------------------------------------------------------------------

    def step_running(
        self,
        step: Step,
        *,
        tags: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        experiment_id: str | None = None,
        parent_info: RunInfo | None = None,
    ) -> Run:
        """The step's run, RUNNING for ``step.attempt``: created under the pipeline run
        (or ``parent_run_id``) if missing, reopened for a newer attempt, left alone for
        an attempt it has seen already (a late or repeated event). It is created in its
        parent's experiment unless ``experiment_id`` says otherwise. ``parent_info`` is
        the parent's run as the caller knows it (the process running the pipeline run:
        saves a round trip per step)."""
        # A step goes where its parent is: the pipeline run's experiment.
        if parent_info is None:
            if parent_run_id is None:
                parent_info = self.pipeline_started(step.pipeline).info
            else:
                parent_info = self.client.get_run(parent_run_id).info
        parent = parent_info.run_id
        started = _now_ms()
        run = self.client.create_run(
            experiment_id or parent_info.experiment_id,
            run_name=step.run_name,
            tags={
                ATTEMPT_TAG: str(step.attempt),
                ATTEMPTS_TAG: _dump([{"attempt": step.attempt, "start": started}]),
                **(tags or {}),
            },
            parent_run_id=parent,
            run_id=step.run_id,
        )
        seen = _attempt_of(run)
        if step.attempt > seen:
            # A new try of the step: the same run goes on, and its history says so.
            history = _history(run)
            last = history[-1]
            if "end" not in last and run.info.status.is_terminated:
                # The attempt before ended with the run (a cleared task runs again).
                last.update(end=run.info.end_time, status=run.info.status.value)
            history.append({"attempt": step.attempt, "start": started})
            updates = {
                **(tags or {}),
                ATTEMPT_TAG: str(step.attempt),
                ATTEMPTS_TAG: _dump(history),
            }
            self.client.log_batch(
                run.info.run_id, tags=[RunTag(k, str(v)) for k, v in updates.items()]
            )
            self.client.update_run(run.info.run_id, status=RunStatus.RUNNING)
            run = self.client.get_run(run.info.run_id)
        elif step.attempt == seen and run.info.status is RunStatus.SCHEDULED:
            self.client.update_run(run.info.run_id, status=RunStatus.RUNNING)
            run = self.client.get_run(run.info.run_id)
        elif run.info.status.is_terminated:
            return run  # a late or repeated event of an attempt that has ended
        if parent_info.status.is_terminated:
            # The pipeline run runs again (cleared and re-run): so does its run.
            self.client.update_run(parent, status=RunStatus.RUNNING)
            self._started.pop(parent, None)
        return run

    def step_ended(
        self,
        step: Step,
        status: RunStatus,
        *,
        reason: str | None = None,
        retrying: bool = False,
        current: Run | None = None,
    ) -> None:
        """Record how an attempt ended: ``retrying`` (a failure with retries left) makes
        the run SCHEDULED for the next attempt; an attempt older than the run's is
        ignored, and so is a repeated event. ``current`` is the run as the caller
        knows it (the process that ran the attempt: saves a round trip)."""
        if current is not None and current.info.run_id == step.run_id:
            run = current
        else:
            try:
                run = self.client.get_run(step.run_id)
            except RunNotFoundError:
                run = self.step_running(step)
        seen = _attempt_of(run)
        if step.attempt < seen:
            return  # a late event of an earlier try
        tags: dict[str, str] = {}
        if step.attempt > seen:
            tags[ATTEMPT_TAG] = str(step.attempt)
        if retrying:
            # Also over a FAILED or KILLED that the step's own code (a ``with``
            # block, a SIGTERM) wrote: the orchestrator runs it again.
            if run.info.status is not RunStatus.SCHEDULED:
                self.client.update_run(run.info.run_id, status=RunStatus.SCHEDULED)
            if reason:  # after the status: a run that goes on drops its old reason
                tags[FAILURE_REASON_TAG] = reason[:_MAX_REASON]
            history = _closed(run, step.attempt, RunStatus.FAILED)
            if history is not None:
                tags[ATTEMPTS_TAG] = history
            self._write_tags(run.info.run_id, tags)
            return
        if run.info.status is status and step.attempt <= seen:
            # Already recorded (a repeated event, or the step's code ended its run):
            # only a missing reason, and the attempt's end, are added.
            missing = FAILURE_REASON_TAG not in run.data.tags
            if reason and missing and status is not RunStatus.FINISHED:
                tags[FAILURE_REASON_TAG] = reason[:_MAX_REASON]
            self._write_tags(run.info.run_id, tags)
            return
        self._end(run.info.run_id, status, reason, tags=tags)

    # -- helpers ----------------------------------------------------------------

    def _end(
        self,
        run_id: str,
        status: RunStatus,
        reason: str | None,
        *,
        tags: dict[str, str] | None = None,
    ) -> None:
        """End a run; its tags (the reason) after the status, which drops an old reason.
        The last attempt's end is the run's own (see :func:`attempts`)."""
        self.client.set_terminated(run_id, status)
        tags = dict(tags or {})
        if reason and status is not RunStatus.FINISHED:
            tags[FAILURE_REASON_TAG] = reason[:_MAX_REASON]
        self._write_tags(run_id, tags)

    def _write_tags(self, run_id: str, tags: dict[str, str]) -> None:
        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])


def _now_ms() -> int:
    return int(time.time() * 1000)


def _dump(history: list[dict[str, Any]]) -> str:
    return json.dumps(history[-MAX_ATTEMPTS_KEPT:], separators=(",", ":"))


def attempts(run: Run) -> list[dict[str, Any]]:
    """A step's attempts, oldest first: ``{"attempt", "start", "end", "status"}`` each
    (``end`` and ``status`` absent while it runs). The last attempt's end is the run's."""
    history = _history(run)
    last = history[-1]
    if "end" not in last:
        if run.info.status.is_terminated:
            last.update(end=run.info.end_time, status=run.info.status.value)
        else:
            last["status"] = run.info.status.value
    return history


def _history(run: Run) -> list[dict[str, Any]]:
    """The run's attempt history (a run from before histories: its first attempt)."""
    try:
        value = json.loads(run.data.tags.get(ATTEMPTS_TAG, "[]"))
    except ValueError:
        value = []
    if not isinstance(value, list) or not value:
        return [{"attempt": max(_attempt_of(run), 1), "start": run.info.start_time}]
    return [entry for entry in value if isinstance(entry, dict)]


def _closed(run: Run, attempt: int, status: RunStatus) -> str | None:
    """The history with ``attempt`` ended as ``status``; None when it says so already."""
    history = _history(run)
    entry = next((e for e in reversed(history) if e.get("attempt") == attempt), None)
    if entry is None:
        entry = {"attempt": attempt, "start": run.info.start_time}
        history.append(entry)
    if entry.get("status") == status.value and entry.get("end") is not None:
        return None
    entry["status"] = status.value
    entry["end"] = _now_ms()
    return _dump(history)


def _attempt_of(run: Run) -> int:
    try:
        return int(run.data.tags.get(ATTEMPT_TAG, "0"))
    except ValueError:
        return 0


def artifact_refs(value: Any, depth: int = 0) -> Iterator[ArtifactRef]:
    """The ``ArtifactRef`` values in a step's argument (also inside lists, tuples and
    dicts): what the step consumed, for its lineage edges."""
    if isinstance(value, ArtifactRef):
        yield value
    elif depth < 4 and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from artifact_refs(item, depth + 1)
    elif depth < 4 and isinstance(value, Mapping):
        for item in value.values():
            yield from artifact_refs(item, depth + 1)


class NeverBreak:
    """Runs tracking calls for an orchestrator's listener so that tracking never breaks
    the pipeline: a failure is logged as one warning per step (not per call) and
    swallowed; the next call tries again, so states catch up once the store is back.

    Explicit operators should not use this: they fail loudly, as operators should::

        guard = NeverBreak()
        guard.call("retrain/train", tracker.step_running, step)
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or _log
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def call(self, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, or None (and a warning, once per ``key``) if it raises."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            with self._lock:
                first = key not in self._warned
                self._warned.add(key)
            if first:
                self._log.warning(
                    "trackflow: tracking %s failed, the pipeline goes on untracked until the "
                    "tracking store answers again: %s: %s",
                    key,
                    type(exc).__name__,
                    exc,
                )
            return None

    def warned(self, key: str) -> bool:
        """Whether a call for ``key`` failed so far."""
        with self._lock:
            return key in self._warned


# -- pipeline runs that nothing is left to end ------------------------------------------


def owner_tags(now_ms: int | None = None) -> dict[str, str]:
    """The tags a pipeline run's owning process starts it with (its first heartbeat)."""
    return {
        PIPELINE_HEARTBEAT_TAG: str(now_ms or _now_ms()),
        OWNER_TAG: f"{socket.gethostname()} {os.getpid()}",
    }


class PipelineHeartbeat:
    """A daemon thread that refreshes :data:`PIPELINE_HEARTBEAT_TAG` on the pipeline
    runs this process owns, every ``interval`` seconds (one ``log_batch`` per run):
    when the process dies without ending them (``kill -9``, a lost machine), the
    beats stop and :func:`reap_lost_pipeline_runs` can end them::

        beat = PipelineHeartbeat(interval=30)
        beat.add(run_id, client)
        ...
        beat.discard(run_id)
    """

    def __init__(self, interval: float | None = None, logger: logging.Logger | None = None):
        self._interval = interval
        self._log = logger or _log
        self._runs: dict[str, TrackingClient] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def interval(self) -> float:
        """Seconds between beats (default: ``TRACKFLOW_HEARTBEAT_INTERVAL``)."""
        if self._interval is not None:
            return self._interval
        from tracking.settings import get_settings

        return float(get_settings().heartbeat_interval)

    def add(self, run_id: str, client: TrackingClient) -> None:
        """Beat for ``run_id`` from now on."""
        with self._lock:
            if self._pid != os.getpid():  # a forked child owns none of its parent's runs
                self._runs.clear()
                self._thread = None
                self._pid = os.getpid()
            self._runs[run_id] = client
            if self._thread is None or not self._thread.is_alive():
                self._wake.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="trackflow-pipeline-heartbeat", daemon=True
                )
                self._thread.start()

    def discard(self, run_id: str) -> None:
        """Stop beating for ``run_id``."""
        with self._lock:
            self._runs.pop(run_id, None)

    def beat_once(self) -> None:
        """One beat for every run (a failure is logged, never raised)."""
        with self._lock:
            runs = list(self._runs.items())
        tag = [RunTag(PIPELINE_HEARTBEAT_TAG, str(_now_ms()))]
        for run_id, client in runs:
            try:
                client.log_batch(run_id, tags=tag)
            except Exception as exc:
                self._log.warning("trackflow: heartbeat of pipeline run %s failed: %s", run_id, exc)

    def _loop(self) -> None:
        while not self._wake.wait(self.interval):
            with self._lock:
                if not self._runs:
                    self._thread = None
                    return
            self.beat_once()


#: What an orchestrator says of a pipeline run the reaper found silent: its final
#: status and why, or None when it knows no more (see :func:`reap_lost_pipeline_runs`).
Verdict = tuple[RunStatus, str] | None


def reap_lost_pipeline_runs(
    client: TrackingClient,
    older_than: float,
    *,
    experiment_ids: list[str] | None = None,
    ask: Any = None,
    now_ms: int | None = None,
) -> list[str]:
    """End the RUNNING pipeline runs whose owning process stopped beating
    (:class:`PipelineHeartbeat`) more than ``older_than`` seconds ago, and every run
    under them still open. Returns the ids of the pipeline runs ended.

    ``ask(run)`` may tell what the orchestrator knows of one: ``(status, reason)``
    (a cancel: KILLED) or None; without an answer the run ends FAILED, with a reason
    naming the silent process. Pipeline runs without a heartbeat tag (an Airflow DAG
    run, whose scheduler ends it) are left alone::

        reap_lost_pipeline_runs(TrackingClient(), older_than=300)
    """
    now = now_ms or _now_ms()
    cutoff = now - int(older_than * 1000)
    ended: list[str] = []
    for run in running_runs_tagged(client, PIPELINE_HEARTBEAT_TAG, experiment_ids):
        try:
            last = int(run.data.tags.get(PIPELINE_HEARTBEAT_TAG, "0"))
        except ValueError:
            last = 0
        if last >= cutoff:
            continue
        silent = (now - last) / 1000
        owner = run.data.tags.get(OWNER_TAG, "its process")
        verdict: Verdict = None
        if ask is not None:
            try:
                verdict = ask(run)
            except Exception as exc:
                _log.warning("trackflow: asking about run %s failed: %s", run.info.run_id, exc)
        status, why = verdict or (
            RunStatus.FAILED,
            f"lost: no heartbeat from the process that ran it ({owner}) for "
            f"{silent:.0f} s; it was killed, or its machine was lost",
        )
        tracker = PipelineTracker(client, "Default")
        tracker.pipeline_run_ended(run.info.run_id, status, reason=why, open_steps=status)
        ended.append(run.info.run_id)
    return ended


def running_runs_tagged(
    client: TrackingClient, tag: str, experiment_ids: list[str] | None = None
) -> list[Run]:
    """The RUNNING runs that carry ``tag``, in ``experiment_ids`` (default: every
    active experiment), as the reapers look for theirs."""
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    found: list[Run] = []
    for start in range(0, len(experiment_ids), 100):
        found += client.search_runs(
            experiment_ids[start : start + 100],
            filter_string=f"attributes.status = 'RUNNING' and tags.`{tag}` LIKE '%'",
            max_results=1000,
        )
    return found
