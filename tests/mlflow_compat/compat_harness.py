"""The machinery behind ``conftest.py``: MLflow's environment, servers, scenario runs.

The benchmark's helpers (``tests/benchmarks/mlflow_env.py`` and
``servers.py``, plain modules rather than a package) are loaded by path, so
the tests and the benchmark build and start things the same way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

__all__ = [
    "CompatServer",
    "ScenarioResult",
    "in_ci",
    "mlflow_env",
    "require_trackflow_server",
    "run_scenario",
    "servers",
]

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
BENCHMARKS = HERE.parent / "benchmarks"
SCENARIO_TIMEOUT_S = 180


def _load(name: str) -> ModuleType:
    """A helper module of ``tests/benchmarks``, loaded by path."""
    qualified = f"_trackflow_bench_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, BENCHMARKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


mlflow_env = _load("mlflow_env")
servers = _load("servers")


def in_ci() -> bool:
    """True under CI (``CI=true``), where what is missing fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_trackflow_server() -> None:
    """Fail (CI) or skip (locally) if this checkout has no ``trackflow server`` command."""
    proc = subprocess.run(
        [*servers.trackflow_command(), "server", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines() or [f"exit {proc.returncode}"]
        reason = f"`trackflow server` is not available: {said[-1]}"
        if in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@dataclass(frozen=True)
class CompatServer:
    """A running ``trackflow server`` and where it keeps things."""

    url: str
    db_uri: str
    artifacts: Path
    token: str | None = None


class ScenarioResult:
    """A scenario's observations by step; reading a step that raised fails the test."""

    def __init__(self, name: str, results: dict[str, Any], stderr: str, stdout: str = "") -> None:
        self.name = name
        self.results = results
        self.stderr = stderr
        #: What the scenario printed besides its results (mlflow's "View run at ..." lines).
        self.stdout = stdout

    def __getitem__(self, step: str) -> Any:
        if step not in self.results:
            failed = sorted(k for k, v in self.results.items() if _failed(v))
            pytest.fail(
                f"scenario {self.name}: step {step!r} did not run (it needs a step that "
                f"failed: {failed})\n{self.stderr[-3000:]}",
                pytrace=False,
            )
        value = self.results[step]
        if _failed(value):
            pytest.fail(
                f"scenario {self.name}, step {step!r} raised {value['__error__']}\n"
                f"{value['traceback']}",
                pytrace=False,
            )
        return value


def _failed(value: Any) -> bool:
    return isinstance(value, dict) and "__error__" in value


def run_scenario(
    python: Path, name: str, server: CompatServer, workdir: Path, **args: Any
) -> ScenarioResult:
    """Run ``scenarios/<name>.py`` with ``python`` (MLflow's) against ``server``."""
    payload = {"prefix": f"{name}-{uuid.uuid4().hex[:8]}", "workdir": str(workdir), **args}
    env = mlflow_env.mlflow_subprocess_env(
        {
            "MLFLOW_TRACKING_URI": server.url,
            # A failing call should fail now, not after minutes of backoff.
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        }
    )
    if server.token and "token" not in args:
        env["MLFLOW_TRACKING_TOKEN"] = server.token
    proc = subprocess.run(
        [str(python), str(SCENARIOS / f"{name}.py"), json.dumps(payload)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCENARIO_TIMEOUT_S,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(
            f"scenario {name} exited with {proc.returncode}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return ScenarioResult(name, json.loads(lines[-1]), proc.stderr, "\n".join(lines[:-1]))
