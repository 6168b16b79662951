"""The benchmark workloads, run by one worker process per (tool, workload).

This module is shared by both sides: it imports neither MLflow nor trackflow.
A *side* (``side_mlflow.py``, ``side_trackflow.py``) wraps one tool behind the
small interface :class:`Side`; everything timed here goes through it, with the
same timing code for both tools.

Run by ``bench_tracking.py``, never by hand::

    python workloads.py --side mlflow --workload a --workdir /tmp/x --out result.json

With ``--tracking-uri http://127.0.0.1:PORT`` the side talks to a tracking
server instead of its own SQLite file (the server section: workloads a, b, c
and d1); ``--experiment-name`` then keeps workloads sharing one server apart.

Data too large to write through either API (100,000 runs, a million metric
points) is bulk-loaded with ``sqlite3`` straight into the tool's schema, after
the tool has created that schema itself. The loader reads the schema rather
than knowing it: new runs copy the row and tags of a run the tool created,
metric rows fill the columns both schemas share (``run_uuid``, ``key``,
``value``, ``timestamp``, ``step``) and set the NaN/inf marker (``is_nan`` in
MLflow, ``special`` in trackflow) to "finite". After loading, ``ANALYZE``
gives SQLite's planner statistics on both files, as a bulk load calls for:
without them MLflow's search over 100,000 runs takes minutes instead of
seconds, a planner accident rather than a measure of the tool.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

#: A metric point as the sides take it: (key, value, timestamp ms, step).
Point = tuple[str, float, int, int]

SEARCH_FILTER = "metrics.acc > 0.5 and params.opt = 'adam'"
SEARCH_ORDER_BY = ["metrics.acc DESC"]
SEARCH_MAX_RESULTS = 100
BASE_TIME_MS = 1_700_000_000_000
#: The experiment the workloads create; unique per process when they share a server.
EXPERIMENT_NAME = "bench"


class Side(Protocol):
    """What a tool must offer the workloads. Ids are strings, as in both APIs."""

    name: str
    version: str
    db_path: Path | None  # None when talking to a server: no bulk loading then

    def create_experiment(self, name: str) -> str: ...
    def create_run(self, experiment_id: str) -> str: ...
    def end_run(self, run_id: str) -> None: ...
    def log_metric(self, run_id: str, key: str, value: float, step: int) -> None: ...
    def log_batch(
        self, run_id: str, metrics: Sequence[Point], params: Sequence[tuple[str, str]] = ()
    ) -> None: ...
    def set_experiment(self, name: str) -> None: ...
    def fluent_run(self, params: Sequence[tuple[str, str]], metric: tuple[str, float]) -> None: ...
    def search_runs(
        self, experiment_id: str, filter_string: str, order_by: list[str], max_results: int
    ) -> list[tuple[str, float]]:
        """(run id, value of metric ``acc``) of each run found, in order."""
        ...

    def get_metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of each point."""
        ...


# -- sizes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; :data:`FULL` is the real benchmark."""

    log_metric_calls: int = 500
    batches: int = 20
    batch_keys: int = 10
    batch_steps: int = 100
    fluent_runs: int = 300
    search_small_runs: int = 300
    search_large_runs: int = 100_000
    run_params: int = 10
    run_metrics: int = 10
    history_small: int = 20_000
    history_large: int = 1_000_000
    passes: int = 3
    search_reps: int = 7
    history_reps: int = 5
    time_budget_s: float = 60.0


FULL = Sizes()
QUICK = Sizes(
    log_metric_calls=50,
    batches=2,
    fluent_runs=20,
    search_small_runs=50,
    search_large_runs=2_000,
    history_small=2_000,
    history_large=20_000,
    passes=2,
    search_reps=3,
    history_reps=3,
    time_budget_s=10.0,
)


@dataclass
class Result:
    """One tool's figure for one workload, as the worker reports it."""

    workload: str
    side: str
    version: str
    kind: str  # "rate" (higher is better) or "latency" (ms, lower is better)
    unit: str
    value: float
    samples: list[float]
    check: dict[str, Any] = field(default_factory=dict)
    setup_s: float = 0.0
    #: CPU time of this (client) process over wall time, during the timed part. Against
    #: a server, near 1.0 means the client, not the server, sets the pace.
    client_cpu_share: float | None = None


#: Wall and CPU seconds of this process inside timed sections (one workload per process).
_timed = {"wall": 0.0, "cpu": 0.0}


