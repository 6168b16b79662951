"""Benchmark (a script, not a test): single log-metric calls per second against a real server.

Starts ``trackflow server`` on a SQLite file in a temporary directory, sends
``--calls`` sequential ``runs/log-metric`` POSTs from one httpx client and
prints calls/s (best of ``--rounds``) and the server's CPU time per call
(steadier than wall time on a busy machine), for the default (writes on the event
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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(url: str, pid: int, calls: int, rounds: int) -> tuple[float, float]:
    """Best calls/s over the rounds, and the server's CPU microseconds per call."""
    with httpx.Client(base_url=url) as client:
        run = client.post("/api/2.0/mlflow/runs/create", json={"experiment_id": "0"}).json()
        run_id = run["run"]["info"]["run_id"]
        body = {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 0, "step": 0}
        best = 0.0
        step = 0
        cpu_start = _cpu_seconds(pid)
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                step += 1
                body["step"] = step
                body["timestamp"] = step
                response = client.post("/api/2.0/mlflow/runs/log-metric", json=body)
                response.raise_for_status()
            best = max(best, calls / (time.perf_counter() - start))
        cpu_per_call = (_cpu_seconds(pid) - cpu_start) / (calls * rounds) * 1e6
        return best, cpu_per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for label, extra in (
        ("inline writes", {}),
        ("threadpool writes", {"TRACKFLOW_SERVER_INLINE_WRITES": "false"}),
    ):
        with tempfile.TemporaryDirectory(prefix="trackflow-bench-") as tmp:
            proc, url = _start(Path(tmp), extra)
            try:
                results[label], cpu[label] = _measure(url, proc.pid, args.calls, args.rounds)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        print(
            f"{label:>18}: {results[label]:7.0f} log-metric calls/s "
            f"({args.calls} sequential calls, best of {args.rounds}); "
            f"server CPU {cpu[label]:.0f} us/call"
        )
    ratio = results["inline writes"] / results["threadpool writes"]
    cpu_ratio = cpu["threadpool writes"] / cpu["inline writes"]
    print(f"inline / threadpool: {ratio:.2f}x calls/s, {cpu_ratio:.2f}x less server CPU per call")


if __name__ == "__main__":
    main()
