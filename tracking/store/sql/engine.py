"""Engines tuned per dialect, and translation of driver errors.

SQLite is the embedded default and must take many writing processes at once
without "database is locked" reaching anyone. That takes four things:

* WAL journal, so readers never block the writer and the writer never blocks
  readers;
* write transactions open with ``BEGIN IMMEDIATE``, so a writer queues for
  the lock up front (where SQLite's busy handler waits for it) instead of
  failing when it upgrades a read lock mid-transaction, which no timeout cures;
* writers of one file queue on an OS file lock (``flock`` on ``<db>-writelock``)
  before they begin: SQLite's own busy handler polls with sleeps of 1 to
  100 ms, which under contention wastes a thousand times the ~50 microseconds
  a write holds the lock, while the kernel wakes the next waiter at once;
* a long busy timeout (``?timeout=<seconds>`` in the URL changes it), plus a
  bounded retry of the whole transaction for the rare lock error that still
  escapes (and for deadlocks on the servers).

A database that cannot be reached is :class:`~tracking.errors.StoreUnavailableError`
(503 TEMPORARILY_UNAVAILABLE from the server, which clients retry) on every
backend: a refused or dropped connection, a server shutting down or starting
up, a pool with no free connection, and SQLite still locked once its busy
timeout has passed. A connection found dead is invalidated and the transaction
tried once more on a fresh one, and pooled connections are pinged before use,
so the store recovers by itself when the database comes back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import StaticPool

from tracking.errors import InvalidParameterError, StoreError, StoreUnavailableError, TrackingError

__all__ = [
    "DEFAULT_MAX_OVERFLOW",
    "DEFAULT_POOL_SIZE",
    "RETRY_FOR_S",
    "WRITE",
    "SqliteWriteLock",
    "WalCheckpointer",
    "busy_timeout",
    "create_tracking_engine",
    "insert_ignoring",
    "is_unreachable",
    "normalize_db_url",
    "retrying",
    "transaction",
    "translate_db_error",
    "write_lock_for",
]

T = TypeVar("T")

#: Execution option asking for a write transaction (``BEGIN IMMEDIATE`` on SQLite).
WRITE = "trackflow_write"

_SQLITE_BUSY_TIMEOUT_S = 120.0
_DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_RETRY_ATTEMPTS = 30
#: A transaction that keeps failing on locks is given up after this long (SQLite's
#: busy handler has waited its whole timeout in each attempt by then, or the
#: lock is held by something that does not let go).
RETRY_FOR_S = _SQLITE_BUSY_TIMEOUT_S
# Lock errors (SQLite), deadlocks (MySQL 1213, PostgreSQL 40P01) and
# serialization failures: the transaction did nothing and can simply run again.
_RETRYABLE_MARKERS = (
    "database is locked",
    "database table is locked",
    "deadlock",
    "could not serialize",
    "lock wait timeout",
    "1213",
    "40p01",
    "40001",
)


def normalize_db_url(uri: str) -> URL:
    """Parse a SQLAlchemy URL, choosing the drivers trackflow ships extras for."""
    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise InvalidParameterError(
            f"invalid tracking URI {uri!r}: expected a SQLAlchemy URL such as "
            "sqlite:///trackflow.db or postgresql://user@host/db"
        ) from exc
    driver = _DEFAULT_DRIVERS.get(url.drivername)
    if driver is not None:
        url = url.set(drivername=driver)
    return url


#: Connections a server-database engine keeps, and may open beyond them under load.
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10
#: Seconds to wait for a PostgreSQL connection before calling the database unreachable.
_CONNECT_TIMEOUT_S = 10


def _pool_setting(url: URL, name: str, default: int, minimum: int) -> int:
    given = url.query.get(name)
    if given is None:
        return default
    text = given if isinstance(given, str) else given[-1]
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InvalidParameterError(
            f"invalid {name}={text!r} in the tracking URI: expected an integer >= {minimum}"
        )
    return value


class _LostConnectionReset(logging.Filter):
    """SQLAlchemy's pool logs "Exception during reset or similar" with a traceback when a
    connection handed back cannot be rolled back: the database went away under it (a
    restart, ``kill -9``). The connection is thrown away and the next checkout's ping
    finds a live one, so the traceback says nothing an operator can act on, and the
    request's own error already says the database is unavailable: one warning line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Exception during reset or similar" and record.exc_info:
            exc = record.exc_info[1]
            record.msg = "a pooled connection to the database was lost (%s: %s); discarded"
            record.args = (type(exc).__name__, exc)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = None
            record.exc_text = None
        return True


_LOST_RESET = _LostConnectionReset()


def _quiet_lost_connection_resets(engine: Engine) -> None:
    logger = getattr(engine.pool, "logger", None)
    if isinstance(logger, logging.Logger) and _LOST_RESET not in logger.filters:
        logger.addFilter(_LOST_RESET)


