"""Conformance cases for runs: lifecycle, ids, nesting, heartbeats."""

from __future__ import annotations

import time

import pytest

from tracking.client import TrackingClient
from tracking.entities import LifecycleStage, RunStatus
from tracking.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidParameterError,
    InvalidStateError,
    RunNotFoundError,
)
from tracking.ids import run_id_for

__all__ = ["NestingSuite", "RunLifecycleSuite"]


class RunLifecycleSuite:
    """Creating, reading, ending, deleting runs; idempotent ids."""

    def test_create_and_get_run(self, client: TrackingClient) -> None:
        eid = client.create_experiment("runs")
        run = client.create_run(eid, run_name="first", tags={"a": "1"}, start_time=1234)
        info = run.info
        assert len(info.run_id) == 32 and info.run_uuid == info.run_id
        assert info.experiment_id == eid
        assert info.run_name == "first"
        assert info.status is RunStatus.RUNNING
        assert info.start_time == 1234 and info.end_time is None
        assert info.lifecycle_stage is LifecycleStage.ACTIVE
        assert info.artifact_uri.endswith(f"/{eid}/{info.run_id}/artifacts")
        assert info.user_id
        fetched = client.get_run(info.run_id)
        assert fetched.info == info
        assert dict(fetched.data.tags) == {"a": "1", "mlflow.runName": "first"}

    def test_unnamed_runs_get_a_name(self, client: TrackingClient) -> None:
        run = client.create_run("0")
        assert run.info.run_name.count("-") == 2
        assert client.get_run(run.info.run_id).data.tags["mlflow.runName"] == run.info.run_name

    def test_run_name_from_tag(self, client: TrackingClient) -> None:
        run = client.create_run("0", tags={"mlflow.runName": "tagged"})
        assert run.info.run_name == "tagged"

    def test_scheduled_status(self, client: TrackingClient) -> None:
        run = client.create_run("0", status="SCHEDULED")
        assert client.get_run(run.info.run_id).info.status is RunStatus.SCHEDULED
        client.update_run(run.info.run_id, status="RUNNING")
        assert client.get_run(run.info.run_id).info.status is RunStatus.RUNNING

    def test_create_in_missing_experiment(self, client: TrackingClient) -> None:
        with pytest.raises(ExperimentNotFoundError):
            client.create_run("999999")

    def test_get_missing_run(self, client: TrackingClient) -> None:
        with pytest.raises(RunNotFoundError):
            client.get_run("0" * 32)

    @pytest.mark.parametrize(
        "status",
        [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED],
        ids=["finished", "failed", "killed"],
    )
    def test_set_terminated(self, client: TrackingClient, status: RunStatus) -> None:
        run_id = client.create_run("0").info.run_id
        before = int(time.time() * 1000)
        client.set_terminated(run_id, status.value.lower())
        info = client.get_run(run_id).info
        assert info.status is status
        assert info.end_time is not None and info.end_time >= before - 5

    def test_set_terminated_with_end_time(self, client: TrackingClient) -> None:
        run_id = client.create_run("0", start_time=1000).info.run_id
        client.set_terminated(run_id, end_time=5000)
        assert client.get_run(run_id).info.end_time == 5000

    def test_reopened_run_has_no_end_time(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.set_terminated(run_id, end_time=5000)
        info = client.update_run(run_id, status="RUNNING")
        assert info.status is RunStatus.RUNNING
        assert info.end_time is None
        assert client.get_run(run_id).info.end_time is None

    def test_set_terminated_refuses_running(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        with pytest.raises(InvalidParameterError, match="FINISHED"):
            client.set_terminated(run_id, "RUNNING")

    def test_bad_status(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        with pytest.raises(InvalidParameterError, match="DONE"):
            client.update_run(run_id, status="DONE")
        assert client.get_run(run_id).info.status is RunStatus.RUNNING

    def test_rename_run(self, client: TrackingClient) -> None:
        run_id = client.create_run("0", run_name="a").info.run_id
        info = client.update_run(run_id, name="b")
        assert info.run_name == "b"
        run = client.get_run(run_id)
        assert run.info.run_name == "b" and run.data.tags["mlflow.runName"] == "b"

    def test_delete_and_restore(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.delete_run(run_id)
        assert client.get_run(run_id).info.lifecycle_stage is LifecycleStage.DELETED
        with pytest.raises(InvalidStateError, match="active"):
            client.log_metric(run_id, "m", 1.0)
        with pytest.raises(InvalidStateError):
            client.set_terminated(run_id)
        client.restore_run(run_id)
        client.log_metric(run_id, "m", 1.0)
        assert client.get_run(run_id).data.metrics == {"m": 1.0}

    def test_delete_missing_run(self, client: TrackingClient) -> None:
        with pytest.raises(RunNotFoundError):
            client.delete_run("f" * 32)

    def test_caller_chosen_id_is_idempotent(self, client: TrackingClient) -> None:
        eid = client.create_experiment("idem")
        run_id = run_id_for("dag", "2026-11-26", "train")
        first = client.create_run(eid, run_id=run_id, run_name="train", tags={"try": "1"})
        again = client.create_run(eid, run_id=run_id, run_name="other", tags={"try": "2"})
        assert first.info.run_id == again.info.run_id == run_id
        assert again.info.run_name == "train"
        assert again.data.tags["try"] == "1"
        assert len(client.search_runs([eid])) == 1

    def test_caller_chosen_id_in_another_experiment(self, client: TrackingClient) -> None:
        a = client.create_experiment("a")
        b = client.create_experiment("b")
        run_id = run_id_for("x")
        client.create_run(a, run_id=run_id)
        with pytest.raises(AlreadyExistsError, match=run_id):
            client.create_run(b, run_id=run_id)

    @pytest.mark.parametrize(
        "run_id",
        ["", "a" * 33, "../etc", "has space", "semi;colon"],
        ids=["empty", "too-long", "dots-slash", "space", "semicolon"],
    )
    def test_bad_caller_chosen_id(self, client: TrackingClient, run_id: str) -> None:
        with pytest.raises(InvalidParameterError, match="run_id"):
            client.create_run("0", run_id=run_id)


class NestingSuite:
    """Parent and child runs at any depth; heartbeats and reaping."""

    def test_parent_column_and_tag(self, client: TrackingClient) -> None:
        parent = client.create_run("0").info.run_id
        child = client.create_run("0", parent_run_id=parent)
        assert child.info.parent_run_id == parent
        fetched = client.get_run(child.info.run_id)
        assert fetched.info.parent_run_id == parent
        assert fetched.data.tags["mlflow.parentRunId"] == parent

    def test_missing_parent(self, client: TrackingClient) -> None:
        with pytest.raises(RunNotFoundError, match="parent"):
            client.create_run("0", parent_run_id="a" * 32)

    def test_children_and_subtree(self, client: TrackingClient) -> None:
        root = client.create_run("0", run_name="root").info.run_id
        kids = [
            client.create_run("0", run_name=f"k{i}", parent_run_id=root, start_time=10 + i)
            for i in range(3)
        ]
        grandkid = client.create_run("0", run_name="g", parent_run_id=kids[1].info.run_id)
        great = client.create_run("0", run_name="gg", parent_run_id=grandkid.info.run_id)
        client.create_run("0", run_name="unrelated")
        children = client.get_children(root)
        assert [r.info.run_name for r in children] == ["k0", "k1", "k2"]
        subtree = client.get_subtree(root)
        assert [r.info.run_name for r in subtree] == ["k0", "k1", "k2", "g", "gg"]
        assert subtree[-1].info.run_id == great.info.run_id
        assert client.get_children(great.info.run_id) == []

    def test_children_of_missing_run(self, client: TrackingClient) -> None:
        with pytest.raises(RunNotFoundError):
            client.get_children("b" * 32)

    def test_reap_stale_runs(self, client: TrackingClient) -> None:
        now = int(time.time() * 1000)
        stale = client.create_run("0", start_time=now - 3_600_000).info.run_id
        fresh = client.create_run("0", start_time=now - 3_600_000).info.run_id
        done = client.create_run("0", start_time=now - 3_600_000).info.run_id
        client.set_terminated(done)
        client.heartbeat(fresh)
        reaped = client.reap_stale_runs(older_than=600)
        assert reaped == [stale]
        info = client.get_run(stale)
        assert info.info.status is RunStatus.FAILED
        assert info.info.end_time is not None
        assert "heartbeat" in info.data.tags["trackflow.failureReason"]
        assert client.get_run(fresh).info.status is RunStatus.RUNNING
        assert client.get_run(done).info.status is RunStatus.FINISHED
        assert client.reap_stale_runs(older_than=600) == []

    def test_pipeline_runs_are_left_to_their_orchestrator(self, client: TrackingClient) -> None:
        old = int(time.time() * 1000) - 3_600_000
        tags = {"trackflow.orchestrator": "airflow"}
        pipeline = client.create_run("0", start_time=old, tags=tags).info.run_id
        step = client.create_run("0", start_time=old, parent_run_id=pipeline).info.run_id
        # No process beats for a DAG run: the orchestrator ends it, never the reaper.
        assert client.reap_stale_runs(older_than=600) == [step]
        assert client.get_run(pipeline).info.status is RunStatus.RUNNING

    def test_reaped_run_that_goes_on_loses_its_failure_reason(self, client: TrackingClient) -> None:
        now = int(time.time() * 1000)
        run_id = client.create_run("0", start_time=now - 3_600_000).info.run_id
        assert client.reap_stale_runs(older_than=600) == [run_id]
        assert "trackflow.failureReason" in client.get_run(run_id).data.tags
        # Its process was alive after all: it carries on and finishes.
        client.update_run(run_id, status=RunStatus.RUNNING)
        client.set_terminated(run_id)
        run = client.get_run(run_id)
        assert run.info.status is RunStatus.FINISHED
        assert "trackflow.failureReason" not in run.data.tags
        assert "trackflow.reapedAt" not in run.data.tags

    @pytest.mark.parametrize(
        "status", [RunStatus.KILLED, RunStatus.FAILED], ids=["killed", "failed"]
    )
    def test_ended_again_the_same_way_keeps_reason_and_end_time(
        self, client: TrackingClient, status: RunStatus
    ) -> None:
        # An orchestrator's events arrive more than once: the second "killed" (the
        # task's own SIGTERM handling after the API server's mark) changes nothing.
        run_id = client.create_run("0").info.run_id
        first = client.set_terminated(run_id, status, end_time=1_000_000).end_time
        client.set_tag(run_id, "trackflow.failureReason", "marked failed from the UI")
        again = client.set_terminated(run_id, status, end_time=2_000_000)
        run = client.get_run(run_id)
        assert run.info.status is status
        assert first == again.end_time == run.info.end_time == 1_000_000
        assert run.data.tags["trackflow.failureReason"] == "marked failed from the UI"

    def test_failed_then_killed_keeps_reason_takes_new_end(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.set_terminated(run_id, RunStatus.FAILED, end_time=1_000_000)
        client.set_tag(run_id, "trackflow.failureReason", "boom")
        client.set_terminated(run_id, RunStatus.KILLED, end_time=2_000_000)
        run = client.get_run(run_id)
        assert (run.info.status, run.info.end_time) == (RunStatus.KILLED, 2_000_000)
        assert run.data.tags["trackflow.failureReason"] == "boom"

    @pytest.mark.parametrize(
        "status",
        [RunStatus.RUNNING, RunStatus.SCHEDULED, RunStatus.FINISHED],
        ids=["running", "scheduled", "finished"],
    )
    def test_reason_dropped_when_the_run_goes_on_or_finishes(
        self, client: TrackingClient, status: RunStatus
    ) -> None:
        run_id = client.create_run("0").info.run_id
        client.set_terminated(run_id, RunStatus.KILLED)
        client.set_tag(run_id, "trackflow.failureReason", "terminated")
        client.update_run(run_id, status=status)
        run = client.get_run(run_id)
        assert run.info.status is status
        assert "trackflow.failureReason" not in run.data.tags
        assert (run.info.end_time is None) is (not status.is_terminated)

    def test_failed_run_keeps_its_reason(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.set_tag(run_id, "trackflow.failureReason", "boom")
        client.set_terminated(run_id, RunStatus.FAILED)
        assert client.get_run(run_id).data.tags["trackflow.failureReason"] == "boom"

    @pytest.mark.parametrize(
        "older_than", [0, -5, "soon", True], ids=["zero", "neg", "str", "bool"]
    )
    def test_reap_bad_argument(self, client: TrackingClient, older_than: object) -> None:
        with pytest.raises(InvalidParameterError, match="older_than"):
            client.reap_stale_runs(older_than)
