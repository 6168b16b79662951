"""The listener inside someone else's process: the DAG-run hooks run in the
scheduler's loop (and the API server's requests), so they must not touch the
caller's database session or do I/O on its thread; and an Airflow process that
cannot tell where the store is writes nowhere rather than to a ./trackflow.db."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _airflow_support import run_tree

from operators import listener
from operators._tracking import airflow_tracking
from tracking import RunStatus, TrackingClient
from tracking.settings import reset_settings

pytestmark = pytest.mark.airflow


def _tf_outage(run_dag: Any, tmp_path: Path) -> Any:
    """A tracked DAG run whose tasks do nothing (every marker it waits for exists)."""
    markers = tmp_path / "markers"
    markers.mkdir()
    for name in ("server-down", "server-up"):
        (markers / name).touch()
    dag_run = run_dag("tf_outage", run_conf={"markers": str(markers)})
    assert dag_run.state == "success"
    return dag_run


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No connection, no TRACKFLOW_TRACKING_URI, a working directory of its own."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("TRACKFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_TRACKFLOW_DEFAULT", raising=False)
    reset_settings()
    airflow_tracking().reset()
    yield workdir
    reset_settings()
    airflow_tracking().reset()


class TestTheCallersSession:
    def test_dag_run_hooks_leave_the_scheduler_session_alone(
        self, run_dag: Any, dagbag: Any, served: TrackingClient, tmp_path: Path
    ) -> None:
        from airflow import settings
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from sqlalchemy import event, select

        done = _tf_outage(run_dag, tmp_path)
        caller = threading.get_ident()
        on_callers_thread: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if threading.get_ident() == caller:
                on_callers_thread.append(statement)

        dag = dagbag.get_dag("tf_outage")  # (this one closes the thread's session itself)
        # As the scheduler's loop holds it: the thread's scoped session, a DagRun in it.
        with create_session() as session:
            dag_run = session.scalar(
                select(DagRun).where(DagRun.dag_id == "tf_outage", DagRun.run_id == done.run_id)
            )
            dag_run.dag = dag
            event.listen(settings.engine, "before_cursor_execute", record)
            try:
                listener.on_dag_run_running(dag_run=dag_run, msg="")
                listener.on_dag_run_failed(dag_run=dag_run, msg="task_failure")
            finally:
                event.remove(settings.engine, "before_cursor_execute", record)
            assert on_callers_thread == []
            # The scheduler goes on with its objects: still in its open session.
            assert dag_run in session
            assert session.is_active
            assert dag_run.state == "success"
        assert airflow_tracking().flush(60)
        parent, children = run_tree(served, "tf_outage", done.run_id)
        assert parent.info.status is RunStatus.FAILED
        assert parent.data.tags["trackflow.failureReason"] == "task_failure"
        assert {r.info.status for r in children.values()} == {RunStatus.FINISHED}


class TestNoFallback:
    def test_nothing_configured_writes_nowhere_and_says_why(
        self, run_dag: Any, nowhere: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING):
            _tf_outage(run_dag, tmp_path)  # the pipeline runs, untracked
        assert list(nowhere.iterdir()) == []
        assert "no Airflow connection 'trackflow_default' and no TRACKFLOW_TRACKING_URI" in (
            caplog.text
        )
        assert "StoreNotConfiguredError" in caplog.text

    def test_a_connection_that_cannot_be_read_is_named(
        self, nowhere: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from airflow.sdk.execution_time import supervisor

        from operators.hooks import TrackflowHook
        from tracking import StoreNotConfiguredError

        class Unreachable:
            def get_connection(self, conn_id: str) -> None:
                raise ConnectionError("metadata database at db:5432 refused the connection")

        # Airflow reports a backend that failed as "not found"; the hook asks each one.
        monkeypatch.setattr(supervisor, "ensure_secrets_backend_loaded", lambda: [Unreachable()])
        monkeypatch.setenv("TRACKFLOW_TRACKING_URI", f"sqlite:///{nowhere}/elsewhere.db")
        with pytest.raises(StoreNotConfiguredError) as caught:
            TrackflowHook().get_config()
        message = str(caught.value)
        assert "'trackflow_default' could not be read" in message
        assert "Unreachable: ConnectionError: metadata database at db:5432 refused" in message


class TestMarkedFromOutside:
    def test_a_dag_run_marked_in_the_api_server_keeps_its_experiment(
        self, run_dag: Any, airflow_api: Any, embedded: TrackingClient
    ) -> None:
        dag_run = run_dag("tf_experiment_tag")
        parent, _ = run_tree(embedded, "tf_experiment_tag", dag_run.run_id)
        elsewhere = embedded.get_experiment_by_name("tf_elsewhere")
        assert elsewhere is not None
        assert parent.info.experiment_id == elsewhere.experiment_id
        # The API server's hook has a DagRun and no DAG: it reads the DAG's tags itself.
        answer = airflow_api.patch(
            f"/api/v2/dags/tf_experiment_tag/dagRuns/{dag_run.run_id}", json={"state": "failed"}
        )
        assert answer.status_code == 200, answer.text
        parent, _ = run_tree(embedded, "tf_experiment_tag", dag_run.run_id)
        assert parent.info.status is RunStatus.FAILED
        # Nothing else was created on the way: no experiment named after the DAG.
        assert embedded.get_experiment_by_name("tf_experiment_tag") is None


class TestBesideARunningTask:
    """``dag.test()`` runs tasks in its own process, where the listener's dispatcher
    thread also runs: while a task runs, the Task SDK's supervisor channel is the task
    thread's, and a connection lookup sent through it from another thread unsets it
    under the task (which then failed at random: ``NameError: SUPERVISOR_COMMS``)."""

    def test_the_dispatcher_reads_the_connection_without_the_tasks_channel(
        self, run_dag: Any, embedded: TrackingClient, tmp_path: Path
    ) -> None:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        dag_run = run_dag("tf_beside_task")
        assert dag_run.state == "success"
        with create_session() as session:
            (value,) = session.scalars(
                XComModel.get_many(
                    run_id=dag_run.run_id, key="return_value", dag_ids="tf_beside_task"
                ).with_only_columns(XComModel.value)
            ).all()
        result = XComModel.deserialize_value(type("X", (), {"value": value})())
        assert result["uris"] == [f"sqlite:///{tmp_path}/runs.db"] * 40
        assert result["checks"] > 0
        assert result["missing"] == 0  # the task's channel was there at every check

    def test_an_untracked_dag_run_with_no_store_ends_quietly(
        self, run_dag: Any, nowhere: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING):
            # run_dag asserts that the DAG run's end was handled, not left retrying.
            assert run_dag("tf_untracked").state == "success"
            assert run_dag("tf_untracked").state == "success"
        assert "trackflow" not in caplog.text
        assert list(nowhere.iterdir()) == []