class _Timer:
    """Times one section: ``elapsed`` wall seconds; adds wall and CPU time to ``_timed``."""

    def __enter__(self) -> _Timer:
        self._cpu = time.process_time()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self._start
        _timed["wall"] += self.elapsed
        _timed["cpu"] += time.process_time() - self._cpu


def _result(
    workload: str, side: Side, unit: str, samples: list[float], check: dict[str, Any] | None = None
) -> Result:
    """The median of ``samples``: a rate unless the unit is ms."""
    return Result(
        workload=workload,
        side=side.name,
        version=side.version,
        kind="latency" if unit == "ms" else "rate",
        unit=unit,
        value=statistics.median(samples),
        samples=samples,
        check=check or {},
        client_cpu_share=_timed["cpu"] / _timed["wall"] if _timed["wall"] else None,
    )


# -- timing -----------------------------------------------------------------------


def _rates(make_pass: Callable[[], Callable[[], int]], passes: int, budget_s: float) -> list[float]:
    """Operations per second of each pass.

    ``make_pass`` prepares a pass untimed (a fresh run, say) and returns it; the
    pass, timed, returns how many operations it did. After the first pass, no
    new pass starts once ``budget_s`` seconds have been spent.
    """
    rates: list[float] = []
    spent = 0.0
    while len(rates) < passes and (not rates or spent < budget_s):
        run_pass = make_pass()
        with _Timer() as timer:
            done = run_pass()
        spent += timer.elapsed
        rates.append(done / timer.elapsed)
    return rates


def _latencies_ms(call: Callable[[], object], reps: int, budget_s: float) -> list[float]:
    """An untimed warm-up call, then up to ``reps`` timed calls within ``budget_s``.

    A call that takes longer than the whole budget is not repeated: its warm-up
    time is the one sample (a warm cache cannot matter much to it).
    """
    start = time.perf_counter()
    call()
    spent = time.perf_counter() - start
    if spent > budget_s:
        return [spent * 1000]
    samples: list[float] = []
    while len(samples) < reps and (not samples or spent < budget_s):
        with _Timer() as timer:
            call()
        spent += timer.elapsed
        samples.append(timer.elapsed * 1000)
    return samples


# -- data -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """A run to load for the search workloads; the same specs go to both tools."""

    run_id: str
    name: str
    params: tuple[tuple[str, str], ...]
    metrics: tuple[tuple[str, float], ...]


def make_runs(count: int, n_params: int, n_metrics: int, seed: int = 42) -> list[RunSpec]:
    """``count`` runs with params ``opt`` + ``p1..`` and metrics ``acc`` + ``m1..``."""
    rng = random.Random(seed)
    optimizers = ("adam", "sgd", "rmsprop")
    runs = []
    for i in range(count):
        params = [("opt", optimizers[rng.randrange(3)])]
        params += [(f"p{j}", str(rng.randrange(1000))) for j in range(1, n_params)]
        metrics = [("acc", round(rng.random(), 6))]
        metrics += [(f"m{j}", round(rng.random() * 10, 6)) for j in range(1, n_metrics)]
        runs.append(
            RunSpec(
                run_id=uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                name=f"run-{i}",
                params=tuple(params),
                metrics=tuple(metrics),
            )
        )
    return runs


# -- bulk loading -------------------------------------------------------------------


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def _insert(conn: sqlite3.Connection, table: str, rows: Iterable[dict[str, Any]]) -> None:
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    cols = list(first)
    quoted = ", ".join(f'"{c}"' for c in cols)
    sql = f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" for _ in cols)})'
    conn.executemany(sql, (tuple(r[c] for c in cols) for r in [first, *rows]))


def _metric_row_factory(
    conn: sqlite3.Connection, table: str
) -> Callable[[str, str, float, int, int], dict[str, Any]]:
    """Build rows for ``metrics``/``latest_metrics`` of whichever schema the file has."""
    cols = set(_columns(conn, table))
    known = {"run_uuid", "key", "value", "timestamp", "step", "is_nan", "special"}
    unknown = cols - known
    if unknown:
        raise RuntimeError(f"{table} has columns the bulk loader does not know: {unknown}")
    marker = "is_nan" if "is_nan" in cols else "special" if "special" in cols else None

    def row(run_id: str, key: str, value: float, timestamp: int, step: int) -> dict[str, Any]:
        r: dict[str, Any] = {
            "run_uuid": run_id,
            "key": key,
            "value": value,
            "timestamp": timestamp,
            "step": step,
        }
        if marker:
            r[marker] = 0
        return r

    return row


