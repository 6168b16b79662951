"""Champion/challenger retraining as a Prefect flow, the Airflow ``retrain`` DAG's twin.

extract -> validate -> train (the challenger) -> evaluate on a hold-out set ->
compare with the champion -> promote or keep

The trained model is handed from train to evaluate and decide as a logged
model (its id is the reference); evaluate's ``tracking.use_model`` records the
lineage edge train -> evaluate naming ``models:/<model_id>``. Promoting
registers it as the next version of the registered model (the experiment's
name by default) and moves its ``champion`` alias there: serving code loads
``models:/retrain@champion``.

``retrain_flow(experiment=..., metric=...)`` makes one for an experiment and
metric (``holdout_accuracy``, higher is better, or ``holdout_log_loss``,
lower); ``retrain`` is the default one::

    from flows.retrain import retrain
    retrain(day="2026-11-05")
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import tracking
from flows.decorators import tracked_flow, tracked_task
from tracking import ArtifactRef, LoggedModel
from tracking.champions import (
    CHAMPION_ALIAS,
    champion_of,
    improvement,
    metric_of,
    promote_model,
    promote_run,
)
from tracking.examples import toy_model

__all__ = ["METRICS", "retrain", "retrain_flow"]

#: The metrics the flow can compare on, with their direction.
METRICS = {"holdout_accuracy": "max", "holdout_log_loss": "min"}


@tracked_task
def extract(day: str) -> ArtifactRef:
    """The day's data set, made deterministically from the date."""
    seed = int(day.replace("-", ""))
    rows = toy_model.make_dataset(seed)
    tracking.log_params({"seed": seed, "rows": len(rows)})
    path = toy_model.save_rows(rows, Path(tempfile.mkdtemp()) / "rows.jsonl")
    return tracking.log_artifact(path, "data")


@tracked_task
def validate(data: ArtifactRef) -> ArtifactRef:
    """Refuse a data set too small or with one class only."""
    rows = toy_model.load_rows(tracking.use_artifact(data))
    positives = sum(y for _, y in rows) / len(rows)
    tracking.log_metrics({"rows": len(rows), "positive_rate": positives})
    if len(rows) < 100 or not 0.05 < positives < 0.95:
        raise ValueError(f"bad data set: {len(rows)} rows, positive rate {positives:.3f}")
    return data


@tracked_task(log_params=True)
def train(data: ArtifactRef, epochs: int = 25, lr: float = 0.5) -> LoggedModel:
    """The challenger: per-epoch loss and accuracy, the model as a logged model."""
    rows, _ = toy_model.split(toy_model.load_rows(tracking.use_artifact(data)))
    weights: list[float] = []
    bias = 0.0
    for epoch, loss, weights, bias in toy_model.train(rows, epochs=epochs, lr=lr):
        tracking.log_metrics(
            {"loss": loss, "train_accuracy": toy_model.accuracy(weights, bias, rows)}, step=epoch
        )
    path = toy_model.save_model(weights, bias, Path(tempfile.mkdtemp()) / "model.json")
    # Promotion registers it (models:/<experiment>@champion).
    return tracking.log_model(path.parent, "toy-logistic", params={"epochs": epochs, "lr": lr})


@tracked_task
def evaluate(model: LoggedModel, data: ArtifactRef) -> dict[str, float]:
    """Hold-out scores, on this run and on the challenger (the run that produced the model)."""
    model_dir = Path(tracking.use_model(model))  # lineage: train -> evaluate
    weights, bias = toy_model.load_model(model_dir / "model.json")
    _, holdout = toy_model.split(toy_model.load_rows(tracking.use_artifact(data)))
    loss = 0.0
    for x, y in holdout:
        p = min(max(toy_model.predict(weights, bias, x), 1e-12), 1 - 1e-12)
        loss -= math.log(p) if y else math.log(1 - p)
    scores = {
        "holdout_accuracy": toy_model.accuracy(weights, bias, holdout),
        "holdout_log_loss": loss / len(holdout),
    }
    tracking.log_metrics(scores)
    active = tracking.active_run()
    assert active is not None and model.source_run_id is not None
    for key, value in scores.items():
        active.client.log_metric(model.source_run_id, key, value)
    return scores


@tracked_task
def decide(
    model: LoggedModel,
    metric: str,
    min_improvement: float,
    registered_model: str | None = None,
    alias: str = CHAMPION_ALIAS,
) -> str:
    """Promote the challenger if it beats the champion by ``min_improvement``, else keep;
    promoted, its logged model becomes the next version of ``registered_model`` (if
    given) and ``alias`` moves to it."""
    active = tracking.active_run()
    assert active is not None
    client = active.client
    assert model.source_run_id is not None
    challenger = client.get_run(model.source_run_id)
    value = metric_of(challenger, metric, "challenger")
    champion = champion_of(client, challenger.info.experiment_id)
    if champion is None:
        decision, why = "promote", "no champion yet"
    else:
        best = metric_of(champion, metric, "champion")
        gain = improvement(value, best, METRICS[metric])
        decision = "promote" if gain > 0 and gain >= min_improvement else "keep"
        why = f"{metric} {value:g} vs champion's {best:g}: improvement {gain:g}"
        client.set_tag(challenger.info.run_id, "trackflow.championRunId", champion.info.run_id)
    client.set_tag(challenger.info.run_id, "trackflow.decision", decision)
    client.set_tag(challenger.info.run_id, "trackflow.decisionReason", why)
    tracking.set_tag("decision", decision)
    if decision == "promote":
        promote_run(client, challenger)
        if registered_model:
            version = promote_model(client, challenger, registered_model, alias)
            tracking.set_tag("trackflow.modelVersion", f"{version.name}/{version.version}")
    return decision


def retrain_flow(
    *,
    experiment: str = "retrain",
    metric: str = "holdout_accuracy",
    registered_model: str | None = None,
    alias: str = CHAMPION_ALIAS,
    **flow_kwargs: Any,
) -> Any:
    """A retraining flow logging to ``experiment`` and comparing on ``metric``; a
    promoted challenger's model is registered as ``registered_model`` (default: the
    experiment's name) with ``alias`` moved to it (``models:/retrain@champion``)."""
    registered = registered_model or experiment
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")

    @tracked_flow(
        name=flow_kwargs.pop("name", f"retrain-{experiment}"),
        experiment=experiment,
        log_params=True,
        **flow_kwargs,
    )
    def retrain(
        day: str = "2026-11-05", epochs: int = 25, lr: float = 0.5, min_improvement: float = 0.0
    ) -> dict[str, Any]:
        data: Any = validate(extract(day))
        model: Any = train(data, epochs=epochs, lr=lr)
        scores: Any = evaluate(model, data)
        decision: Any = decide(model, metric, min_improvement, registered, alias)
        return {"challenger": model.source_run_id, "decision": decision, **scores}

    return retrain


retrain = retrain_flow()
