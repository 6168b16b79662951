"""Metric reads for charts: a long series sampled down in the database, latest points.

:func:`sampled_history` returns at most ``max_points`` points of a series
whose shape survives: the series is cut into ``max_points // 2`` buckets
along its steps and each bucket gives its lowest and its highest point, so
spikes and dips are never lost.

Long series are read from ``metric_rollups``, which the write path keeps up
to date with each series' lowest and highest point per block of
:data:`~tracking.store.sql.models.ROLLUP_BLOCK` steps: a million points are
~4,000 rollup rows, grouped into buckets of whole blocks. A scan of every
point could not do it in time (one pass over a million points alone takes
~70 ms on SQLite, a min-and-max pass ~250 ms).

Series that span few blocks are sampled from the points themselves, in one
statement: a recursive CTE lists bucket bounds of equal width and, per
bucket, two correlated subqueries walk the primary-key range
``(run_uuid, key, step)`` for its lowest and highest point. The same is done
along the timestamps when every point has the same step. A series no longer
than ``max_points`` comes back whole from its first read.

The stored ``value`` orders the points: +inf and -inf are stored as the
largest and smallest doubles and so count as extremes, NaN is stored as 0.0.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Connection, Integer, case, func, literal, select

from tracking.entities import Metric
from tracking.errors import InvalidParameterError, RunNotFoundError
from tracking.store.sql.hotpath import decode_value
from tracking.store.sql.models import (
    ROLLUP_BLOCK,
    LatestMetricModel,
    MetricModel,
    MetricRollupModel,
    RunModel,
    table_of,
)

if TYPE_CHECKING:
    from tracking.store.sql.store import SqlTrackingStore

__all__ = ["MAX_SAMPLED_POINTS", "sampled_histories", "sampled_history"]

#: The largest ``max_points`` a sampled read accepts.
MAX_SAMPLED_POINTS = 100_000

_metrics = table_of(MetricModel)
_latest = table_of(LatestMetricModel)
_runs = table_of(RunModel)
_rollups = table_of(MetricRollupModel)
_IN_CHUNK = 500
#: A series spanning at most this many steps is sampled from its points, if
#: its blocks are fewer than the buckets asked for (finer than block-wise).
_RAW_SPAN_STEPS = 200_000
_Row = tuple[float, int, int, int]  # value, special, timestamp, step


def _points(key: str, rows: Sequence[Any]) -> list[Metric]:
    return [Metric(key, decode_value(v, sp), t, s) for v, sp, t, s in rows]


def _check_points(max_points: int) -> None:
    if (
        isinstance(max_points, bool)
        or not isinstance(max_points, int)
        or not (2 <= max_points <= MAX_SAMPLED_POINTS)
    ):
        raise InvalidParameterError(
            f"max_points must be an integer from 2 to {MAX_SAMPLED_POINTS}, got {max_points!r}"
        )


def _sampled_on(conn: Connection, run_id: str, key: str, max_points: int) -> list[Metric]:
    found = conn.execute(select(_runs.c.run_uuid).where(_runs.c.run_uuid == run_id)).first()
    if found is None:
        raise RunNotFoundError(f"Run {run_id!r} not found")
    series = (_metrics.c.run_uuid == run_id, _metrics.c.key == key)
    columns = (_metrics.c.value, _metrics.c.special, _metrics.c.timestamp, _metrics.c.step)
    head = conn.execute(
        select(*columns)
        .where(*series)
        .order_by(_metrics.c.step, _metrics.c.timestamp, _metrics.c.value)
        .limit(max_points + 1)
    ).all()
    if len(head) <= max_points:
        return _points(key, head)
    return _points(key, _sample(conn, run_id, key, series, max_points // 2))


def sampled_history(
    store: SqlTrackingStore, run_id: str, key: str, max_points: int
) -> list[Metric]:
    """At most ``max_points`` points of the series ``key`` of ``run_id``, by step.

    RunNotFoundError if the run does not exist; a run without that metric
    gives ``[]``. ``max_points`` must be between 2 and :data:`MAX_SAMPLED_POINTS`.
    """
    _check_points(max_points)
    return store.read(lambda conn: _sampled_on(conn, run_id, key, max_points))


def sampled_histories(
    store: SqlTrackingStore, run_ids: Sequence[str], key: str, max_points: int
) -> dict[str, list[Metric]]:
    """:func:`sampled_history` of the series ``key`` of several runs, in one read (a chart
    of many runs): ``{run_id: points}`` in the order given."""
    _check_points(max_points)

    def work(conn: Connection) -> dict[str, list[Metric]]:
        return {rid: _sampled_on(conn, rid, key, max_points) for rid in dict.fromkeys(run_ids)}

    return store.read(work)


def _sample(
    conn: Connection, run_id: str, key: str, series: tuple[Any, ...], buckets: int
) -> list[_Row]:
    """The lowest and highest point of each of (at most) ``buckets`` buckets."""
    step = _metrics.c.step
    # min() and max() of a primary-key column are two index seeks, not a scan.
    lo = conn.execute(select(func.min(step)).where(*series)).scalar_one()
    hi = conn.execute(select(func.max(step)).where(*series)).scalar_one()
    blocks = hi // ROLLUP_BLOCK - lo // ROLLUP_BLOCK + 1
    if blocks >= buckets or (blocks > 1 and hi - lo >= _RAW_SPAN_STEPS):
        return _from_rollups(conn, run_id, key, lo // ROLLUP_BLOCK, blocks, min(blocks, buckets))
    dimension = step
    if lo == hi:
        # Every point has the same step: spread the buckets over time instead.
        series = (*series, step == lo)
        dimension = _metrics.c.timestamp
        lo = conn.execute(select(func.min(dimension)).where(*series)).scalar_one()
        hi = conn.execute(select(func.max(dimension)).where(*series)).scalar_one()
    buckets = max(1, min(buckets, hi - lo + 1))
    width = (hi - lo + 1) // buckets  # >= 1; the last bucket takes the remainder
    # Bucket i holds lo + i*width .. lo + (i+1)*width - 1 (the last one up to hi).
    seed = select(literal(0, Integer).label("i"), literal(lo, BigInteger).label("lo"))
    bounds = seed.cte("bounds", recursive=True)
    bounds = bounds.union_all(
        select((bounds.c.i + 1).label("i"), (bounds.c.lo + width).label("lo")).where(
            bounds.c.i + 1 < buckets
        )
    )
    upper = case(
        (bounds.c.i == buckets - 1, literal(hi, BigInteger)), else_=bounds.c.lo + (width - 1)
    )
    in_bucket = (*series, dimension >= bounds.c.lo, dimension <= upper)
    lowest = (
        select(dimension)
        .where(*in_bucket)
        .order_by(_metrics.c.value, step, _metrics.c.timestamp)
        .limit(1)
    )
    highest = (
        select(dimension)
        .where(*in_bucket)
        .order_by(_metrics.c.value.desc(), step, _metrics.c.timestamp)
        .limit(1)
    )
    picks = conn.execute(
        select(bounds.c.lo, lowest.scalar_subquery(), highest.scalar_subquery()).order_by(
            bounds.c.lo
        )
    ).all()
    starts = [row[0] for row in picks]
    wanted = sorted({p for row in picks for p in row[1:] if p is not None})
    columns = (_metrics.c.value, _metrics.c.special, _metrics.c.timestamp, step)
    low: dict[int, _Row] = {}
    high: dict[int, _Row] = {}
    at = 2 if dimension is _metrics.c.timestamp else 3
    for i in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[i : i + _IN_CHUNK]
        for row in conn.execute(select(*columns).where(*series, dimension.in_(chunk))):
            point: _Row = (row[0], row[1], row[2], row[3])
            bucket = bisect.bisect_right(starts, point[at]) - 1
            # Several points may share a picked step: keep the extremes among them.
            best = low.get(bucket)
            if best is None or (point[0], point[3], point[2]) < (best[0], best[3], best[2]):
                low[bucket] = point
            best = high.get(bucket)
            if best is None or (-point[0], point[3], point[2]) < (-best[0], best[3], best[2]):
                high[bucket] = point
    chosen = set(low.values()) | set(high.values())
    return sorted(chosen, key=lambda p: (p[3], p[2], p[0]))


def _from_rollups(
    conn: Connection, run_id: str, key: str, first: int, blocks: int, buckets: int
) -> list[_Row]:
    """Extremes per bucket of whole blocks, from the series' rollup rows."""
    r = _rollups.c
    rows = conn.execute(
        select(
            r.block,
            r.min_value,
            r.min_special,
            r.min_timestamp,
            r.min_step,
            r.max_value,
            r.max_special,
            r.max_timestamp,
            r.max_step,
        )
        .where(r.run_uuid == run_id, r.key == key)
        .order_by(r.block)
    ).all()
    low: dict[int, _Row] = {}
    high: dict[int, _Row] = {}
    for block, *extremes in rows:
        bucket = (block - first) * buckets // blocks
        lowest: _Row = (extremes[0], extremes[1], extremes[2], extremes[3])
        highest: _Row = (extremes[4], extremes[5], extremes[6], extremes[7])
        best = low.get(bucket)
        if best is None or lowest[0] < best[0]:
            low[bucket] = lowest
        best = high.get(bucket)
        if best is None or highest[0] > best[0]:
            high[bucket] = highest
    chosen = set(low.values()) | set(high.values())
    return sorted(chosen, key=lambda p: (p[3], p[2], p[0]))
