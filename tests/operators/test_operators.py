"""``@task.trackflow``, the operators, the sensor, lineage through XCom'd ArtifactRefs,
and clear errors for bad input."""

from __future__ import annotations

from typing import Any

import pytest
from _airflow_support import run_tree

from operators.champion import CHAMPION_TAG
from tracking import RunStatus, TrackingClient
from tracking.pipelines import FAILURE_REASON_TAG

pytestmark = pytest.mark.airflow


def _champions(client: TrackingClient, experiment: str) -> list[str]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{CHAMPION_TAG}` = 'true'")
    return [r.info.run_id for r in runs]


class TestDecoratorAndOperators:
    @pytest.fixture(scope="class")
    def result(self, run_dag: Any, class_store: TrackingClient) -> tuple[Any, Any, dict[str, Any]]:
        dag_run = run_dag("tf_operators")
        assert dag_run.state == "success"
        parent, children = run_tree(class_store, "tf_operators", dag_run.run_id)
        return dag_run, parent, children

    def test_a_dag_using_them_is_tracked(self, result: Any) -> None:
        _, parent, children = result
        assert parent.info.status is RunStatus.FINISHED
        for name in ("produce", "consume", "fit", "wait_by_id", "decide", "promote", "side-run"):
            assert children[name].info.status is RunStatus.FINISHED, name
        # The branch not taken never ran.
        assert "keep" not in children
        assert children["produce"].data.tags["airflow.operator"] == "@task.trackflow"

    def test_log_params(self, result: Any) -> None:
        _, _, children = result
        # With log_params: the call's arguments, defaults included, by parameter name.
        assert children["produce"].data.params == {"name": "data.txt", "size": "3"}
        assert children["fit"].data.params == {"lr": "0.1", "epochs": "2"}
        # Without: none.
        assert children["consume"].data.params == {}

    def test_artifact_refs_hand_off_and_record_lineage(
        self, result: Any, class_store: TrackingClient
    ) -> None:
        _, _, children = result
        produce, consume = children["produce"], children["consume"]
        lineage = class_store.get_lineage(consume.info.run_id)
        assert [(e.producer_run_id, e.artifact_path) for e in lineage.consumed] == [
            (produce.info.run_id, "data/data.txt")
        ]
        produced = class_store.get_lineage(produce.info.run_id).produced
        assert {e.consumer_run_id for e in produced} == {consume.info.run_id}

    def test_experiment_and_run_name(self, result: Any, class_store: TrackingClient) -> None:
        _, parent, children = result
        side = children["side-run"]
        assert class_store.get_experiment(side.info.experiment_id).name == "tf_operators_side"
        assert side.info.parent_run_id == parent.info.run_id
        assert side.data.metrics == {"side": 1.0}

    def test_tracked_python_operator(self, result: Any, class_store: TrackingClient) -> None:
        _, _, children = result
        history = class_store.get_metric_history(children["fit"].info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [(0, 0.1), (1, 0.05)]
        assert [children[f"mapped[{i}]"].data.metrics["k"] for i in range(3)] == [1, 2, 3]

    def test_sensors_waited_for_the_run(self, result: Any) -> None:
        _, _, children = result
        assert children["wait_by_id"].info.status is RunStatus.FINISHED
        assert children["wait_by_filter"].info.status is RunStatus.FINISHED


class TestChampionChallenger:
    def test_promote_keep_promote(self, run_dag: Any, store: TrackingClient) -> None:
        def produce_run(score: float) -> tuple[str, dict[str, Any]]:
            dag_run = run_dag("tf_operators", run_conf={"score": score})
            assert dag_run.state == "success"
            _, children = run_tree(store, "tf_operators", dag_run.run_id)
            return children["produce"].info.run_id, children

        before = (
            len(_champions(store, "tf_operators"))
            if store.get_experiment_by_name("tf_operators")
            else 0
        )
        assert before <= 1
        first, children = produce_run(5.0)  # above any champion the session left
        assert children["produce"].data.tags["trackflow.decision"] == "promote"
        assert _champions(store, "tf_operators") == [first]

        # Better, but by less than min_improvement: the champion stays.
        second, children = produce_run(5.01)
        assert "promote" not in children and "keep" in children
        tags = store.get_run(second).data.tags
        assert tags["trackflow.decision"] == "keep"
        assert tags["trackflow.championRunId"] == first
        assert "improvement 0.01" in tags["trackflow.decisionReason"]
        assert _champions(store, "tf_operators") == [first]

        third, children = produce_run(6.0)
        assert children["promote"].info.status is RunStatus.FINISHED
        assert _champions(store, "tf_operators") == [third]
        assert store.get_run(first).data.tags["trackflow.dethronedBy"] == third


class TestBadInput:
    @pytest.fixture(scope="class")
    def children(self, run_dag: Any, class_embedded: TrackingClient) -> dict[str, Any]:
        dag_run = run_dag("tf_bad_input")
        assert dag_run.state == "failed"
        _, children = run_tree(class_embedded, "tf_bad_input", dag_run.run_id)
        return children

    @pytest.mark.parametrize(
        ("task_id", "message"),
        [
            pytest.param(
                "unknown_metric",
                "has no metric 'auc' (its metrics: score)",
                id="unknown-metric",
            ),
            pytest.param("no_champion", "has no champion yet", id="no-champion"),
            pytest.param(
                "bad_direction", "direction must be 'max' or 'min', got 'up'", id="direction"
            ),
            pytest.param(
                "missing_connection",
                "Airflow connection 'no_such_conn' does not exist",
                id="missing-connection",
            ),
            pytest.param(
                "failed_run",
                "ended FAILED: RuntimeError: the upstream job crashed",
                id="failed-run",
            ),
            pytest.param(
                "untracked_task",
                "no trackflow run for task 'nowhere' of this DAG run",
                id="untracked-task",
            ),
        ],
    )
    def test_clear_errors(self, children: dict[str, Any], task_id: str, message: str) -> None:
        run = children[task_id]
        assert run.info.status is RunStatus.FAILED
        assert message in run.data.tags[FAILURE_REASON_TAG]
        assert "Traceback" not in run.data.tags[FAILURE_REASON_TAG]