def create_tracking_engine(uri: str) -> Engine:
    """An engine for ``uri`` with the pragmas, pool and transaction rules of its dialect.

    On a server database, ``?pool_size=N&max_overflow=M`` in the URL size the
    connection pool of this process (default 5 and 10); they are not passed to
    the driver.
    """
    url = normalize_db_url(uri)
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url)
        pool_size = _pool_setting(url, "pool_size", DEFAULT_POOL_SIZE, 1)
        max_overflow = _pool_setting(url, "max_overflow", DEFAULT_MAX_OVERFLOW, 0)
        url = url.difference_update_query(["pool_size", "max_overflow"])
        connect_args: dict[str, Any] = {}
        if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = _CONNECT_TIMEOUT_S
        engine = create_engine(
            url,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args=connect_args,
        )
        _quiet_lost_connection_resets(engine)
        return engine
    except NoSuchModuleError as exc:
        raise InvalidParameterError(
            f"no SQLAlchemy dialect for {url.drivername!r} in tracking URI "
            f"{url.render_as_string(hide_password=True)!r}"
        ) from exc
    except ModuleNotFoundError as exc:
        extra = "postgres" if url.get_backend_name() == "postgresql" else "mysql"
        raise InvalidParameterError(
            f"the database driver for {url.drivername!r} is not installed: "
            f"pip install 'trackflow[{extra}]' ({exc})"
        ) from exc


class SqliteWriteLock:
    """Serialises the write transactions of every process and thread on one SQLite file."""

    def __init__(self, db_path: str) -> None:
        self.path = db_path + "-writelock"
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        self._pid = os.getpid()

    def acquire(self) -> None:
        """Wait for the lock (threads of this process first, then other processes)."""
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: SQLite's busy handler alone
                self._depth += 1
                return
            if self._fd is None or self._pid != os.getpid():
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                self._pid = os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1

    def release(self) -> None:
        """Let the next writer in."""
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        """Close the lock file's descriptor (a store closing its engine): the next
        writer opens it again. A process that opens many SQLite files over its life
        keeps no descriptor per file it is done with."""
        with self._thread_lock:
            if self._depth == 0 and self._fd is not None:
                os.close(self._fd)
                self._fd = None


