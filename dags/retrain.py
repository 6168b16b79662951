"""Daily retraining with a champion/challenger gate, tracked by trackflow.

extract -> validate -> train (the challenger) -> evaluate on a hold-out set ->
decide (champion/challenger branch) -> promote | keep -> report

The challenger's model is also a logged model; promoting it registers it as the
next version of the registered model ``retrain`` and moves the ``champion``
alias to it, so serving code loads ``models:/retrain@champion``.

The DAG run is a parent run in the experiment ``retrain``; every task is a
child run. Data are made from the logical date, so a rerun of a day trains on
the same rows; they travel between tasks as artifacts, by reference
(``ArtifactRef`` through XCom), and each use is recorded as lineage. The
trained model travels as a logged model: train returns it, evaluate receives
its ``ModelRef`` (the model id is the reference) and ``tracking.use_model``
records the edge train -> evaluate naming ``models:/<model_id>``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pendulum
from airflow.sdk import dag, task

import tracking
from operators import ChampionChallengerOperator, PromoteRunOperator
from tracking import ArtifactRef, LoggedModel, ModelRef
from tracking.examples import toy_model


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["trackflow", "example"],
    params={"epochs": 25, "lr": 0.5, "min_improvement": 0.0},
    doc_md=__doc__,
)
def retrain() -> None:
    @task.trackflow
    def extract(logical_date: pendulum.DateTime | None = None) -> ArtifactRef:
        """Make the day's data set (deterministic from the logical date)."""
        day = (logical_date or pendulum.now("UTC")).date()
        seed = int(day.strftime("%Y%m%d"))
        rows = toy_model.make_dataset(seed)
        tracking.log_params({"seed": seed, "rows": len(rows)})
        path = toy_model.save_rows(rows, Path(tempfile.mkdtemp()) / "rows.jsonl")
        return tracking.log_artifact(path, "data")

    @task.trackflow
    def validate(data: ArtifactRef) -> ArtifactRef:
        """Refuse a data set too small or with one class only."""
        rows = toy_model.load_rows(tracking.use_artifact(data))
        positives = sum(y for _, y in rows) / len(rows)
        tracking.log_metrics({"rows": len(rows), "positive_rate": positives})
        if len(rows) < 100 or not 0.05 < positives < 0.95:
            raise ValueError(f"bad data set: {len(rows)} rows, positive rate {positives:.3f}")
        return data

    @task.trackflow(log_params=True)
    def train(data: ArtifactRef, epochs: int, lr: float) -> LoggedModel:
        """Train the challenger: per-epoch loss and accuracy, the model as a logged model
        (handed on by its id; promotion registers it: models:/retrain@champion)."""
        rows, _ = toy_model.split(toy_model.load_rows(tracking.use_artifact(data)))
        weights, bias = [], 0.0
        for epoch, loss, weights, bias in toy_model.train(rows, epochs=int(epochs), lr=float(lr)):
            tracking.log_metrics(
                {"loss": loss, "train_accuracy": toy_model.accuracy(weights, bias, rows)},
                step=epoch,
            )
        path = toy_model.save_model(weights, bias, Path(tempfile.mkdtemp()) / "model.json")
        return tracking.log_model(path.parent, "toy-logistic", params={"epochs": epochs, "lr": lr})

    @task.trackflow
    def evaluate(model: ModelRef, data: ArtifactRef) -> float:
        """Score the model on the hold-out rows; the score goes on the challenger too."""
        model_dir = Path(tracking.use_model(model))  # lineage: train -> evaluate
        weights, bias = toy_model.load_model(model_dir / "model.json")
        _, holdout = toy_model.split(toy_model.load_rows(tracking.use_artifact(data)))
        score = toy_model.accuracy(weights, bias, holdout)
        tracking.log_metric("holdout_accuracy", score)
        # The challenger is the run that produced the model.
        active = tracking.active_run()
        assert active is not None and model.source_run_id is not None
        active.client.log_metric(model.source_run_id, "holdout_accuracy", score)
        return score

    decide = ChampionChallengerOperator(
        task_id="decide",
        challenger_task_id="train",
        metric="holdout_accuracy",
        direction="max",
        min_improvement="{{ params.min_improvement }}",
        promote_task_ids="promote",
        keep_task_ids="keep",
    )
    promote = PromoteRunOperator(task_id="promote", run_task_id="train", registered_model="retrain")

    @task.trackflow
    def keep() -> None:
        """The champion stays."""
        tracking.set_tag("outcome", "champion kept")

    @task.trackflow(trigger_rule="none_failed_min_one_success")
    def report(score: float, ti=None) -> None:  # type: ignore[no-untyped-def]
        """Write what happened as a Markdown artifact of the report run."""
        decision = ti.xcom_pull(task_ids="decide", key="decision")
        tracking.log_text(
            f"# Retraining {ti.run_id}\n\nhold-out accuracy {score:.4f}: {decision}\n",
            "report.md",
        )

    data = validate(extract())
    model = train(data, epochs="{{ params.epochs }}", lr="{{ params.lr }}")
    score = evaluate(model, data)
    kept = keep()
    score >> decide >> [promote, kept]
    # Downstream of both branches and not of decide itself: a branch operator skips
    # every direct downstream task it does not follow, trigger rule or not.
    [promote, kept] >> report(score)


retrain()
