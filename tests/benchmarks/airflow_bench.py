"""What tracking costs an Airflow pipeline: per task instance, and at DAG-file import.

Usage (from the repository root)::

    uv run python tests/benchmarks/airflow_bench.py            # the full section
    uv run python tests/benchmarks/airflow_bench.py --quick    # fewer tasks, one repeat
    uv run python tests/benchmarks/airflow_bench.py --no-mlflow

``bench_tracking.py`` runs this as its Airflow section. The same two DAGs (a
chain of 20 PythonOperator tasks, and one task mapped over 200 instances; the
tasks do nothing) run under ``dag.test()`` on a throw-away, migrated
``AIRFLOW_HOME``: untracked, tracked into the embedded SQLite store
(``TRACKFLOW_AIRFLOW_TRACK_ALL``, no trackflow code in the DAG), and tracked
into a local ``trackflow server`` through the ``trackflow_default``
connection. Each variant runs in a fresh process, after a warm-up DAG run in
that process; the best of ``--repeat`` is kept. The overhead per task instance
is (tracked - untracked) / instances.

For scale, the hand-written alternative, ``mlflow.start_run()`` ...
``end_run()`` in each task, is timed in MLflow's own environment (it has no
Airflow: only the calls a task would add are timed) against a SQLite file and
against ``mlflow server``.

The import figure is what ``from operators import ...`` (every public name)
adds to a DAG file that already imported ``airflow.sdk`` and the standard
PythonOperator, the median of 5 fresh processes.

Targets: < 25 ms per task embedded, < 40 ms per task against a local server,
< 50 ms import.
"""

from __future__ import annotations

# Only the standard library at the top: MLflow's environment runs this file too.
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()

DAG_FILE = textwrap.dedent(
    '''
    """DAGs for the Airflow benchmark: tasks that do nothing."""
    import os

    import pendulum
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, task

    START = pendulum.datetime(2026, 1, 1, tz="UTC")
    CHAIN = int(os.environ.get("BENCH_CHAIN", "20"))
    MAPPED = int(os.environ.get("BENCH_MAPPED", "200"))


    def nothing():
        return None


    with DAG("bench_warmup", schedule=None, start_date=START):
        PythonOperator(task_id="t", python_callable=nothing)

    with DAG("bench_chain", schedule=None, start_date=START):
        previous = None
        for i in range(CHAIN):
            current = PythonOperator(task_id=f"t{i}", python_callable=nothing)
            if previous is not None:
                previous >> current
            previous = current

    with DAG("bench_mapped", schedule=None, start_date=START):

        @task
        def one(x):
            return None

        one.expand(x=list(range(MAPPED)))
    '''
)


# -- workers (fresh processes) ------------------------------------------------------------


def dag_worker(dag_id: str, dags_folder: str) -> dict[str, Any]:
    """Warm up, then time one ``dag.test()`` of ``dag_id``."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dags_folder, bundle_path=Path(dags_folder))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    bag.get_dag("bench_warmup").test()
    dag = bag.get_dag(dag_id)
    started = time.perf_counter()
    dag_run = dag.test()
    seconds = time.perf_counter() - started
    if dag_run.state != "success":
        raise RuntimeError(f"{dag_id} ended {dag_run.state}")
    tasks = len(dag_run.get_task_instances())
    runs = None
    if os.environ.get("TRACKFLOW_AIRFLOW_TRACK_ALL"):
        # The tracked variants must really have tracked every task instance.
        from operators._tracking import airflow_tracking, pipeline_for

        client = airflow_tracking().config().client()
        children = client.get_children(pipeline_for(dag_id, dag_run.run_id).run_id)
        runs = sum(1 for c in children if c.info.status.value == "FINISHED")
    return {"seconds": seconds, "tasks": tasks, "finished_runs": runs}


def mlflow_tasks(uri: str, count: int) -> dict[str, Any]:
    """In MLflow's environment: ``start_run()`` ... ``end_run()`` per task, timed."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-airflow")
    for _ in range(3):  # warm-up: schema, connections, imports
        mlflow.start_run()
        mlflow.end_run()
    started = time.perf_counter()
    for _ in range(count):
        mlflow.start_run()
        mlflow.end_run()
    seconds = time.perf_counter() - started
    return {"ms_per_task": seconds / count * 1000, "version": mlflow.__version__}


IMPORT_PROBE = textwrap.dedent(
    """
    import time
    import airflow.sdk
    from airflow.providers.standard.operators.python import PythonOperator
    started = time.perf_counter()
    import operators
    lazy = time.perf_counter() - started
    from operators import (
        ChampionChallengerOperator, PromoteRunOperator, TrackedPythonOperator,
        TrackflowHook, TrackflowRunLink, TrackflowRunSensor, tracked_task,
    )
    print(lazy * 1000, (time.perf_counter() - started) * 1000)
    """
)


