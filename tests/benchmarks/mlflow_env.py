"""MLflow's own environment, shared by the benchmark and the MLflow compatibility tests.

MLflow's dependencies clash with ours (Airflow's FastAPI pin among them), so it
never enters the project's environment: it lives in ``.bench/mlflow-env``,
created with uv on first use and reused afterwards. A stamp file records the
requirements it was built with; when they change, the missing ones are
installed into the existing environment rather than rebuilding it. A file lock
keeps the benchmark and a test session from building it at the same time.

Usage::

    from mlflow_env import ensure_mlflow_env, mlflow_subprocess_env

    python = ensure_mlflow_env()  # .bench/mlflow-env/bin/python
    subprocess.run([str(python), "script.py"], env=mlflow_subprocess_env(), check=True)

This module imports neither MLflow nor trackflow; it runs in the project's
environment (the benchmark script, the test suite).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "DEFAULT_ENV",
    "MLFLOW_REQUIREMENTS",
    "MlflowEnvError",
    "ensure_mlflow_env",
    "mlflow_subprocess_env",
]

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ENV = REPO / ".bench" / "mlflow-env"

#: What the environment holds: MLflow itself, psycopg2 for ``mlflow server``
#: on PostgreSQL (MLflow's default driver for ``postgresql://``), and
#: scikit-learn for the model-flavour tests (``mlflow.sklearn.log_model``,
#: autolog); none of it enters trackflow's own environment.
MLFLOW_REQUIREMENTS: tuple[str, ...] = (
    "mlflow>=3.17,<4",
    "psycopg2-binary>=2.9",
    "scikit-learn>=1.3",
)

_STAMP = ".bench-spec"

# What uv prints when it cannot reach the index: the one failure that is not a bug.
_NETWORK_MARKERS = (
    "failed to fetch",
    "error sending request",
    "dns error",
    "tcp connect error",
    "connection refused",
    "network is unreachable",
    "temporary failure in name resolution",
    "could not connect",
    "failed to download",
    "operation timed out",
)


class MlflowEnvError(RuntimeError):
    """The environment could not be created; ``network`` says whether the index was unreachable."""

    def __init__(self, message: str, *, network: bool) -> None:
        super().__init__(message)
        self.network = network


def _uv() -> list[str]:
    uv = shutil.which("uv")
    return [uv] if uv else [sys.executable, "-m", "uv"]


@contextmanager
def _locked(env: Path) -> Iterator[None]:
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f".{env.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(cmd: Sequence[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        output = (proc.stderr + proc.stdout).strip()
        network = any(marker in output.lower() for marker in _NETWORK_MARKERS)
        tail = "\n".join(output.splitlines()[-20:])
        raise MlflowEnvError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}", network=network
        )


def ensure_mlflow_env(
    env: Path = DEFAULT_ENV,
    requirements: Sequence[str] = MLFLOW_REQUIREMENTS,
    *,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The python of an environment holding ``requirements``, created with uv if need be.

    Raises :class:`MlflowEnvError` when uv fails.
    """
    python = env / "bin" / "python"
    stamp = env / _STAMP
    # Compiled once here: MLflow's processes run with PYTHONDONTWRITEBYTECODE and
    # would otherwise compile MLflow anew on every start (a minute for a server).
    wanted = "\n".join([*requirements, "compileall"])

    def ready() -> bool:
        return python.exists() and stamp.exists() and stamp.read_text() == wanted

    if ready():
        return python
    with _locked(env):
        if ready():  # built by another process while this one waited
            return python
        if log:
            log(f"preparing {env} with {', '.join(requirements)} (once; reused afterwards)")
        if not python.exists():
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            _run([*_uv(), "venv", "--quiet", "--clear", "--python", version, str(env)])
        _run([*_uv(), "pip", "install", "--quiet", "--python", str(python), *requirements])
        # Some packages ship files that do not compile (templates, old tests): not an error.
        subprocess.run(
            [str(python), "-m", "compileall", "-q", "-j", "0", str(env / "lib")],
            capture_output=True,
            check=False,
        )
        stamp.write_text(wanted)
    return python


def mlflow_subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a process in MLflow's venv: ours minus trackflow/MLflow settings.

    Telemetry and git probing are off: neither is what is tested or measured.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACKFLOW_", "MLFLOW_")) and k not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        GIT_PYTHON_REFRESH="quiet",
    )
    env.update(extra or {})
    return env
