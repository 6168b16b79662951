"""Real Airflow for the operators tests: one migrated, throw-away ``AIRFLOW_HOME``
per session, with the example DAGs (``dags/``) and the test DAGs
(``tests/operators/dags/``) in its DAGs folder, run with ``dag.test()``.

Airflow reads ``AIRFLOW_HOME`` when it is first imported, so it is set here, at
import time, before any test module imports Airflow (else it writes ``~/airflow``).

Stores
------
``embedded``
    The tasks track into a SQLite file of the test's own through
    ``TRACKFLOW_TRACKING_URI`` (no Airflow connection: the hook's fallback).
``served``
    The tasks track into a real ``trackflow server`` process through the
    ``trackflow_default`` connection (``AIRFLOW_CONN_TRACKFLOW_DEFAULT``).
``store``
    Both, with ids ``embedded`` and ``served``.
``class_embedded``, ``class_store``
    The same for a whole test class: a class whose tests all read what one DAG run
    left runs that DAG once, not once per test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "operators"))
sys.path.insert(0, str(ROOT / "tests" / "tracking" / "server"))
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))

from _airflow_support import AIRFLOW_UI, TRACKFLOW_UI, connection_env  # noqa: E402

if "airflow" in sys.modules:  # pragma: no cover - a test module imported it first
    raise RuntimeError("Airflow was imported before tests/operators/conftest.py set AIRFLOW_HOME")

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="trackflow-airflow-"))
DAGS_FOLDER = AIRFLOW_HOME / "dags"

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__API__BASE_URL": AIRFLOW_UI,
        "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        # The API server app, in-process, takes every request as an admin's.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": "trackflow-tests-" + "0" * 64,
    }
)
DAGS_FOLDER.mkdir()
for source in (
    *sorted((ROOT / "dags").glob("*.py")),
    *sorted((ROOT / "tests/operators/dags").glob("*.py")),
):
    shutil.copy(source, DAGS_FOLDER / source.name)

from _server_support import ServerProcess, start_server  # noqa: E402

from tracking import TrackingClient  # noqa: E402


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """The session's Airflow metadata database, migrated, with every DAG serialised."""
    airflow = [sys.executable, "-m", "airflow"]
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run([*airflow, *command], capture_output=True, text=True, timeout=300)
        if done.returncode:
            pytest.fail(f"airflow {' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db: Path) -> Any:
    """The DAGs folder, parsed as Airflow's own processes do (it joins ``sys.path``)."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(str(DAGS_FOLDER), bundle_path=DAGS_FOLDER)
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.fixture(scope="session")
def run_dag(dagbag: Any) -> Any:
    """``run_dag(dag_id, **dag_test_kwargs)``: the DagRun ``dag.test()`` left, once the
    listener's queued DAG-run events are handled (they run off the caller's thread)."""
    from operators._tracking import airflow_tracking

    def run(dag_id: str, **kwargs: Any) -> Any:
        dag_run = dagbag.get_dag(dag_id).test(**kwargs)
        assert airflow_tracking().flush(60), "the listener's queued events did not finish"
        return dag_run

    return run


@pytest.fixture(autouse=True)
def _fresh_tracking() -> Iterator[None]:
    from operators._tracking import airflow_tracking

    airflow_tracking().reset()
    yield
    airflow_tracking().reset()
    import tracking

    leaked = [name for name in ("TRACKFLOW_RUN_ID", "MLFLOW_RUN_ID") if name in os.environ]
    assert not leaked, f"a task left {leaked} in the environment"
    assert tracking.active_run() is None, "a task left its run active"


@pytest.fixture(scope="session")
def airflow_api(airflow_db: Path) -> Any:
    """Airflow's REST API (the API server's app, in this process): what the UI calls
    when a user marks a task instance or a DAG run."""
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    from operators._tracking import airflow_tracking

    class FlushingClient(TestClient):
        """Answers once the listener's events queued by the request are handled (as
        the API server's hooks run off the request's thread)."""

        def request(self, *args: Any, **kwargs: Any) -> Any:
            answer = super().request(*args, **kwargs)
            assert airflow_tracking().flush(60), "the listener's queued events did not finish"
            return answer

    return FlushingClient(create_app())


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """The stock mlflow client's environment (the benchmark's, created on first use)."""
    import mlflow_env

    return mlflow_env.ensure_mlflow_env()


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real ``trackflow server`` process for the session."""
    with start_server(tmp_path_factory.mktemp("airflow-tracking-server")) as server:
        yield server


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrackingClient:
    """Tasks track into a SQLite file of this test's own (no connection)."""
    from tracking.settings import reset_settings

    monkeypatch.setenv("TRACKFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/runs.db")
    monkeypatch.setenv("TRACKFLOW_UI_BASE_URL", TRACKFLOW_UI)
    monkeypatch.delenv("AIRFLOW_CONN_TRACKFLOW_DEFAULT", raising=False)
    reset_settings()
    return TrackingClient()


