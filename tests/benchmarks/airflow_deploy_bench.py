"""Time spent inside trackflow's listener hooks on a real Airflow deployment.

Usage (from the repository root; needs PostgreSQL on 127.0.0.1:5432, as the tests)::

    uv run python tests/benchmarks/airflow_deploy_bench.py [--runs 3] [--width 10]

It starts the deployment of ``tests/operators/test_airflow_deployment.py`` (a scheduler, a
dag-processor and an API server with the LocalExecutor, on a throw-away metadata
database) twice: with the ``trackflow_default`` connection pointing at a local
``trackflow server``, and at an embedded SQLite file. Every Airflow process has
``TRACKFLOW_AIRFLOW_HOOK_TIMINGS`` set, so each hook call appends its own duration
(measured inside the hook: the scheduler's own latency is noise here). It
triggers ``--runs`` runs of ``tf_bench_chain`` (``--width`` mapped no-op tasks,
tracked by the listener alone) and prints:

- per task instance: the time in the task hooks of the worker (running + success);
  targets < 25 ms embedded, < 40 ms against a local server;
- per DAG-run hook call in the scheduler (running, success): the time the
  scheduler's loop spends in them; target < 5 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for folder in ("tests", "tests/operators", "tests/tracking/server"):
    sys.path.insert(0, str(ROOT / folder))

TASK_HOOKS = ("on_task_instance_running", "on_task_instance_success")
DAG_RUN_HOOKS = ("on_dag_run_running", "on_dag_run_success")
TARGETS = {"server": 40.0, "embedded": 25.0}
DAG_RUN_TARGET = 5.0


def _variant(name: str, runs: int, width: int, server: object, root: Path) -> dict[str, float]:
    import _airflow_deployment_support as support

    timings = root / f"{name}-hooks.txt"
    store = f"sqlite:///{root / 'embedded.db'}" if name == "embedded" else None
    settings = {"TRACKFLOW_AIRFLOW_HOOK_TIMINGS": str(timings), "BENCH_WIDTH": str(width)}
    with support.deploy(
        root / name, server, f"bench_{name}", settings=settings, tracking_uri=store
    ) as deployment:
        deployment.login()
        for n in range(runs):
            run_id = f"bench_{name}_{n}"
            deployment.trigger("tf_bench_chain", run_id)
            state = deployment.wait_for_run("tf_bench_chain", run_id, timeout=600)
            if state != "success":
                raise SystemExit(f"{run_id} ended {state}:\n{deployment.diagnostics()}")
        time.sleep(2)  # the last hooks' lines
    calls: dict[str, list[float]] = defaultdict(list)
    for line in timings.read_text().splitlines():
        hook, _pid, seconds = line.split()
        calls[hook].append(float(seconds) * 1000)
    instances = runs * width
    task_ms = sum(sum(calls[h]) for h in TASK_HOOKS) / instances
    dag_calls = [ms for h in DAG_RUN_HOOKS for ms in calls[h]]
    return {
        "task_ms": task_ms,
        "task_calls": float(sum(len(calls[h]) for h in TASK_HOOKS)),
        "dag_median_ms": statistics.median(dag_calls) if dag_calls else float("nan"),
        "dag_max_ms": max(dag_calls) if dag_calls else float("nan"),
        "dag_calls": float(len(dag_calls)),
        "instances": float(instances),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="DAG runs per variant")
    parser.add_argument("--width", type=int, default=10, help="mapped tasks per DAG run")
    parser.add_argument("--only", choices=sorted(TARGETS), help="one variant")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    import compileall
    import importlib.util

    # A deployed install has its bytecode compiled (pip's default, uv's
    # --compile-bytecode); a checkout under PYTHONDONTWRITEBYTECODE=1 would have every
    # task process compile trackflow's modules inside the hooks, so compile them first.
    for package in ("tracking", "operators", "flows"):
        compileall.compile_dir(ROOT / package, quiet=1)

    spec = importlib.util.spec_from_file_location("suite_conftest", ROOT / "tests/conftest.py")
    assert spec is not None and spec.loader is not None
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    server = suite._PostgresServer("postgresql://postgres@127.0.0.1:5432/postgres")
    server.check()
    missed = 0
    print(
        f"{'store':<10} {'task instances':>14} {'ms in task hooks / TI':>22} {'target':>8}"
        f" {'DAG-run hook ms (median / max)':>31} {'target':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="trackflow-airflow-bench-") as tmp:
        for name in [args.only] if args.only else ["server", "embedded"]:
            figures = _variant(name, args.runs, args.width, server, Path(tmp))
            ok_task = figures["task_ms"] < TARGETS[name]
            ok_dag = figures["dag_max_ms"] < DAG_RUN_TARGET
            missed += (not ok_task) + (not ok_dag)
            print(
                f"{name:<10} {int(figures['instances']):>14} {figures['task_ms']:>22.1f}"
                f" {'<' + str(int(TARGETS[name])) + (' ok' if ok_task else ' MISS'):>8}"
                f" {figures['dag_median_ms']:>18.3f} / {figures['dag_max_ms']:>8.3f}"
                f" {'<5' + (' ok' if ok_dag else ' MISS'):>8}"
                f"   ({int(figures['dag_calls'])} DAG-run hook calls)"
            )
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