class WalCheckpointer:
    """Checkpoints a SQLite file's WAL from a background thread, so that no commit pays.

    By default the commit that grows the WAL past 1000 pages copies them into
    the database file and syncs it: milliseconds, once every few hundred writes,
    on whichever request made that commit. A long-lived writer (the tracking
    server) turns that off on its engine's connections (``wal_autocheckpoint=0``)
    and calls :meth:`start`: a thread then runs a PASSIVE checkpoint, which never
    waits for readers or writers, every ``interval`` seconds. Other processes on
    the same file keep their own automatic checkpoints.

    Example::

        checkpointer = WalCheckpointer(engine)
        checkpointer.start()
        ...
        checkpointer.stop()  # one last checkpoint
    """

    #: The WAL file is cut back to this size when a checkpoint lets it restart.
    JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

    def __init__(self, engine: Engine, interval: float = 0.25) -> None:
        database = engine.url.database
        if engine.url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
            raise InvalidParameterError("WalCheckpointer needs an engine on a SQLite file")
        self._engine = engine
        self._path = os.path.abspath(database)
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _no_autocheckpoint(self, dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute(f"PRAGMA journal_size_limit={self.JOURNAL_SIZE_LIMIT}")
        cursor.close()

    def start(self) -> None:
        """Turn automatic checkpoints off on the engine and start the thread."""
        if self._thread is not None:
            return
        event.listen(self._engine, "connect", self._no_autocheckpoint)
        self._engine.dispose()  # pooled connections are reopened with the setting
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="trackflow-wal-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread after one last checkpoint; automatic checkpoints come back."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        event.remove(self._engine, "connect", self._no_autocheckpoint)
        self._engine.dispose()

    def _run(self) -> None:
        import sqlite3

        conn = sqlite3.connect(self._path, timeout=_SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            while True:
                stopping = self._stop.wait(self._interval)
                # Cheap when there is nothing to copy (it reads the WAL index); busy
                # or locked, the next round copies what this one could not.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if stopping:
                    return
        finally:
            conn.close()


_WRITE_LOCKS: dict[str, SqliteWriteLock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def write_lock_for(engine: Engine) -> SqliteWriteLock | None:
    """The write lock of a SQLite file engine (``None`` for in-memory and server databases)."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    path = os.path.abspath(url.database)
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(path)
        if lock is None:
            lock = _WRITE_LOCKS[path] = SqliteWriteLock(path)
    return lock


def busy_timeout(url: URL) -> float:
    """Seconds a SQLite writer waits for the lock: ``?timeout=`` in the URL, else 120."""
    given = url.query.get("timeout")
    if given is None:
        return _SQLITE_BUSY_TIMEOUT_S
    try:
        seconds = float(given if isinstance(given, str) else given[-1])
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise InvalidParameterError(
            f"invalid timeout={given!r} in the SQLite URL: expected seconds, e.g. ?timeout=30"
        )
    return seconds


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    timeout = busy_timeout(url)
    if memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(
            url,
            connect_args={"timeout": timeout, "check_same_thread": False},
            pool_size=4,
            max_overflow=16,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below; the
        # sqlite3 module's own implicit BEGIN cannot say IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    lock = write_lock_for(engine)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(WRITE, False)
        if write and lock is not None:
            lock.acquire()
            conn.info["trackflow_locked"] = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
        except BaseException:
            _release(conn)
            raise

    def _release(conn: Connection) -> None:
        if conn.info.pop("trackflow_locked", False) and lock is not None:
            lock.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)
    return engine


def _is_retryable(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    code = getattr(exc.orig, "sqlstate", None) or ""
    args = getattr(exc.orig, "args", ())
    mysql_code = str(args[0]) if args else ""
    return (
        any(m in text for m in _RETRYABLE_MARKERS)
        or code in ("40P01", "40001")
        or (mysql_code in ("1213", "1205"))
    )


#: Driver messages that mean a statement is too big (SQLite, MySQL/MariaDB, PostgreSQL).
_TOO_BIG = re.compile(
    r"tables in a join|Expression tree is too large|too many SQL variables|"
    r"Too many tables|stack depth limit exceeded|too many terms in compound",
    re.IGNORECASE,
)


def is_unreachable(exc: SQLAlchemyError) -> bool:
    """True when ``exc`` says the database cannot be talked to right now (refused,
    dropped or killed connection, a server shutting down or starting, no pooled
    connection free), rather than anything about the statement."""
    if isinstance(exc, DisconnectionError | PoolTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    text = _short(exc).lower()
    return isinstance(exc, InterfaceError | OperationalError) or any(
        m in text for m in _UNREACHABLE_MARKERS
    )


#: Driver messages of a database that is going away or not there yet, whatever the
#: exception class the driver chose for them.
_UNREACHABLE_MARKERS = (
    "connection is closed",
    "connection already closed",
    "server closed the connection",
    "terminating connection",
    "the database system is",  # starting up, shutting down, in recovery mode
    "lost connection",
    "gone away",
    "server shutdown in progress",
    "connection was killed",
    "can't connect",
    "connection refused",
)


def translate_db_error(exc: SQLAlchemyError) -> TrackingError:
    """A TrackingError for a driver error that no store method handled itself."""
    if isinstance(exc, OperationalError) and _TOO_BIG.search(_short(exc)):
        # The statement, not the database, is the problem: a retry would fail again.
        return InvalidParameterError(f"the query is too large for the database: {_short(exc)}")
    if is_unreachable(exc):
        return StoreUnavailableError(f"the tracking database is unavailable: {_short(exc)}")
    if isinstance(exc, IntegrityError):
        return InvalidParameterError(f"the database refused the write: {_short(exc)}")
    return StoreError(f"tracking database error: {_short(exc)}")


def _short(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def retrying(fn: Callable[[], T], *, retry_for: float = RETRY_FOR_S) -> T:
    """Run ``fn`` (one whole transaction), again on lock errors and deadlocks for up
    to ``retry_for`` seconds, and once more at once when its pooled connection turns
    out to be dead (the database restarted since it was opened).

    Other SQLAlchemy errors become :class:`~tracking.errors.TrackingError`: a
    database that cannot be reached, or a lock still held after ``retry_for``,
    :class:`~tracking.errors.StoreUnavailableError`.
    """
    delay = 0.005
    started = time.monotonic()
    reconnected = False
    for attempt in range(_RETRY_ATTEMPTS):
        try:
            return fn()
        except DBAPIError as exc:
            last = attempt + 1 >= _RETRY_ATTEMPTS
            if exc.connection_invalidated and not reconnected and not last:
                # The pool has been invalidated with it: the next attempt connects anew,
                # and fails at once if the database is really down.
                reconnected = True
                continue
            if not last and _is_retryable(exc) and time.monotonic() - started < retry_for:
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
                continue
            if _is_retryable(exc):
                raise StoreUnavailableError(
                    f"the tracking database stayed locked for {time.monotonic() - started:.1f}s "
                    f"({attempt + 1} attempts): {_short(exc)}"
                ) from exc
            raise translate_db_error(exc) from exc
        except SQLAlchemyError as exc:
            raise translate_db_error(exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """A connection in a transaction that commits on success and rolls back on error."""
    with engine.connect() as conn:
        if write:
            conn.execution_options(**{WRITE: True})
        with conn.begin():
            yield conn


def insert_ignoring(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, skipping those whose key exists (any dialect)."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    if not rows:
        return
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        ins: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
        conn.execute(ins(table).on_conflict_do_nothing(), rows)
    else:
        conn.execute(mysql.insert(table).prefix_with("IGNORE"), rows)
