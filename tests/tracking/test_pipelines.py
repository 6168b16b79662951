"""The orchestrator-neutral step layer: ids from the step's identity, idempotent and
order-proof state changes, stragglers closed when the pipeline run ends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracking import Run, RunStatus, TrackingClient
from tracking.pipelines import (
    ATTEMPT_TAG,
    ATTEMPTS_TAG,
    FAILURE_REASON_TAG,
    MAX_ATTEMPTS_KEPT,
    PipelineRun,
    PipelineTracker,
    Step,
    attempts,
)


@pytest.fixture
def tracker(tmp_path: Path) -> PipelineTracker:
    client = TrackingClient(f"sqlite:///{tmp_path}/t.db", str(tmp_path / "artifacts"))
    return PipelineTracker(client, "retrain")


PIPE = PipelineRun("airflow", "retrain", "scheduled__2026-12-01T00:00:00+00:00")


def _run(tracker: PipelineTracker, step: Step) -> Run:
    return tracker.client.get_run(step.run_id)


def _status(tracker: PipelineTracker, run_id: str) -> RunStatus:
    return tracker.client.get_run(run_id).info.status


class TestIdentity:
    def test_ids_are_stable_and_distinct(self) -> None:
        assert Step(PIPE, "train").run_id == Step(PIPE, "train", attempt=3).run_id
        assert Step(PIPE, "train").run_id != Step(PIPE, "evaluate").run_id
        assert Step(PIPE, "trial", 0).run_id != Step(PIPE, "trial", 1).run_id
        # Airflow's map_index -1 means "not mapped".
        assert Step(PIPE, "train", -1).run_id == Step(PIPE, "train").run_id
        assert Step(PIPE, "trial", 2).run_name == "trial[2]"
        other = PipelineRun("airflow", "retrain", "manual__2026-12-01")
        assert Step(other, "train").run_id != Step(PIPE, "train").run_id


class TestStates:
    def test_success_builds_the_tree(self, tracker: PipelineTracker) -> None:
        for task in ("extract", "train"):
            tracker.step_running(Step(PIPE, task))
            tracker.step_ended(Step(PIPE, task), RunStatus.FINISHED)
        tracker.pipeline_ended(PIPE, RunStatus.FINISHED)
        parent = tracker.client.get_run(PIPE.run_id)
        assert parent.info.status is RunStatus.FINISHED
        children = tracker.client.get_children(PIPE.run_id)
        assert sorted(c.info.run_name for c in children) == ["extract", "train"]
        assert {c.info.status for c in children} == {RunStatus.FINISHED}
        assert parent.info.experiment_id == tracker.experiment_id()

    def test_retry_reuses_the_run(self, tracker: PipelineTracker) -> None:
        first, second = Step(PIPE, "train", attempt=1), Step(PIPE, "train", attempt=2)
        tracker.step_running(first)
        tracker.step_ended(first, RunStatus.FAILED, reason="MemoryError", retrying=True)
        run = tracker.client.get_run(first.run_id)
        assert run.info.status is RunStatus.SCHEDULED
        assert run.data.tags[FAILURE_REASON_TAG] == "MemoryError"
        tracker.step_running(second)
        assert _status(tracker, first.run_id) is RunStatus.RUNNING
        tracker.step_ended(second, RunStatus.FINISHED)
        run = tracker.client.get_run(first.run_id)
        assert run.info.status is RunStatus.FINISHED
        assert run.data.tags[ATTEMPT_TAG] == "2"
        assert FAILURE_REASON_TAG not in run.data.tags
        assert len(tracker.client.get_children(PIPE.run_id)) == 1

    def test_failure_records_the_reason(self, tracker: PipelineTracker) -> None:
        step = Step(PIPE, "validate")
        tracker.step_running(step)
        tracker.step_ended(step, RunStatus.FAILED, reason="ValueError: 3 null labels")
        run = tracker.client.get_run(step.run_id)
        assert run.info.status is RunStatus.FAILED
        assert run.data.tags[FAILURE_REASON_TAG] == "ValueError: 3 null labels"

    def test_repeated_and_late_events_change_nothing(self, tracker: PipelineTracker) -> None:
        step = Step(PIPE, "train", attempt=2)
        tracker.step_running(step)
        tracker.step_running(step)  # sent twice
        tracker.step_ended(step, RunStatus.FINISHED)
        tracker.step_ended(step, RunStatus.FINISHED)
        end = tracker.client.get_run(step.run_id).info.end_time
        tracker.step_running(step)  # a late "running" of the same try
        tracker.step_ended(Step(PIPE, "train", attempt=1), RunStatus.FAILED)  # an older try
        run = tracker.client.get_run(step.run_id)
        assert run.info.status is RunStatus.FINISHED
        assert run.info.end_time == end
        assert len(tracker.client.get_children(PIPE.run_id)) == 1

    def test_an_end_without_a_start_still_lands(self, tracker: PipelineTracker) -> None:
        step = Step(PIPE, "report")
        tracker.step_ended(step, RunStatus.KILLED, reason="SIGTERM")
        run = tracker.client.get_run(step.run_id)
        assert run.info.status is RunStatus.KILLED
        assert run.info.parent_run_id == PIPE.run_id
        assert run.data.tags[FAILURE_REASON_TAG] == "SIGTERM"


class TestPipelineEnd:
    def test_stragglers_are_closed(self, tracker: PipelineTracker) -> None:
        tracker.step_running(Step(PIPE, "done"))
        tracker.step_ended(Step(PIPE, "done"), RunStatus.FINISHED)
        tracker.step_running(Step(PIPE, "hung"))
        waiting = Step(PIPE, "retrying")
        tracker.step_running(waiting)
        tracker.step_ended(waiting, RunStatus.FAILED, retrying=True)
        tracker.step_ended(waiting, RunStatus.FAILED, reason="OOM", retrying=True)
        closed = tracker.pipeline_ended(PIPE, RunStatus.FAILED, reason="task hung failed")
        assert set(closed) == {Step(PIPE, "hung").run_id, waiting.run_id}
        hung = tracker.client.get_run(Step(PIPE, "hung").run_id)
        # Still running when the pipeline ended: killed, it did not fail by itself.
        assert hung.info.status is RunStatus.KILLED
        assert "when the pipeline run ended FAILED" in hung.data.tags[FAILURE_REASON_TAG]
        # Waiting for a retry after a failure: that failure is how it ended.
        retried = tracker.client.get_run(waiting.run_id)
        assert retried.info.status is RunStatus.FAILED
        assert retried.data.tags[FAILURE_REASON_TAG].startswith("OOM (still SCHEDULED")
        assert _status(tracker, Step(PIPE, "done").run_id) is RunStatus.FINISHED
        assert _status(tracker, PIPE.run_id) is RunStatus.FAILED

    def test_the_orchestrator_says_how_a_straggler_ended(self, tracker: PipelineTracker) -> None:
        tracker.step_running(Step(PIPE, "crashed"))
        closed = tracker.pipeline_ended(
            PIPE, RunStatus.FAILED, step_statuses={Step(PIPE, "crashed").run_id: RunStatus.FAILED}
        )
        assert closed == [Step(PIPE, "crashed").run_id]
        assert _status(tracker, Step(PIPE, "crashed").run_id) is RunStatus.FAILED

    def test_a_rerun_reopens_the_pipeline_run(self, tracker: PipelineTracker) -> None:
        tracker.step_running(Step(PIPE, "train"))
        tracker.step_ended(Step(PIPE, "train"), RunStatus.FINISHED)
        tracker.pipeline_ended(PIPE, RunStatus.FINISHED)
        # A late event of the first attempt changes nothing.
        tracker.step_running(Step(PIPE, "train"))
        assert _status(tracker, PIPE.run_id) is RunStatus.FINISHED
        # Cleared and run again: the second try reopens both, in the same runs.
        tracker.step_running(Step(PIPE, "train", attempt=2))
        assert _status(tracker, PIPE.run_id) is RunStatus.RUNNING
        assert _status(tracker, Step(PIPE, "train").run_id) is RunStatus.RUNNING
        tracker.step_ended(Step(PIPE, "train", attempt=2), RunStatus.FINISHED)
        tracker.pipeline_ended(PIPE, RunStatus.FINISHED)
        assert len(tracker.client.get_children(PIPE.run_id)) == 1

    def test_success_kills_what_is_left(self, tracker: PipelineTracker) -> None:
        tracker.step_running(Step(PIPE, "skipped-branch"))
        tracker.pipeline_ended(PIPE, RunStatus.FINISHED)
        assert _status(tracker, Step(PIPE, "skipped-branch").run_id) is RunStatus.KILLED
        # Sent again: nothing changes.
        assert tracker.pipeline_ended(PIPE, RunStatus.FINISHED) == []


class TestAttempts:
    def test_each_try_and_a_clear_is_on_record(self, tracker: PipelineTracker) -> None:
        first, second, third = (Step(PIPE, "train", attempt=n) for n in (1, 2, 3))
        tracker.step_running(first)
        assert [(a["attempt"], a["status"]) for a in attempts(_run(tracker, first))] == [
            (1, "RUNNING")
        ]
        tracker.step_ended(first, RunStatus.FAILED, reason="MemoryError", retrying=True)
        tracker.step_running(second)
        tracker.step_ended(second, RunStatus.FINISHED)
        # Cleared after it finished: a third try of the same run.
        tracker.step_running(third)
        tracker.step_ended(third, RunStatus.FAILED, reason="bad data")
        run = _run(tracker, first)
        history = attempts(run)
        assert [(a["attempt"], a["status"]) for a in history] == [
            (1, "FAILED"),
            (2, "FINISHED"),
            (3, "FAILED"),
        ]
        assert all(a["start"] <= a["end"] for a in history)
        assert history[0]["end"] <= history[1]["start"] <= history[1]["end"] <= history[2]["start"]
        assert history[-1]["end"] == run.info.end_time
        assert json.loads(run.data.tags[ATTEMPTS_TAG])[0]["status"] == "FAILED"

    def test_the_history_is_bounded(self, tracker: PipelineTracker) -> None:
        for n in range(1, MAX_ATTEMPTS_KEPT + 6):
            tracker.step_running(Step(PIPE, "flaky", attempt=n))
            tracker.step_ended(Step(PIPE, "flaky", attempt=n), RunStatus.FAILED, retrying=True)
        history = attempts(_run(tracker, Step(PIPE, "flaky")))
        assert len(history) == MAX_ATTEMPTS_KEPT
        assert history[-1]["attempt"] == MAX_ATTEMPTS_KEPT + 5


class TestAdopt:
    def test_ending_a_run_of_another_experiment_creates_none(
        self, tracker: PipelineTracker
    ) -> None:
        # The DAG's runs live in "nightly" (a trackflow.experiment= tag); a process that
        # did not know that ends the DAG run from its run.
        PipelineTracker(tracker.client, "nightly").pipeline_started(PIPE)
        ending = PipelineTracker(tracker.client, "retrain")
        ending.adopt(tracker.client.get_run(PIPE.run_id))
        ending.pipeline_ended(PIPE, RunStatus.FINISHED)
        assert _status(tracker, PIPE.run_id) is RunStatus.FINISHED
        assert tracker.client.get_experiment_by_name("retrain") is None


class TestNeverBreak:
    def test_failures_warn_once_per_key_and_are_swallowed(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        from tracking.errors import StoreUnavailableError
        from tracking.pipelines import NeverBreak

        guard = NeverBreak()
        calls = []

        def down() -> None:
            calls.append(1)
            raise StoreUnavailableError("connection refused")

        with caplog.at_level("WARNING", logger="tracking.pipelines"):
            assert guard.call("dag/train", down) is None
            assert guard.call("dag/train", down) is None
            assert guard.call("dag/eval", down) is None
        assert len(calls) == 3  # every call is tried: states catch up when it is back
        warnings = [r for r in caplog.records if "goes on untracked" in r.getMessage()]
        assert len(warnings) == 2
        assert guard.warned("dag/train") and not guard.warned("dag/report")
        assert guard.call("dag/train", lambda: 42) == 42


class TestArtifactRefTravels:
    def test_round_trip_through_json(self) -> None:
        import json

        from tracking import ArtifactRef

        ref = ArtifactRef(
            "r" * 32, "model/model.pkl", "mlflow-artifacts:/1/r/artifacts/m", 7, "a" * 64
        )
        assert ArtifactRef.from_dict(json.loads(json.dumps(ref.to_dict()))) == ref
        with pytest.raises(KeyError, match="uri"):
            ArtifactRef.from_dict({"run_id": "r", "path": "p", "size": 1})
