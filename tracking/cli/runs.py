"""``trackflow runs``, ``trackflow experiments`` and ``trackflow gc``.

What ``mlflow runs`` / ``mlflow experiments`` / ``mlflow gc`` users reach for,
through :class:`~tracking.TrackingClient` (any tracking URI, a server
included), with ``--json`` where a script wants to read the answer. ``gc``
works on the database itself, as ``mlflow gc`` does.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Sequence
from typing import Any

import click

__all__ = ["COMMANDS"]

_URI = click.option(
    "--tracking-uri",
    default=None,
    help="Where the runs are [default: TRACKFLOW_TRACKING_URI, else sqlite:///trackflow.db].",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _client(tracking_uri: str | None) -> Any:
    from tracking import TrackingClient

    return TrackingClient(tracking_uri)


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


#: Columns a table never cuts: a cut id cannot be pasted into the next command.
_WHOLE = {"run_id": 32, "parent": 32, "experiment_id": 13}


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        width = _WHOLE.get(column)
        if width is None:
            table.add_column(column, overflow="fold")
        else:
            widest = max((len(str(row[len(table.columns)])) for row in rows), default=0)
            table.add_column(column, no_wrap=True, min_width=min(width, max(widest, len(column))))
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console = Console()
    # Whole ids, and at least 12 characters of every other column, plus the borders.
    longest = [
        max([len(column), *(len(str(row[i])) for row in rows)]) for i, column in enumerate(columns)
    ]
    needed = 1 + sum(
        3 + (width if column in _WHOLE else min(width, 12))
        for column, width in zip(columns, longest, strict=True)
    )
    if needed > console.width:
        # Narrower than the whole ids: lines wrap in the terminal rather than ids cut.
        console = Console(width=needed)
    console.print(table)


def _run_json(run: Any) -> dict[str, Any]:
    info = run.info
    return {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "status": info.status.value,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "lifecycle_stage": info.lifecycle_stage.value,
        "parent_run_id": info.parent_run_id,
        "artifact_uri": info.artifact_uri,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": dict(run.data.tags),
    }


def _experiment_json(exp: Any) -> dict[str, Any]:
    return {
        "experiment_id": exp.experiment_id,
        "name": exp.name,
        "artifact_location": exp.artifact_location,
        "lifecycle_stage": exp.lifecycle_stage.value,
        "creation_time": exp.creation_time,
        "last_update_time": exp.last_update_time,
        "tags": dict(exp.tags),
    }


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, default=str, allow_nan=True))


# -- runs -------------------------------------------------------------------------------


@click.group()
def runs() -> None:
    """List, describe, delete and restore runs."""


@runs.command("list")
@click.option("--experiment-id", "experiment_ids", multiple=True, default=["0"], show_default=True)
@click.option("--filter", "filter_string", default="", help='e.g. "metrics.acc > 0.9".')
@click.option("--order-by", multiple=True, help="e.g. 'metrics.acc DESC'.")
@click.option(
    "--view",
    type=click.Choice(["active_only", "deleted_only", "all"], case_sensitive=False),
    default="active_only",
    show_default=True,
)
@click.option("--max-results", default=100, show_default=True, type=click.IntRange(1, 50000))
@_URI
@_JSON
def runs_list(
    experiment_ids: Sequence[str],
    filter_string: str,
    order_by: Sequence[str],
    view: str,
    max_results: int,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """The runs of some experiments, newest first unless --order-by says otherwise."""
    client = _client(tracking_uri)
    for experiment_id in experiment_ids:
        client.get_experiment(experiment_id)  # no such experiment: an error, exit 1
    found = client.search_runs(
        list(experiment_ids), filter_string, view, max_results, list(order_by) or None
    )
    if as_json:
        _echo_json([_run_json(r) for r in found])
        return
    _table(
        f"runs of experiment {', '.join(experiment_ids)}",
        ["run_id", "name", "status", "start", "parent"],
        [
            (
                r.info.run_id,
                r.info.run_name,
                r.info.status.value,
                _time(r.info.start_time),
                r.info.parent_run_id or "",
            )
            for r in found
        ],
    )


#: The shortest run id prefix looked up (the demo prints 8 characters).
MIN_PREFIX = 4
_PREFIX = re.compile(r"^[0-9a-f]+$")


def resolve_run_id(client: Any, run_id: str) -> str:
    """``run_id``, or the one run whose id starts with it (a short id as the demo and
    ``runs tree`` print); an error naming the runs when it is ambiguous."""
    from tracking.errors import InvalidParameterError, RunNotFoundError
    from tracking.store.sql.store import SqlTrackingStore

    text = run_id.strip().lower()
    if len(text) >= 32 or not _PREFIX.match(text):
        return run_id
    if len(text) < MIN_PREFIX:
        raise InvalidParameterError(
            f"Run id prefix {run_id!r} is too short: give at least {MIN_PREFIX} characters"
        )
    store = client.store
    if not isinstance(store, SqlTrackingStore):
        raise InvalidParameterError(
            f"{run_id!r} is not a whole run id: short ids are looked up in a tracking "
            f"database, not through a server ({client.tracking_uri}); give the 32-character id"
        )
    from tracking.store.sql.browse import runs_with_prefix

    found = runs_with_prefix(store, text, limit=6)
    if not found:
        raise RunNotFoundError(f"No run id starts with {run_id!r}")
    if len(found) > 1:
        shown = ", ".join(found[:5]) + (" ..." if len(found) > 5 else "")
        raise InvalidParameterError(
            f"Run id prefix {run_id!r} is ambiguous: it starts {shown}; give more characters"
        )
    return found[0]


@runs.command("describe")
@click.argument("run_id")
@_URI
def runs_describe(run_id: str, tracking_uri: str | None) -> None:
    """Everything about one run, as JSON (RUN_ID may be a unique prefix of the id)."""
    client = _client(tracking_uri)
    _echo_json(_run_json(client.get_run(resolve_run_id(client, run_id))))


def _duration(run: Any) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; ``-`` while unknown."""
    info = run.info
    if info.start_time is None or info.end_time is None:
        return "-"
    ms = max(info.end_time - info.start_time, 0)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


