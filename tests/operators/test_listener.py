"""The listener: a DAG tagged ``trackflow`` with no trackflow code in its tasks leaves
the run tree (parent per DAG run, child per task instance) with the right states."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from _airflow_support import AIRFLOW_UI, run_tree

from operators._tracking import SKIPPED_PARAMS_TAG, TRACK_ALL_ENV, pipeline_for
from tracking import RunNotFoundError, RunStatus, TrackingClient
from tracking.pipelines import ATTEMPT_TAG, FAILURE_REASON_TAG, attempts

pytestmark = pytest.mark.airflow


class TestSuccessRetryMapping:
    @pytest.fixture(scope="class")
    def result(self, run_dag: Any, class_store: TrackingClient) -> tuple[Any, Any, dict[str, Any]]:
        dag_run = run_dag("tf_basics", run_conf={"alpha": 0.7, "source": "nightly"})
        assert dag_run.state == "success"
        parent, children = run_tree(class_store, "tf_basics", dag_run.run_id)
        return dag_run, parent, children

    def test_the_dag_run_is_the_parent(self, result: Any, class_store: TrackingClient) -> None:
        dag_run, parent, _ = result
        assert parent.info.status is RunStatus.FINISHED
        # Named for a person: the DAG and when it ran (the run id stays in a tag).
        when = dag_run.logical_date or dag_run.run_after
        assert parent.info.run_name == f"tf_basics {when:%Y-%m-%d %H:%M:%S}"
        experiment = class_store.get_experiment(parent.info.experiment_id)
        assert experiment.name == "tf_basics"
        tags = parent.data.tags
        assert tags["airflow.dag_id"] == "tf_basics"
        assert tags["airflow.run_id"] == dag_run.run_id
        assert tags["airflow.run_type"] == "manual"
        assert tags["airflow.run_after"].startswith(dag_run.run_after.isoformat()[:19])
        assert "airflow.data_interval_start" in tags
        assert tags["airflow.url"].startswith(f"{AIRFLOW_UI}/dags/tf_basics/runs/manual__")
        # DAG params (the conf overriding them) and conf keys are params; one too long
        # for a param is named in a tag instead.
        assert parent.data.params == {"alpha": "0.7", "source": "nightly"}
        assert "notes" in tags[SKIPPED_PARAMS_TAG]

    def test_every_task_instance_is_a_child(self, result: Any) -> None:
        _, parent, children = result
        assert sorted(children) == [
            "child_process",
            "extract",
            "flaky",
            "inner",
            "square[0]",
            "square[1]",
            "square[2]",
            "total",
        ]
        for name, run in children.items():
            expected = run.info.parent_run_id
            if name == "inner":
                assert expected == children["child_process"].info.run_id
            else:
                assert expected == parent.info.run_id, name
            assert run.info.status is RunStatus.FINISHED, name

    def test_task_tags_and_links(self, result: Any) -> None:
        dag_run, _, children = result
        square = children["square[1]"]
        tags = square.data.tags
        assert tags["airflow.task_id"] == "square"
        assert tags["airflow.map_index"] == "1"
        assert tags["airflow.try_number"] == "1"
        assert tags["airflow.operator"] == "@task"
        run_path = dag_run.run_id.replace(":", "%3A").replace("+", "%2B")
        assert tags["airflow.url"] == (
            f"{AIRFLOW_UI}/dags/tf_basics/runs/{run_path}/tasks/square/mapped/1"
        )
        assert children["extract"].data.tags["airflow.map_index"] == "-1"

    def test_metrics_land_in_their_task_runs(self, result: Any) -> None:
        _, _, children = result
        assert children["extract"].data.metrics == {"rows": 3.0}
        assert [children[f"square[{i}]"].data.metrics["sq"] for i in range(3)] == [1.0, 4.0, 9.0]
        assert children["total"].data.metrics == {"total": 14.0}
        # start_run() inside the task gave the task's own run.
        assert children["total"].data.tags["run_seen"] == children["total"].info.run_id

    def test_a_retry_is_the_same_run(self, result: Any, class_store: TrackingClient) -> None:
        _, _, children = result
        flaky = children["flaky"]
        assert flaky.info.status is RunStatus.FINISHED
        assert flaky.data.tags[ATTEMPT_TAG] == "2"
        assert flaky.data.tags["airflow.try_number"] == "2"
        assert FAILURE_REASON_TAG not in flaky.data.tags
        history = class_store.get_metric_history(flaky.info.run_id, "try")
        assert [m.value for m in history] == [1.0, 2.0]
        # Each try is on record: when it started and ended, and how.
        first, second = attempts(flaky)
        assert (first["attempt"], first["status"]) == (1, "FAILED")
        assert (second["attempt"], second["status"]) == (2, "FINISHED")
        assert first["start"] <= first["end"] <= second["start"] <= second["end"]
        assert second["end"] == flaky.info.end_time

    def test_a_subprocess_joins_the_task_run(self, result: Any) -> None:
        _, _, children = result
        assert children["child_process"].data.metrics == {"from_child": 1.0}
        assert children["inner"].data.metrics == {"inner": 2.0}


class TestFailures:
    @pytest.fixture(scope="class")
    def result(
        self, run_dag: Any, class_embedded: TrackingClient
    ) -> tuple[Any, Any, dict[str, Any]]:
        dag_run = run_dag("tf_failures")
        assert dag_run.state == "failed"
        parent, children = run_tree(class_embedded, "tf_failures", dag_run.run_id)
        return dag_run, parent, children

    def test_the_parent_fails(self, result: Any) -> None:
        _, parent, children = result
        assert parent.info.status is RunStatus.FAILED
        # A task that never ran (upstream failed) has no run.
        assert "after_boom" not in children

    def test_a_failure_for_good(self, result: Any) -> None:
        _, _, children = result
        boom = children["boom"]
        assert boom.info.status is RunStatus.FAILED
        assert boom.data.tags[FAILURE_REASON_TAG] == "ValueError: boom: the input file is empty"
        assert boom.data.metrics == {"before": 1.0}

    def test_execution_timeout(self, result: Any) -> None:
        _, _, children = result
        slow = children["too_slow"]
        assert slow.info.status is RunStatus.FAILED
        assert slow.data.tags[FAILURE_REASON_TAG].startswith(
            "execution_timeout of 0:00:01 exceeded"
        )

    def test_sigterm_kills(self, result: Any) -> None:
        _, _, children = result
        terminated = children["terminated"]
        assert terminated.info.status is RunStatus.KILLED
        assert "Bash command failed" in terminated.data.tags[FAILURE_REASON_TAG]


class TestWhichDagsAreTracked:
    def test_an_untagged_dag_is_not(self, run_dag: Any, embedded: TrackingClient) -> None:
        dag_run = run_dag("tf_untracked")
        assert dag_run.state == "success"
        with pytest.raises(RunNotFoundError):
            embedded.get_run(pipeline_for("tf_untracked", dag_run.run_id).run_id)

    def test_track_all(
        self, run_dag: Any, embedded: TrackingClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(TRACK_ALL_ENV, "true")
        dag_run = run_dag("tf_untracked")
        parent, children = run_tree(embedded, "tf_untracked", dag_run.run_id)
        assert parent.info.status is RunStatus.FINISHED
        assert list(children) == ["plain"]


class TestIdempotence:
    def test_the_same_dag_run_twice_makes_no_duplicates(
        self, run_dag: Any, embedded: TrackingClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import pendulum

        monkeypatch.setenv(TRACK_ALL_ENV, "1")
        day = pendulum.datetime(2026, 3, 1, tz="UTC")
        first = run_dag("tf_untracked", logical_date=day, run_after=day)
        second = run_dag("tf_untracked", logical_date=day, run_after=day)
        assert first.run_id == second.run_id
        parent, children = run_tree(embedded, "tf_untracked", first.run_id)
        assert parent.info.status is RunStatus.FINISHED
        assert list(children) == ["plain"]
        assert children["plain"].info.status is RunStatus.FINISHED
        exp = embedded.get_experiment_by_name("tf_untracked")
        assert exp is not None
        assert len(embedded.search_runs([exp.experiment_id])) == 2

    def test_hooks_fired_twice(self, embedded: TrackingClient, caplog: Any) -> None:
        """Airflow fires some hooks twice (#48927): the second changes nothing."""
        from operators import listener

        ti = _FakeTI("tf_dup", "manual__1", "t", -1, 1)
        listener.on_task_instance_running(None, ti)
        listener.on_task_instance_running(None, ti)
        ti.state = "success"
        listener.on_task_instance_success("running", ti)
        listener.on_task_instance_success("running", ti)
        _, children = run_tree(embedded, "tf_dup", "manual__1")
        assert list(children) == ["t"]
        assert children["t"].info.status is RunStatus.FINISHED
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class _Dag:
    tags = ("trackflow",)
    tasks = ()


class _Task:
    dag = _Dag()
    task_type = "PythonOperator"


class _FakeTI:
    """The fields of a task instance the listener reads (for calling hooks twice)."""

    def __init__(self, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int):
        self.dag_id, self.run_id, self.task_id = dag_id, run_id, task_id
        self.map_index, self.try_number = map_index, try_number
        self.task = _Task()
        self.state = "running"

    def get_template_context(self) -> dict[str, Any]:
        return {}


class TestStockMlflowClient:
    def test_a_subprocess_logs_with_mlflow_into_the_task_run(
        self, run_dag: Any, served: TrackingClient, mlflow_python: Any
    ) -> None:
        dag_run = run_dag("tf_stock_mlflow", run_conf={"mlflow_python": str(mlflow_python)})
        assert dag_run.state == "success"
        _, children = run_tree(served, "tf_stock_mlflow", dag_run.run_id)
        run = children["stock_mlflow"]
        assert run.info.status is RunStatus.FINISHED
        assert run.data.metrics == {"stock": 3.0}
        assert run.data.tags["client"] == "mlflow"
