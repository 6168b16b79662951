"""Private database servers that a test may stop and start at will (imported by basename).

The shared PostgreSQL and MariaDB of the suite must never be stopped, so the
outage tests initialise an instance of their own in a temporary folder, on a
port of their own, and kill it mid-write. Missing binaries skip the test
locally and fail it under ``CI=true``, as for the shared servers.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from _server_support import free_port

__all__ = ["PrivateMariaDB", "PrivatePostgres", "private_mariadb", "private_postgres"]

PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
START_TIMEOUT_S = 60.0


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: a missing database is a failure)", pytrace=False)
    pytest.skip(reason)


def _run_as(name: str) -> str | None:
    """The account to run a database server as: ``name`` when we are root (neither
    server runs as root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        _unavailable(f"running as root and there is no {name!r} account to run the server as")
    return name


def _private_dir(owner: str | None, prefix: str) -> Path:
    # Not under pytest's tmp_path: its folders are private to us, and the server
    # runs as another account when we are root.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        shutil.chown(path, owner, owner)
    return path


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    import socket

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.settimeout(0.5)
            sock.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise AssertionError(f"private database on port {port} did not come up:\n{tail}")


class PrivatePostgres:
    """A PostgreSQL cluster of our own: ``initdb`` in a temporary folder, ``pg_ctl``
    to start it and to stop it (``-m immediate``: as a crash would)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _run_as("postgres")
        self.root = _private_dir(self.user, "trackflow-pg-")
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    @property
    def url(self) -> str:
        """The URL of the ``tracking`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/tracking"

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / program), *args],
            check=True,
            capture_output=True,
            user=self.user,
            cwd=self.root,
            timeout=START_TIMEOUT_S,
        )

    def start(self) -> None:
        """Start the cluster (again) on the same port and wait until it answers."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=60"
        )
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")
        _wait_for_port(self.port, None, self.log)

    def create_database(self) -> None:
        """Create the ``tracking`` database."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "tracking")

    def crash(self) -> None:
        """Stop at once: every backend is killed, nothing is shut down cleanly."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def close(self) -> None:
        """Stop the cluster if it runs and remove its folder."""
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateMariaDB:
    """A MariaDB server of our own: ``mariadb-install-db`` in a temporary folder,
    ``mariadbd`` started as a child process and killed with SIGKILL."""

    def __init__(self, server: str, install: str) -> None:
        self.server = server
        self.user = _run_as("mysql")
        self.root = _private_dir(self.user, "trackflow-mariadb-")
        self.data = self.root / "data"
        self.log = self.root / "mariadbd.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [
                install,
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *((f"--user={self.user}",) if self.user else ()),
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
            timeout=START_TIMEOUT_S,
        )

    @property
    def url(self) -> str:
        """The URL of the ``tracking`` database."""
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/tracking"

    def start(self) -> None:
        """Start the server (again) on the same port and wait until it answers."""
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    self.server,
                    "--no-defaults",
                    f"--datadir={self.data}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.root / 'mysqld.sock'}",
                    f"--pid-file={self.root / 'mysqld.pid'}",
                    "--skip-grant-tables",
                    "--skip-log-bin",
                    "--innodb-buffer-pool-size=32M",
                    "--innodb-log-file-size=16M",
                    "--innodb-flush-log-at-trx-commit=2",
                    *((f"--user={self.user}",) if self.user else ()),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )
        _wait_for_port(self.port, self.process, self.log)

    def create_database(self) -> None:
        """Create the ``tracking`` database."""
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            with conn.cursor() as cursor:
                cursor.execute("CREATE DATABASE tracking CHARACTER SET utf8mb4")
        finally:
            conn.close()

    def crash(self) -> None:
        """SIGKILL the server: what an OOM kill or a pulled plug leaves behind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def close(self) -> None:
        """Kill the server if it runs and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private PostgreSQL with an empty ``tracking`` database."""
    found = [Path(d) for d in PG_BIN_DIRS if (Path(d) / "initdb").exists()]
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).parent)
    if not found:
        _unavailable("PostgreSQL's initdb and pg_ctl are not installed")
    instance = PrivatePostgres(found[0])
    try:
        instance.start()
        instance.create_database()
        yield instance
    finally:
        instance.close()


@contextlib.contextmanager
def private_mariadb() -> Iterator[PrivateMariaDB]:
    """A started private MariaDB with an empty ``tracking`` database."""
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install = shutil.which("mariadb-install-db")
    if not server or not install:
        _unavailable("MariaDB's mariadbd and mariadb-install-db are not installed")
    instance = PrivateMariaDB(server, install)
    try:
        instance.start()
        instance.create_database()
        yield instance
    finally:
        instance.close()
