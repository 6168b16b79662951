"""The web UI in headless Chromium: trackflow's UI against MLflow's, on the same data.

Each tool gets its own SQLite file holding the same runs (``workloads.py``'s
``ui_store``: 100,000 runs with 10 params and 10 metrics each, plus 10 runs of
20,000 ``loss`` points), its own server (``trackflow server``, ``mlflow
server``), and the same Chromium (Debian's, driven by Playwright). Every
figure starts from a fresh browser context (nothing cached, as for a user
opening a link) and is the median of the repetitions, tools interleaved:

ui1  the experiment's runs table: from navigation until its first rows show
ui2  the next page of that table: from scrolling to the end (trackflow) or clicking
     "Load more" (MLflow) until the next 100 rows are there
ui3  a chart of 10 runs x 20,000 points: from navigation until it is drawn
     (trackflow's compare page; MLflow's metric page)
ui4  the pipeline view of a DAG run of 200 task instances with lineage (written by
     PipelineTracker as the Airflow listener writes them): from navigation until its
     timeline and its graph are drawn (trackflow only: MLflow's UI has no such view)

Targets: ui1 < 1 s, ui2 < 200 ms, ui3 < 0.5 s, each at least 5x faster than
MLflow's UI; ui4 < 1 s. Run as a section of ``bench_tracking.py`` (``--only ui``,
``--no-ui``) or alone: ``uv run python tests/benchmarks/ui_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlflow_env import ensure_mlflow_env, mlflow_subprocess_env
from rich.table import Table
from runner import console, run_worker, trackflow_env
from servers import ServerProcess, mlflow_server, trackflow_server

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("TRACKFLOW_CHROMIUM", "/usr/lib/chromium/chromium")
PAGE_ROWS = 100
NEXT_PAGES = 3
#: (key, what, limit in ms, minimum speed-up over MLflow: None where MLflow has no such page)
FIGURES: tuple[tuple[str, str, float, float | None], ...] = (
    ("ui1", "runs table: first rows", 1000.0, 5.0),
    ("ui2", "runs table: each further page", 200.0, 5.0),
    ("ui3", "chart: 10 runs x {points:,} points", 500.0, 5.0),
    ("ui4", "pipeline view: 200 task instances", 1000.0, None),
)
#: Task instances of the DAG run ui4 shows.
PIPELINE_INSTANCES = 200


def _store(
    side: str, python: str, env: dict[str, str], workdir: Path, quick: bool
) -> dict[str, Any]:
    """Fill a tool's SQLite file in ``workdir`` through ``workloads.py ui_store``; its ids
    and path."""
    result = run_worker(
        python, env, side, "ui_store", quick, False, experiment_name="ui-bench", workdir=workdir
    )
    if "error" in result:
        raise RuntimeError(f"{side}: filling the store failed: {result['error']}")
    check: dict[str, Any] = result["check"]
    return check


@contextmanager
def _servers(
    workdir: Path, quick: bool, mlflow_python: Path | None
) -> Iterator[dict[str, tuple[ServerProcess, dict[str, Any]]]]:
    found: dict[str, tuple[ServerProcess, dict[str, Any]]] = {}
    with ExitStack() as stack:
        console.print("[dim]ui: filling trackflow's store ...[/dim]")
        ours = _store("trackflow", sys.executable, trackflow_env(), workdir / "trackflow", quick)
        ours["pipeline_run"] = _pipeline_run(f"sqlite:///{ours['db_path']}")
        server = stack.enter_context(
            trackflow_server(
                f"sqlite:///{ours['db_path']}",
                workdir / "trackflow" / "served-artifacts",
                workdir=workdir / "trackflow",
                env=trackflow_env(),
            )
        )
        found["trackflow"] = (server, ours)
        if mlflow_python is not None:
            python = mlflow_python
            console.print("[dim]ui: filling MLflow's store ...[/dim]")
            env = mlflow_subprocess_env()
            theirs = _store("mlflow", str(python), env, workdir / "mlflow", quick)
            server = stack.enter_context(
                mlflow_server(
                    python,
                    f"sqlite:///{theirs['db_path']}",
                    workdir / "mlflow" / "served-artifacts",
                    workdir=workdir / "mlflow",
                    env=env,
                )
            )
            found["mlflow"] = (server, theirs)
        yield found


def _pipeline_run(db_uri: str) -> tuple[str, str]:
    """A DAG run of :data:`PIPELINE_INSTANCES` task instances with lineage in trackflow's
    store (the UI tests' fixture: prepare -> mapped work -> gather); its run id and its
    experiment's id."""
    sys.path.insert(0, str(HERE.parent / "tracking" / "ui"))
    from _pipeline_support import big_dag_run

    from tracking import TrackingClient

    run_id = big_dag_run(db_uri, "ui-bench-pipeline", PIPELINE_INSTANCES)
    return run_id, TrackingClient(db_uri).get_run(run_id).info.experiment_id


# -- what a user waits for, per tool ----------------------------------------------------


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def trackflow_table(page: Any, url: str, store: dict[str, Any]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    page.goto(f"{url}/experiments/{store['experiment_id']}", wait_until="commit")
    page.wait_for_selector("#rows tr.run", state="visible", timeout=60_000)
    first = _ms(start)
    pages = []
    for k in range(1, NEXT_PAGES + 1):
        start = time.perf_counter()
        page.locator("#rows tr.more").scroll_into_view_if_needed()
        # A locator, not wait_for_function: the UI's CSP forbids the eval that needs.
        last = page.locator("#rows tr.run").nth(PAGE_ROWS * (k + 1) - 1)
        last.wait_for(state="attached", timeout=60_000)
        pages.append(_ms(start))
    return first, pages


def mlflow_table(page: Any, url: str, store: dict[str, Any]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    page.goto(
        f"{url}/#/experiments/{store['experiment_id']}/runs?workflowType=machine_learning",
        wait_until="commit",
    )
    page.wait_for_selector(".ag-center-cols-container .ag-row", state="visible", timeout=120_000)
    first = _ms(start)
    pages = []
    for k in range(1, NEXT_PAGES + 1):
        start = time.perf_counter()
        # The grid shows its "Load more" button once scrolled to its end.
        page.evaluate(
            "() => document.querySelectorAll("
            "'.ag-body-viewport, .ag-body-vertical-scroll-viewport')"
            ".forEach(v => { v.scrollTop = v.scrollHeight; })"
        )
        button = page.locator("button:has-text('Load more')")
        button.click(timeout=60_000)
        page.wait_for_function(
            f"document.body.innerText.includes('{PAGE_ROWS * (k + 1)} matching runs')",
            timeout=120_000,
            polling="raf",
        )
        pages.append(_ms(start))
    return first, pages


def trackflow_chart(page: Any, url: str, store: dict[str, Any]) -> float:
    start = time.perf_counter()
    page.goto(f"{url}/compare?runs={','.join(store['chart_runs'])}", wait_until="commit")
    page.wait_for_selector("#chart-grid[data-ready='1']", state="attached", timeout=60_000)
    took = _ms(start)
    drawn = page.evaluate("() => window.__trackflowCharts.plots.loss.series.length")
    assert drawn == 11, f"the chart has {drawn - 1} series, not 10"
    return took


def trackflow_pipeline(page: Any, url: str, store: dict[str, Any]) -> float:
    start = time.perf_counter()
    run_id, experiment_id = store["pipeline_run"]
    page.goto(f"{url}/experiments/{experiment_id}/runs/{run_id}", wait_until="commit")
    # Drawn: the last bar of the timeline and the last node of the graph are laid out.
    page.wait_for_selector("#timeline > :last-child .tl-bar", state="visible", timeout=60_000)
    page.wait_for_selector("#pipeline-graph g.node:last-of-type rect", state="visible")
    took = _ms(start)
    steps = page.locator("#pipeline").get_attribute("data-steps")
    assert steps == str(PIPELINE_INSTANCES), f"the view shows {steps} steps"
    assert page.locator("#pipeline-graph g.edge").count() == 2
    return took


def mlflow_chart(page: Any, url: str, store: dict[str, Any]) -> float:
    runs = json.dumps(store["chart_runs"], separators=(",", ":"))
    keys = quote(json.dumps(["loss"]))
    start = time.perf_counter()
    page.goto(
        f'{url}/#/metric?runs={runs}&metric={quote(json.dumps("loss"))}&experiments=["{store["experiment_id"]}"]'
        f"&plot_metric_keys={keys}&plot_layout={{}}&x_axis=step&y_axis_scale=linear"
        "&line_smoothness=1&show_point=false&deselected_curves=[]&last_linear_y_axis_range=[]",
        wait_until="commit",
    )
    page.wait_for_function(
        "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 10"
        " && document.body.innerText.includes('10/10')",
        timeout=120_000,
        polling="raf",
    )
    return _ms(start)


TABLES: dict[str, Callable[[Any, str, dict[str, Any]], tuple[float, list[float]]]] = {
    "trackflow": trackflow_table,
    "mlflow": mlflow_table,
}
CHARTS: dict[str, Callable[[Any, str, dict[str, Any]], float]] = {
    "trackflow": trackflow_chart,
    "mlflow": mlflow_chart,
}


def measure(
    quick: bool = False, mlflow_python: Path | None = None, reps: int = 3
) -> dict[str, dict[str, Any]]:
    """``{tool: {"ui1": [ms...], "ui2": [...], "ui3": [...], "runs": n}}``; MLflow's side
    only with ``mlflow_python`` (its environment's interpreter)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no chromium at {CHROMIUM}: apt-get install chromium")
    workdir = Path(tempfile.mkdtemp(prefix="trackflow-ui-bench-"))
    samples: dict[str, dict[str, Any]] = {}
    try:
        with _servers(workdir, quick, mlflow_python) as servers, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            for tool, (server, store) in servers.items():
                samples[tool] = {
                    "ui1": [],
                    "ui2": [],
                    "ui3": [],
                    "ui4": [],
                    "runs": store["runs"],
                    "points": store["points"],
                }
                # One untimed visit per tool: the server's own first-request costs.
                _visit(browser, lambda p, t=tool, s=server, st=store: TABLES[t](p, s.url, st))
            for _ in range(reps):
                for tool, (server, store) in servers.items():
                    first, pages = _visit(
                        browser, lambda p, t=tool, s=server, st=store: TABLES[t](p, s.url, st)
                    )
                    samples[tool]["ui1"].append(first)
                    samples[tool]["ui2"] += pages
                    chart = _visit(
                        browser, lambda p, t=tool, s=server, st=store: CHARTS[t](p, s.url, st)
                    )
                    samples[tool]["ui3"].append(chart)
                    if tool == "trackflow":
                        view = _visit(
                            browser, lambda p, s=server, st=store: trackflow_pipeline(p, s.url, st)
                        )
                        samples[tool]["ui4"].append(view)
            browser.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return samples


def _visit(browser: Any, action: Callable[[Any], Any]) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        return action(context.new_page())
    finally:
        context.close()


def report(samples: dict[str, dict[str, Any]]) -> bool:
    """Print the table; whether every target passed."""
    ours, theirs = samples.get("trackflow"), samples.get("mlflow")
    table = Table(title=f"Web UI in headless Chromium ({ours['runs'] if ours else '?'} runs)")
    for column in ("figure", "MLflow UI", "trackflow UI", "ratio", "target", "result"):
        table.add_column(column)
    passed = True
    for key, what, limit, ratio in FIGURES:
        mine = statistics.median(ours[key]) if ours and ours[key] else None
        other = statistics.median(theirs[key]) if theirs and theirs[key] else None
        speed = other / mine if mine and other else None
        ok = (
            mine is not None and mine < limit and (speed is None or ratio is None or speed >= ratio)
        )
        passed &= ok
        table.add_row(
            f"{key}. {what.format(points=ours['points'] if ours else 0)}",
            f"{other:.0f} ms" if other is not None else "-",
            f"{mine:.0f} ms" if mine is not None else "-",
            f"{speed:.1f}x" if speed else "-",
            f"< {limit:.0f} ms" + (f", >= {ratio:g}x" if ratio else ""),
            ("PASS" if ok else "FAIL")
            + ("" if speed is not None or ratio is None else " (no MLflow: time only)"),
        )
    console.print(table)
    for tool, found in samples.items():
        console.print(
            f"[dim]{tool}: "
            + "; ".join(
                f"{k} " + ", ".join(f"{v:.0f}" for v in found[k])
                for k in ("ui1", "ui2", "ui3", "ui4")
            )
            + " (ms)[/dim]"
        )
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 runs, 2,000 points")
    parser.add_argument("--no-mlflow", action="store_true", help="trackflow's UI only")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the samples")
    args = parser.parse_args(argv)
    python = None
    if not args.no_mlflow:
        python = ensure_mlflow_env(log=lambda m: console.print(f"[dim]{m}[/dim]"))
    samples = measure(quick=args.quick, mlflow_python=python, reps=args.reps)
    if args.json:
        args.json.write_text(json.dumps(samples, indent=2))
    return 0 if report(samples) else 1


if __name__ == "__main__":
    sys.exit(main())
