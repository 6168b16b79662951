"""The scheduler's reaper (``operators.maintenance``): the runs of DAG runs whose end
never reached the store end as Airflow ended them, or FAILED when Airflow no longer
has the DAG run; DAG runs Airflow still runs are left alone."""

from __future__ import annotations

import time
from typing import Any

import pytest

from operators._tracking import TRACK_ALL_ENV, pipeline_for
from tracking import RunStatus, TrackingClient
from tracking.pipelines import FAILURE_REASON_TAG

pytestmark = pytest.mark.airflow

DAG_ID = "tf_untracked"  # one quick task; tracked here through TRACK_ALL_ENV


@pytest.fixture
def lost_end(
    run_dag: Any, embedded: TrackingClient, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, str, str]:
    """A finished DAG run whose end never reached the store: its runs are RUNNING."""
    monkeypatch.setenv(TRACK_ALL_ENV, "1")
    dag_run = run_dag(DAG_ID)
    assert dag_run.state == "success"
    parent = pipeline_for(DAG_ID, dag_run.run_id).run_id
    (child,) = embedded.get_subtree(parent)
    for run_id in (parent, child.info.run_id):
        embedded.update_run(run_id, status=RunStatus.RUNNING)
    return dag_run, parent, child.info.run_id


def _set_dag_run(dag_run: Any, state: str | None) -> None:
    """Change (or, with None, delete) the DAG run in Airflow's metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, update

    where = (DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id)
    with create_session() as session:
        if state is None:
            session.execute(delete(DagRun).where(*where))
        else:
            session.execute(update(DagRun).where(*where).values(state=state))


class TestReapEndedDagRuns:
    def test_an_end_that_was_lost_is_caught_up(
        self, lost_end: tuple[Any, str, str], embedded: TrackingClient
    ) -> None:
        from operators.maintenance import reap_ended_dag_runs

        _, parent, child = lost_end
        # Within the grace the scheduler's own end may still come: nothing happens.
        assert reap_ended_dag_runs(grace=3600) == []
        assert embedded.get_run(parent).info.status is RunStatus.RUNNING
        assert reap_ended_dag_runs(grace=0) == [parent]
        assert embedded.get_run(parent).info.status is RunStatus.FINISHED
        # The task instance succeeded: so did its run.
        assert embedded.get_run(child).info.status is RunStatus.FINISHED
        assert reap_ended_dag_runs(grace=0) == []  # once

    def test_a_dag_run_still_running_is_left_alone(
        self, lost_end: tuple[Any, str, str], embedded: TrackingClient
    ) -> None:
        from operators.maintenance import reap_ended_dag_runs

        dag_run, parent, _ = lost_end
        _set_dag_run(dag_run, "running")
        assert reap_ended_dag_runs(grace=0) == []
        assert embedded.get_run(parent).info.status is RunStatus.RUNNING

    def test_a_deleted_dag_run_fails(
        self, lost_end: tuple[Any, str, str], embedded: TrackingClient
    ) -> None:
        from operators.maintenance import reap_ended_dag_runs

        dag_run, parent, child = lost_end
        _set_dag_run(dag_run, None)
        assert reap_ended_dag_runs(grace=0) == [parent]
        for run_id in (parent, child):
            run = embedded.get_run(run_id)
            assert run.info.status is RunStatus.FAILED
            reason = run.data.tags[FAILURE_REASON_TAG]
            assert f"DAG run {dag_run.run_id} of {DAG_ID} no longer exists in Airflow" in reason


class TestTheSchedulersReaper:
    """Airflow's own Job and SchedulerJobRunner fire the listener's ``on_starting``."""

    @pytest.fixture(autouse=True)
    def _quick(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        from operators import maintenance

        monkeypatch.setenv("TRACKFLOW_AIRFLOW_REAP_INTERVAL", "0.2")
        monkeypatch.setenv("TRACKFLOW_AIRFLOW_REAP_GRACE", "0")
        monkeypatch.setattr(maintenance, "_reaper", None)
        yield
        maintenance.stop_scheduler_reaper()

    def test_a_scheduler_reaps(
        self, lost_end: tuple[Any, str, str], embedded: TrackingClient
    ) -> None:
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        from operators import maintenance

        _, parent, _ = lost_end
        SchedulerJobRunner(job=Job())  # type: ignore[no-untyped-call]  # the listener's on_starting starts the reaper
        assert maintenance._reaper is not None
        deadline = time.monotonic() + 30
        while embedded.get_run(parent).info.status is RunStatus.RUNNING:
            assert time.monotonic() < deadline, "the scheduler's reaper never ended the run"
            time.sleep(0.1)
        assert embedded.get_run(parent).info.status is RunStatus.FINISHED

    def test_a_triggerer_does_not(
        self, lost_end: tuple[Any, str, str], embedded: TrackingClient
    ) -> None:
        from airflow.jobs.job import Job
        from airflow.jobs.triggerer_job_runner import TriggererJobRunner

        from operators import maintenance

        _, parent, _ = lost_end
        TriggererJobRunner(job=Job())  # type: ignore[no-untyped-call]
        reaper = maintenance._reaper
        assert reaper is not None and reaper._thread is not None
        reaper._thread.join(5)
        assert not reaper._thread.is_alive(), "a triggerer's reaper kept running"
        assert embedded.get_run(parent).info.status is RunStatus.RUNNING

    def test_turned_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from airflow.jobs.job import Job

        from operators import maintenance

        monkeypatch.setenv("TRACKFLOW_AIRFLOW_REAP_INTERVAL", "0")
        Job()  # type: ignore[no-untyped-call]
        assert maintenance._reaper is None
