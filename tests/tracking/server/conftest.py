"""Fixtures for the tracking server: the app in-process, and real ``trackflow server`` processes.

In-process (one fresh SQLite database and artifact directory per test)
----------------------------------------------------------------------
``server_settings``
    :class:`~tracking.server.ServerSettings` on ``tmp_path``.
``client``
    A FastAPI ``TestClient`` (an ``httpx.Client``) on ``create_app(server_settings)``.
``auth_client``
    The same app with a bearer token (:data:`TOKEN`) required; the client
    sends no token unless a test adds one.

Real processes (shared by the session: give experiments unique names)
---------------------------------------------------------------------
``running_server``
    A :class:`ServerProcess`: ``python -m tracking.cli server`` on a free
    loopback port with a SQLite file and an artifact directory in a temporary
    directory, up once ``/health`` answers, terminated at the end.
``server_url``
    Its base URL, e.g. ``http://127.0.0.1:41234``.
``auth_server`` / ``auth_server_url``
    The same, started with ``--auth-token`` :data:`TOKEN`.

:func:`start_server` starts more servers (other options, a token of one's
own); test directories elsewhere can load this module by path to use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _server_support import TOKEN

from tracking.server import ServerSettings, create_app
from tracking.server.app import open_store

with warnings.catch_warnings():
    # Starlette nudges towards httpx2; the TestClient works as it is.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

STARTUP_TIMEOUT_S = 60.0


# -- in-process ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the current schema, copied by each test (migrating costs ~0.5 s)."""
    path = tmp_path_factory.mktemp("template") / "server.db"
    open_store(ServerSettings(backend_store_uri=f"sqlite:///{path}")).close()
    return path


@pytest.fixture
def server_settings(tmp_path: Path, migrated_db: Path) -> ServerSettings:
    """Settings for an app on a fresh SQLite file and artifact directory."""
    shutil.copyfile(migrated_db, tmp_path / "server.db")
    return ServerSettings(
        backend_store_uri=f"sqlite:///{tmp_path}/server.db",
        artifacts_destination=str(tmp_path / "artifacts"),
    )


@pytest.fixture
def client(server_settings: ServerSettings) -> Iterator[TestClient]:
    """An httpx client talking to the app in-process (lifespan included)."""
    with TestClient(create_app(server_settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def auth_client(server_settings: ServerSettings) -> Iterator[TestClient]:
    """A client of an app that wants ``Authorization: Bearer`` :data:`TOKEN`."""
    settings = ServerSettings(**{**server_settings.model_dump(), "auth_token": TOKEN})
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


# -- real processes --------------------------------------------------------------------


@dataclass(frozen=True)
class ServerProcess:
    """A ``trackflow server`` child process and where it keeps its data."""

    url: str
    db_uri: str
    artifacts: Path
    token: str | None
    log: Path
    process: subprocess.Popen[bytes]

    def headers(self) -> dict[str, str]:
        """The Authorization header this server wants (empty without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    """A TCP port on the loopback interface nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(port: int, db_uri: str, artifacts: Path, *extra: str) -> list[str]:
    """The command line of a server on ``port``."""
    return [
        sys.executable,
        "-m",
        "tracking.cli",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        db_uri,
        "--artifacts-destination",
        str(artifacts),
        *extra,
    ]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TRACKFLOW_", "MLFLOW_"))}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextlib.contextmanager
def start_server(
    workdir: Path, *, token: str | None = None, extra: tuple[str, ...] = ()
) -> Iterator[ServerProcess]:
    """Run ``trackflow server`` in ``workdir`` until the block ends (tries 3 ports)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db_uri = f"sqlite:///{workdir}/server.db"
    artifacts = workdir / "artifacts"
    args = (*extra, *(("--auth-token", token) if token else ()))
    failure = ""
    for attempt in range(3):
        port = free_port()
        log = workdir / f"server-{attempt}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                server_command(port, db_uri, artifacts, *args),
                cwd=workdir,
                env=_clean_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = ServerProcess(f"http://127.0.0.1:{port}", db_uri, artifacts, token, log, process)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            failure = server.log_tail()
            _stop(process)
            continue
        try:
            yield server
        finally:
            _stop(process)
        return
    pytest.fail(f"trackflow server did not come up:\n{failure}", pytrace=False)


@pytest.fixture(scope="session")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server process shared by the session (no token)."""
    with start_server(tmp_path_factory.mktemp("server")) as server:
        yield server


@pytest.fixture(scope="session")
def server_url(running_server: ServerProcess) -> str:
    """The base URL of :func:`running_server`."""
    return running_server.url


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server process that wants ``Authorization: Bearer`` :data:`TOKEN`."""
    with start_server(tmp_path_factory.mktemp("auth-server"), token=TOKEN) as server:
        yield server


@pytest.fixture(scope="session")
def auth_server_url(auth_server: ServerProcess) -> str:
    """The base URL of :func:`auth_server`."""
    return auth_server.url
