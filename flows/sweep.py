"""A nested hyperparameter sweep: one subflow per model family, each mapping trials
over a grid; the best per family and overall, the overall best promoted.

sweep -> family (a subflow per family) -> trial[i] (mapped) : three levels::

    from flows.sweep import sweep
    sweep(families={"plain": 0.0, "ridge": 0.05}, lrs=[0.05, 0.2, 1.0])

``sweep_flow(experiment=..., config=...)`` makes one for another experiment or
store; its subflows and tasks take the configuration from it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from prefect import unmapped

import tracking
from flows.decorators import tracked_flow, tracked_task
from tracking import ArtifactRef
from tracking.champions import promote_run
from tracking.examples import toy_model

__all__ = ["family", "prepare", "sweep", "sweep_flow", "trial"]


@tracked_task
def prepare(seed: int) -> ArtifactRef:
    """The data set every trial trains on."""
    rows = toy_model.make_dataset(seed, rows=400)
    path = toy_model.save_rows(rows, Path(tempfile.mkdtemp()) / "rows.jsonl")
    return tracking.log_artifact(path, "data")


@tracked_task(log_params=True)
def trial(lr: float, l2: float, data: ArtifactRef, epochs: int = 15) -> dict[str, Any]:
    """One configuration: its learning curve; returns its run id and scores."""
    rows, validation = toy_model.split(toy_model.load_rows(tracking.use_artifact(data)))
    history = list(toy_model.train(rows, epochs=epochs, lr=lr, l2=l2))
    for epoch, loss, _, _ in history:
        tracking.log_metric("loss", loss, step=epoch)
    _, loss, weights, bias = history[-1]
    score = toy_model.accuracy(weights, bias, validation)
    tracking.log_metric("val_accuracy", score)
    active = tracking.active_run()
    assert active is not None
    return {"run_id": active.info.run_id, "val_accuracy": score, "loss": loss, "lr": lr}


def _best(results: list[dict[str, Any]]) -> dict[str, Any]:
    return max(results, key=lambda r: (r["val_accuracy"], -r["loss"]))


@tracked_flow(log_params=True)
def family(name: str, l2: float, lrs: list[float], data: ArtifactRef) -> dict[str, Any]:
    """The trials of one family (one ``l2``), and its best."""
    results = [f.result() for f in trial.map(lrs, l2=unmapped(l2), data=unmapped(data))]
    best = _best(results)
    tracking.log_metric("best_val_accuracy", best["val_accuracy"])
    tracking.set_tag("best_run_id", best["run_id"])
    return {**best, "family": name}


def sweep_flow(*, experiment: str = "sweep-prefect", **flow_kwargs: Any) -> Any:
    """A sweep flow logging to ``experiment``; ``config=`` / ``tracking_uri=`` (and any
    other ``tracked_flow`` argument) reach its subflows and tasks."""

    @tracked_flow(
        name=flow_kwargs.pop("name", "sweep"),
        experiment=experiment,
        log_params=True,
        **flow_kwargs,
    )
    def sweep(
        families: dict[str, float] | None = None,
        lrs: list[float] | None = None,
        seed: int = 7,
    ) -> dict[str, Any]:
        """Every family's subflow; the best trial overall is promoted."""
        families = families or {"plain": 0.0, "ridge": 0.05}
        lrs = lrs or [0.05, 0.2, 0.5, 1.0]
        data = prepare(seed)
        bests: list[Any] = [family(name, l2, lrs, data) for name, l2 in families.items()]
        winner = _best(bests)
        tracking.log_metric("best_val_accuracy", winner["val_accuracy"])
        tracking.set_tags({"best_run_id": winner["run_id"], "best_family": winner["family"]})
        active = tracking.active_run()
        assert active is not None
        promote_run(active.client, active.client.get_run(winner["run_id"]))
        return winner

    return sweep


sweep = sweep_flow()
