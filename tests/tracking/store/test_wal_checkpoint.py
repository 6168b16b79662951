"""The tracking server's WAL checkpoints: in a background thread, none on a request's commit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tracking.client import TrackingClient
from tracking.entities import Metric
from tracking.errors import InvalidParameterError
from tracking.server.app import create_app
from tracking.server.settings import ServerSettings
from tracking.store.sql.engine import WalCheckpointer
from tracking.store.sql.store import SqlTrackingStore


def _autocheckpoint(store: SqlTrackingStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


PAGE = 4096  # SQLite's default page size


def _pages(path: Path) -> int:
    return path.stat().st_size // PAGE if path.exists() else 0


def _log_points(store: SqlTrackingStore, batches: int) -> str:
    client = TrackingClient.from_store(store, store.db_uri)
    run_id = client.create_run(client.create_experiment("wal")).info.run_id
    for b in range(batches):
        points = [Metric("loss", float(i), 1_000 + i, b * 1000 + i) for i in range(1000)]
        client.log_batch(run_id, metrics=points)
    return run_id


def test_commits_leave_checkpoints_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    wal = tmp_path / "runs.db-wal"
    store = SqlTrackingStore(f"sqlite:///{path}")
    try:
        assert _autocheckpoint(store) == 1000  # SQLite's default
        checkpointer = WalCheckpointer(store.engine, interval=3600)  # no round during the test
        checkpointer.start()
        try:
            assert _autocheckpoint(store) == 0
            before = _pages(path)
            # Over 1000 WAL pages: with SQLite's default a commit would have checkpointed.
            run_id = _log_points(store, 40)
            assert _pages(wal) > 1000
            assert _pages(path) == before  # nothing copied into the database yet
        finally:
            checkpointer.stop()  # one last round
        assert _pages(path) > before + 500
        assert _autocheckpoint(store) == 1000  # back to the default once stopped
        assert len(store.get_metric_history(run_id, "loss")) == 40_000
    finally:
        store.close()


def test_thread_checkpoints_while_commits_come(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    store = SqlTrackingStore(f"sqlite:///{path}")
    checkpointer = WalCheckpointer(store.engine, interval=0.02)
    checkpointer.start()
    try:
        before = _pages(path)
        _log_points(store, 40)
        deadline = time.monotonic() + 10
        while _pages(path) <= before + 500 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _pages(path) > before + 500
        assert _autocheckpoint(store) == 0
    finally:
        checkpointer.stop()
        store.close()


def test_checkpointer_needs_a_sqlite_file(tmp_path: Path) -> None:
    store = SqlTrackingStore("sqlite:///:memory:")
    try:
        with pytest.raises(InvalidParameterError, match="SQLite file"):
            WalCheckpointer(store.engine)
    finally:
        store.close()


def test_server_checkpoints_while_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "server.db"
    settings = ServerSettings(
        backend_store_uri=f"sqlite:///{path}", artifacts_destination=str(tmp_path / "artifacts")
    )
    store = SqlTrackingStore(settings.backend_store_uri)
    try:
        app = create_app(settings, store=store, checkpoint_wal=True)
        with TestClient(app, base_url="http://localhost") as client:
            assert client.get("/health").status_code == 200
            assert _autocheckpoint(store) == 0
        assert _autocheckpoint(store) == 1000
        # Without checkpoint_wal, an app given a store leaves its checkpoints alone.
        with TestClient(create_app(settings, store=store), base_url="http://localhost") as client:
            assert client.get("/health").status_code == 200
            assert _autocheckpoint(store) == 1000
    finally:
        store.close()
