"""trackflow against MLflow: the same workloads, embedded and behind a server, side by side.

Usage (from the repository root)::

    uv run python tests/benchmarks/bench_tracking.py                # both sections
    uv run python tests/benchmarks/bench_tracking.py --quick        # small sizes, a smoke run
    uv run python tests/benchmarks/bench_tracking.py --only a,d2 --no-mlflow
    uv run python tests/benchmarks/bench_tracking.py --server-only  # the server section only

MLflow runs in an environment of its own, ``.bench/mlflow-env``, which this
script creates with uv on first use (its dependencies clash with ours) and
reuses afterwards (see ``mlflow_env.py``). Every (tool, workload) pair runs
in a fresh process on a fresh SQLite file in a fresh temporary directory,
through the same timing code (``workloads.py``); only the figure's operation
is timed, after a warm-up.

Workloads and targets (trackflow against MLflow):

====  ==============================================================  ======================
a     500 single ``log_metric`` calls on one run (calls/s)            >= 15x
b     20 ``log_batch`` calls of 1,000 points each (points/s)           >= 15x
c     300 fluent runs with 2 params and 1 metric each (runs/s)        >= 10x
d1    ``search_runs`` filter + order, 300 runs logged via the API     (none)
d2    the same search over 100,000 bulk-loaded runs (median ms)      < 50 ms and >= 10x
e1    ``get_metric_history``, 20,000 points (median ms)                < 40 ms
e2    ``get_metric_history``, 1,000,000 points (median ms)             < 2 s
====  ==============================================================  ======================

Each tool's answers are checked against the other's (same number of runs and
points, same top runs), so a fast wrong answer shows up as a mismatch.

The server section (``server_bench.py``; workloads ``sa``..``se2``) runs
``trackflow server`` and ``mlflow server`` and drives them with the same client
workloads, trackflow's server with both clients; it prints a second table.
``--server-only`` runs just that section, ``--no-server`` skips it.

The Airflow section (``airflow_bench.py``) times DAGs under ``dag.test()``
untracked and tracked, and the import cost of ``operators``; ``--no-airflow``
skips it, ``--only airflow`` runs only it. The Prefect section
(``prefect_bench.py``) does the same for flows under the test harness
(``--no-prefect``, ``--only prefect``). The web UI section (``ui_bench.py``) times
trackflow's UI and MLflow's in headless Chromium on the same 100,000 runs
(``--no-ui``, ``--only ui``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import server_bench
from mlflow_env import DEFAULT_ENV
from rich.table import Table
from runner import console, format_ms, format_result, run_worker, speedup, trackflow_env
from workloads import FULL, QUICK


@dataclass(frozen=True)
class Target:
    """What trackflow must reach: a speed-up over MLflow and/or an absolute latency."""

    min_ratio: float | None = None
    max_ms: float | None = None

    def describe(self) -> str:
        parts = []
        if self.max_ms is not None:
            parts.append(f"< {format_ms(self.max_ms)}")
        if self.min_ratio is not None:
            parts.append(f">= {self.min_ratio:g}x")
        return ", ".join(parts) or "-"


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    target: Target


def workloads(quick: bool) -> list[Workload]:
    s = QUICK if quick else FULL
    return [
        Workload("a", f"a. log_metric, {s.log_metric_calls:,} single calls", Target(min_ratio=15)),
        Workload(
            "b",
            f"b. log_batch, {s.batches} x {s.batch_keys * s.batch_steps:,} points",
            Target(min_ratio=15),
        ),
        Workload(
            "c", f"c. fluent runs, {s.fluent_runs:,} x (2 params, 1 metric)", Target(min_ratio=10)
        ),
        Workload("d1", f"d. search_runs, {s.search_small_runs:,} runs", Target()),
        Workload(
            "d2", f"d. search_runs, {s.search_large_runs:,} runs", Target(min_ratio=10, max_ms=50)
        ),
        Workload("e1", f"e. get_metric_history, {s.history_small:,} points", Target(max_ms=40)),
        Workload("e2", f"e. get_metric_history, {s.history_large:,} points", Target(max_ms=2000)),
    ]


# -- the table ------------------------------------------------------------------------


def verdict(target: Target, ours: dict[str, Any] | None, ratio: float | None) -> str | None:
    """PASS/FAIL, "n/a" if a ratio target has no MLflow figure, None if there is no target."""
    if target.min_ratio is None and target.max_ms is None:
        return None
    if not ours or "error" in ours:
        return "FAIL"
    if target.max_ms is not None and ours["value"] >= target.max_ms:
        return "FAIL"
    if target.min_ratio is not None:
        if ratio is None:
            return "n/a"
        if ratio < target.min_ratio:
            return "FAIL"
    return "PASS"


def mismatch(mlflow: dict[str, Any] | None, ours: dict[str, Any] | None) -> str | None:
    """How the two tools' answers differ, if both answered and they do."""
    if not mlflow or not ours or "error" in mlflow or "error" in ours:
        return None
    if mlflow["check"] != ours["check"]:
        return f"mlflow {mlflow['check']} != trackflow {ours['check']}"
    return None


