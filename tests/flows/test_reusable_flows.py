"""The reusable flows in ``flows/``, end to end: retrain's champion gate and lineage,
the sweep's three-level tree and its promoted best."""

from __future__ import annotations

from typing import Any

import pytest
from _prefect_support import by_name, flow_tree

from flows.retrain import retrain_flow
from flows.sweep import sweep
from tracking import RunStatus, TrackingClient
from tracking.champions import CHAMPION_ALIAS, CHAMPION_TAG, MODEL_VERSION_TAG, model_of

pytestmark = pytest.mark.prefect


def _champions(client: TrackingClient, experiment: str) -> list[str]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{CHAMPION_TAG}` = 'true'")
    return [r.info.run_id for r in runs]


def _flow_run_of(client: TrackingClient, run_id: str) -> Any:
    return client.get_run(run_id).data.tags["prefect.flow_run_id"]


class TestRetrain:
    @pytest.mark.parametrize("metric", ["holdout_accuracy", "holdout_log_loss"])
    def test_the_gate(self, store: TrackingClient, metric: str) -> None:
        experiment = f"retrain-{metric.replace('_', '-')}"
        flow = retrain_flow(experiment=experiment, metric=metric)
        first = flow(day="2026-11-03")
        assert first["decision"] == "promote"  # no champion yet
        parent, runs = flow_tree(store, _flow_run_of(store, first["challenger"]))
        assert parent.info.status is RunStatus.FINISHED
        tasks = by_name(runs, parent)
        assert set(tasks) == {"extract", "validate", "train", "evaluate", "decide"}
        assert tasks["train"].info.run_id == first["challenger"]
        assert tasks["train"].data.params == {"epochs": "25", "lr": "0.5"}
        losses = store.get_metric_history(first["challenger"], "loss")
        assert [m.step for m in losses] == list(range(1, 26))
        # The model went from train to evaluate as a logged model: evaluate's use of it
        # is a lineage edge naming models:/<model_id>, as its use of the data artifact.
        model_id = model_of(store, tasks["train"])
        assert model_id is not None
        consumed = store.get_lineage(tasks["evaluate"].info.run_id).consumed
        assert {(e.producer_run_id, e.artifact_path) for e in consumed} == {
            (first["challenger"], f"models:/{model_id}"),
            (tasks["extract"].info.run_id, "data/rows.jsonl"),
        }
        assert store.get_run_models(tasks["evaluate"].info.run_id) == ([model_id], [])
        assert _champions(store, experiment) == [first["challenger"]]
        # Its logged model is the registered model's version under the champion alias.
        version = store.get_model_version_by_alias(experiment, CHAMPION_ALIAS)
        assert version.run_id == first["challenger"]
        model = store.resolve_model_uri(f"models:/{experiment}@champion")
        assert (model.model_id, model.source_run_id) == (version.model_id, first["challenger"])
        assert tasks["decide"].data.tags[MODEL_VERSION_TAG] == f"{experiment}/{version.version}"

        # The next day, a gate that cannot be passed: the champion stays.
        second = flow(day="2026-11-04", min_improvement=10.0)
        assert second["decision"] == "keep"
        tags = store.get_run(second["challenger"]).data.tags
        assert tags["trackflow.championRunId"] == first["challenger"]
        assert _champions(store, experiment) == [first["challenger"]]
        assert store.get_model_version_by_alias(experiment, CHAMPION_ALIAS) == version

    def test_an_unknown_metric(self) -> None:
        with pytest.raises(ValueError, match="metric must be one of"):
            retrain_flow(metric="auc")


class TestSweep:
    def test_three_levels_and_the_best_promoted(self, embedded: TrackingClient) -> None:
        winner = sweep(families={"plain": 0.0, "ridge": 0.05}, lrs=[0.05, 0.5, 1.0])
        family_run = embedded.get_run(embedded.get_run(winner["run_id"]).info.parent_run_id or "")
        top_id = family_run.info.parent_run_id
        assert top_id is not None
        parent, runs = flow_tree(embedded, _flow_run_of(embedded, top_id))
        assert parent.info.status is RunStatus.FINISHED
        children = [r for r in runs if r.info.parent_run_id == parent.info.run_id]
        families = {r.data.params["name"]: r for r in children if "name" in r.data.params}
        assert set(families) == {"plain", "ridge"}
        assert {r.info.run_name for r in families.values()} == {"family"}
        trials = []
        for run in families.values():
            assert run.info.status is RunStatus.FINISHED
            mine = by_name(runs, run)
            assert sorted(mine) == ["trial[0]", "trial[1]", "trial[2]"]
            best = max(
                mine.values(),
                key=lambda r: (r.data.metrics["val_accuracy"], -r.data.metrics["loss"]),
            )
            assert run.data.tags["best_run_id"] == best.info.run_id
            trials += mine.values()
        overall = max(
            trials, key=lambda r: (r.data.metrics["val_accuracy"], -r.data.metrics["loss"])
        )
        assert winner["run_id"] == overall.info.run_id == parent.data.tags["best_run_id"]
        assert parent.data.metrics["best_val_accuracy"] == overall.data.metrics["val_accuracy"]
        assert _champions(embedded, "sweep-prefect") == [overall.info.run_id]
