"""Sampled history in the store: the rollup table kept by the write path, its backfill
migration, and both sampling paths (rollups, points), on every backend."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import insert, select

from tracking.entities import Metric
from tracking.store.sql.engine import create_tracking_engine
from tracking.store.sql.hotpath import encode_value
from tracking.store.sql.migrate import upgrade
from tracking.store.sql.models import (
    ROLLUP_BLOCK,
    ExperimentModel,
    LatestMetricModel,
    MetricModel,
    MetricRollupModel,
    RunModel,
    table_of,
)
from tracking.store.sql.store import SqlTrackingStore

_metrics = table_of(MetricModel)
_rollups = table_of(MetricRollupModel)


@pytest.fixture
def store(db_url: str, tmp_path: Any) -> Iterator[SqlTrackingStore]:
    store = SqlTrackingStore(db_url, str(tmp_path), auto_upgrade=True)
    yield store
    store.close()


def _log(store: SqlTrackingStore, run_id: str, points: list[Metric]) -> None:
    for i in range(0, len(points), 1000):
        store.log_batch(run_id, metrics=points[i : i + 1000])


def _expected_rollups(store: SqlTrackingStore, run_id: str) -> dict[tuple[str, int], Any]:
    """Each block's extreme values, computed from every stored point."""
    blocks: dict[tuple[str, int], list[float]] = {}
    rows = store.read(
        lambda c: c.execute(
            select(_metrics.c.key, _metrics.c.step, _metrics.c.value).where(
                _metrics.c.run_uuid == run_id
            )
        ).all()
    )
    for key, step, value in rows:
        found = blocks.setdefault((key, step // ROLLUP_BLOCK), [value, value])
        found[0], found[1] = min(found[0], value), max(found[1], value)
    return {k: tuple(v) for k, v in blocks.items()}


def _stored_rollups(store: SqlTrackingStore, run_id: str) -> dict[tuple[str, int], Any]:
    rows = store.read(
        lambda c: c.execute(
            select(
                _rollups.c.key,
                _rollups.c.block,
                _rollups.c.min_value,
                _rollups.c.max_value,
                _rollups.c.min_step,
                _rollups.c.max_step,
            ).where(_rollups.c.run_uuid == run_id)
        ).all()
    )
    for key, block, _low, _high, low_step, high_step in rows:
        assert low_step // ROLLUP_BLOCK == block == high_step // ROLLUP_BLOCK
        assert key
    return {(k, b): (low, high) for k, b, low, high, _, _ in rows}


class TestRollupsOnWrite:
    def test_batches_single_points_and_disorder(self, store: SqlTrackingStore) -> None:
        run_id = store.create_run("0", "u", 0, [], "r").info.run_id
        rng = random.Random(5)
        points = [Metric("a", rng.uniform(-5, 5), i, i) for i in range(3000)]
        rng.shuffle(points)  # steps arrive out of order
        _log(store, run_id, points)
        for i in range(0, 3000, 97):  # single writes widening some blocks, and no-ops
            store.log_metric(run_id, Metric("a", 10.0 + i, 1, i))
            store.log_metric(run_id, Metric("a", 0.0, 2, i))
        store.log_metric(run_id, Metric("b", -math.inf, 1, -300))  # negative step, -inf
        store.log_metric(run_id, Metric("b", math.nan, 2, -300))
        _log(store, run_id, points[:500])  # re-sent points change nothing
        assert _stored_rollups(store, run_id) == _expected_rollups(store, run_id)


class TestBackfill:
    def test_upgrade_from_0001_rolls_up_existing_points(self, db_url: str) -> None:
        engine = create_tracking_engine(db_url)
        try:
            upgrade(engine, "0001")
            with engine.begin() as conn:
                conn.execute(
                    insert(table_of(ExperimentModel)).values(
                        experiment_id=1,
                        name="e",
                        artifact_location="x",
                        lifecycle_stage="active",
                        creation_time=0,
                        last_update_time=0,
                    )
                )
                conn.execute(
                    insert(table_of(RunModel)).values(
                        run_uuid="r1",
                        name="r",
                        experiment_id=1,
                        user_id="u",
                        status="RUNNING",
                        start_time=0,
                        artifact_uri="x",
                        lifecycle_stage="active",
                    )
                )
                rng = random.Random(2)
                rows = []
                for i in range(2500):
                    value, special = encode_value(rng.gauss(0, 1) if i != 1700 else math.inf)
                    rows.append(
                        {
                            "run_uuid": "r1",
                            "key": "m",
                            "step": i,
                            "timestamp": i,
                            "value": value,
                            "special": special,
                        }
                    )
                conn.execute(insert(_metrics), rows)
                conn.execute(
                    insert(table_of(LatestMetricModel)).values(
                        run_uuid="r1", key="m", value=0.0, special=0, timestamp=1, step=2499
                    )
                )
            upgrade(engine)
        finally:
            engine.dispose()
        store = SqlTrackingStore(db_url, "/tmp/unused")
        try:
            assert _stored_rollups(store, "r1") == _expected_rollups(store, "r1")
            assert len(_stored_rollups(store, "r1")) == math.ceil(2500 / ROLLUP_BLOCK)
        finally:
            store.close()


class TestSampling:
    @pytest.mark.parametrize(
        ("steps", "max_points"),
        [
            pytest.param(40_000, 60, id="rollups"),  # 157 blocks >= 30 buckets
            pytest.param(5_000, 200, id="points"),  # 20 blocks < 100 buckets, short span
            pytest.param(300_000, 10_000, id="rollups-block-wise"),  # long span, few blocks
        ],
    )
    def test_extremes_kept_within_max_points(
        self, store: SqlTrackingStore, steps: int, max_points: int
    ) -> None:
        run_id = store.create_run("0", "u", 0, [], "r").info.run_id
        stride = max(1, steps // 5000)
        rng = random.Random(steps)
        points = [
            Metric("m", math.sin(s / 700) + rng.uniform(-0.1, 0.1), s, s)
            for s in range(0, steps, stride)
        ]
        spike, dip = len(points) // 3, 2 * len(points) // 3
        points[spike] = points[spike]._replace(value=40.0)
        points[dip] = points[dip]._replace(value=-40.0)
        _log(store, run_id, points)
        got = store.get_metric_history_sampled(run_id, "m", max_points)
        assert len(got) <= max_points
        assert len(got) >= min(len(points), max_points) // 4
        assert points[spike] in got
        assert points[dip] in got
        assert [p.step for p in got] == sorted(p.step for p in got)
        assert set(got) <= set(points)

    @pytest.mark.parametrize("same_step", [False, True], ids=["by-step", "by-time"])
    def test_points_path_picks_each_buckets_extremes(
        self, store: SqlTrackingStore, same_step: bool
    ) -> None:
        """The points path gives exactly each bucket's lowest and highest point, ties
        going to the lowest step, then the earliest time (as the docstring promises),
        whatever the backend's query looks like."""
        run_id = store.create_run("0", "u", 0, [], "r").info.run_id
        rng = random.Random(7)
        # Coarse values, so many points of a bucket tie for its lowest or highest.
        points = [
            Metric("m", float(rng.randint(0, 6)), 1_000 + s, 5 if same_step else s)
            for s in range(3_000)
        ]
        _log(store, run_id, points)
        max_points = 200
        got = store.get_metric_history_sampled(run_id, "m", max_points)

        dimension = (lambda p: p.timestamp) if same_step else (lambda p: p.step)
        lo, hi = min(map(dimension, points)), max(map(dimension, points))
        buckets = max_points // 2
        width = (hi - lo + 1) // buckets
        grouped: dict[int, list[Metric]] = {}
        for point in points:
            grouped.setdefault(min((dimension(point) - lo) // width, buckets - 1), []).append(point)
        expected = set()
        for members in grouped.values():
            expected.add(min(members, key=lambda p: (p.value, p.step, p.timestamp)))
            expected.add(min(members, key=lambda p: (-p.value, p.step, p.timestamp)))
        assert set(got) == expected
        assert len(got) == len(expected)
        assert got == sorted(got, key=lambda p: (p.step, p.timestamp, p.value))

    def test_bad_max_points(self, store: SqlTrackingStore) -> None:
        run_id = store.create_run("0", "u", 0, [], "r").info.run_id
        with pytest.raises(ValueError, match="max_points"):
            store.get_metric_history_sampled(run_id, "m", 1)
