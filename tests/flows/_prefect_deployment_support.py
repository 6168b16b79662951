"""A real Prefect deployment for the tests: ``prefect server start`` on a free loopback
port (PostgreSQL when it answers, else SQLite; its own ``PREFECT_HOME``), a process
work pool, ``prefect worker start`` and deployments of ``tests/flows/deploy``, beside
a real ``trackflow server``. Each process runs in a working directory of its own,
with no ``TRACKFLOW_*`` / ``PREFECT_*`` variable but those set here on purpose.
Imported by basename, so uniquely named."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
STARTUP_TIMEOUT_S = 120.0
POOL = "tf-pool"
BLOCK = "tf-deploy"
#: The flows of ``deploy/deploy_flows.py`` that :func:`real_deployment` deploys.
FLOWS = ("retrain", "sweep", "mapped", "retried", "sleepy", "caching")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without trackflow's, MLflow's or Prefect's settings,
    plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRACKFLOW_", "PREFECT_", "MLFLOW_"))
    }
    env.update(extra)
    return env


@dataclass
class Deployment:
    """The running Prefect server and worker, and where everything keeps its files."""

    api: str
    root: Path
    tracking_url: str
    src: Path
    markers: Path
    worker: subprocess.Popen[bytes]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    deployments: dict[str, str] = field(default_factory=dict)

    @property
    def workdirs(self) -> list[Path]:
        """Every working directory a process of the deployment runs in."""
        return [p for p in self.root.iterdir() if p.is_dir()]

    def settings(self) -> Any:
        """Prefect settings pointing this process at the real server."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        return temporary_settings(updates={PREFECT_API_URL: self.api})

    def log_tail(self, name: str, lines: int = 60) -> str:
        path = self.root / f"{name}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start: {tail}")


def spawn(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child process in a session of its own (killed with everything it started)."""
    cwd.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process started by :func:`spawn` and its children."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def prefect_database() -> Iterator[str | None]:
    """A PostgreSQL database of its own for the Prefect server, or None (SQLite)."""
    try:
        import psycopg
    except ImportError:
        yield None
        return
    name = f"tf_prefect_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        yield None
        return
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        with (
            contextlib.suppress(Exception),
            psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn,
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_worker(
    root: Path, api: str, pool: str, name: str, *, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``prefect worker start`` for ``pool``, in a directory of its own; ``extra_env`` is
    added to its environment (and so to its flow-run processes')."""
    env = clean_env(
        PREFECT_API_URL=api,
        PREFECT_HOME=str(root / "prefect-home"),  # shared: results of cached tasks
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_PREFETCH_SECONDS="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_URL=api.removesuffix("/api"),
        # On purpose: beats of lost flow runs every second (the reaper's tests).
        TRACKFLOW_HEARTBEAT_INTERVAL="1",
        TF_DEPLOY_MARKERS=str(root / "markers"),
    )
    env.update(extra_env or {})
    return spawn(
        [
            sys.executable,
            "-m",
            "prefect",
            "worker",
            "start",
            "--pool",
            pool,
            "--type",
            "process",
            "--name",
            name,
            "--limit",
            "6",
        ],
        root / name,
        env,
        root / f"{name}.log",
    )


def create_pool(pool: str) -> None:
    """A process work pool (in the current Prefect settings' server)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=pool,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
            ),
            overwrite=True,
        )


def deploy(src: Path, entrypoint: str, name: str, pool: str = POOL) -> str:
    """Deploy ``entrypoint`` of ``src`` to ``pool``; returns ``flow-name/name``."""
    from prefect import Flow

    flow: Any = Flow.from_source(source=str(src), entrypoint=entrypoint)
    flow.deploy(name=name, work_pool_name=pool, build=False, push=False, print_next_steps=False)
    return f"{flow.name}/{name}"


@contextlib.contextmanager
def real_deployment(
    root: Path,
    tracking_url: str,
    *,
    token: str | None = None,
    flows: Sequence[str] = FLOWS,
    worker_env: Mapping[str, str] | None = None,
) -> Iterator[Deployment]:
    """Server, pool, worker, block and deployments; everything stopped at the end.

    ``token`` is the tracking server's bearer token, kept in the ``TrackflowConfig``
    block (the flows' only configuration); ``flows`` are the flows of
    ``deploy/deploy_flows.py`` to deploy (each costs a deployment on the server);
    ``worker_env`` is added to the worker's environment (and its flow runs').
    """
    from flows import TrackflowConfig

    src = root / "flows-src"
    shutil.copytree(HERE / "deploy", src, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "markers").mkdir()
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    with prefect_database() as database:
        server_env = clean_env(
            PREFECT_HOME=str(root / "server-home"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            PREFECT_API_URL=api,
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        if database:
            server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = database
        server = spawn(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            root / "prefect-server",
            server_env,
            root / "prefect-server.log",
        )
        worker: subprocess.Popen[bytes] | None = None
        try:
            _wait_http(f"{api}/health", server, "prefect server", root / "prefect-server.log")
            from prefect.settings import PREFECT_API_URL, temporary_settings

            with temporary_settings(updates={PREFECT_API_URL: api}):
                create_pool(POOL)
                config = TrackflowConfig(tracking_uri=tracking_url, token=token)
                config.save(BLOCK, overwrite=True)
                deployments = {
                    short: deploy(src, f"deploy_flows.py:{short}", short) for short in flows
                }
            worker = start_worker(root, api, POOL, "worker", extra_env=worker_env)
            yield Deployment(
                api, root, tracking_url, src, root / "markers", worker, [server], deployments
            )
        finally:
            if worker is not None:
                stop(worker)
            stop(server)
