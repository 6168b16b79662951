"""The deployment of docker/compose.yaml, run natively on loopback (no Docker engine).

PostgreSQL (a database of this module's own on the suite's server), an S3 server
(moto_server), the bucket created once, ``trackflow db upgrade`` once, then two
``trackflow server`` processes on two ports sharing the database and the bucket,
started exactly as compose starts its replicas (``_topology.py``; a test in
``test_offline_checks.py`` keeps the two the same) and never migrating. Client
processes log runs with artifacts through both; one server is killed mid-run
and restarted, and nothing is lost.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from _deploy_support import (
    PROXY,
    S3_KEY,
    S3_SECRET,
    S3Server,
    TrackflowProcess,
    _healthy,
    _launch,
    clean_env,
    free_port,
    run_trackflow,
    stop,
    trackflow,
)
from _topology import (
    BUCKET,
    MIGRATE_COMMAND,
    SERVER_COMMAND,
    SERVER_REPLICAS,
    migrate_env,
    server_env,
)
from sqlalchemy.engine import make_url

from tracking import TrackingClient
from tracking.settings import reset_settings
from tracking.store.sql.migrate import HEAD_REVISION

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENT = Path(__file__).with_name("_client.py")
ADMIN_URL = os.environ.get(
    "TRACKFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Topology:
    db_uri: str
    s3: S3Server
    token: str
    servers: list[TrackflowProcess]
    workdir: Path

    def client(self, server: TrackflowProcess) -> TrackingClient:
        """A client of ``server`` (the token comes from the environment: ``_token``)."""
        return TrackingClient(server.url)

    def client_env(self, server: TrackflowProcess) -> dict[str, str]:
        return clean_env(
            TRACKFLOW_TRACKING_URI=server.url,
            TRACKFLOW_TRACKING_TOKEN=self.token,
            TRACKFLOW_RETRY_TIMEOUT="120",
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _admin() -> Any:
    url = make_url(ADMIN_URL)
    return psycopg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        dbname=url.database or "postgres",
        autocommit=True,
        connect_timeout=5,
    )


@contextlib.contextmanager
def _database() -> Iterator[str]:
    """A fresh PostgreSQL database for the module, dropped at the end."""
    name = f"trackflow_test_{os.getpid()}_deploy"
    with _admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(ADMIN_URL)
            .set(drivername="postgresql", database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start(args: list[str], env: dict[str, str], log: Path) -> TrackflowProcess:

    url = f"http://127.0.0.1:{env['TRACKFLOW_SERVER_PORT']}"
    server = TrackflowProcess(url, args, env, log, _launch(args, env, log))
    return server


@pytest.fixture(scope="module")
def topology(s3: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    workdir = Path(tmp_path_factory.mktemp("topology"))
    # create-bucket: once, before any server.
    s3.make_bucket(BUCKET)
    credentials = workdir / "s3_credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {S3_KEY}\naws_secret_access_key = {S3_SECRET}\n"
    )
    token = secrets.token_hex(16)
    with _database() as db_uri:
        # migrate: once.
        done = run_trackflow(*MIGRATE_COMMAND, env=clean_env(**migrate_env(db_uri)), cwd=workdir)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"to {HEAD_REVISION}" in done.stdout
        servers: list[TrackflowProcess] = []
        try:
            for replica in range(SERVER_REPLICAS):
                env = clean_env(
                    **server_env(
                        db_uri=db_uri,
                        endpoint=s3.endpoint,
                        token=token,
                        credentials_file=str(credentials),
                        workers=1,
                    ),
                    TRACKFLOW_SERVER_HOST="127.0.0.1",
                    TRACKFLOW_SERVER_PORT=str(free_port()),
                )
                log = workdir / f"trackflow-{replica}.log"
                servers.append(_start(trackflow(*SERVER_COMMAND), env, log))
            for server in servers:
                assert _healthy(server.url, server.process), server.log_text()
            yield Topology(db_uri, s3, token, servers, workdir)
        finally:
            for server in servers:
                stop(server.process)


@pytest.fixture(autouse=True)
def _token(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_TRACKING_TOKEN", topology.token)
    monkeypatch.setenv("TRACKFLOW_RETRY_TIMEOUT", "60")
    reset_settings()


def _client(
    topology: Topology, server: TrackflowProcess, name: str, steps: int, pause: float
) -> tuple[subprocess.Popen[bytes], Path]:
    out = topology.workdir / f"{name}.run_id"
    log = topology.workdir / f"{name}.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(CLIENT), "topology", name, str(steps), str(pause), str(out)],
            env=topology.client_env(server),
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=topology.workdir,
        )
    return process, out


def _wait(process: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    assert process.wait(timeout=timeout) == 0, log.read_text(errors="replace")


def _check_run(topology: Topology, run_id: str, name: str, steps: int) -> None:
    """The run, read through every server, and its artifacts, in the bucket and through
    every server's proxy."""
    fs = topology.s3.filesystem()
    for server in topology.servers:
        client = topology.client(server)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED", server.url
        assert run.data.params == {"name": name}
        assert run.data.tags["client"] == "topology"
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.step for m in history) == list(range(steps)), server.url
        assert {f"m{i}" for i in range(10)} <= set(run.data.metrics)
        root = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
        expected = {
            "model/model.bin": name.encode() * 1000,
            "report.txt": f"report of {name}\n".encode(),
        }
        for path, content in expected.items():
            # An object in the bucket ...
            assert fs.cat_file(f"{BUCKET}/artifacts/{root}/{path}") == content, path
            # ... downloadable through this server's proxy.
            got = httpx.get(
                f"{server.url}{PROXY}/{root}/{path}", headers=topology.headers(), timeout=30
            )
            assert got.status_code == 200 and got.content == content, (server.url, path)


def test_servers_never_migrate(topology: Topology) -> None:
    for server in topology.servers:
        log = server.log_text()
        assert "never migrating" in log, log
        assert "s3://trackflow/artifacts" in log


def test_clients_through_both_servers_share_database_and_bucket(topology: Topology) -> None:
    started = [
        (_client(topology, server, f"both-{i}", steps=20, pause=0), f"both-{i}")
        for i, server in enumerate(topology.servers)
    ]
    for (process, out), name in started:
        _wait(process, topology.workdir / f"{name}.log")
        _check_run(topology, out.read_text(), name, steps=20)
    listed = topology.s3.filesystem().find(f"{BUCKET}/artifacts")
    assert len([key for key in listed if key.endswith("/model/model.bin")]) >= 2


def test_a_server_killed_mid_run_loses_nothing(topology: Topology) -> None:
    victim = topology.servers[0]
    steps = 60
    process, out = _client(topology, victim, "killed", steps=steps, pause=0.05)
    log = topology.workdir / "killed.log"
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)
    run_id = out.read_text()
    # Kill it mid-run, with no clean shutdown; the client keeps retrying meanwhile.
    time.sleep(0.5)
    victim.kill()
    assert process.poll() is None, "the client finished before the server was killed"
    time.sleep(1.0)
    victim.restart()
    _wait(process, log)
    _check_run(topology, run_id, "killed", steps=steps)
    assert victim.process.poll() is None
