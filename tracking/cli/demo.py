"""``trackflow demo``: a small hyperparameter sweep, a parent run with one child per trial.

The runs have ids derived from the sweep's settings (:func:`tracking.run_id_for`),
so running the demo again, or starting ``trackflow server --demo`` again, finds
the sweep already there instead of logging another copy.
"""

from __future__ import annotations

import random
from typing import Any

import click

__all__ = ["COMMANDS", "run_demo"]

_GRID = [(lr, depth) for lr in (0.003, 0.01, 0.03, 0.1, 0.3) for depth in (3, 6, 9)]


def _train(lr: float, depth: int, epochs: int, rng: random.Random) -> list[float]:
    """A toy objective: accuracy climbs faster for a moderate learning rate."""
    best_lr = 0.03
    quality = 1.0 / (1.0 + abs(lr - best_lr) * 25) * (0.7 + depth / 30)
    acc, curve = 0.5, []
    for _ in range(epochs):
        acc += (quality - acc) * 0.35 + rng.uniform(-0.01, 0.01)
        curve.append(round(min(acc, 0.999), 4))
    return curve


def run_demo(experiment: str, trials: int, epochs: int, seed: int) -> tuple[str, str, bool]:
    """Log the sweep (unless it is there already); ``(parent id, best id, logged now)``."""
    import tracking

    identity = ("trackflow-demo", experiment, trials, epochs, seed)
    parent_id = tracking.run_id_for(*identity)
    client = tracking.TrackingClient()
    tracking.set_experiment(experiment)
    try:
        done = client.get_run(parent_id)
    except tracking.RunNotFoundError:
        done = None
    if done is not None and done.info.status is tracking.RunStatus.FINISHED:
        return parent_id, done.data.tags["best_run_id"], False
    rng = random.Random(seed)
    grid = list(_GRID)
    rng.shuffle(grid)
    with tracking.start_run(run_id=parent_id, run_name="sweep"):
        tracking.log_params({"trials": trials, "epochs": epochs, "seed": seed})
        for i, (lr, depth) in enumerate(grid[:trials]):
            curve = _train(lr, depth, epochs, rng)
            trial_id = tracking.run_id_for(*identity, i)
            try:
                finished = client.get_run(trial_id).info.status is tracking.RunStatus.FINISHED
            except tracking.RunNotFoundError:
                finished = False
            if finished:  # an earlier, interrupted demo got this far
                continue
            with tracking.start_run(run_id=trial_id, run_name=f"trial-{i}", nested=True):
                tracking.log_params({"lr": lr, "depth": depth})
                for step, acc in enumerate(curve):
                    tracking.log_metrics({"acc": acc, "loss": round(1 - acc, 4)}, step=step)
                tracking.log_dict({"lr": lr, "depth": depth, "curve": curve}, "trial.json")
        children = client.get_children(parent_id)
        best = max(children, key=lambda r: r.data.metrics.get("acc", float("-inf")))
        tracking.log_metric("best_acc", best.data.metrics["acc"])
        tracking.set_tag("best_run_id", best.info.run_id)
        _log_report(children, best.info.run_id)
    return parent_id, best.info.run_id, True


def _log_report(children: list[Any], best_id: str) -> None:
    """The sweep's results as a CSV table, an SVG chart and an HTML report (what the UI's
    artifact browser previews)."""
    import html

    import tracking

    trials = sorted(children, key=lambda r: r.info.run_name)
    lines = ["run,lr,depth,acc,loss"]
    for r in trials:
        p, m = r.data.params, r.data.metrics
        lines.append(f"{r.info.run_name},{p['lr']},{p['depth']},{m['acc']},{m['loss']}")
    tracking.log_text("\n".join(lines) + "\n", "results/trials.csv")
    width, height = 320, 160
    bars = []
    for i, r in enumerate(trials):
        acc = r.data.metrics["acc"]
        h = int(acc * (height - 20))
        colour = "#1a7f37" if r.info.run_id == best_id else "#1d4e89"
        bars.append(
            f'<rect x="{10 + i * 50}" y="{height - 10 - h}" width="36" height="{h}" '
            f'fill="{colour}"><title>{html.escape(r.info.run_name)}: {acc}</title></rect>'
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        + "".join(bars)
        + "</svg>"
    )
    tracking.log_text(svg, "results/accuracy.svg")
    rows = "".join(
        f"<tr><td>{html.escape(r.info.run_name)}</td><td>{r.data.metrics['acc']:.4f}</td></tr>"
        for r in trials
    )
    tracking.log_text(
        "<!doctype html><title>Sweep report</title><h1>Sweep report</h1>"
        f"<table><tr><th>trial</th><th>acc</th></tr>{rows}</table>",
        "report.html",
    )


@click.command()
@click.option(
    "--experiment",
    default="demo-sweep",
    show_default=True,
    help="Experiment to log the sweep into.",
)
@click.option(
    "--trials",
    default=6,
    show_default=True,
    type=click.IntRange(1, len(_GRID)),
    help="Number of hyperparameter trials (child runs).",
)
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option("--served-at", default=None, hidden=True, help="The URI to print (server --demo).")
def demo(experiment: str, trials: int, epochs: int, seed: int, served_at: str | None) -> None:
    """Run a small hyperparameter sweep as a parent run with one child run per trial.

    Logs into the configured tracking URI (default: sqlite:///trackflow.db in
    the working directory), then prints the run tree and the best trial. The
    same settings give the same runs: a second demo finds the sweep in place.
    """
    import tracking

    parent_id, best_id, logged = run_demo(experiment, trials, epochs, seed)
    client = tracking.TrackingClient()
    if not logged:
        click.echo(f"the demo sweep is already in {experiment!r}; nothing logged again")
    _print_tree(client, parent_id, best_id, served_at or client.tracking_uri)


def _print_tree(client: Any, parent_id: str, best_id: str, uri: str) -> None:
    from rich.console import Console
    from rich.tree import Tree

    parent = client.get_run(parent_id)
    tree = Tree(_label(parent, best_id))
    for child in client.get_children(parent_id):
        tree.add(_label(child, best_id))
    console = Console()
    console.print(tree)
    best = client.get_run(best_id)
    console.print(
        f"best trial: [bold]{best.info.run_name}[/] ({best.info.run_id}) "
        f"acc={best.data.metrics['acc']:.4f} params={dict(best.data.params)}"
    )
    console.print(f"tracking URI: {uri}")


def _label(run: Any, best_id: str) -> str:
    colour = {"FINISHED": "green", "FAILED": "red", "KILLED": "yellow"}.get(run.info.status, "blue")
    acc = run.data.metrics.get("acc", run.data.metrics.get("best_acc"))
    score = f" acc={acc:.4f}" if acc is not None else ""
    star = " [bold yellow]<- best[/]" if run.info.run_id == best_id else ""
    return (
        f"{run.info.run_name} [{colour}]{run.info.status}[/]{score} "
        f"[dim]{run.info.run_id[:8]}[/]{star}"
    )


COMMANDS = [demo]
