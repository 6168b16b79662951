"""The server section: ``trackflow server`` against ``mlflow server``, driven by the same clients.

Three pairings run the same client workloads:

- MLflow's server with MLflow's client (the baseline),
- trackflow's server with MLflow's client (``MLFLOW_TRACKING_URI=http://...``),
- trackflow's server with trackflow's client (``TrackingClient("http://...")``).

Each pairing gets a server with its default workers on a fresh SQLite file for
workloads a-d and e on SQLite, then one on a fresh PostgreSQL database (dropped
afterwards) for e on PostgreSQL. Workloads a-d are the embedded benchmark's
own (``workloads.py`` with ``--tracking-uri``), each in a fresh client
process, each in an experiment of its own. Workload e lets several client
processes log at once (``concurrent_worker.py``) and counts the points that
reached the database.

====  ===================================================================  =================
sa    500 single ``log_metric`` calls from one client (calls/s)            >= 30x
sb    20 ``log_batch`` calls of 1,000 points (points/s)                     >= 30x
sc    300 runs with 2 params and 1 metric, then ended (runs/s)             >= 50x
sd    search, filter + order, max 100, over 300 runs (median ms)           >= 10x
se1   8 client processes at once, 2,000 points each in ``log_batch``       0 errors, 0 lost
      calls of 100, SQLite backend (aggregate points/s)
se2   the same on PostgreSQL                                               0 errors, 0 lost
====  ===================================================================  =================

``--quick`` shrinks a-d as in the embedded section and e to 200 points per
client in batches of 50. Lost points are counted in the database afterwards
(rows of ``metrics`` for the clients' runs), errors are calls that raised in a
client after its own retries. Each figure cell also shows the client process's
CPU share while timed: near 100%, the client sets the pace, not the server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mlflow_env import mlflow_subprocess_env
from rich.table import Table
from runner import console, format_result, run_worker, speedup, trackflow_env
from servers import (
    ServerError,
    ServerProcess,
    mlflow_server,
    postgres_admin,
    postgres_database,
    trackflow_command,
    trackflow_server,
)
from workloads import FULL, QUICK

HERE = Path(__file__).resolve().parent
CONCURRENT_WORKER = HERE / "concurrent_worker.py"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CONCURRENT_TIMEOUT_S = 900


@dataclass(frozen=True)
class Pairing:
    """Whose server answers and whose client asks."""

    server: str
    client: str

    @property
    def label(self) -> str:
        return f"{self.server} server / {self.client} client"


BASELINE = Pairing("mlflow", "mlflow")
OURS = (Pairing("trackflow", "mlflow"), Pairing("trackflow", "trackflow"))


@dataclass(frozen=True)
class Concurrency:
    """Workload e: how many client processes, how many points each, in batches of how many."""

    clients: int
    points: int
    batch: int

    def describe(self) -> str:
        return f"{self.clients} clients x {self.points:,} points (log_batch of {self.batch})"


CONCURRENCY = {False: Concurrency(8, 2000, 100), True: Concurrency(8, 200, 50)}


@dataclass(frozen=True)
class ServerWorkload:
    key: str
    title: str
    worker: str | None = None  # the workloads.py key; None: the concurrent workload
    backend: str | None = None  # e: "sqlite" or "postgres"
    min_ratio: float | None = None

    def target(self) -> str:
        return f">= {self.min_ratio:g}x" if self.min_ratio else "0 errors, 0 lost"


def server_workloads(quick: bool) -> list[ServerWorkload]:
    s = QUICK if quick else FULL
    e = CONCURRENCY[quick]
    return [
        ServerWorkload(
            "sa", f"a. log_metric, {s.log_metric_calls:,} single calls", "a", min_ratio=30
        ),
        ServerWorkload(
            "sb",
            f"b. log_batch, {s.batches} x {s.batch_keys * s.batch_steps:,} points",
            "b",
            min_ratio=30,
        ),
        ServerWorkload(
            "sc", f"c. runs, {s.fluent_runs:,} x (2 params, 1 metric), ended", "c", min_ratio=50
        ),
        ServerWorkload(
            "sd", f"d. search_runs over {s.search_small_runs:,} runs", "d1", min_ratio=10
        ),
        ServerWorkload("se1", f"e. {e.describe()}, SQLite", backend="sqlite"),
        ServerWorkload("se2", f"e. {e.describe()}, PostgreSQL", backend="postgres"),
    ]


@dataclass
class Clients:
    """The python and environment of each client that can run, and why others cannot."""

    pythons: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    servers: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def pairings(self) -> list[Pairing]:
        return [
            p for p in (BASELINE, *OURS) if p.server in self.servers and p.client in self.pythons
        ]


def available(mlflow_python: Path | None) -> Clients:
    """Which servers and clients this run can use."""
    clients = Clients()
    if mlflow_python is not None:
        clients.pythons["mlflow"] = (str(mlflow_python), mlflow_subprocess_env())
        clients.servers.add("mlflow")
    proc = subprocess.run(
        [*trackflow_command(), "server", "--help"], capture_output=True, text=True, check=False
    )
    if proc.returncode == 0:
        clients.servers.add("trackflow")
    else:
        clients.notes.append(
            "no `trackflow server` command in this checkout: its columns are empty"
        )
    if importlib.util.find_spec("tracking.store.rest") is not None:
        clients.pythons["trackflow"] = (sys.executable, trackflow_env())
    else:
        clients.notes.append(
            "no HTTP client store (tracking/store/rest.py) yet: trackflow's client is left out"
        )
    return clients


# -- servers on fresh databases -----------------------------------------------------------


@dataclass
class Backend:
    """A fresh database for one server: its URL for that server and a way to count points."""

    kind: str
    server_uri: str
    count_uri: str  # a SQLAlchemy URL our environment can open

    def count_points(self, run_ids: list[str]) -> int:
        from sqlalchemy import bindparam, create_engine, text

        engine = create_engine(self.count_uri)
        try:
            with engine.connect() as conn:
                query = text("SELECT COUNT(*) FROM metrics WHERE run_uuid IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                )
                return int(conn.execute(query, {"ids": run_ids}).scalar_one())
        finally:
            engine.dispose()


def postgres_unavailable(admin_url: str) -> str | None:
    """Why the PostgreSQL server at ``admin_url`` cannot be used, or None."""
    try:
        with postgres_admin(admin_url) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


@contextlib.contextmanager
def fresh_backend(kind: str, server: str, workdir: Path, postgres_url: str) -> Iterator[Backend]:
    if kind == "sqlite":
        uri = f"sqlite:///{workdir / f'{server}.db'}"
        yield Backend(kind, uri, uri)
        return
    name = f"trackflow_bench_{server}_{uuid.uuid4().hex[:8]}"
    with postgres_database(postgres_url, name) as urls:
        if server == "trackflow":
            # A server database is only migrated on request.
            proc = subprocess.run(
                [*trackflow_command(), "db", "upgrade", "--backend-store-uri", urls["psycopg"]],
                capture_output=True,
                text=True,
                env=trackflow_env(),
                check=False,
            )
            if proc.returncode != 0:
                raise ServerError(f"trackflow db upgrade failed: {proc.stderr.strip()}")
        uri = urls["psycopg"] if server == "trackflow" else urls["psycopg2"]
        yield Backend(kind, uri, urls["psycopg"])


@contextlib.contextmanager
def start(
    server: str, backend: Backend, workdir: Path, mlflow_python: Path | None
) -> Iterator[ServerProcess]:
    artifacts = workdir / f"{server}-artifacts"
    if server == "trackflow":
        with trackflow_server(backend.server_uri, artifacts, workdir=workdir) as process:
            yield process
    else:
        assert mlflow_python is not None
        with mlflow_server(
            mlflow_python,
            backend.server_uri,
            artifacts,
            workdir=workdir,
            env=mlflow_subprocess_env(),
        ) as process:
            yield process


# -- the concurrent workload ----------------------------------------------------------------


def run_concurrent(
    url: str, client: str, python: str, env: dict[str, str], spec: Concurrency, workdir: Path
) -> dict[str, Any]:
    """Workload e against a running server: aggregate points/s, errors, run ids."""
    created = httpx.post(
        f"{url}/api/2.0/mlflow/experiments/create",
        json={"name": f"concurrent-{uuid.uuid4().hex[:8]}"},
        timeout=60,
    )
    created.raise_for_status()
    experiment_id = created.json()["experiment_id"]
    go = workdir / "go"
    procs, outs, readies = [], [], []
    for i in range(spec.clients):
        out, ready = workdir / f"out-{i}.json", workdir / f"ready-{i}"
        outs.append(out)
        readies.append(ready)
        cmd = [
            python, str(CONCURRENT_WORKER), "--side", client, "--url", url,
            "--experiment-id", experiment_id, "--points", str(spec.points),
            "--batch", str(spec.batch), "--ready", str(ready), "--go", str(go), "--out", str(out),
        ]  # fmt: skip
        log = open(workdir / f"worker-{i}.log", "wb")  # noqa: SIM115 (closed below)
        procs.append((subprocess.Popen(cmd, env=env, cwd=workdir, stdout=log, stderr=log), log))
    try:
        deadline = time.monotonic() + CONCURRENT_TIMEOUT_S
        while not all(r.exists() for r in readies):
            dead = [p for p, _ in procs if p.poll() not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError("a client process failed before logging")
            time.sleep(0.01)
        go.touch()
        for proc, _ in procs:
            proc.wait(max(1.0, deadline - time.monotonic()))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        logs = "\n".join(
            (workdir / f"worker-{i}.log").read_text(errors="replace")[-800:]
            for i in range(spec.clients)
        )
        return {"error": f"{exc}\n{logs}"}
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    missing = [i for i, out in enumerate(outs) if not out.exists()]
    if missing:
        tail = (workdir / f"worker-{missing[0]}.log").read_text(errors="replace")[-1500:]
        return {"error": f"client {missing[0]} wrote no result\n{tail}"}
    results = [json.loads(out.read_text()) for out in outs]
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    sent = sum(r["points_sent"] for r in results)
    return {
        "kind": "rate",
        "unit": "points/s",
        "value": sent / elapsed,
        "elapsed_s": elapsed,
        "points_expected": spec.clients * spec.points,
        "points_sent": sent,
        "errors": sum(r["errors"] for r in results),
        "first_error": next((r["first_error"] for r in results if r["first_error"]), None),
        "run_ids": [r["run_id"] for r in results],
        # Each client's CPU over its own logging time, averaged over the clients.
        "client_cpu_share": sum(r["cpu_s"] / max(r["end"] - r["start"], 1e-9) for r in results)
        / len(results),
        "version": results[0]["version"],
    }


# -- the section ----------------------------------------------------------------------------

Row = tuple[ServerWorkload, dict[Pairing, dict[str, Any]]]


def _progress(result: dict[str, Any]) -> None:
    if "error" in result:
        console.print("[red]error[/red]")
        return
    extra = ""
    if "errors" in result:
        extra = f", {result['errors']} errors, {result.get('lost', '?')} lost"
    console.print(f"[dim]{format_result(result)}{extra} ({result.get('wall_s', 0):.0f} s)[/dim]")


def _run_one(
    wl: ServerWorkload,
    pairing: Pairing,
    server: ServerProcess,
    db: Backend,
    client: tuple[str, dict[str, str]],
    workdir: Path,
    *,
    quick: bool,
    keep: bool,
) -> dict[str, Any]:
    """One workload of one pairing against a running server."""
    python, env = client
    if wl.worker:
        return run_worker(
            python, env, pairing.client, wl.worker, quick, keep,
            tracking_uri=server.url, experiment_name=f"bench-{wl.key}",
        )  # fmt: skip
    began = time.perf_counter()
    concurrent_dir = workdir / wl.key
    concurrent_dir.mkdir()
    result = run_concurrent(
        server.url, pairing.client, python, env, CONCURRENCY[quick], concurrent_dir
    )
    if "error" not in result:
        stored = db.count_points(result["run_ids"])
        result["points_stored"] = stored
        result["lost"] = result["points_expected"] - stored
    result["wall_s"] = time.perf_counter() - began
    return result


def run_section(
    chosen: list[ServerWorkload],
    *,
    quick: bool,
    keep: bool,
    mlflow_python: Path | None,
    postgres_url: str = DEFAULT_POSTGRES_URL,
) -> tuple[list[Row], dict[str, str], list[str]]:
    """Run the chosen server workloads; rows, versions seen, and notes on what was left out.

    Each pairing gets one server on a fresh SQLite file for sa..sd and se1 (in
    that order), and one on a fresh PostgreSQL database for se2.
    """
    clients = available(mlflow_python)
    if any(wl.backend == "postgres" for wl in chosen):
        reason = postgres_unavailable(postgres_url)
        if reason:
            clients.notes.append(f"PostgreSQL left out (se2): {reason}")
            chosen = [wl for wl in chosen if wl.backend != "postgres"]
    results: dict[str, dict[Pairing, dict[str, Any]]] = {wl.key: {} for wl in chosen}
    versions: dict[str, str] = {}
    groups = [
        ("sqlite", [wl for wl in chosen if wl.backend in (None, "sqlite")]),
        ("postgres", [wl for wl in chosen if wl.backend == "postgres"]),
    ]
    root = Path(tempfile.mkdtemp(prefix="trackflow-bench-servers-"))
    try:
        for backend, group in groups:
            for pairing in clients.pairings() if group else []:
                workdir = root / f"{backend}-{pairing.server}-{pairing.client}"
                workdir.mkdir()
                console.print(
                    f"[dim]{pairing.server} server on {backend}, {pairing.client} client[/dim]"
                )
                try:
                    with (
                        fresh_backend(backend, pairing.server, workdir, postgres_url) as db,
                        start(pairing.server, db, workdir, mlflow_python) as server,
                    ):
                        for wl in group:
                            console.print(f"[dim]{wl.key}: {pairing.label} ...[/dim]", end=" ")
                            result = _run_one(
                                wl, pairing, server, db, clients.pythons[pairing.client],
                                workdir, quick=quick, keep=keep,
                            )  # fmt: skip
                            _progress(result)
                            results[wl.key][pairing] = result
                            if "version" in result:
                                versions[f"{pairing.client} client"] = result["version"]
                except ServerError as exc:
                    console.print(f"[red]{pairing.server} server failed on {backend}[/red]")
                    for wl in group:
                        results[wl.key].setdefault(pairing, {"error": str(exc)})
    finally:
        if keep:
            console.print(f"[dim]kept {root}[/dim]")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return [(wl, results[wl.key]) for wl in chosen], versions, clients.notes


# -- verdicts and the table -------------------------------------------------------------------


def verdict(
    wl: ServerWorkload, baseline: dict[str, Any] | None, ours: dict[str, Any] | None
) -> str | None:
    """PASS/FAIL for one of our pairings, "n/a" when a ratio has no baseline."""
    if ours is None:
        return None
    if "error" in ours:
        return "FAIL"
    if wl.backend:
        return "PASS" if ours["errors"] == 0 and ours["lost"] == 0 else "FAIL"
    ratio = speedup(baseline, ours)
    if ratio is None:
        return "n/a"
    assert wl.min_ratio is not None
    return "PASS" if ratio >= wl.min_ratio else "FAIL"


def _cell(result: dict[str, Any] | None) -> str:
    text = format_result(result)
    if not result or "error" in result:
        return text
    if "errors" in result:
        lost = result.get("lost", "?")
        colour = "green" if result["errors"] == 0 and lost == 0 else "red"
        text += f"\n[{colour}]{result['errors']} errors, {lost} lost[/{colour}]"
    if result.get("client_cpu_share") is not None:
        text += f"\n[dim]client CPU {result['client_cpu_share']:.0%}[/dim]"
    return text


def render(rows: list[Row], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("workload")
    table.add_column("client", no_wrap=True)
    table.add_column("MLflow server", justify="right", no_wrap=True)
    table.add_column("trackflow server", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right")
    table.add_column("result", justify="center")
    colours = {"PASS": "green", "FAIL": "red", "n/a": "yellow"}
    for wl, by_pairing in rows:
        baseline = by_pairing.get(BASELINE)
        for i, pairing in enumerate(OURS):
            ours = by_pairing.get(pairing)
            ratio = speedup(baseline, ours)
            outcome = verdict(wl, baseline, ours)
            table.add_row(
                wl.title if i == 0 else "",
                pairing.client,
                _cell(baseline),
                _cell(ours),
                "-" if ratio is None else f"{ratio:,.1f}x",
                wl.target(),
                "-" if outcome is None else f"[{colours[outcome]}]{outcome}[/{colours[outcome]}]",
            )
    return table


def failures(rows: list[Row]) -> tuple[list[str], list[str]]:
    """(errors as text, keys of missed targets) over all pairings."""
    errors, missed = [], []
    for wl, by_pairing in rows:
        for pairing, result in by_pairing.items():
            if "error" in result:
                errors.append(f"{wl.key} on {pairing.label}:\n{result['error']}")
        baseline = by_pairing.get(BASELINE)
        for pairing in OURS:
            if verdict(wl, baseline, by_pairing.get(pairing)) == "FAIL":
                missed.append(f"{wl.key} ({pairing.client} client)")
    return errors, missed


def to_json(rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "workload": wl.key,
            "title": wl.title,
            "results": {p.label: r for p, r in by_pairing.items()},
        }
        for wl, by_pairing in rows
    ]
