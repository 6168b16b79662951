"""Fixtures shared by the whole suite: fresh, empty databases on every backend.

Database URLs
-------------
Each fixture gives a test a database of its own with no tables in it: stores
run their migrations themselves.

``sqlite_url``
    ``sqlite:///<tmp_path>/trackflow.db``; the file does not exist yet.
``postgres_url`` (marks the test ``postgres``)
    ``postgresql+psycopg://postgres@127.0.0.1:5432/<db>``.
``mysql_url`` (marks the test ``mysql``)
    ``mysql+pymysql://root@127.0.0.1:3306/<db>``.
``db_url``
    Parametrized over the three, with ids ``sqlite``, ``postgres`` and
    ``mysql``, so a test or fixture runs once per backend::

        @pytest.fixture
        def store(db_url: str) -> Iterator[SqlTrackingStore]:
            store = SqlTrackingStore(db_url)
            yield store
            store.close()

        def test_create_run(store: SqlTrackingStore) -> None: ...
        # -> test_create_run[sqlite], test_create_run[postgres], test_create_run[mysql]

``pytest -m "not postgres and not mysql"`` runs the SQLite cases only.

How the server databases stay cheap
-----------------------------------
Creating and dropping a PostgreSQL database costs about 150 ms, emptying one
about 20 ms. So each server keeps a small pool of databases named
``trackflow_test_<pid>_<n>``: a test takes one, and when it ends the database
is emptied (PostgreSQL: the ``public`` schema is dropped and recreated; MySQL:
the database is dropped and recreated, which is cheap there) and goes back to
the pool, after closing any connection the test left open to it. The pool
drops its databases when the session ends; a session killed before that
leaves them behind, and the next session drops them.

Servers
-------
The servers default to the ones ``.ci/services.sh`` brings up; point the suite
elsewhere with admin URLs in ``TRACKFLOW_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``) and
``TRACKFLOW_TEST_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306``).
If a server cannot be reached, or its driver is not installed, its tests are
skipped, except under ``CI=true``, where they fail: in CI a missing database
is a failure, never a skip.

Environment
-----------
Every test starts without ``TRACKFLOW_*`` variables and with the settings
cache cleared, so a developer's own configuration cannot leak into the suite.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy.engine import URL, make_url

from tracking.settings import reset_settings

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306"
CONNECT_TIMEOUT = 5
DB_PREFIX = "trackflow_test_"


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where unavailable servers fail tests."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing database is a failure)", pytrace=False)
    pytest.skip(reason)


# -- servers ------------------------------------------------------------------


class _Server(abc.ABC):
    """Admin access to one database server: create, empty and drop test databases."""

    backend: str
    env_var: str

    def __init__(self, admin_url: str) -> None:
        self.admin_url: URL = make_url(admin_url)
        self.error: str | None = None

    @abc.abstractmethod
    def check(self) -> None:
        """Connect once; raise if the server or its driver is not there."""

    @abc.abstractmethod
    def url(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name`` for the code under test."""

    @abc.abstractmethod
    def list_test_databases(self) -> list[str]:
        """Names of all databases starting with :data:`DB_PREFIX`."""

    @abc.abstractmethod
    def create(self, name: str) -> None:
        """Create an empty database."""

    @abc.abstractmethod
    def empty(self, name: str) -> None:
        """Remove everything from a database, closing other connections to it first."""

    @abc.abstractmethod
    def drop(self, name: str) -> None:
        """Drop a database, closing other connections to it first."""

    def is_local(self) -> bool:
        return self.admin_url.host in {None, "localhost", "127.0.0.1", "::1"}


