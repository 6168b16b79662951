"""A hyperparameter sweep: one child run per trial, the best one promoted.

prepare -> trial x N (``.expand()`` over the grid) -> best -> promote

Each trial is a mapped task instance, so a child run of the DAG run with its
map index (``trial[3]``), its hyperparameters as params and its learning curve
as metrics. ``best`` picks the trial with the highest validation accuracy,
records it on the parent run, and ``promote`` makes it the experiment's
champion.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, task

import tracking
from operators import PromoteRunOperator
from tracking import ArtifactRef
from tracking.examples import toy_model

GRID = [{"lr": lr, "l2": l2} for lr, l2 in itertools.product([0.05, 0.2, 0.5, 1.0], [0.0, 0.05])]


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["trackflow", "example"],
    params={"epochs": 15, "seed": 7},
    doc_md=__doc__,
)
def sweep() -> None:
    @task.trackflow
    def prepare(params: dict[str, Any] | None = None) -> ArtifactRef:
        """The data set every trial trains on."""
        rows = toy_model.make_dataset(int((params or {}).get("seed", 7)), rows=400)
        path = toy_model.save_rows(rows, Path(tempfile.mkdtemp()) / "rows.jsonl")
        return tracking.log_artifact(path, "data")

    @task.trackflow(
        log_params=True,
        map_index_template="lr={{ task.op_kwargs['lr'] }} l2={{ task.op_kwargs['l2'] }}",
    )
    def trial(data: ArtifactRef, lr: float, l2: float, epochs: int) -> dict[str, Any]:
        """Train one configuration; returns its run id and validation accuracy."""
        rows, validation = toy_model.split(toy_model.load_rows(tracking.use_artifact(data)))
        history = list(toy_model.train(rows, epochs=int(epochs), lr=lr, l2=l2))
        for epoch, epoch_loss, _, _ in history:
            tracking.log_metric("loss", epoch_loss, step=epoch)
        _, loss, weights, bias = history[-1]
        score = toy_model.accuracy(weights, bias, validation)
        tracking.log_metric("val_accuracy", score)
        active = tracking.active_run()
        assert active is not None
        return {
            "run_id": active.info.run_id,
            "val_accuracy": score,
            "loss": loss,
            "lr": lr,
            "l2": l2,
        }

    @task.trackflow
    def best(results: list[dict[str, Any]]) -> str:
        """The best trial (ties: the lower final loss), recorded on the DAG run's run."""
        winner = max(results, key=lambda r: (r["val_accuracy"], -r["loss"]))
        active = tracking.active_run()
        assert active is not None and active.info.parent_run_id is not None
        parent = active.info.parent_run_id
        active.client.log_metric(parent, "best_val_accuracy", winner["val_accuracy"])
        active.client.set_tag(parent, "best_run_id", winner["run_id"])
        active.client.set_tag(parent, "best_params", f"lr={winner['lr']} l2={winner['l2']}")
        tracking.log_metric("trials", len(results))
        return str(winner["run_id"])

    data = prepare()
    trials = trial.partial(data=data, epochs="{{ params.epochs }}").expand_kwargs(GRID)
    winner = best(trials)
    winner >> PromoteRunOperator(task_id="promote", run_id="{{ ti.xcom_pull(task_ids='best') }}")


sweep()