_STYLES = {
    "FINISHED": "green",
    "FAILED": "bold red",
    "RUNNING": "blue",
    "KILLED": "yellow",
    "SCHEDULED": "dim",
}


def _tree_label(run: Any) -> Any:
    from rich.text import Text

    from tracking.pipelines import ATTEMPTS_TAG

    info = run.info
    label = Text()
    label.append(info.run_name or info.run_id, style="bold")
    label.append("  ")
    label.append(info.status.value, style=_STYLES.get(info.status.value, ""))
    label.append(f"  {_duration(run)}")
    tries = run.data.tags.get(ATTEMPTS_TAG)
    if tries:
        try:
            count = len(json.loads(tries))
        except ValueError:
            count = 0
        if count > 1:
            label.append(f"  {count} tries", style="yellow")
    label.append(f"  {info.run_id}", style="dim")
    return label


@runs.command("tree")
@click.argument("run_id")
@_URI
@_JSON
def runs_tree(run_id: str, tracking_uri: str | None, as_json: bool) -> None:
    """A run and every run under it (a DAG run's task instances, a flow run's task runs
    and subflows), with their states and durations. RUN_ID may be a unique prefix."""
    from rich.console import Console
    from rich.tree import Tree

    client = _client(tracking_uri)
    root = client.get_run(resolve_run_id(client, run_id))
    below = client.get_subtree(root.info.run_id)
    if as_json:
        _echo_json([_run_json(r) for r in [root, *below]])
        return
    children: dict[str, list[Any]] = {}
    for run in below:
        children.setdefault(run.info.parent_run_id or "", []).append(run)
    tree = Tree(_tree_label(root))
    stack = [(tree, root)]
    while stack:  # without recursion: a tree may be deep
        node, run = stack.pop()
        kids = sorted(children.get(run.info.run_id, []), key=lambda r: r.info.start_time or 0)
        for kid in kids:
            stack.append((node.add(_tree_label(kid)), kid))
    # Never cut: a cut id cannot be pasted into the next command (a line may wrap).
    Console().print(tree, crop=False, overflow="fold")
    uri = str(client.tracking_uri)
    if uri.startswith(("http://", "https://")):
        click.echo(f"In the web UI: {uri.rstrip('/')}/runs/{root.info.run_id}")


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@_URI
def runs_delete(run_ids: Sequence[str], tracking_uri: str | None) -> None:
    """Move runs to the deleted stage (`runs restore` brings them back; `gc` removes them)."""
    client = _client(tracking_uri)
    for run_id in run_ids:
        client.delete_run(run_id)
        click.echo(f"deleted run {run_id}")


