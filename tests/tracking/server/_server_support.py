"""Constants and helpers shared by the server tests (imported by basename, so uniquely named)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

TOKEN = "s3cret-token-for-tests"
MLFLOW = "/api/2.0/mlflow"
TRACKFLOW = "/api/2.0/trackflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
STARTUP_TIMEOUT_S = 60.0
#: Lines the server tests want in pytest's terminal summary (see conftest).
SUMMARY: list[str] = []


def unique(prefix: str = "exp") -> str:
    """A name no other test of the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


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


def server_command(
    port: int, db_uri: str, artifacts: Path, *extra: str, command: str = "server"
) -> list[str]:
    """The command line of a server on ``port`` (``command``: ``server`` or ``ui``)."""
    return [
        sys.executable,
        "-m",
        "tracking.cli",
        command,
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
    workdir: Path,
    *,
    token: str | None = None,
    extra: tuple[str, ...] = (),
    port: int | None = None,
    command: str = "server",
) -> Iterator[ServerProcess]:
    """Run ``trackflow server`` in ``workdir`` until the block ends (tries 3 ports, or
    ``port`` 3 times: a server started again on the port of one just stopped)."""
    fixed = port
    workdir.mkdir(parents=True, exist_ok=True)
    db_uri = f"sqlite:///{workdir}/server.db"
    artifacts = workdir / "artifacts"
    args = (*extra, *(("--auth-token", token) if token else ()))
    failure = ""
    for attempt in range(3):
        port = fixed or free_port()
        log = workdir / f"server-{attempt}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                server_command(port, db_uri, artifacts, *args, command=command),
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
