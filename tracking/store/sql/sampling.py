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
statement: a recursive CTE lists bucket bounds of equal width, per bucket two
correlated subqueries walk the primary-key range ``(run_uuid, key, step)``
for the step of its lowest and of its highest point (on SQLite a ``min()`` /
``max()`` whose bare column gives the step, with no sort: 40% less time), and
a join fetches the points at those steps. The same is done along the
timestamps when every point has the same step. Whether a series is longer
than ``max_points`` is a bounded count in the database; a shorter one is read
whole.

The stored ``value`` orders the points: +inf and -inf are stored as the
largest and smallest doubles and so count as extremes, NaN is stored as 0.0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    ScalarSelect,
    and_,
    case,
    func,
    literal,
    select,
)

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
#: The most reads a sampled read of several runs runs side by side (bounded by the
#: cores too, and well below the smallest connection pool, 4 on SQLite).
_READERS = 2
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


def _sampled_on(
    conn: Connection, run_id: str, key: str, max_points: int, sqlite: bool
) -> list[Metric]:
    found = conn.execute(select(_runs.c.run_uuid).where(_runs.c.run_uuid == run_id)).first()
    if found is None:
        raise RunNotFoundError(f"Run {run_id!r} not found")
    series = (_metrics.c.run_uuid == run_id, _metrics.c.key == key)
    # Whether the series is longer than max_points: a count of at most max_points + 1
    # index entries in the database, not that many rows through Python.
    probe = select(literal(1)).where(*series).limit(max_points + 1).subquery()
    if conn.execute(select(func.count()).select_from(probe)).scalar_one() > max_points:
        return _points(key, _sample(conn, run_id, key, max_points // 2, sqlite))
    columns = (_metrics.c.value, _metrics.c.special, _metrics.c.timestamp, _metrics.c.step)
    head = conn.execute(
        select(*columns)
        .where(*series)
        .order_by(_metrics.c.step, _metrics.c.timestamp, _metrics.c.value)
    ).all()
    return _points(key, head)


def sampled_history(
    store: SqlTrackingStore, run_id: str, key: str, max_points: int
) -> list[Metric]:
    """At most ``max_points`` points of the series ``key`` of ``run_id``, by step.

    RunNotFoundError if the run does not exist; a run without that metric
    gives ``[]``. ``max_points`` must be between 2 and :data:`MAX_SAMPLED_POINTS`.
    """
    _check_points(max_points)
    sqlite = store.dialect == "sqlite"
    return store.read(lambda conn: _sampled_on(conn, run_id, key, max_points, sqlite))


def sampled_histories(
    store: SqlTrackingStore, run_ids: Sequence[str], key: str, max_points: int
) -> dict[str, list[Metric]]:
    """:func:`sampled_history` of the series ``key`` of several runs (a chart of many
    runs): ``{run_id: points}`` in the order given.

    The runs are shared out over up to :data:`_READERS` reads on connections of their
    own, run side by side: the database does most of the work and does it without
    Python's lock, so a chart of ten long series takes about half as long on two
    cores. Each read is its own transaction (a chart needs no single snapshot).
    """
    _check_points(max_points)
    sqlite = store.dialect == "sqlite"
    wanted = list(dict.fromkeys(run_ids))

    def work(share: list[str]) -> dict[str, list[Metric]]:
        return store.read(
            lambda conn: {rid: _sampled_on(conn, rid, key, max_points, sqlite) for rid in share}
        )

    readers = min(len(wanted), _READERS, os.cpu_count() or 1)
    if readers <= 1:
        return work(wanted)
    with ThreadPoolExecutor(readers, thread_name_prefix="trackflow-sampled-read") as pool:
        shares = list(pool.map(work, [wanted[i::readers] for i in range(readers)]))
    found = {rid: points for share in shares for rid, points in share.items()}
    return {rid: found[rid] for rid in wanted}


def _sample(conn: Connection, run_id: str, key: str, buckets: int, sqlite: bool) -> list[_Row]:
    """The lowest and highest point of each of (at most) ``buckets`` buckets."""
    series: tuple[Any, ...] = (_metrics.c.run_uuid == run_id, _metrics.c.key == key)
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
    value = _metrics.c.value
    if sqlite:
        # SQLite's min() and max() give the other columns of the row they pick (the
        # first such row in index order: lowest step, then timestamp), so each bucket's
        # extreme is one aggregate over its index range, with no sort.
        lowest = _bare_extreme(func.min(value), dimension, in_bucket, bounds)
        highest = _bare_extreme(func.max(value), dimension, in_bucket, bounds)
    else:
        lowest = (
            select(dimension)
            .where(*in_bucket)
            .order_by(value, step, _metrics.c.timestamp)
            .limit(1)
            .scalar_subquery()
        )
        highest = (
            select(dimension)
            .where(*in_bucket)
            .order_by(value.desc(), step, _metrics.c.timestamp)
            .limit(1)
            .scalar_subquery()
        )
    picks = select(bounds.c.lo.label("lo"), lowest.label("lowest"), highest.label("highest")).cte(
        "picks"
    )
    if conn.dialect.name == "postgresql":
        # PostgreSQL inlines a CTE used once: its two subqueries per bucket would run
        # again for every point of the series the join looks at (5,000 points in 200
        # buckets: 18 s, not 20 ms). Materialized, they run once per bucket.
        picks = picks.prefix_with("MATERIALIZED")
    # The points at the picked steps (or times), each with its bucket, in one statement.
    rows = conn.execute(
        select(picks.c.lo, value, _metrics.c.special, _metrics.c.timestamp, step).join_from(
            picks, _metrics, and_(*series, dimension.in_([picks.c.lowest, picks.c.highest]))
        )
    ).all()
    low: dict[int, _Row] = {}
    high: dict[int, _Row] = {}
    for bucket, *fields in rows:
        point: _Row = (fields[0], fields[1], fields[2], fields[3])
        # Several points may share a picked step: keep the extremes among them.
        best = low.get(bucket)
        if best is None or (point[0], point[3], point[2]) < (best[0], best[3], best[2]):
            low[bucket] = point
        best = high.get(bucket)
        if best is None or (-point[0], point[3], point[2]) < (-best[0], best[3], best[2]):
            high[bucket] = point
    chosen = set(low.values()) | set(high.values())
    return sorted(chosen, key=lambda p: (p[3], p[2], p[0]))


def _bare_extreme(
    extreme: Any, dimension: Any, in_bucket: tuple[Any, ...], bounds: Any
) -> ScalarSelect[Any]:
    """The ``dimension`` of the row SQLite's ``extreme`` (min or max of the value) picks in
    a bucket: a scalar subquery correlated to ``bounds``."""
    inner = select(extreme, dimension.label("picked")).where(*in_bucket).correlate(bounds)
    return select(inner.subquery().c.picked).scalar_subquery()


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
