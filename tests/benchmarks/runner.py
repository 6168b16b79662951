"""Running one workload in one worker process, and formatting figures: shared by both sections.

Every (tool, workload) pair runs ``workloads.py`` in a fresh process and a
fresh temporary directory, with the python of the tool's environment; the
worker writes its :class:`workloads.Result` as JSON, read back here. With a
``tracking_uri`` the worker drives that server instead of an embedded store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = [
    "WORKER",
    "console",
    "format_ms",
    "format_result",
    "run_worker",
    "speedup",
    "trackflow_env",
]

HERE = Path(__file__).resolve().parent
WORKER = HERE / "workloads.py"

# Wide enough for the tables when the output goes to a file or a pipe.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 130)


def trackflow_env() -> dict[str, str]:
    """A trackflow worker's environment: none of the caller's TRACKFLOW_/MLFLOW_ settings.

    MLflow's workers take :func:`mlflow_env.mlflow_subprocess_env` instead.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACKFLOW_", "MLFLOW_")) and k != "PYTHONPATH"
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_worker(
    python: str,
    env: dict[str, str],
    side: str,
    workload: str,
    quick: bool,
    keep: bool,
    *,
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    workdir: Path | None = None,
) -> dict[str, Any]:
    """One workload on one tool in a fresh process and directory (``workdir``, which is then
    the caller's to remove, or a temporary one); its result or an error."""
    owned = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix=f"trackflow-bench-{side}-{workload}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "result.json"
    cmd = [
        python,
        str(WORKER),
        "--side",
        side,
        "--workload",
        workload,
        "--workdir",
        str(workdir),
        "--out",
        str(out),
    ]
    if quick:
        cmd.append("--quick")
    if tracking_uri:
        cmd += ["--tracking-uri", tracking_uri]
    if experiment_name:
        cmd += ["--experiment-name", experiment_name]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=env, cwd=workdir, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            return {"error": f"exit {proc.returncode}\n{tail}"}
        result: dict[str, Any] = json.loads(out.read_text())
        result["wall_s"] = time.perf_counter() - start
        return result
    finally:
        if keep:
            console.print(f"[dim]kept {workdir}[/dim]")
        elif owned:
            shutil.rmtree(workdir, ignore_errors=True)


def format_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:,.2f} s"
    if ms >= 10:
        return f"{ms:,.1f} ms"
    return f"{ms:,.2f} ms"


def format_result(result: dict[str, Any] | None) -> str:
    if result is None:
        return "-"
    if "error" in result:
        return "[red]error[/red]"
    if result["kind"] == "latency":
        return format_ms(result["value"])
    return f"{result['value']:,.0f} {result['unit']}"


def speedup(baseline: dict[str, Any] | None, ours: dict[str, Any] | None) -> float | None:
    """How many times faster ``ours`` is than ``baseline`` (None if either has no figure)."""
    if not baseline or not ours or "error" in baseline or "error" in ours:
        return None
    if ours["kind"] == "rate":
        return float(ours["value"]) / float(baseline["value"])
    return float(baseline["value"]) / float(ours["value"])
