"""Scale figures: trackflow and MLflow servers on PostgreSQL with 1, 2 and 4 workers.

A script, not a test: it prints figures. Run from the repository root::

    .venv/bin/python tests/benchmarks/scale_bench.py            # full
    .venv/bin/python tests/benchmarks/scale_bench.py --quick    # shorter phases

Two phases per server, each server on a fresh PostgreSQL database (dropped
afterwards) and started with ``--workers N``:

1. **Logging**: 8 client processes, each repeating for the phase's duration:
   create a run, log batches of 1,000 points (``log-batch``), end the run.
   Printed: aggregate points/s and runs/s, p50/p99 latency of the requests,
   errors (non-200 answers and failed connections), the machine's CPU busy
   share, and the CPU spent per 1,000 points by the server's processes, by
   the rest of the machine (PostgreSQL and the kernel) and by the clients.
   The clients send bodies encoded ahead (:class:`BatchBodies`, the same
   bytes as encoding each batch): everything runs on one machine, and a
   client's CPU is CPU the server does not get.
2. **MLflow Go-backend load test**: 20 concurrent users (4 processes x 5
   threads), each looping over ``SearchRuns`` (max 100 in the experiment),
   ``LogMetricBatch10`` (one ``log-batch`` of 10 metrics) and ``CreateRun``;
   printed per request name as Locust prints its stats (# reqs, # fails, avg,
   min, max, median, p95, p99, req/s), the format of that load test.

Both servers get the very same HTTP requests (MLflow's REST API, one
``httpx.Client`` per client thread), so the figures compare the servers only.
The PostgreSQL server is the suite's (``TRACKFLOW_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``); MLflow comes from its own
environment (``mlflow_env.py``, built on first use).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlflow_env import DEFAULT_ENV, ensure_mlflow_env, mlflow_subprocess_env
from servers import ServerProcess, mlflow_server, postgres_database, trackflow_server

API = "/api/2.0/mlflow"
ADMIN_URL = os.environ.get(
    "TRACKFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLIENTS = 8
USERS = 20
USER_PROCESSES = 4
BATCH = 1000
BATCHES_PER_RUN = 5


@dataclass
class Tally:
    """What one client process did."""

    points: int = 0
    runs: int = 0
    errors: int = 0
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    #: Wall-clock time the last request of the process ended (time.time()).
    finished_at: float = 0.0
    #: CPU time the process spent in its timed loop.
    cpu_seconds: float = 0.0

    def time(self, name: str, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = call()
        except httpx.HTTPError:
            response = None
        self.latencies.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        if response is None or response.status_code != 200:
            self.errors += 1
            self.failures[name] = self.failures.get(name, 0) + 1
            return None
        return response

    def merge(self, other: Tally) -> None:
        self.points += other.points
        self.runs += other.runs
        self.errors += other.errors
        self.finished_at = max(self.finished_at, other.finished_at)
        self.cpu_seconds += other.cpu_seconds
        for name, values in other.latencies.items():
            self.latencies.setdefault(name, []).extend(values)
        for name, count in other.failures.items():
            self.failures[name] = self.failures.get(name, 0) + count


def _create_run(http: httpx.Client, tally: Tally, experiment_id: str) -> str | None:
    body = {"experiment_id": experiment_id, "start_time": int(time.time() * 1000)}
    answer = tally.time("CreateRun", lambda: http.post(f"{API}/runs/create", json=body))
    return None if answer is None else str(answer.json()["run"]["info"]["run_id"])


def _metrics(size: int, step: int, now: int) -> list[dict[str, Any]]:
    """A batch's points: ten keys, ``size // 10`` steps from ``step``, one timestamp."""
    return [
        {"key": f"m{i % 10}", "value": i * 0.5, "timestamp": now, "step": step + i // 10}
        for i in range(size)
    ]


def _log_batch(
    http: httpx.Client, tally: Tally, name: str, run_id: str, size: int, step: int
) -> bool:
    body = {"run_id": run_id, "metrics": _metrics(size, step, int(time.time() * 1000))}
    return tally.time(name, lambda: http.post(f"{API}/runs/log-batch", json=body)) is not None


class BatchBodies:
    """The logging clients' ``log-batch`` bodies, JSON-encoded once per batch number
    with markers for the run id and timestamp, which each request puts in with two
    ``bytes.replace``: the very bytes ``json=`` would send (:func:`_log_batch`), for a
    fraction of the client's CPU (building and encoding 1,000 points took ~1.5 ms a
    request). The clients share two cores with the server and its database; their own
    CPU is printed beside the servers'."""

    _RUN, _TIME = "@RUN@", 987654321012345

    def __init__(self) -> None:
        self._bodies = [
            json.dumps(
                {"run_id": self._RUN, "metrics": _metrics(BATCH, batch * 100, self._TIME)},
                ensure_ascii=False,
                separators=(",", ":"),
                allow_nan=False,
            ).encode()
            for batch in range(BATCHES_PER_RUN)
        ]

    def body(self, batch: int, run_id: str) -> bytes:
        now = str(int(time.time() * 1000)).encode()
        return (
            self._bodies[batch]
            .replace(self._RUN.encode(), run_id.encode(), 1)
            .replace(str(self._TIME).encode(), now)
        )


def _wait_for(start_at: float) -> None:
    """Every process starts at the same wall-clock moment, once all are imported."""
    time.sleep(max(0.0, start_at - time.time()))


def logging_client(url: str, experiment_id: str, start_at: float, seconds: float, out: Any) -> None:
    """Phase 1, one process: runs with batches of 1,000 points until time is up."""
    tally = Tally()
    bodies = BatchBodies()
    headers = {"content-type": "application/json"}
    _wait_for(start_at)
    cpu_started = time.process_time()
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < deadline:
            run_id = _create_run(http, tally, experiment_id)
            if run_id is None:
                continue
            for batch in range(BATCHES_PER_RUN):
                payload = bodies.body(batch, run_id)
                if tally.time(
                    "LogBatch1000",
                    lambda payload=payload: http.post(
                        f"{API}/runs/log-batch", content=payload, headers=headers
                    ),
                ):
                    tally.points += BATCH
            body = {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)}
            if tally.time(
                "UpdateRun", lambda body=body: http.post(f"{API}/runs/update", json=body)
            ):
                tally.runs += 1
    tally.finished_at = time.time()
    tally.cpu_seconds = time.process_time() - cpu_started
    out.put(tally)


