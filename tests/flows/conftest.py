"""Real Prefect for the flows tests: one ``prefect_test_harness`` per session (a
temporary Prefect server and database), ``PREFECT_HOME`` in a temporary folder.

Prefect reads its settings when first imported, so they are set here, at
import time (else ``~/.prefect`` is written).

Stores: ``embedded`` (a SQLite file of the test's own, via
``TRACKFLOW_TRACKING_URI``), ``served`` (a real ``trackflow server`` process),
``store`` (both, ids ``embedded`` and ``served``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "tracking" / "server"))
sys.path.insert(0, str(ROOT / "tests" / "flows"))

PREFECT_HOME = Path(tempfile.mkdtemp(prefix="trackflow-prefect-"))
os.environ.update(
    {
        "PREFECT_HOME": str(PREFECT_HOME),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_LOCAL_STORAGE_PATH": str(PREFECT_HOME / "storage"),
    }
)

from _prefect_support import TRACKFLOW_UI  # noqa: E402
from _server_support import ServerProcess, start_server  # noqa: E402

from tracking import TrackingClient  # noqa: E402


def pytest_sessionfinish(session: pytest.Session) -> None:
    shutil.rmtree(PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server for the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(autouse=True)
def _fresh_tracking() -> Iterator[None]:
    from flows import _tracking

    _tracking.reset()
    yield
    _tracking.reset()
    import tracking

    leaked = [name for name in ("TRACKFLOW_RUN_ID", "MLFLOW_RUN_ID") if name in os.environ]
    assert not leaked, f"a flow left {leaked} in the environment"
    assert tracking.active_run() is None, "a flow left its run active"


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real ``trackflow server`` process for the session."""
    with start_server(tmp_path_factory.mktemp("prefect-tracking-server")) as server:
        yield server


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TrackingClient:
    """Flows track into a SQLite file of this test's own."""
    from tracking.settings import reset_settings

    monkeypatch.setenv("TRACKFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/runs.db")
    # Artifacts beside it, not in ./trackflow-artifacts of the checkout the tests run in.
    monkeypatch.setenv("TRACKFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("TRACKFLOW_UI_BASE_URL", TRACKFLOW_UI)
    reset_settings()
    return TrackingClient()


@pytest.fixture
def served(tracking_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> TrackingClient:
    """Flows track into the real server."""
    from tracking.settings import reset_settings

    monkeypatch.setenv("TRACKFLOW_TRACKING_URI", tracking_server.url)
    reset_settings()
    return TrackingClient(tracking_server.url)


@pytest.fixture(params=["embedded", "served"])
def store(request: pytest.FixtureRequest) -> TrackingClient:
    """``embedded`` and ``served``, in turn."""
    client: TrackingClient = request.getfixturevalue(request.param)
    return client
