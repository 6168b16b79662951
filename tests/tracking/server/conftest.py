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

:func:`_server_support.start_server` starts more servers (other options, a
token of one's own); test directories elsewhere can load that module by path.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from _server_support import SUMMARY, TOKEN, ServerProcess, start_server

from tracking.server import ServerSettings, create_app
from tracking.server.app import open_store

with warnings.catch_warnings():
    # Starlette nudges towards httpx2; the TestClient works as it is.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

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
    with TestClient(
        create_app(server_settings), base_url="http://localhost", raise_server_exceptions=False
    ) as test_client:
        yield test_client


@pytest.fixture
def auth_client(server_settings: ServerSettings) -> Iterator[TestClient]:
    """A client of an app that wants ``Authorization: Bearer`` :data:`TOKEN`."""
    settings = ServerSettings(**{**server_settings.model_dump(), "auth_token": TOKEN})
    with TestClient(
        create_app(settings), base_url="http://localhost", raise_server_exceptions=False
    ) as test_client:
        yield test_client


# -- real processes --------------------------------------------------------------------


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show what the server tests counted (schemathesis cases)."""
    for line in SUMMARY:
        terminalreporter.write_line(line)