@runs.command("restore")
@click.argument("run_ids", nargs=-1, required=True)
@_URI
def runs_restore(run_ids: Sequence[str], tracking_uri: str | None) -> None:
    """Bring deleted runs back."""
    client = _client(tracking_uri)
    for run_id in run_ids:
        client.restore_run(run_id)
        click.echo(f"restored run {run_id}")


# -- experiments -------------------------------------------------------------------------


@click.group()
def experiments() -> None:
    """List, create, rename, delete and restore experiments."""


@experiments.command("list")
@click.option(
    "--view",
    type=click.Choice(["active_only", "deleted_only", "all"], case_sensitive=False),
    default="active_only",
    show_default=True,
)
@click.option("--filter", "filter_string", default="", help="e.g. \"name LIKE 'churn%'\".")
@_URI
@_JSON
def experiments_list(
    view: str, filter_string: str, tracking_uri: str | None, as_json: bool
) -> None:
    """Every experiment, page after page."""
    client = _client(tracking_uri)
    found: list[Any] = []
    token = None
    while True:
        page = client.search_experiments(view, 1000, filter_string, None, token)
        found.extend(page)
        token = page.token
        if not token:
            break
    if as_json:
        _echo_json([_experiment_json(e) for e in found])
        return
    _table(
        "experiments",
        ["experiment_id", "name", "stage", "artifact_location"],
        [(e.experiment_id, e.name, e.lifecycle_stage.value, e.artifact_location) for e in found],
    )


@experiments.command("create")
@click.argument("name")
@click.option("--artifact-location", default=None, help="Where its runs keep artifacts.")
@_URI
def experiments_create(name: str, artifact_location: str | None, tracking_uri: str | None) -> None:
    """Create an experiment and print its id."""
    experiment_id = _client(tracking_uri).create_experiment(name, artifact_location)
    click.echo(f"created experiment {name!r} with id {experiment_id}")


@experiments.command("rename")
@click.argument("experiment_id")
@click.argument("new_name")
@_URI
def experiments_rename(experiment_id: str, new_name: str, tracking_uri: str | None) -> None:
    """Give an experiment a new name."""
    _client(tracking_uri).rename_experiment(experiment_id, new_name)
    click.echo(f"renamed experiment {experiment_id} to {new_name!r}")


@experiments.command("delete")
@click.argument("experiment_id")
@_URI
def experiments_delete(experiment_id: str, tracking_uri: str | None) -> None:
    """Move an experiment and its runs to the deleted stage."""
    _client(tracking_uri).delete_experiment(experiment_id)
    click.echo(f"deleted experiment {experiment_id}")


@experiments.command("restore")
@click.argument("experiment_id")
@_URI
def experiments_restore(experiment_id: str, tracking_uri: str | None) -> None:
    """Bring a deleted experiment back, with the runs deleted along with it."""
    _client(tracking_uri).restore_experiment(experiment_id)
    click.echo(f"restored experiment {experiment_id}")