@pytest.fixture
def served(tracking_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> TrackingClient:
    """Tasks track into the real server through the ``trackflow_default`` connection."""
    monkeypatch.setenv("AIRFLOW_CONN_TRACKFLOW_DEFAULT", connection_env(tracking_server.url))
    return TrackingClient(tracking_server.url)


@pytest.fixture(params=["embedded", "served"])
def store(request: pytest.FixtureRequest) -> TrackingClient:
    """``embedded`` and ``served``, in turn."""
    client: TrackingClient = request.getfixturevalue(request.param)
    return client


#: The environment each class-wide store set, by client: every test of the class gets it
#: again (the suite's autouse fixture clears ``TRACKFLOW_*`` before each test).
_CLASS_ENVIRONMENTS: dict[int, dict[str, str | None]] = {}


def _tracking_for_class(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingClient]:
    from tracking.settings import reset_settings

    with pytest.MonkeyPatch.context() as patch:
        if kind == "embedded":
            path = tmp_path_factory.mktemp("class-embedded")
            patch.setenv("TRACKFLOW_TRACKING_URI", f"sqlite:///{path}/runs.db")
            patch.setenv("TRACKFLOW_UI_BASE_URL", TRACKFLOW_UI)
            patch.delenv("AIRFLOW_CONN_TRACKFLOW_DEFAULT", raising=False)
            reset_settings()
            client = TrackingClient()
        else:
            server: ServerProcess = request.getfixturevalue("tracking_server")
            patch.setenv("AIRFLOW_CONN_TRACKFLOW_DEFAULT", connection_env(server.url))
            client = TrackingClient(server.url)
        names = (
            "TRACKFLOW_TRACKING_URI",
            "TRACKFLOW_UI_BASE_URL",
            "AIRFLOW_CONN_TRACKFLOW_DEFAULT",
        )
        _CLASS_ENVIRONMENTS[id(client)] = {name: os.environ.get(name) for name in names}
        yield client
        del _CLASS_ENVIRONMENTS[id(client)]
    reset_settings()


@pytest.fixture(autouse=True)
def _class_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test of a class with a class-wide store runs in that store's environment."""
    from tracking.settings import reset_settings

    for name in ("class_embedded", "class_store"):
        if name in request.fixturenames:
            client = request.getfixturevalue(name)
            for key, value in _CLASS_ENVIRONMENTS[id(client)].items():
                if value is None:
                    monkeypatch.delenv(key, raising=False)
                else:
                    monkeypatch.setenv(key, value)
            reset_settings()


@pytest.fixture(scope="class")
def class_embedded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingClient]:
    """``embedded``, for the whole test class."""
    yield from _tracking_for_class("embedded", request, tmp_path_factory)


@pytest.fixture(scope="class", params=["embedded", "served"])
def class_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingClient]:
    """``store``, for the whole test class."""
    yield from _tracking_for_class(request.param, request, tmp_path_factory)
