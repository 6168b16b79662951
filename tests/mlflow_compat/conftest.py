"""Fixtures for the MLflow compatibility tests (the machinery is in ``compat_harness.py``).

``mlflow_python``
    The python of ``.bench/mlflow-env``, the benchmark's MLflow environment,
    created with uv when missing. Failing to create it fails the tests, except
    locally when the package index cannot be reached: then they are skipped,
    saying so.
``compat_server``
    A ``trackflow server`` process on a free loopback port, with a SQLite file
    and an artifact directory of its own, shared by the module's tests.
``auth_server``
    The same, started with ``--auth-token <random>``.
``run_scenario``
    ``run_scenario(name, server, **args)`` runs ``scenarios/<name>.py`` in
    MLflow's environment against ``server`` and returns a ``ScenarioResult``.

Without a ``trackflow server`` command in the checkout the tests are skipped
locally and fail under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import compat_harness
import pytest
from compat_harness import (
    CompatServer,
    ScenarioResult,
    in_ci,
    mlflow_env,
    require_trackflow_server,
    servers,
)


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """MLflow's environment; skipped locally only when the package index is unreachable."""
    try:
        python: Path = mlflow_env.ensure_mlflow_env()
    except mlflow_env.MlflowEnvError as exc:
        if exc.network and not in_ci():
            pytest.skip(f"cannot create MLflow's environment (no network?): {exc}")
        pytest.fail(f"cannot create MLflow's environment: {exc}", pytrace=False)
    return python


@pytest.fixture(scope="module")
def _start_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., CompatServer]]:
    require_trackflow_server()
    with contextlib.ExitStack() as stack:

        def start(auth_token: str | None = None) -> CompatServer:
            workdir = tmp_path_factory.mktemp("trackflow-server")
            db_uri = f"sqlite:///{workdir / 'server.db'}"
            artifacts = workdir / "artifacts"
            server = stack.enter_context(
                servers.trackflow_server(db_uri, artifacts, workdir=workdir, auth_token=auth_token)
            )
            return CompatServer(server.url, db_uri, artifacts, auth_token)

        yield start


@pytest.fixture(scope="module")
def compat_server(_start_server: Callable[..., CompatServer]) -> CompatServer:
    """A ``trackflow server`` without auth, shared by the module."""
    return _start_server()


@pytest.fixture(scope="module")
def auth_server(_start_server: Callable[..., CompatServer]) -> CompatServer:
    """A ``trackflow server --auth-token <random>``, shared by the module."""
    return _start_server(auth_token=uuid.uuid4().hex)


@pytest.fixture(scope="module")
def run_scenario(
    mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., ScenarioResult]:
    """``run_scenario(name, server, **args)``: one scenario's observations."""

    def run(name: str, server: CompatServer, **args: Any) -> ScenarioResult:
        workdir = tmp_path_factory.mktemp(f"scenario-{name}")
        return compat_harness.run_scenario(mlflow_python, name, server, workdir, **args)

    return run