def _connect(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def bulk_load_runs(db_path: Path, template_run_id: str, runs: Sequence[RunSpec]) -> None:
    """Insert ``runs`` (finished, with their params, metrics and latest metrics).

    Each copies the ``runs`` row and the tags of ``template_run_id``, a run the
    tool created through its API, so every column the tool fills gets a value.
    """
    conn = _connect(db_path)
    try:
        cur = conn.execute("SELECT * FROM runs WHERE run_uuid = ?", (template_run_id,))
        names = [d[0] for d in cur.description]
        template = dict(zip(names, cur.fetchone(), strict=True))
        template_tags = conn.execute(
            "SELECT key, value FROM tags WHERE run_uuid = ?", (template_run_id,)
        ).fetchall()
        template_name = template.get("name")
        metric_row = _metric_row_factory(conn, "metrics")
        latest_row = _metric_row_factory(conn, "latest_metrics")

        def run_rows() -> Iterable[dict[str, Any]]:
            for i, spec in enumerate(runs):
                row = {
                    k: v.replace(template_run_id, spec.run_id) if isinstance(v, str) else v
                    for k, v in template.items()
                }
                row.update(
                    run_uuid=spec.run_id,
                    status="FINISHED",
                    lifecycle_stage="active",
                    start_time=BASE_TIME_MS + i * 1000,
                    end_time=BASE_TIME_MS + i * 1000 + 500,
                )
                if "name" in row:
                    row["name"] = spec.name
                yield row

        def tag_rows() -> Iterable[dict[str, Any]]:
            for spec in runs:
                for key, value in template_tags:
                    if value == template_name:
                        value = spec.name
                    yield {"run_uuid": spec.run_id, "key": key, "value": value}

        def param_rows() -> Iterable[dict[str, Any]]:
            for spec in runs:
                for key, value in spec.params:
                    yield {"run_uuid": spec.run_id, "key": key, "value": value}

        def metric_rows(
            factory: Callable[[str, str, float, int, int], dict[str, Any]],
        ) -> Iterable[dict[str, Any]]:
            for i, spec in enumerate(runs):
                for key, value in spec.metrics:
                    yield factory(spec.run_id, key, value, BASE_TIME_MS + i * 1000 + 250, 0)

        conn.execute("BEGIN")
        _insert(conn, "runs", run_rows())
        _insert(conn, "tags", tag_rows())
        _insert(conn, "params", param_rows())
        _insert(conn, "metrics", metric_rows(metric_row))
        _insert(conn, "latest_metrics", metric_rows(latest_row))
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def bulk_load_history(db_path: Path, run_id: str, key: str, points: int) -> None:
    """Insert ``points`` points of metric ``key`` (steps 0..points-1) and its latest point."""
    conn = _connect(db_path)
    try:
        metric_row = _metric_row_factory(conn, "metrics")
        latest_row = _metric_row_factory(conn, "latest_metrics")
        conn.execute("BEGIN")
        _insert(
            conn,
            "metrics",
            (metric_row(run_id, key, _curve(s), BASE_TIME_MS + s, s) for s in range(points)),
        )
        last = points - 1
        conn.execute("DELETE FROM latest_metrics WHERE run_uuid = ? AND key = ?", (run_id, key))
        _insert(
            conn,
            "latest_metrics",
            [latest_row(run_id, key, _curve(last), BASE_TIME_MS + last, last)],
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def _curve(step: int) -> float:
    """A loss-like value per step, deterministic so both tools hold the same series."""
    return round(1.0 / (1.0 + step * 1e-3), 9)


# -- workloads ------------------------------------------------------------------------


def _db_path(side: Side) -> Path:
    if side.db_path is None:
        raise RuntimeError("this workload bulk-loads a SQLite file: it needs an embedded store")
    return side.db_path


def _warm_run(side: Side) -> tuple[str, str]:
    experiment_id = side.create_experiment(EXPERIMENT_NAME)
    run_id = side.create_run(experiment_id)
    return experiment_id, run_id


def wl_log_metric(side: Side, sizes: Sizes) -> Result:
    """a. Single ``log_metric`` calls on one run -> calls/s."""
    experiment_id, run_id = _warm_run(side)
    side.log_metric(run_id, "warmup", 0.0, 0)
    n = sizes.log_metric_calls
    runs: list[str] = []

    def make_pass() -> Callable[[], int]:
        rid = side.create_run(experiment_id)
        runs.append(rid)

        def run_pass() -> int:
            for i in range(n):
                side.log_metric(rid, "m", i * 0.5, i)
            return n

        return run_pass

    rates = _rates(make_pass, sizes.passes, sizes.time_budget_s)
    return _result(
        "a", side, "calls/s", rates, {"points": len(side.get_metric_history(runs[-1], "m"))}
    )


def wl_log_batch(side: Side, sizes: Sizes) -> Result:
    """b. ``log_batch`` calls of keys x steps metric points -> points/s."""
    experiment_id, run_id = _warm_run(side)
    side.log_batch(run_id, [("warmup", 0.0, BASE_TIME_MS, 0)])
    keys = [f"k{j}" for j in range(sizes.batch_keys)]
    per_batch = sizes.batch_keys * sizes.batch_steps
    batches = [
        [
            (key, s * 0.25 + j, BASE_TIME_MS + b * sizes.batch_steps + s, b * sizes.batch_steps + s)
            for s in range(sizes.batch_steps)
            for j, key in enumerate(keys)
        ]
        for b in range(sizes.batches)
    ]
    runs: list[str] = []

    def make_pass() -> Callable[[], int]:
        rid = side.create_run(experiment_id)
        runs.append(rid)

        def run_pass() -> int:
            for batch in batches:
                side.log_batch(rid, batch)
            return per_batch * len(batches)

        return run_pass

    rates = _rates(make_pass, sizes.passes, sizes.time_budget_s)
    points = len(side.get_metric_history(runs[-1], "k0"))
    return _result("b", side, "points/s", rates, {"points_k0": points})


def wl_fluent_runs(side: Side, sizes: Sizes) -> Result:
    """c. Fluent runs, each with 2 params and 1 metric, then ended -> runs/s."""
    side.create_experiment(EXPERIMENT_NAME)
    side.set_experiment(EXPERIMENT_NAME)
    side.fluent_run([("lr", "0.1"), ("opt", "adam")], ("acc", 0.5))
    n = sizes.fluent_runs
    opts = ("adam", "sgd", "rmsprop")

    def make_pass() -> Callable[[], int]:
        def run_pass() -> int:
            for i in range(n):
                side.fluent_run([("lr", str(i / n)), ("opt", opts[i % 3])], ("acc", i / n))
            return n

        return run_pass

    rates = _rates(make_pass, sizes.passes, sizes.time_budget_s)
    return _result("c", side, "runs/s", rates)


def _search_check(found: list[tuple[str, float]]) -> dict[str, Any]:
    return {"count": len(found), "top_acc": [round(acc, 6) for _, acc in found[:3]]}


def _time_search(side: Side, experiment_id: str, reps: int, budget_s: float) -> Result:
    found: list[tuple[str, float]] = []

    def call() -> None:
        found[:] = side.search_runs(
            experiment_id, SEARCH_FILTER, list(SEARCH_ORDER_BY), SEARCH_MAX_RESULTS
        )

    samples = _latencies_ms(call, reps, budget_s)
    return _result("", side, "ms", samples, _search_check(found))


def wl_search_small(side: Side, sizes: Sizes) -> Result:
    """d(i). search_runs over runs logged through the API."""
    experiment_id, run_id = _warm_run(side)
    side.end_run(run_id)
    setup = time.perf_counter()
    for spec in make_runs(sizes.search_small_runs, sizes.run_params, sizes.run_metrics):
        rid = side.create_run(experiment_id)
        side.log_batch(rid, [(k, v, BASE_TIME_MS, 0) for k, v in spec.metrics], params=spec.params)
        side.end_run(rid)
    setup_s = time.perf_counter() - setup
    result = _time_search(side, experiment_id, sizes.search_reps, sizes.time_budget_s)
    result.workload, result.setup_s = "d1", setup_s
    return result


def wl_search_large(side: Side, sizes: Sizes) -> Result:
    """d(ii). search_runs over bulk-loaded runs."""
    experiment_id, run_id = _warm_run(side)
    side.end_run(run_id)
    setup = time.perf_counter()
    runs = make_runs(sizes.search_large_runs, sizes.run_params, sizes.run_metrics)
    bulk_load_runs(_db_path(side), run_id, runs)
    setup_s = time.perf_counter() - setup
    result = _time_search(side, experiment_id, sizes.search_reps, sizes.time_budget_s)
    result.workload, result.setup_s = "d2", setup_s
    # Both tools hold the same runs: the same ids must come back.
    top = side.search_runs(experiment_id, SEARCH_FILTER, list(SEARCH_ORDER_BY), 3)
    result.check["top_ids"] = [run_id for run_id, _ in top]
    return result


def _time_history(side: Side, run_id: str, reps: int, budget_s: float) -> Result:
    history: list[tuple[int, float]] = []

    def call() -> None:
        history[:] = side.get_metric_history(run_id, "loss")

    samples = _latencies_ms(call, reps, budget_s)
    check = {
        "points": len(history),
        "first_last_step": [history[0][0], history[-1][0]] if history else [],
    }
    return _result("", side, "ms", samples, check)


def wl_history_small(side: Side, sizes: Sizes) -> Result:
    """e(i). get_metric_history of points logged with log_batch."""
    _, run_id = _warm_run(side)
    setup = time.perf_counter()
    chunk = 1000
    for first in range(0, sizes.history_small, chunk):
        last = min(first + chunk, sizes.history_small)
        side.log_batch(
            run_id, [("loss", _curve(s), BASE_TIME_MS + s, s) for s in range(first, last)]
        )
    setup_s = time.perf_counter() - setup
    result = _time_history(side, run_id, sizes.history_reps, sizes.time_budget_s)
    result.workload, result.setup_s = "e1", setup_s
    return result


def wl_history_large(side: Side, sizes: Sizes) -> Result:
    """e(ii). get_metric_history of bulk-loaded points."""
    _, run_id = _warm_run(side)
    setup = time.perf_counter()
    bulk_load_history(_db_path(side), run_id, "loss", sizes.history_large)
    setup_s = time.perf_counter() - setup
    result = _time_history(side, run_id, sizes.history_reps, sizes.time_budget_s)
    result.workload, result.setup_s = "e2", setup_s
    return result


#: Runs of the UI benchmark's chart, and the metric they hold.
UI_CHART_RUNS, UI_CHART_METRIC = 10, "loss"


def wl_ui_store(side: Side, sizes: Sizes) -> Result:
    """Not timed: the UI benchmark's store (``ui_bench.py``), through the tool's API and bulk
    loading: ``search_large_runs`` runs with ``run_params`` params and ``run_metrics``
    metrics, and 10 runs holding ``history_small`` points of ``loss`` each."""
    experiment_id, run_id = _warm_run(side)
    side.end_run(run_id)
    setup = time.perf_counter()
    runs = make_runs(sizes.search_large_runs, sizes.run_params, sizes.run_metrics)
    bulk_load_runs(_db_path(side), run_id, runs)
    chart_runs = []
    for _ in range(UI_CHART_RUNS):
        chart_run = side.create_run(experiment_id)
        side.end_run(chart_run)
        chart_runs.append(chart_run)
    for chart_run in chart_runs:
        bulk_load_history(_db_path(side), chart_run, UI_CHART_METRIC, sizes.history_small)
    result = _result(
        "ui_store",
        side,
        "runs",
        [float(len(runs))],
        {
            "experiment_id": experiment_id,
            "chart_runs": chart_runs,
            "db_path": str(_db_path(side)),
            "runs": len(runs) + 1 + UI_CHART_RUNS,
            "points": sizes.history_small,
        },
    )
    result.setup_s = time.perf_counter() - setup
    return result


WORKLOADS: dict[str, Callable[[Side, Sizes], Result]] = {
    "a": wl_log_metric,
    "b": wl_log_batch,
    "c": wl_fluent_runs,
    "d1": wl_search_small,
    "d2": wl_search_large,
    "e1": wl_history_small,
    "e2": wl_history_large,
    "ui_store": wl_ui_store,
}


def main(argv: Sequence[str] | None = None) -> int:
    global EXPERIMENT_NAME
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", required=True, choices=["mlflow", "trackflow"])
    parser.add_argument("--workload", required=True, choices=sorted(WORKLOADS))
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tracking-uri", help="a tracking server's URL (default: embedded)")
    parser.add_argument("--experiment-name", default="bench")
    args = parser.parse_args(argv)

    EXPERIMENT_NAME = args.experiment_name
    # Only the chosen tool is ever imported: the MLflow env has no trackflow and
    # the project env no MLflow.
    module = importlib.import_module(f"side_{args.side}")
    side: Side = module.make_side(args.workdir.resolve(), args.tracking_uri)
    result = WORKLOADS[args.workload](side, QUICK if args.quick else FULL)
    args.out.write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
