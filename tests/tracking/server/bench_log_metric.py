"""Benchmark (a script, not a test): single log-metric calls per second against a real server.

Starts ``trackflow server`` on a SQLite file in a temporary directory, sends
``--calls`` sequential ``runs/log-metric`` POSTs from one httpx client and
prints calls/s (best of ``--rounds``), for the default (writes on the event
loop for SQLite) and with ``TRACKFLOW_SERVER_INLINE_WRITES=false`` (writes in
the threadpool)::

    uv run python tests/tracking/server/bench_log_metric.py --calls 500
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start(workdir: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")}
    env.update(env_extra)
    cmd = [
        sys.executable,
        "-m",
        "tracking.cli",
        "server",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{workdir}/bench.db",
        "--artifacts-destination",
        str(workdir / "artifacts"),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit("the server did not start")


def _measure(url: str, calls: int, rounds: int) -> float:
    with httpx.Client(base_url=url) as client:
        run = client.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()
        run_id = run["run"]["info"]["run_id"]
        body = {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 0, "step": 0}
        best = 0.0
        step = 0
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                step += 1
                body["step"] = step
                body["timestamp"] = step
                response = client.post("/api/2.0/mlflow/runs/log-metric", json=body)
                response.raise_for_status()
            best = max(best, calls / (time.perf_counter() - start))
        return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for label, extra in (
        ("inline writes", {}),
        ("threadpool writes", {"TRACKFLOW_SERVER_INLINE_WRITES": "false"}),
    ):
        with tempfile.TemporaryDirectory(prefix="trackflow-bench-") as tmp:
            proc, url = _start(Path(tmp), extra)
            try:
                results[label] = _measure(url, args.calls, args.rounds)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        print(
            f"{label:>18}: {results[label]:7.0f} log-metric calls/s "
            f"({args.calls} sequential calls, best of {args.rounds})"
        )
    ratio = results["inline writes"] / results["threadpool writes"]
    print(f"inline / threadpool: {ratio:.2f}x")


if __name__ == "__main__":
    main()
