"""The ``trackflow`` command: ``demo``, ``db upgrade`` and (from the server package) ``server``."""

from __future__ import annotations

import random
import sys
from typing import Any

import click

from tracking.errors import TrackingError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trackflow")
def cli() -> None:
    """trackflow: experiment tracking with MLflow's API, built for pipelines."""


@cli.group()
def db() -> None:
    """Manage the tracking database schema."""


@db.command("upgrade")
@click.option(
    "--backend-store-uri",
    envvar="TRACKFLOW_TRACKING_URI",
    default="sqlite:///trackflow.db",
    show_default=True,
    help="SQLAlchemy URL of the tracking database.",
)
def db_upgrade(backend_store_uri: str) -> None:
    """Migrate the database to the schema this trackflow needs."""
    from sqlalchemy.exc import SQLAlchemyError

    from tracking.store.sql.engine import create_tracking_engine, translate_db_error
    from tracking.store.sql.migrate import HEAD_REVISION, current_revision, upgrade

    engine = create_tracking_engine(backend_store_uri)
    try:
        with engine.connect() as conn:
            before = current_revision(conn)
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc
    finally:
        engine.dispose()
    url = engine.url.render_as_string(hide_password=True)
    if before == HEAD_REVISION:
        click.echo(f"{url} is already at revision {HEAD_REVISION}")
    else:
        click.echo(f"upgraded {url} from {before or 'an empty database'} to {HEAD_REVISION}")


def _train(lr: float, depth: int, epochs: int, rng: random.Random) -> list[float]:
    """A toy objective: accuracy climbs faster for a moderate learning rate."""
    best_lr = 0.03
    quality = 1.0 / (1.0 + abs(lr - best_lr) * 25) * (0.7 + depth / 30)
    acc, curve = 0.5, []
    for _ in range(epochs):
        acc += (quality - acc) * 0.35 + rng.uniform(-0.01, 0.01)
        curve.append(round(min(acc, 0.999), 4))
    return curve


@cli.command()
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
    type=click.IntRange(1, 200),
    help="Number of hyperparameter trials (child runs).",
)
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(1, 1000))
@click.option("--seed", default=7, show_default=True, type=int)
def demo(experiment: str, trials: int, epochs: int, seed: int) -> None:
    """Run a small hyperparameter sweep as a parent run with one child run per trial.

    Logs into the configured tracking URI (default: sqlite:///trackflow.db in
    the working directory), then prints the run tree and the best trial.
    """
    import tracking

    rng = random.Random(seed)
    grid = [(lr, depth) for lr in (0.003, 0.01, 0.03, 0.1, 0.3) for depth in (3, 6, 9)]
    rng.shuffle(grid)
    tracking.set_experiment(experiment)
    with tracking.start_run(run_name="sweep") as parent:
        tracking.log_params({"trials": trials, "epochs": epochs, "seed": seed})
        for i, (lr, depth) in enumerate(grid[:trials]):
            with tracking.start_run(run_name=f"trial-{i}", nested=True):
                tracking.log_params({"lr": lr, "depth": depth})
                curve = _train(lr, depth, epochs, rng)
                for step, acc in enumerate(curve):
                    tracking.log_metrics({"acc": acc, "loss": round(1 - acc, 4)}, step=step)
                tracking.log_dict({"lr": lr, "depth": depth, "curve": curve}, "trial.json")
        client = tracking.TrackingClient()
        children = client.get_children(parent.info.run_id)
        best = max(children, key=lambda r: r.data.metrics.get("acc", float("-inf")))
        tracking.log_metric("best_acc", best.data.metrics["acc"])
        tracking.set_tag("best_run_id", best.info.run_id)
    _print_tree(client, parent.info.run_id, best.info.run_id)


def _print_tree(client: Any, parent_id: str, best_id: str) -> None:
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
    console.print(f"tracking URI: {client.tracking_uri}")


def _label(run: Any, best_id: str) -> str:
    colour = {"FINISHED": "green", "FAILED": "red", "KILLED": "yellow"}.get(run.info.status, "blue")
    acc = run.data.metrics.get("acc", run.data.metrics.get("best_acc"))
    score = f" acc={acc:.4f}" if acc is not None else ""
    star = " [bold yellow]<- best[/]" if run.info.run_id == best_id else ""
    return (
        f"{run.info.run_name} [{colour}]{run.info.status}[/]{score} "
        f"[dim]{run.info.run_id[:8]}[/]{star}"
    )


@cli.command()
@click.option(
    "--backend-store-uri",
    default=None,
    help="SQLAlchemy URL of the tracking database [default: TRACKFLOW_TRACKING_URI, else "
    "sqlite:///trackflow.db]. SQLite is migrated on start; PostgreSQL/MySQL at an older "
    "schema need `trackflow db upgrade` first.",
)
@click.option(
    "--artifacts-destination",
    default=None,
    help="fsspec URL or path where proxied artifacts are stored [default: ./trackflow-artifacts].",
)
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option(
    "--port", default=None, type=click.IntRange(0, 65535), help="TCP port [default: 5000]."
)
@click.option(
    "--workers", default=None, type=click.IntRange(1, 256), help="Worker processes [default: 1]."
)
@click.option(
    "--auth-token",
    default=None,
    help="Require `Authorization: Bearer <token>` on every API call [env: "
    "TRACKFLOW_SERVER_TOKEN]; /health stays open.",
)
@click.option(
    "--access-log/--no-access-log", default=None, help="Log every request [default: off]."
)
@click.option(
    "--demo", is_flag=True, help="First fill the store with the demo sweep (`trackflow demo`)."
)
def server(
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    auth_token: str | None,
    access_log: bool | None,
    demo: bool,
) -> None:
    """Serve MLflow's tracking REST API (and trackflow's additions) with FastAPI on uvicorn.

    MLflow clients work with MLFLOW_TRACKING_URI=http://HOST:PORT; trackflow's with
    TRACKFLOW_TRACKING_URI=http://HOST:PORT. Every option also comes from
    TRACKFLOW_SERVER_<OPTION> in the environment.
    """
    from tracking.server.serve import serve
    from tracking.server.settings import ServerSettings

    given: dict[str, Any] = {
        "backend_store_uri": backend_store_uri,
        "artifacts_destination": artifacts_destination,
        "host": host,
        "port": port,
        "workers": workers,
        "auth_token": auth_token,
        "access_log": access_log,
    }
    serve(ServerSettings(**{k: v for k, v in given.items() if v is not None}), demo=demo)


def main() -> None:
    """Entry point of the ``trackflow`` console script."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TrackingError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
