"""Tracking servers as child processes: ``trackflow server`` and ``mlflow server``.

Shared by the benchmark's server section and the MLflow compatibility tests.
Each server gets a free loopback port, logs to a file and runs in a process
group of its own, so stopping it also stops the workers it forked::

    with trackflow_server("sqlite:////tmp/x/server.db", Path("/tmp/x/artifacts"),
                          workdir=Path("/tmp/x")) as server:
        print(server.url)  # http://127.0.0.1:PORT

A server counts as up once it answers HTTP on ``/health`` (any status: the
route may be missing or need auth); if its process exits first, the log's tail
is in the error.

This module imports neither MLflow nor trackflow.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "ServerError",
    "ServerProcess",
    "free_port",
    "mlflow_server",
    "postgres_admin",
    "postgres_database",
    "start_server",
    "trackflow_command",
    "trackflow_server",
]


class ServerError(RuntimeError):
    """A server did not come up (or its database could not be prepared)."""


def free_port() -> int:
    """A TCP port nobody listens on at the moment, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running server: its URL, process (a group leader) and log file."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout`` seconds."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def _answers_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP answer, even 401 or 404, means the server is listening
    except (urllib.error.URLError, OSError):
        return False


def start_server(
    name: str,
    command: Callable[[int], Sequence[str]],
    *,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 90.0,
    attempts: int = 3,
) -> ServerProcess:
    """Start ``command(port)`` on a free port and wait until it answers HTTP.

    A free port can be taken by someone else before the server binds it: when
    the server exits saying so, it is started again on another port.
    """
    for attempt in range(1, attempts + 1):
        try:
            return _start_once(
                name, command, free_port(), workdir=workdir, env=env, timeout=timeout
            )
        except _PortTakenError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


class _PortTakenError(ServerError):
    """The server could not bind its port."""


def _start_once(
    name: str,
    command: Callable[[int], Sequence[str]],
    port: int,
    *,
    workdir: Path,
    env: Mapping[str, str] | None,
    timeout: float,
) -> ServerProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}-{port}.log"
    cmd = list(command(port))
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(name, f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            tail = server.log_tail()
            error = _PortTakenError if "address already in use" in tail.lower() else ServerError
            raise error(
                f"{name} exited with {process.returncode} before answering on {server.url}; "
                f"command: {' '.join(cmd)}\n{tail}"
            )
        if _answers_http(server.url):
            return server
        time.sleep(0.2)
    server.stop()
    raise ServerError(
        f"{name} did not answer on {server.url} within {timeout:.0f}s\n{server.log_tail()}"
    )


def trackflow_command() -> list[str]:
    """How to run the ``trackflow`` console script of the running interpreter's environment."""
    script = Path(sys.executable).with_name("trackflow")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from tracking.cli import main; sys.exit(main())"]


def _server_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACKFLOW_", "MLFLOW_")) or k.startswith("TRACKFLOW_TEST_")
    }
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


@contextlib.contextmanager
def trackflow_server(
    backend_store_uri: str,
    artifacts_destination: Path,
    *,
    workdir: Path,
    auth_token: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Iterator[ServerProcess]:
    """``trackflow server`` on a free loopback port, stopped on exit."""

    def command(port: int) -> list[str]:
        return [
            *trackflow_command(),
            *_server_args(backend_store_uri, artifacts_destination, port),
            *(["--auth-token", auth_token] if auth_token else []),
            *extra_args,
        ]

    with _running("trackflow-server", command, workdir, _server_env(env), timeout) as server:
        yield server


@contextlib.contextmanager
def mlflow_server(
    python: Path,
    backend_store_uri: str,
    artifacts_destination: Path,
    *,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 300.0,
) -> Iterator[ServerProcess]:
    """``mlflow server`` from MLflow's environment (its default workers), stopped on exit.

    Its four workers each import MLflow: on two busy cores that took 90 s here.

    ``env`` should come from :func:`mlflow_env.mlflow_subprocess_env`.
    """

    def command(port: int) -> list[str]:
        return [
            str(python.with_name("mlflow")),
            *_server_args(backend_store_uri, artifacts_destination, port),
            *extra_args,
        ]

    with _running("mlflow-server", command, workdir, env, timeout) as server:
        yield server


def _server_args(backend_store_uri: str, artifacts_destination: Path, port: int) -> list[str]:
    """The ``server`` arguments both tools take alike: stores, loopback host, port."""
    return [
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(artifacts_destination),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


@contextlib.contextmanager
def _running(
    name: str,
    command: Callable[[int], list[str]],
    workdir: Path,
    env: Mapping[str, str] | None,
    timeout: float,
) -> Iterator[ServerProcess]:
    server = start_server(name, command, workdir=workdir, env=env, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def postgres_admin(admin_url: str, **options: Any) -> psycopg.Connection[tuple[object, ...]]:
    """A psycopg connection to the PostgreSQL server at ``admin_url`` (5 s to connect)."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    return psycopg.connect(
        host=admin.host or "127.0.0.1",
        port=admin.port or 5432,
        user=admin.username or "postgres",
        password=admin.password,
        dbname=admin.database or "postgres",
        connect_timeout=5,
        **options,
    )


@contextlib.contextmanager
def postgres_database(admin_url: str, name: str) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database ``name``, dropped on exit.

    Yields its URL for each driver: ``psycopg`` (``postgresql+psycopg://``, for
    trackflow) and ``psycopg2`` (``postgresql+psycopg2://``, for MLflow; the
    driver is spelled out because SQLAlchemy 2.1 made psycopg 3 the default).
    """
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)

    try:
        with postgres_admin(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        raise ServerError(f"cannot create database {name} on {admin.host}: {exc}") from exc
    try:
        yield {
            "psycopg": admin.set(drivername="postgresql+psycopg", database=name).render_as_string(
                hide_password=False
            ),
            "psycopg2": admin.set(drivername="postgresql+psycopg2", database=name).render_as_string(
                hide_password=False
            ),
        }
    finally:
        with (
            contextlib.suppress(psycopg.Error),
            postgres_admin(admin_url, autocommit=True) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