# -- the section --------------------------------------------------------------------------


def _run(cmd: list[str], env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(
            f"{' '.join(cmd[:4])} ... failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def _last_json(out: str) -> dict[str, Any]:
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"no result in:\n{out[-2000:]}")


@contextlib.contextmanager
def airflow_home(work: Path, chain: int, mapped: int) -> Iterator[dict[str, str]]:
    """A migrated AIRFLOW_HOME with the benchmark DAGs serialised; yields its env."""
    home = work / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / "bench_dags.py").write_text(DAG_FILE)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACKFLOW_", "MLFLOW_", "AIRFLOW"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "BENCH_CHAIN": str(chain),
            "BENCH_MAPPED": str(mapped),
        }
    )
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        _run([sys.executable, "-m", "airflow", *command], env)
    yield env


def run_section(
    *,
    quick: bool = False,
    repeat: int = 2,
    mlflow_python: Path | None = None,
    console: Any = None,
    dags: tuple[str, ...] = ("bench_chain", "bench_mapped"),
) -> dict[str, Any]:
    """Every figure of the section, as a dict (see :func:`render`)."""
    from servers import mlflow_server, trackflow_server

    say = console.print if console is not None else print
    chain, mapped = (10, 40) if quick else (20, 200)
    repeat = 1 if quick else repeat
    results: dict[str, Any] = {"chain": chain, "mapped": mapped, "dags": {}}
    with tempfile.TemporaryDirectory(prefix="trackflow-airflow-bench-") as tmp:
        work = Path(tmp)
        with (
            airflow_home(work, chain, mapped) as env,
            trackflow_server(
                f"sqlite:///{work}/server.db", work / "server-artifacts", workdir=work
            ) as server,
        ):
            host, port = server.url.rsplit("://", 1)[1].rsplit(":", 1)
            conn = {"conn_type": "trackflow", "host": host, "port": int(port)}
            variants = {
                "untracked": {},
                "embedded": {
                    "TRACKFLOW_AIRFLOW_TRACK_ALL": "true",
                    "TRACKFLOW_TRACKING_URI": f"sqlite:///{work}/embedded.db",
                },
                "server": {
                    "TRACKFLOW_AIRFLOW_TRACK_ALL": "true",
                    "AIRFLOW_CONN_TRACKFLOW_DEFAULT": json.dumps(conn),
                },
            }
            for dag_id in dags:
                figures: dict[str, Any] = {}
                # Interleaved, so that the machine's drift touches every variant alike.
                for _ in range(repeat):
                    for name, extra in variants.items():
                        say(f"[dim]airflow: {dag_id} {name} ...[/dim]", end=" ")
                        command = [sys.executable, str(HERE), "--dag-worker", dag_id]
                        command += ["--dags-folder", env["AIRFLOW__CORE__DAGS_FOLDER"]]
                        result = _last_json(_run(command, {**env, **extra}))
                        say(f"[dim]{result['seconds']:.2f} s[/dim]")
                        best = figures.get(name)
                        if best is None or result["seconds"] < best["seconds"]:
                            figures[name] = result
                results["dags"][dag_id] = figures
        results["import"] = import_figures(env_for_import(), samples=1 if quick else 5)
        if mlflow_python is not None:
            from mlflow_env import mlflow_subprocess_env

            count = 50 if quick else 200
            mlflow_env = mlflow_subprocess_env()
            say("[dim]airflow: hand-written mlflow runs, SQLite ...[/dim]")
            results["mlflow_embedded"] = _last_json(
                _run(
                    [
                        str(mlflow_python),
                        str(HERE),
                        "--mlflow-tasks",
                        str(count),
                        "--uri",
                        f"sqlite:///{work}/mlflow.db",
                    ],
                    mlflow_env,
                )
            )
            say("[dim]airflow: hand-written mlflow runs, mlflow server (starting it) ...[/dim]")
            with mlflow_server(
                mlflow_python,
                f"sqlite:///{work}/mlflow-server.db",
                work / "mlflow-artifacts",
                workdir=work,
                env=mlflow_env,
            ) as mserver:
                results["mlflow_server"] = _last_json(
                    _run(
                        [
                            str(mlflow_python),
                            str(HERE),
                            "--mlflow-tasks",
                            str(count // 2),
                            "--uri",
                            mserver.url,
                        ],
                        mlflow_env,
                    )
                )
    return results


def env_for_import() -> dict[str, str]:
    """A fresh-process environment for the import probe (a throw-away AIRFLOW_HOME)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKFLOW_", "AIRFLOW"))}
    # A DAG processor reads compiled bytecode; this machine's PYTHONDONTWRITEBYTECODE would
    # time the compiler instead (the first probe writes the bytecode, and is not counted).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="trackflow-import-probe-")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return env


def import_figures(env: dict[str, str], samples: int = 5) -> dict[str, float]:
    """Median ms of ``import operators`` (lazy) and of importing every name it exports."""
    lazy, full = [], []
    _run([sys.executable, "-c", IMPORT_PROBE], env)
    for _ in range(samples):
        out = _run([sys.executable, "-c", IMPORT_PROBE], env).split()
        lazy.append(float(out[-2]))
        full.append(float(out[-1]))
    return {"lazy_ms": statistics.median(lazy), "all_names_ms": statistics.median(full)}


def overheads(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Milliseconds added per task instance, per DAG and variant."""
    table: dict[str, dict[str, float]] = {}
    for dag_id, figures in results["dags"].items():
        base = figures["untracked"]
        table[dag_id] = {
            name: (fig["seconds"] - base["seconds"]) / fig["tasks"] * 1000
            for name, fig in figures.items()
            if name != "untracked"
        }
    return table


def render(results: dict[str, Any]) -> Any:
    """A rich table of the section, with targets."""
    from rich.table import Table

    added = overheads(results)
    table = Table(
        title="Airflow: what tracking adds (dag.test(), tasks that do nothing)",
        title_justify="left",
    )
    for column in ("figure", "untracked", "tracked", "per task", "target", "result"):
        table.add_column(column, justify="left" if column == "figure" else "right", no_wrap=True)
    targets = {"embedded": 25.0, "server": 40.0}
    for dag_id, figures in results["dags"].items():
        label = {
            "bench_chain": f"chain of {results['chain']}",
            "bench_mapped": f"mapped x {results['mapped']}",
        }[dag_id]
        for name in ("embedded", "server"):
            ms = added[dag_id][name]
            ok = ms < targets[name] and figures[name]["finished_runs"] == figures[name]["tasks"]
            table.add_row(
                f"{label}, {name}",
                f"{figures['untracked']['seconds']:.2f} s",
                f"{figures[name]['seconds']:.2f} s",
                f"{ms:.1f} ms",
                f"< {targets[name]:g} ms",
                "[green]PASS[/green]" if ok else "[red]FAIL[/red]",
            )
    for key, label in (("mlflow_embedded", "SQLite"), ("mlflow_server", "mlflow server")):
        if key in results:
            table.add_row(
                f"hand-written mlflow {results[key]['version']} runs, {label}",
                "-",
                "-",
                f"{results[key]['ms_per_task']:.1f} ms",
                "-",
                "-",
            )
    imp = results["import"]
    table.add_row(
        "import operators (names load lazily)", "-", "-", f"{imp['lazy_ms']:.1f} ms", "-", "-"
    )
    ok = imp["all_names_ms"] < 50
    table.add_row(
        "from operators import <every name>, after airflow.sdk",
        "-",
        "-",
        f"{imp['all_names_ms']:.1f} ms",
        "< 50 ms",
        "[green]PASS[/green]" if ok else "[red]FAIL[/red]",
    )
    return table


def missed(results: dict[str, Any]) -> list[str]:
    """The targets the figures miss."""
    out = []
    added = overheads(results)
    for dag_id, by_variant in added.items():
        for name, limit in (("embedded", 25.0), ("server", 40.0)):
            fig = results["dags"][dag_id][name]
            if by_variant[name] >= limit or fig["finished_runs"] != fig["tasks"]:
                out.append(f"airflow-{dag_id}-{name}")
    if results["import"]["all_names_ms"] >= 50:
        out.append("airflow-import")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks, one repeat")
    parser.add_argument("--repeat", type=int, default=2, help="runs per variant (the best kept)")
    parser.add_argument(
        "--no-mlflow", action="store_true", help="skip the hand-written MLflow side"
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures")
    parser.add_argument(
        "--dags", default="bench_chain,bench_mapped", help="which DAGs (comma-separated)"
    )
    parser.add_argument("--dag-worker", help=argparse.SUPPRESS)
    parser.add_argument("--dags-folder", help=argparse.SUPPRESS)
    parser.add_argument("--mlflow-tasks", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dag_worker:
        print(json.dumps(dag_worker(args.dag_worker, args.dags_folder)))
        return 0
    if args.mlflow_tasks:
        print(json.dumps(mlflow_tasks(args.uri, args.mlflow_tasks)))
        return 0

    sys.path.insert(0, str(HERE.parent))
    from runner import console

    mlflow_python = None
    if not args.no_mlflow:
        from mlflow_env import DEFAULT_ENV, ensure_mlflow_env

        mlflow_python = ensure_mlflow_env(DEFAULT_ENV, log=lambda m: console.print(f"[dim]{m}"))
    results = run_section(
        quick=args.quick,
        repeat=args.repeat,
        mlflow_python=mlflow_python,
        console=console,
        dags=tuple(d.strip() for d in args.dags.split(",") if d.strip()),
    )
    console.print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    misses = missed(results)
    if misses:
        console.print(f"targets missed: {', '.join(misses)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