def load_test_user(url: str, experiment_id: str, seconds: float, tally: Tally) -> None:
    """Phase 2, one user: SearchRuns, LogMetricBatch10, CreateRun in a loop."""
    deadline = time.monotonic() + seconds
    step = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        run_id = _create_run(http, tally, experiment_id)
        while time.monotonic() < deadline:
            search = {"experiment_ids": [experiment_id], "max_results": 100}
            tally.time(
                "SearchRuns", lambda search=search: http.post(f"{API}/runs/search", json=search)
            )
            if run_id is not None:
                _log_batch(http, tally, "LogMetricBatch10", run_id, 10, step)
                step += 1
            run_id = _create_run(http, tally, experiment_id) or run_id


def load_test_process(
    url: str, experiment_id: str, start_at: float, seconds: float, users: int, out: Any
) -> None:
    tallies = [Tally() for _ in range(users)]
    _wait_for(start_at)
    threads = [
        threading.Thread(target=load_test_user, args=(url, experiment_id, seconds, t))
        for t in tallies
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    total.finished_at = time.time()
    out.put(total)


def _cpu_times() -> tuple[int, int]:
    """The machine's (busy, total) CPU time so far, in ticks (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass
class Phase:
    """What a phase's processes did, and what the machine did meanwhile."""

    tally: Tally
    #: Wall time from the common start to the last request's end.
    elapsed: float
    #: Share of the machine's CPU time busy (1.0: every core saturated).
    busy: float
    #: CPU seconds the whole machine spent busy.
    busy_seconds: float
    #: Every process's (name, parent, CPU seconds) at the common start.
    processes_at_start: dict[int, tuple[str, int, float]]


def _run_processes(target: Callable[..., None], args_list: list[tuple[Any, ...]]) -> Phase:
    """Run the phase's processes, started together, and gather what they did."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    # Started together once every process had time to import (spawned on busy cores).
    start_at = time.time() + 2.0 + 0.5 * len(args_list)
    before: list[tuple[tuple[int, int], dict[int, tuple[str, int, float]]]] = []
    sampler = threading.Timer(
        max(0.0, start_at - time.time()), lambda: before.append((_cpu_times(), _processes()))
    )
    sampler.start()
    processes = [
        context.Process(target=target, args=(args[0], args[1], start_at, *args[2:], queue))
        for args in args_list
    ]
    for process in processes:
        process.start()
    total = Tally()
    for _ in processes:
        total.merge(queue.get(timeout=600))
    elapsed = total.finished_at - start_at
    after = _cpu_times()
    sampler.join()
    (busy_at_start, all_at_start), processes_at_start = before[0]
    busy = (after[0] - busy_at_start) / max(1, after[1] - all_at_start)
    for process in processes:
        process.join(timeout=60)
    return Phase(total, elapsed, busy, (after[0] - busy_at_start) / _TICK, processes_at_start)


_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int, float]]:
    """Every process's (name, parent, CPU seconds so far), from ``/proc``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(entry)] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def _server_cpu(server: ServerProcess, before: dict[int, tuple[str, int, float]]) -> float:
    """CPU seconds the server's processes spent since ``before``."""
    after = _processes()
    tree, grew = {server.process.pid}, True
    while grew:
        children = {pid for pid, (_, parent, _) in after.items() if parent in tree}
        grew = not children <= tree
        tree |= children
    return sum(after[pid][2] - before.get(pid, ("", 0, 0.0))[2] for pid in tree)


def _experiment(url: str) -> str:
    answer = httpx.post(
        f"{url}{API}/experiments/create", json={"name": f"scale-{uuid.uuid4().hex[:8]}"}, timeout=60
    )
    answer.raise_for_status()
    return str(answer.json()["experiment_id"])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


@dataclass
class Figures:
    tool: str
    workers: int
    points_per_s: float
    runs_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    load_test: Tally
    load_seconds: float
    #: Share of the machine's CPU busy during the logging phase.
    cpu_busy: float
    #: CPU milliseconds per 1,000 points logged: the server's processes, the rest of
    #: the machine but the clients (PostgreSQL, the kernel's network ...), the clients.
    server_ms: float = 0.0
    database_ms: float = 0.0
    clients_ms: float = 0.0


def measure(server: ServerProcess, tool: str, workers: int, seconds: float) -> Figures:
    # Warm every worker up (imports, pools) before timing.
    warm = _experiment(server.url)
    _run_processes(load_test_process, [(server.url, warm, 1.0, 2)])
    experiment_id = _experiment(server.url)
    phase = _run_processes(
        logging_client, [(server.url, experiment_id, seconds) for _ in range(CLIENTS)]
    )
    logging, elapsed, busy = phase.tally, phase.elapsed, phase.busy
    server_s = _server_cpu(server, phase.processes_at_start)
    per_thousand = 1e6 / max(1, logging.points)
    latencies = [v for values in logging.latencies.values() for v in values]
    load_phase = _run_processes(
        load_test_process,
        [(server.url, _experiment(server.url), seconds, USERS // USER_PROCESSES)] * USER_PROCESSES,
    )
    load, load_elapsed = load_phase.tally, load_phase.elapsed
    return Figures(
        tool,
        workers,
        logging.points / elapsed,
        logging.runs / elapsed,
        _percentile(latencies, 50),
        _percentile(latencies, 99),
        logging.errors,
        load,
        load_elapsed,
        busy,
        server_s * per_thousand,
        (phase.busy_seconds - server_s - logging.cpu_seconds) * per_thousand,
        logging.cpu_seconds * per_thousand,
    )


@contextmanager
def _server(
    tool: str, workers: int, workdir: Path, mlflow_python: Path | None
) -> Iterator[ServerProcess]:
    name = f"trackflow_bench_scale_{os.getpid()}_{tool}_{workers}"
    with postgres_database(ADMIN_URL, name) as urls:
        artifacts = workdir / f"{tool}-{workers}-artifacts"
        if tool == "trackflow":
            with trackflow_server(
                urls["psycopg"], artifacts, workdir=workdir, extra_args=["--workers", str(workers)]
            ) as server:
                yield server
        else:
            assert mlflow_python is not None
            with mlflow_server(
                mlflow_python,
                urls["psycopg2"],
                artifacts,
                workdir=workdir,
                env=mlflow_subprocess_env(),
                extra_args=["--workers", str(workers)],
            ) as server:
                yield server


def _print_logging(figures: list[Figures]) -> None:
    print(
        f"\nLogging: {CLIENTS} client processes, runs of {BATCHES_PER_RUN} log-batch calls "
        f"of {BATCH} points"
    )
    print(
        f"{'server':<10} {'workers':>7} {'points/s':>12} {'runs/s':>9} {'p50 ms':>9} "
        f"{'p99 ms':>9} {'errors':>7} {'CPU busy':>9}   CPU ms per 1,000 points: "
        "server / database and rest / clients"
    )
    for f in sorted(figures, key=lambda f: (f.tool != "trackflow", f.workers)):
        print(
            f"{f.tool:<10} {f.workers:>7} {f.points_per_s:>12,.0f} {f.runs_per_s:>9.2f} "
            f"{f.p50_ms:>9.1f} {f.p99_ms:>9.1f} {f.errors:>7} {f.cpu_busy:>9.0%}   "
            f"{f.server_ms:.1f} / {f.database_ms:.1f} / {f.clients_ms:.1f}"
        )
    by = {(f.tool, f.workers): f for f in figures}
    for workers in sorted({f.workers for f in figures}):
        t, m = by.get(("trackflow", workers)), by.get(("mlflow", workers))
        if t and m and m.points_per_s > 0:
            print(
                f"  {workers} worker(s): trackflow / mlflow points/s = "
                f"{t.points_per_s / m.points_per_s:.1f}x (target >= 10x), errors "
                f"{t.errors} and {m.errors}"
            )


def _print_load_test(f: Figures) -> None:
    print(
        f"\n{f.tool} server, {f.workers} worker(s): {USERS} concurrent users, "
        f"{f.load_seconds:.0f} s"
    )
    header = (
        f"{'Type':<6} {'Name':<18} {'# reqs':>8} {'# fails':>8} {'Avg':>7} {'Min':>7} {'Max':>7} "
        f"{'Med':>7} {'95%':>7} {'99%':>7} {'req/s':>8}"
    )
    print(header)
    print("-" * len(header))
    total_reqs = 0
    for name in ("SearchRuns", "LogMetricBatch10", "CreateRun"):
        values = f.load_test.latencies.get(name, [])
        total_reqs += len(values)
        fails = f.load_test.failures.get(name, 0)
        if not values:
            continue
        print(
            f"{'POST':<6} {name:<18} {len(values):>8} {fails:>8} {statistics.fmean(values):>7.0f} "
            f"{min(values):>7.0f} {max(values):>7.0f} {_percentile(values, 50):>7.0f} "
            f"{_percentile(values, 95):>7.0f} {_percentile(values, 99):>7.0f} "
            f"{len(values) / f.load_seconds:>8.1f}"
        )
    print(
        f"{'':<6} {'Aggregated':<18} {total_reqs:>8} {f.load_test.errors:>8} {'':>47} "
        f"{total_reqs / f.load_seconds:>8.1f}"
    )
    print("(latencies in ms)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="5 s phases instead of 20 s")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    parser.add_argument("--skip-mlflow", action="store_true", help="trackflow only")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else 20.0
    counts = [int(w) for w in args.workers.split(",")]
    mlflow_python = None
    if not args.skip_mlflow:
        mlflow_python = ensure_mlflow_env(DEFAULT_ENV, log=lambda m: print(m, file=sys.stderr))
    print(
        f"scale benchmark: {os.cpu_count()} CPUs, phases of {seconds:.0f} s, "
        f"PostgreSQL at {ADMIN_URL}"
    )
    figures: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="trackflow-scale-") as tmp:
        # Interleaved by worker count: each ratio compares two servers measured back to
        # back, on the machine as it was then.
        for workers in counts:
            for tool in ("trackflow", *(() if args.skip_mlflow else ("mlflow",))):
                print(f"... {tool} with {workers} worker(s)", file=sys.stderr, flush=True)
                with _server(tool, workers, Path(tmp), mlflow_python) as server:
                    figures.append(measure(server, tool, workers, seconds))
                print(
                    f"    {figures[-1].points_per_s:,.0f} points/s, {figures[-1].errors} errors",
                    file=sys.stderr,
                    flush=True,
                )
    _print_logging(figures)
    print("\nIn the format of MLflow's Go-backend load test (Locust's stats):")
    for f in figures:
        _print_load_test(f)


if __name__ == "__main__":
    main()
