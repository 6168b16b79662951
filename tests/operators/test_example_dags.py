"""The example DAGs in ``dags/``, end to end: the run tree, metrics, params, lineage,
the champion, the report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
from _airflow_support import run_tree

from operators.champion import CHAMPION_TAG
from tracking import RunStatus, TrackingClient
from tracking.champions import CHAMPION_ALIAS, MODEL_VERSION_TAG, model_of

pytestmark = pytest.mark.airflow


def _retrain(run_dag: Any, client: TrackingClient, day: int, **conf: Any) -> dict[str, Any]:
    date = pendulum.datetime(2026, 11, day, tz="UTC")
    dag_run = run_dag("retrain", logical_date=date, run_after=date, run_conf=conf or None)
    assert dag_run.state == "success"
    parent, children = run_tree(client, "retrain", dag_run.run_id)
    assert parent.info.status is RunStatus.FINISHED
    assert parent.data.tags["airflow.logical_date"].startswith(f"2026-11-{day:02d}")
    return children


class TestRetrain:
    def test_two_days(self, run_dag: Any, store: TrackingClient) -> None:
        children = _retrain(run_dag, store, 3)
        finished = {n for n, r in children.items() if r.info.status is RunStatus.FINISHED}
        assert {"extract", "validate", "train", "evaluate", "decide", "report"} <= finished
        extract, train, evaluate = children["extract"], children["train"], children["evaluate"]
        assert extract.data.params == {"seed": "20261103", "rows": "600"}
        assert train.data.params == {"epochs": "25", "lr": "0.5"}
        losses = store.get_metric_history(train.info.run_id, "loss")
        assert [m.step for m in losses] == list(range(1, 26))
        assert losses[-1].value < losses[0].value  # it learns
        # The model went from train to evaluate as a logged model (its id through XCom);
        # evaluate's use of it and of the data (an artifact) are lineage edges.
        model_id = model_of(store, train)
        assert model_id is not None
        assert store.get_logged_model(model_id).source_run_id == train.info.run_id
        consumed = store.get_lineage(evaluate.info.run_id).consumed
        assert {(e.producer_run_id, e.artifact_path) for e in consumed} == {
            (train.info.run_id, f"models:/{model_id}"),
            (extract.info.run_id, "data/rows.jsonl"),
        }
        produced = store.get_lineage(train.info.run_id).produced
        assert [(e.consumer_run_id, e.artifact_path) for e in produced] == [
            (evaluate.info.run_id, f"models:/{model_id}")
        ]
        assert store.get_run_models(evaluate.info.run_id) == ([model_id], [])
        score = evaluate.data.metrics["holdout_accuracy"]
        assert 0.7 < score <= 1.0
        assert store.get_run(train.info.run_id).data.metrics["holdout_accuracy"] == score

        exp = store.get_experiment_by_name("retrain")
        assert exp is not None
        champions = store.search_runs(
            [exp.experiment_id], filter_string=f"tags.`{CHAMPION_TAG}` = 'true'"
        )
        assert len(champions) == 1
        # The champion's logged model is the registered model's version under the alias.
        (champion,) = champions
        version = store.get_model_version_by_alias("retrain", CHAMPION_ALIAS)
        assert version.run_id == champion.info.run_id
        assert version.model_id == model_of(store, champion)
        assert champion.data.tags[MODEL_VERSION_TAG] == f"retrain/{version.version}"
        model = store.resolve_model_uri("models:/retrain@champion")
        assert (model.model_id, model.source_run_id) == (version.model_id, champion.info.run_id)
        files = store.download_model_artifacts(model.model_id, "")
        assert (Path(files) / "model.json").is_file()
        decision = store.get_run(train.info.run_id).data.tags["trackflow.decision"]
        assert (decision == "promote") == ("promote" in children)
        assert (decision == "keep") == ("keep" in children)
        report = store.download_artifacts(children["report"].info.run_id, "report.md")
        with open(report) as text:
            assert f"{score:.4f}: {decision}" in text.read()

        # The next day: the same gate, against that champion.
        later = _retrain(run_dag, store, 4, min_improvement=1.0)  # cannot be beaten by 1.0
        tags = store.get_run(later["train"].info.run_id).data.tags
        assert tags["trackflow.decision"] == "keep"
        assert "keep" in later and "promote" not in later
        # Both branches end in a report, the kept champion's too.
        assert later["report"].info.status is RunStatus.FINISHED
        kept = store.download_artifacts(later["report"].info.run_id, "report.md")
        with open(kept) as text:
            assert ": keep" in text.read()
        after = store.search_runs(
            [exp.experiment_id], filter_string=f"tags.`{CHAMPION_TAG}` = 'true'"
        )
        assert [r.info.run_id for r in after] == [r.info.run_id for r in champions]
        # Kept: the alias did not move.
        assert store.get_model_version_by_alias("retrain", CHAMPION_ALIAS) == version


class TestSweep:
    def test_one_child_per_trial_and_the_best_promoted(
        self, run_dag: Any, embedded: TrackingClient
    ) -> None:
        dag_run = run_dag("sweep")
        assert dag_run.state == "success"
        parent, children = run_tree(embedded, "sweep", dag_run.run_id)
        trials = {n: r for n, r in children.items() if n.startswith("trial[")}
        assert len(trials) == 8
        assert "trial[lr=0.5 l2=0.05]" in trials
        for run in trials.values():
            assert run.info.parent_run_id == parent.info.run_id
            assert set(run.data.params) == {"lr", "l2", "epochs"}
            assert run.data.tags["airflow.map_index"] in {str(i) for i in range(8)}
        best = max(
            trials.values(),
            key=lambda r: (r.data.metrics["val_accuracy"], -r.data.metrics["loss"]),
        )
        assert parent.data.tags["best_run_id"] == best.info.run_id
        assert parent.data.metrics["best_val_accuracy"] == best.data.metrics["val_accuracy"]
        assert embedded.get_run(best.info.run_id).data.tags[CHAMPION_TAG] == "true"
        others = [r for r in trials.values() if r.info.run_id != best.info.run_id]
        assert all(CHAMPION_TAG not in embedded.get_run(r.info.run_id).data.tags for r in others)