class _PostgresServer(_Server):
    backend = "postgres"
    env_var = "TRACKFLOW_TEST_POSTGRES_URL"

    def _connect(self, dbname: str | None = None) -> Any:
        import psycopg

        u = self.admin_url
        return psycopg.connect(
            host=u.host or "127.0.0.1",
            port=u.port or 5432,
            user=u.username or "postgres",
            password=u.password,
            dbname=dbname or u.database or "postgres",
            connect_timeout=CONNECT_TIMEOUT,
            autocommit=True,
        )

    def check(self) -> None:
        with self._connect() as conn:
            conn.execute("SELECT 1")

    def url(self, name: str) -> str:
        return self.admin_url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )

    def list_test_databases(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (DB_PREFIX,)
            ).fetchall()
        return [row[0] for row in rows]

    def create(self, name: str) -> None:
        with self._connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def _close_connections(self, conn: Any, name: str) -> None:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )

    def empty(self, name: str) -> None:
        with self._connect(name) as conn:
            self._close_connections(conn, name)
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def drop(self, name: str) -> None:
        with self._connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _MySQLServer(_Server):
    backend = "mysql"
    env_var = "TRACKFLOW_TEST_MYSQL_URL"

    def _connect(self) -> Any:
        import pymysql

        u = self.admin_url
        return pymysql.connect(
            host=u.host or "127.0.0.1",
            port=u.port or 3306,
            user=u.username or "root",
            password=u.password or "",
            connect_timeout=CONNECT_TIMEOUT,
            autocommit=True,
        )

    def _execute(self, *statements: str | tuple[str, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Run the statements in one connection; the rows of the last one."""
        rows: list[tuple[Any, ...]] = []
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    sql, args = statement if isinstance(statement, tuple) else (statement, ())
                    cur.execute(sql, args)
                    rows = list(cur.fetchall())
        finally:
            conn.close()
        return rows

    def check(self) -> None:
        self._execute("SELECT 1")

    def url(self, name: str) -> str:
        return self.admin_url.set(drivername="mysql+pymysql", database=name).render_as_string(
            hide_password=False
        )

    def list_test_databases(self) -> list[str]:
        rows = self._execute(("SHOW DATABASES LIKE %s", (DB_PREFIX.replace("_", r"\_") + "%",)))
        return [row[0] for row in rows]

    def create(self, name: str) -> None:
        self._execute(f"CREATE DATABASE `{name}`")

    def _recreate(self, name: str, create: bool) -> None:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                # A connection in a transaction on the database would block DROP DATABASE.
                cur.execute(
                    "SELECT id FROM information_schema.processlist"
                    " WHERE db = %s AND id <> CONNECTION_ID()",
                    (name,),
                )
                for (thread_id,) in cur.fetchall():
                    with contextlib.suppress(Exception):  # it may have gone meanwhile
                        cur.execute(f"KILL {int(thread_id)}")
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                if create:
                    cur.execute(f"CREATE DATABASE `{name}`")
        finally:
            conn.close()

    def empty(self, name: str) -> None:
        self._recreate(name, create=True)

    def drop(self, name: str) -> None:
        self._recreate(name, create=False)


# -- the pool of test databases ---------------------------------------------------


class _DatabasePool:
    """Hands out empty databases on one server and takes them back emptied."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.free: list[str] = []
        self.all: list[str] = []

    def acquire(self) -> str:
        if self.free:
            return self.free.pop()
        name = f"{DB_PREFIX}{os.getpid()}_{len(self.all)}"
        self.server.create(name)
        self.all.append(name)
        return name

    def release(self, name: str) -> None:
        try:
            self.server.empty(name)
        except Exception:
            # Not reusable: leave it out of the pool; close() still drops it.
            return
        self.free.append(name)

    def drop_leftovers(self) -> None:
        """Drop test databases of earlier sessions whose process is gone."""
        if not self.server.is_local():
            return
        for name in self.server.list_test_databases():
            match = re.fullmatch(rf"{DB_PREFIX}(\d+)_\d+", name)
            if match and not _process_alive(int(match.group(1))):
                with contextlib.suppress(Exception):
                    self.server.drop(name)

    def close(self) -> None:
        for name in self.all:
            with contextlib.suppress(Exception):
                self.server.drop(name)
        self.all.clear()
        self.free.clear()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pool(server: _Server) -> Iterator[_DatabasePool | str]:
    """Yield a pool, or the reason the server cannot be used."""
    try:
        server.check()
    except ImportError as exc:
        yield f"{server.backend}: driver not installed ({exc}); install the dev dependencies"
        return
    except Exception as exc:
        target = server.admin_url.render_as_string(hide_password=True)
        yield f"{server.backend} server unreachable at {target}: {exc}".strip()
        return
    pool = _DatabasePool(server)
    pool.drop_leftovers()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def _postgres_pool() -> Iterator[_DatabasePool | str]:
    server = _PostgresServer(os.environ.get(_PostgresServer.env_var, DEFAULT_POSTGRES_URL))
    yield from _pool(server)


@pytest.fixture(scope="session")
def _mysql_pool() -> Iterator[_DatabasePool | str]:
    server = _MySQLServer(os.environ.get(_MySQLServer.env_var, DEFAULT_MYSQL_URL))
    yield from _pool(server)


def _fresh_url(pool: _DatabasePool | str) -> Iterator[str]:
    if isinstance(pool, str):
        _unavailable(pool)
    name = pool.acquire()
    try:
        yield pool.server.url(name)
    finally:
        pool.release(name)


# -- public fixtures --------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite database file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'trackflow.db'}"


@pytest.fixture
def postgres_url(_postgres_pool: _DatabasePool | str) -> Iterator[str]:
    """URL of an empty PostgreSQL database of this test's own."""
    yield from _fresh_url(_postgres_pool)


@pytest.fixture
def mysql_url(_mysql_pool: _DatabasePool | str) -> Iterator[str]:
    """URL of an empty MySQL/MariaDB database of this test's own."""
    yield from _fresh_url(_mysql_pool)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """URL of an empty database, once per backend: ids ``sqlite``, ``postgres``, ``mysql``."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(autouse=True)
def _no_trackflow_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("TRACKFLOW_") and not name.startswith("TRACKFLOW_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    reset_settings()
    yield
    reset_settings()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use a server fixture, so ``-m`` can select them.

    Seen are fixtures a test requests (directly or through other fixtures) and
    parametrized fixtures whose param names one, as in
    ``@pytest.fixture(params=["postgres_url", "mysql_url"])`` followed by
    ``request.getfixturevalue(request.param)``.
    """
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            used |= {v for v in callspec.params.values() if isinstance(v, str)}
        if "postgres_url" in used:
            item.add_marker(pytest.mark.postgres)
        if "mysql_url" in used:
            item.add_marker(pytest.mark.mysql)


# -- a real browser -----------------------------------------------------------------------

#: Debian's chromium (``apt-get install chromium``), which Playwright drives.
CHROMIUM = os.environ.get("TRACKFLOW_CHROMIUM", "/usr/lib/chromium/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless chromium for one test module.

    Not for the session: Playwright's sync API keeps an event loop running on the
    main thread while it is started, and later tests call ``asyncio.run()``.
    """
    reason = None
    if not Path(CHROMIUM).exists():
        reason = f"no chromium at {CHROMIUM} (apt-get install chromium, or TRACKFLOW_CHROMIUM)"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        reason = "the playwright package is not installed"
    if reason:
        if in_ci():
            pytest.fail(f"{reason} (CI=true: the browser tests must run)", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()