def render(
    rows: list[tuple[Workload, dict[str, Any] | None, dict[str, Any] | None]], title: str
) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("workload", no_wrap=True)
    table.add_column("MLflow", justify="right", no_wrap=True)
    table.add_column("trackflow", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right", no_wrap=True)
    table.add_column("target", justify="right", no_wrap=True)
    table.add_column("result", justify="center")
    colours = {"PASS": "green", "FAIL": "red", "n/a": "yellow"}
    for wl, mlflow, ours in rows:
        ratio = speedup(mlflow, ours)
        outcome = verdict(wl.target, ours, ratio)
        table.add_row(
            wl.title,
            format_result(mlflow),
            format_result(ours),
            "-" if ratio is None else f"{ratio:,.1f}x",
            wl.target.describe(),
            "-" if outcome is None else f"[{colours[outcome]}]{outcome}[/{colours[outcome]}]",
        )
    return table


# -- main ---------------------------------------------------------------------------------


def _embedded(
    args: argparse.Namespace, chosen: list[Workload], mlflow_python: Path | None
) -> tuple[bool, list[str]]:
    """The embedded section: run, print the table; (errors?, missed targets)."""
    sides = [("trackflow", sys.executable, trackflow_env())]
    if mlflow_python is not None:
        from mlflow_env import mlflow_subprocess_env

        sides.insert(0, ("mlflow", str(mlflow_python), mlflow_subprocess_env()))

    rows: list[tuple[Workload, dict[str, Any] | None, dict[str, Any] | None]] = []
    versions: dict[str, str] = {}
    for wl in chosen:
        results: dict[str, dict[str, Any] | None] = {"mlflow": None, "trackflow": None}
        for side, python, env in sides:
            console.print(f"[dim]{wl.key}: {side} ...[/dim]", end=" ")
            result = run_worker(python, env, side, wl.key, args.quick, args.keep)
            results[side] = result
            if "error" in result:
                console.print("[red]error[/red]")
            else:
                versions[side] = result["version"]
                console.print(f"[dim]{format_result(result)} ({result['wall_s']:.0f} s)[/dim]")
        rows.append((wl, results["mlflow"], results["trackflow"]))

    title = " vs ".join(f"{side} {v}" for side, v in sorted(versions.items()))
    title = f"{title}, SQLite{' (--quick sizes)' if args.quick else ''}"
    console.print()
    console.print(render(rows, title))

    errors = [
        (wl, side, r)
        for wl, m, t in rows
        for side, r in (("mlflow", m), ("trackflow", t))
        if r and "error" in r
    ]
    for wl, side, r in errors:
        console.print(f"[red]{wl.key} on {side} failed:[/red]")
        console.print(r["error"], markup=False)
    for wl, m, t in rows:
        diff = mismatch(m, t)
        if diff:
            console.print(f"[yellow]{wl.key}: answers differ:[/yellow] {diff}")
    missed = [wl.key for wl, m, t in rows if verdict(wl.target, t, speedup(m, t)) == "FAIL"]
    if args.json:
        args.json.write_text(
            json.dumps(
                [{"workload": wl.key, "mlflow": m, "trackflow": t} for wl, m, t in rows], indent=2
            )
        )
    return bool(errors), missed


def _servers(
    args: argparse.Namespace, chosen: list[server_bench.ServerWorkload], mlflow_python: Path | None
) -> tuple[bool, list[str]]:
    """The server section: run, print the table; (errors?, missed targets)."""
    console.print()
    rows, versions, notes = server_bench.run_section(
        chosen,
        quick=args.quick,
        keep=args.keep,
        mlflow_python=mlflow_python,
        postgres_url=args.postgres_url,
    )
    clients = ", ".join(f"{name} {v}" for name, v in sorted(versions.items()))
    title = (
        f"Tracking servers over HTTP (default workers, SQLite unless noted; clients: {clients})"
        f"{' (--quick sizes)' if args.quick else ''}"
    )
    console.print()
    console.print(server_bench.render(rows, title))
    console.print(
        "[dim]client CPU: the client process's CPU time over wall time while timed; near 100% "
        "the client, not the server, sets the pace.[/dim]"
    )
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    errors, missed = server_bench.failures(rows)
    for error in errors:
        console.print(f"[red]failed:[/red] {error}", markup=False)
    if args.server_json:
        args.server_json.write_text(json.dumps(server_bench.to_json(rows), indent=2))
    return bool(errors), missed


def main(argv: Sequence[str] | None = None) -> int:
    server_keys = [w.key for w in server_bench.server_workloads(quick=False)]
    parser = argparse.ArgumentParser(
        description="Benchmark trackflow against MLflow: embedded SQLite, then tracking servers.",
        epilog=f"Workloads: a, b, c, d1, d2, e1, e2 (embedded), {', '.join(server_keys)} "
        "(servers), airflow, prefect, ui; see the module docstrings of bench_tracking.py, "
        "server_bench.py, airflow_bench.py, prefect_bench.py and ui_bench.py.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--no-mlflow",
        action="store_true",
        help="run the trackflow side only (no MLflow environment needed)",
    )
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. a,d2,sa")
    section = parser.add_mutually_exclusive_group()
    section.add_argument("--server-only", action="store_true", help="run the server section only")
    section.add_argument("--no-server", action="store_true", help="skip the server section")
    parser.add_argument("--no-airflow", action="store_true", help="skip the Airflow section")
    parser.add_argument("--no-prefect", action="store_true", help="skip the Prefect section")
    parser.add_argument("--no-ui", action="store_true", help="skip the web UI section")
    parser.add_argument(
        "--mlflow-env",
        type=Path,
        default=DEFAULT_ENV,
        help=f"where MLflow's environment lives (default: {DEFAULT_ENV})",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("TRACKFLOW_TEST_POSTGRES_URL", server_bench.DEFAULT_POSTGRES_URL),
        help="admin URL of the PostgreSQL server for workload se2 (a database is created "
        "and dropped; default: $TRACKFLOW_TEST_POSTGRES_URL or "
        f"{server_bench.DEFAULT_POSTGRES_URL})",
    )
    parser.add_argument("--json", type=Path, help="also write the embedded section's raw results")
    parser.add_argument("--server-json", type=Path, help="also write the server section's")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit non-zero when a target is missed, not only on errors",
    )
    args = parser.parse_args(argv)

    chosen = [] if args.server_only else workloads(args.quick)
    chosen_servers = [] if args.no_server else server_bench.server_workloads(args.quick)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        unknown = (
            wanted
            - {w.key for w in workloads(args.quick)}
            - set(server_keys)
            - {"airflow", "prefect", "ui"}
        )
        if unknown:
            parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
        chosen = [w for w in chosen if w.key in wanted]
        chosen_servers = [w for w in chosen_servers if w.key in wanted]
    run_airflow = not args.no_airflow and not args.server_only
    run_prefect = not args.no_prefect and not args.server_only
    run_ui = not args.no_ui and not args.server_only
    if args.only:
        run_airflow = run_airflow and "airflow" in wanted
        run_prefect = run_prefect and "prefect" in wanted
        run_ui = run_ui and "ui" in wanted

    mlflow_python = None
    if not args.no_mlflow:
        # Imported here: a trackflow-only run needs nothing of MLflow's.
        from mlflow_env import ensure_mlflow_env

        mlflow_python = ensure_mlflow_env(
            args.mlflow_env, log=lambda msg: console.print(f"[dim]{msg}")
        )

    failed, missed = False, []
    if chosen:
        errors, misses = _embedded(args, chosen, mlflow_python)
        failed, missed = failed or errors, missed + misses
    if chosen_servers:
        errors, misses = _servers(args, chosen_servers, mlflow_python)
        failed, missed = failed or errors, missed + misses
    if run_airflow:
        import airflow_bench

        console.print()
        figures = airflow_bench.run_section(
            quick=args.quick, mlflow_python=mlflow_python, console=console
        )
        console.print(airflow_bench.render(figures))
        missed += airflow_bench.missed(figures)
    if run_prefect:
        import prefect_bench

        console.print()
        prefect_figures = prefect_bench.run_section(quick=args.quick, console=console)
        console.print(prefect_bench.render(prefect_figures))
        missed += prefect_bench.missed(prefect_figures)
    if run_ui:
        import ui_bench

        console.print()
        samples = ui_bench.measure(quick=args.quick, mlflow_python=mlflow_python)
        if not ui_bench.report(samples):
            missed.append("ui")
    if missed:
        console.print(f"targets missed: {', '.join(missed)}")
    if failed:
        return 1
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
