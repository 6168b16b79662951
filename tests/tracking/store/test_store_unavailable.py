"""A store that cannot be reached says so (StoreUnavailableError, 503), and the
client's retries wait for it long enough by default.

The database outages themselves (PostgreSQL and MariaDB stopped mid-write behind
a real server) are in ``tests/tracking/server/test_server_outage.py``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tracking import buffering
from tracking.entities import Metric
from tracking.errors import StoreUnavailableError
from tracking.settings import get_settings, reset_settings
from tracking.store.rest import RestTrackingStore
from tracking.store.rest_http import RestSession
from tracking.store.sql.store import SqlTrackingStore

#: The outage the default retries must ride out (issue 17: at least a minute).
REQUIRED_OUTAGE_S = 60.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """What ``call`` raised (None if nothing), failing the test if it takes over ``seconds``."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s"
    return outcome[0]


@pytest.fixture
def locked_store(tmp_path: Path) -> Iterator[tuple[SqlTrackingStore, str]]:
    """A store on a SQLite file with a busy timeout of half a second, and a run, while
    another connection holds the file's write lock."""
    path = tmp_path / "locked.db"
    store = SqlTrackingStore(f"sqlite:///{path}?timeout=0.5", str(tmp_path / "artifacts"))
    run_id = store.create_run("0", "someone", 1, [], None).info.run_id
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield store, run_id
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


class TestSqliteLockedPastItsTimeout:
    def test_hot_path_write_is_unavailable(
        self, locked_store: tuple[SqlTrackingStore, str]
    ) -> None:
        store, run_id = locked_store
        started = time.monotonic()
        raised = _within(30, lambda: store.log_batch(run_id, [Metric("m", 1.0, 1, 0)], [], []))
        assert isinstance(raised, StoreUnavailableError), raised
        assert raised.http_status == 503
        assert "locked" in str(raised)
        assert time.monotonic() - started < 10

    def test_orm_write_is_unavailable(self, locked_store: tuple[SqlTrackingStore, str]) -> None:
        store, _ = locked_store
        raised = _within(30, lambda: store.create_experiment("blocked", None, []))
        assert isinstance(raised, StoreUnavailableError), raised

    def test_write_goes_through_once_the_lock_is_gone(self, tmp_path: Path) -> None:
        path = tmp_path / "released.db"
        store = SqlTrackingStore(f"sqlite:///{path}?timeout=0.5", str(tmp_path / "artifacts"))
        try:
            run_id = store.create_run("0", "someone", 1, [], None).info.run_id
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreUnavailableError):
                store.log_batch(run_id, [Metric("m", 1.0, 1, 0)], [], [])
            holder.execute("ROLLBACK")
            holder.close()
            store.log_batch(run_id, [Metric("m", 1.0, 1, 0)], [], [])
            assert store.get_run(run_id).data.metrics == {"m": 1.0}
        finally:
            store.close()


class TestRetryBudget:
    """What the client waits for by default, measured against a port nobody listens on
    (the waits are recorded instead of slept)."""

    @pytest.fixture(autouse=True)
    def _fresh_settings(self) -> Iterator[None]:
        reset_settings()
        yield
        reset_settings()

    def test_default_session_rides_out_a_minute(self) -> None:
        waits: list[float] = []
        session = RestSession(f"http://127.0.0.1:{_free_port()}", sleep=waits.append)
        with pytest.raises(StoreUnavailableError, match="cannot reach"):
            session.call("GET", session.url("health"))
        assert sum(waits) >= REQUIRED_OUTAGE_S
        assert sum(waits) <= session.retry_timeout  # bounded
        assert max(waits) <= session.max_backoff  # with backoff, never a long silence
        assert waits[0] < waits[3]  # growing

    def test_store_defaults_come_from_the_settings(self) -> None:
        store = RestTrackingStore(f"http://127.0.0.1:{_free_port()}")
        assert store.http.retry_timeout == get_settings().retry_timeout >= REQUIRED_OUTAGE_S
        assert store.http.max_retries is None

    def test_retry_timeout_is_configurable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TRACKFLOW_RETRY_TIMEOUT", "3")
        reset_settings()
        store = RestTrackingStore(f"http://127.0.0.1:{_free_port()}")
        waits: list[float] = []
        store.http._sleep = waits.append
        with pytest.raises(StoreUnavailableError):
            store.get_run("0" * 32)
        assert sum(waits) <= 3

    def test_max_retries_still_caps_the_count(self) -> None:
        waits: list[float] = []
        session = RestSession(f"http://127.0.0.1:{_free_port()}", max_retries=2, sleep=waits.append)
        with pytest.raises(StoreUnavailableError, match="3 times"):
            session.call("GET", session.url("health"))
        assert len(waits) == 2

    def test_buffer_waits_as_long(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(buffering, "_buffer", None)
        assert buffering.get_buffer().retry_timeout == get_settings().retry_timeout
        monkeypatch.setenv("TRACKFLOW_RETRY_TIMEOUT", "7")
        reset_settings()
        monkeypatch.setattr(buffering, "_buffer", None)
        assert buffering.get_buffer().retry_timeout == 7

    def test_a_long_budget_keeps_backing_off(self) -> None:
        # A day-long budget means thousands of retries: the backoff must stay capped.
        session = RestSession("http://127.0.0.1:9", retry_timeout=86_400)
        assert session.max_backoff / 2 <= session._delay(5_000) <= session.max_backoff


class TestLostPooledConnection:
    @pytest.mark.postgres
    def test_a_reset_that_fails_is_one_warning_line(
        self, postgres_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A connection whose backend dies while checked out fails its rollback when it is
        handed back: SQLAlchemy's pool logs that with a traceback; the store's engine says
        it in one warning line (a database restart must not fill the server log)."""
        from sqlalchemy import text

        from tracking.store.sql.engine import create_tracking_engine

        engine = create_tracking_engine(postgres_url)
        other = create_tracking_engine(postgres_url)
        try:
            raw = engine.raw_connection()  # checked out of the pool, in a transaction
            cursor = raw.cursor()
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
            cursor.close()
            with other.connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            time.sleep(0.2)
            with caplog.at_level("WARNING", logger="sqlalchemy.pool"):
                raw.close()  # back to the pool: its reset (a rollback) meets the dead backend
            records = [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]
            assert records, "the dead connection's reset logged nothing: the test proves nothing"
            for record in records:
                assert record.levelname == "WARNING"
                assert record.exc_info is None
                assert "a pooled connection to the database was lost" in record.getMessage()
            # The engine goes on with a fresh connection.
            with engine.connect() as fresh:
                assert fresh.execute(text("SELECT 1")).scalar_one() == 1
        finally:
            engine.dispose()
            other.dispose()
