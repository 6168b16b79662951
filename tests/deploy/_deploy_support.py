"""Real processes for the deployment tests: an S3 server (moto_server), trackflow servers,
the trackflow command (imported by basename, so uniquely named)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT_S = 60.0
MLFLOW = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
#: moto accepts any credentials; these are what the clients and servers are given.
S3_KEY = "deploy-test-key"
S3_SECRET = "deploy-test-secret"
S3_REGION = "eu-west-1"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without TRACKFLOW_*, MLFLOW_* and AWS_* variables, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRACKFLOW_", "MLFLOW_", "AWS_"))
    }
    env.update(extra)
    return env


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop ``process`` (SIGTERM, then SIGKILL after 15 s) and wait for it."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


@dataclass
class S3Server:
    """A moto_server on loopback: an S3 endpoint that keeps objects in memory."""

    endpoint: str
    process: subprocess.Popen[bytes]

    def storage_options(self) -> dict[str, Any]:
        """s3fs options for this endpoint with the test credentials."""
        from tracking.artifacts import s3_options

        return s3_options(
            endpoint_url=self.endpoint,
            region=S3_REGION,
            path_style=True,
            base={"key": S3_KEY, "secret": S3_SECRET},
        )

    def filesystem(self) -> Any:
        """A fresh s3fs filesystem on this endpoint (no cached listings)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())

    def make_bucket(self, name: str) -> None:
        self.filesystem().mkdir(name)


@contextlib.contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    """Run ``moto_server`` on a free loopback port until the block ends."""
    binary = shutil.which("moto_server", path=os.path.dirname(sys.executable))
    assert binary is not None, "moto_server is missing: uv sync (moto[server] is a dev dependency)"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(workdir / "moto.log", "wb") as out:
        process = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        assert _wait_http(endpoint, process, 30), (workdir / "moto.log").read_text()
        yield S3Server(endpoint, process)
    finally:
        stop(process)


@dataclass
class TrackflowProcess:
    """A ``trackflow server`` child process."""

    url: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes]
    restarts: int = field(default=0)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else "(no log)"

    def kill(self) -> None:
        """SIGKILL: no clean shutdown."""
        stop(self.process, signal.SIGKILL)

    def restart(self) -> None:
        """Start the same command again on the same port and wait until it serves."""
        stop(self.process)
        self.restarts += 1
        log = self.log.with_name(f"{self.log.stem}.{self.restarts}.log")
        self.log = log
        self.process = _launch(self.args, self.env, log)
        if not _healthy(self.url, self.process):
            raise AssertionError(f"restarted server did not come up:\n{self.log_text()}")


def trackflow(*args: str) -> list[str]:
    """The command line of ``trackflow <args>`` with this interpreter."""
    return [sys.executable, "-m", "tracking.cli", *args]


def _launch(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=dict(env), cwd=log.parent
        )


def _healthy(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False


@contextlib.contextmanager
def trackflow_server(
    workdir: Path, options: list[str], env: Mapping[str, str], name: str = "server"
) -> Iterator[TrackflowProcess]:
    """``trackflow server --host 127.0.0.1 --port <free> <options>`` until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = trackflow("server", "--host", "127.0.0.1", "--port", str(port), *options)
    log = workdir / f"{name}.log"
    server = TrackflowProcess(
        f"http://127.0.0.1:{port}", args, dict(env), log, _launch(args, env, log)
    )
    try:
        if not _healthy(server.url, server.process):
            raise AssertionError(f"trackflow server did not come up:\n{server.log_text()}")
        yield server
    finally:
        stop(server.process)


def run_trackflow(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``trackflow <args>`` to completion, capturing its output."""
    return subprocess.run(
        trackflow(*args),
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
