"""Purging deleted runs takes their metric points with them on every backend.

On PostgreSQL and MySQL ``metrics`` has no foreign key to ``runs`` (migration
0007: the database checked it for every point); purging deletes the points
itself, and a batch still writing to a run being purged is waited for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from tracking.entities import Metric
from tracking.store.sql import purge
from tracking.store.sql.models import MetricModel, table_of
from tracking.store.sql.store import SqlTrackingStore

_metrics = table_of(MetricModel)


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[SqlTrackingStore]:
    store = SqlTrackingStore(db_url, str(tmp_path / "artifacts"), auto_upgrade=True)
    yield store
    store.close()


def _points(store: SqlTrackingStore, run_id: str) -> int:
    with store.engine.connect() as conn:
        query = select(func.count()).select_from(_metrics).where(_metrics.c.run_uuid == run_id)
        return int(conn.execute(query).scalar_one())


def _run_with_points(store: SqlTrackingStore, experiment_id: str, points: int = 50) -> str:
    run = store.create_run(experiment_id, "u", 0, [], None)
    batch = [Metric(f"m{i % 5}", i * 0.5, 1_000 + i, i // 5) for i in range(points)]
    store.log_batch(run.info.run_id, batch, [], [])
    return run.info.run_id


def test_metrics_have_a_foreign_key_on_sqlite_only(store: SqlTrackingStore) -> None:
    keys = inspect(store.engine).get_foreign_keys("metrics")
    assert (keys != []) is (store.dialect == "sqlite"), keys


def test_purged_runs_take_their_points(store: SqlTrackingStore) -> None:
    experiment_id = store.create_experiment("purge")
    gone, kept, restored = (_run_with_points(store, experiment_id) for _ in range(3))
    assert _points(store, gone) == 50
    store.delete_run(gone)
    store.delete_run(restored)
    store.restore_run(restored)
    purge.purge_runs(store, [gone, restored])
    assert _points(store, gone) == 0
    # A run not in the deleted stage stays, with every point.
    assert _points(store, kept) == 50
    assert _points(store, restored) == 50
    assert len(store.get_metric_history(restored, "m0")) == 10


def test_purged_experiments_take_their_runs_points(store: SqlTrackingStore) -> None:
    doomed = store.create_experiment("doomed")
    other = store.create_experiment("other")
    runs = [_run_with_points(store, doomed) for _ in range(2)]
    survivor = _run_with_points(store, other)
    for run_id in runs:
        store.delete_run(run_id)
    store.delete_experiment(doomed)
    purge.purge_experiments(store, [doomed])
    assert [_points(store, run_id) for run_id in runs] == [0, 0]
    assert _points(store, survivor) == 50


@pytest.fixture(params=["postgres_url", "mysql_url"], ids=["postgres", "mysql"])
def server_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlTrackingStore]:
    url: str = request.getfixturevalue(request.param)
    store = SqlTrackingStore(url, str(tmp_path / "artifacts"), auto_upgrade=True)
    yield store
    store.close()


def test_a_batch_writing_to_a_run_being_purged_is_waited_for(
    server_store: SqlTrackingStore,
) -> None:
    """A batch holds its run's row (the lock ``log_batch`` takes before its points);
    a purge deletes the row only once the batch has committed, then every point, the
    batch's too. (SQLite writes one transaction at a time and keeps the foreign key.)"""
    store = server_store
    experiment_id = store.create_experiment("race")
    run_id = _run_with_points(store, experiment_id)
    # Deleted while the batch was on its way: the batch read the run active before.
    store.delete_run(run_id)
    hot = store._hot
    purged = threading.Event()

    def purge_it() -> None:
        purge.purge_runs(store, [run_id])
        purged.set()

    with hot.transaction() as cursor:
        # What log_batch does, held open: the run's row locked, then points written.
        assert hot._lock_run_stage.execute(cursor, {"run_uuid": run_id}).fetchone() == ("deleted",)
        purger = threading.Thread(target=purge_it, daemon=True)
        purger.start()
        assert not purged.wait(1.0), "the purge did not wait for the batch writing to the run"
        hot.write_metrics(cursor, run_id, [Metric("late", 1.0, 5, 0)])
    purger.join(30)
    assert purged.is_set()
    assert _points(store, run_id) == 0