# -- gc ------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _older_than(text: str | None) -> int | None:
    """MLflow's ``--older-than`` format (``30d``, ``1d2h3m4s``) in milliseconds."""
    if text is None:
        return None
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise click.BadParameter(f"{text!r}: expected a duration such as 30d, 12h or 1d2h3m4s")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000


def _repository(uri: str, proxy: Any) -> Any:
    """``(repository, path)`` holding a run's artifacts; None for a proxied run when no
    destination was given."""
    from tracking.artifacts import artifact_repository_for, uri_scheme

    if uri_scheme(uri) == "mlflow-artifacts":
        if proxy is None:
            return None
        return proxy.repository, proxy.proxied_path(uri) or ""
    return artifact_repository_for(uri, ""), ""


@click.command()
@click.option(
    "--backend-store-uri",
    default=None,
    help="The tracking database [default: TRACKFLOW_TRACKING_URI, else sqlite:///trackflow.db].",
)
@click.option(
    "--artifacts-destination",
    default=None,
    help="The server's artifacts destination, to delete the artifacts of runs stored as "
    "mlflow-artifacts:/ (without it they are left in place).",
)
@click.option("--older-than", default=None, help="Only what was deleted this long ago (30d, 12h).")
@click.option("--run-ids", default=None, help="Only these deleted runs, comma-separated.")
@click.option("--experiment-ids", default=None, help="Only in these experiments, comma-separated.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@_JSON
def gc(
    backend_store_uri: str | None,
    artifacts_destination: str | None,
    older_than: str | None,
    run_ids: str | None,
    experiment_ids: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove deleted runs (and deleted experiments left empty) for good, artifacts too."""
    import time

    from tracking.settings import resolve_tracking_uri
    from tracking.store.sql import purge
    from tracking.store.sql.store import SqlTrackingStore

    uri = resolve_tracking_uri(backend_store_uri)
    if uri.startswith(("http://", "https://")):
        raise click.UsageError("gc works on the tracking database: give --backend-store-uri")
    age = _older_than(older_than)
    wanted_runs = [r.strip() for r in (run_ids or "").split(",") if r.strip()]
    wanted_exps = [e.strip() for e in (experiment_ids or "").split(",") if e.strip()]
    store = SqlTrackingStore(uri)
    try:
        before = None if age is None else int(time.time() * 1000) - age
        gone_runs = purge.deleted_runs(
            store, deleted_before=before, run_ids=wanted_runs, experiment_ids=wanted_exps
        )
        gone_exps = [] if wanted_runs else purge.deleted_experiments(store, wanted_exps)
        kept: list[str] = []
        if not dry_run:
            from tracking.server.artifacts import ArtifactProxy

            proxy = ArtifactProxy(artifacts_destination) if artifacts_destination else None
            for item in gone_runs:
                found = _repository(item.artifact_uri, proxy)
                if found is None:
                    kept.append(item.artifact_uri)
                else:
                    repo, path = found
                    repo.delete_artifacts(path or None)
            purge.purge_runs(store, [r.id for r in gone_runs])
            purge.purge_experiments(store, [e.id for e in gone_exps])
    finally:
        store.close()
    verb = "would remove" if dry_run else "removed"
    if as_json:
        _echo_json(
            {
                "dry_run": dry_run,
                "runs": [r.id for r in gone_runs],
                "experiments": [e.id for e in gone_exps],
                "artifacts_left": kept,
            }
        )
        return
    for item in gone_runs:
        click.echo(f"{verb} run {item.id}")
    for item in gone_exps:
        click.echo(f"{verb} experiment {item.id}")
    for uri_left in kept:
        click.echo(f"left the artifacts at {uri_left} (give --artifacts-destination)")
    click.echo(f"{verb} {len(gone_runs)} run(s) and {len(gone_exps)} experiment(s)")


COMMANDS = [runs, experiments, gc]
