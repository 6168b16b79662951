"""The topology of ``_topology.py`` started natively on loopback, for the test modules
that run something on it (imported by basename, so uniquely named).

PostgreSQL (a database of the module's own on the suite's server), the S3 server of
the session (moto_server) with the bucket created once, ``trackflow db upgrade``
once, then ``SERVER_REPLICAS`` ``trackflow server`` processes on their own ports
sharing the database and the bucket, started exactly as compose starts its replicas
and never migrating.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from _deploy_support import (
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
from tracking.store.sql.migrate import HEAD_REVISION

ADMIN_URL = os.environ.get(
    "TRACKFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Topology:
    """The running topology: the database, the bucket's server, the token every server
    wants, the servers, and the folder their logs and working directories are in."""

    db_uri: str
    s3: S3Server
    token: str
    servers: list[TrackflowProcess]
    workdir: Path

    def client(self, server: TrackflowProcess) -> TrackingClient:
        """A client of ``server`` (the token comes from ``TRACKFLOW_TRACKING_TOKEN``, which
        the test modules set per test)."""
        return TrackingClient(server.url)

    def client_env(self, server: TrackflowProcess) -> dict[str, str]:
        """The environment of a client process of ``server``."""
        return clean_env(
            TRACKFLOW_TRACKING_URI=server.url,
            TRACKFLOW_TRACKING_TOKEN=self.token,
            TRACKFLOW_RETRY_TIMEOUT="120",
        )

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def diagnostics(self, lines: int = 30) -> str:
        """The tails of the servers' logs (the current ones: a restarted server writes a
        new log) and of the S3 server's."""
        parts = []
        for index, server in enumerate(self.servers):
            state = "running" if server.process.poll() is None else "EXITED"
            text = "\n".join(server.log_text().splitlines()[-lines:])
            parts.append(f"----- trackflow server {index} {server.url} ({state}): {server.log}")
            parts.append(text)
        moto = self.s3.process
        parts.append(f"----- moto_server ({'running' if moto.poll() is None else 'EXITED'})")
        return "\n".join(parts)


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
def _database(label: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped at the end."""
    name = f"trackflow_test_{os.getpid()}_{label}"
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


@contextlib.contextmanager
def native_topology(s3: S3Server, workdir: Path, label: str = "deploy") -> Iterator[Topology]:
    """Start the topology in ``workdir`` (its database named after ``label``) and stop
    it when the block ends."""
    # create-bucket: once, before any server (an existing one is kept, as in compose).
    if not s3.filesystem().exists(BUCKET):
        s3.make_bucket(BUCKET)
    credentials = workdir / "s3_credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {S3_KEY}\naws_secret_access_key = {S3_SECRET}\n"
    )
    token = secrets.token_hex(16)
    with _database(label) as db_uri:
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
                url = f"http://127.0.0.1:{env['TRACKFLOW_SERVER_PORT']}"
                args = trackflow(*SERVER_COMMAND)
                servers.append(TrackflowProcess(url, args, env, log, _launch(args, env, log)))
            for server in servers:
                assert _healthy(server.url, server.process), server.log_text()
            yield Topology(db_uri, s3, token, servers, workdir)
        finally:
            for server in servers:
                stop(server.process)
