"""The web UI's reads: run tables paged by key, run trees, column keys, experiment summaries.

A table page is found with a *keyset*: the cursor holds the sort value and the
run id of the last row shown, and the next page starts strictly after them
(``WHERE (key, run_uuid) < (?, ?)`` with ``ORDER BY key DESC, run_uuid DESC``).
Unlike ``OFFSET`` the cost of a page does not grow with its depth, and the
row-value comparison (not its expansion with ``OR``) lets the database walk the
sort key's index. Runs lacking the sort key (a metric they never logged, an
``end_time`` while running) come after the others, in a second phase of the
same walk ordered by run id.

Only the chosen params, metrics and tags are read, for the rows of the page.
Example::

    page = browse_runs(store, ["1"], sort=parse_sort("metrics.auc DESC"), limit=100,
                       columns=Columns(metrics=("auc",)))
    more = browse_runs(store, ["1"], sort=..., cursor=page.cursor, ...)
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    null,
    select,
    tuple_,
)

from tracking.entities import ModelVersion, Run, RunData, RunInfo, RunStatus, ViewType
from tracking.errors import InvalidParameterError, RunNotFoundError
from tracking.search import Entity, OrderBy, parse_run_filter, parse_run_order_by
from tracking.search.paging import pack_token, search_fingerprint, unpack_token
from tracking.store.sql.hotpath import RUN_COLUMNS, decode_value, run_info
from tracking.store.sql.models import (
    SPECIAL_NAN,
    LatestMetricModel,
    LineageModel,
    ParamModel,
    RunModel,
    TagModel,
)
from tracking.store.sql.search import RUN_ATTRIBUTE_COLUMNS, filter_runs
from tracking.store.sql.searching import experiment_ints
from tracking.store.sql.store import SqlTrackingStore

_DBL_MAX = sys.float_info.max

__all__ = [
    "CELL_CHARS",
    "COUNT_CAP",
    "MAX_HISTORY",
    "MAX_PAGE_ROWS",
    "MAX_STEPS",
    "MODEL_URI_PREFIX",
    "PIPELINE_ID_TAGS",
    "PIPELINE_TAGS",
    "STEP_MARKERS",
    "STEP_TAGS",
    "VALUE_KINDS",
    "VERSION_PAGE",
    "Columns",
    "ExperimentSummary",
    "PipelineSteps",
    "PipelineSummary",
    "RunPage",
    "RunRow",
    "StepRecord",
    "ValuePage",
    "VersionPage",
    "ancestors",
    "available_keys",
    "browse_runs",
    "compare_runs",
    "count_runs",
    "experiment_pipelines",
    "experiment_summaries",
    "is_pipeline_run",
    "latest_metrics",
    "logged_model_refs",
    "parse_sort",
    "pipeline_runs",
    "pipeline_steps",
    "run_names",
    "run_record",
    "run_tags",
    "run_values",
    "runs_with_prefix",
    "version_page",
]

#: The largest page :func:`browse_runs` returns.
MAX_PAGE_ROWS = 1000
#: Matching rows are counted up to this many (``total`` is ``COUNT_CAP + 1`` beyond).
COUNT_CAP = 10_000
#: Tags always read with a row: what the table shows for pipeline runs.
PIPELINE_TAGS = (
    "airflow.dag_id",
    "airflow.task_id",
    "airflow.map_index",
    "airflow.try_number",
    "prefect.flow_name",
    "prefect.task_run_name",
    "prefect.map_index",
    "mlflow.user",
)
#: How many of the latest runs the column chooser looks at for keys.
KEY_SAMPLE_RUNS = 1000
#: Param and tag values in a table row are read up to one past this many characters (the
#: table shows them cut): a page of 100 rows of 100 columns stays a few MB, not 60.
CELL_CHARS = 200
#: What :func:`run_values` pages through: params, tags (but ``mlflow.*``), system tags
#: (``mlflow.*``), latest metrics.
VALUE_KINDS = ("params", "tags", "system", "metrics")

_RUNS = RunModel.__table__
_METRICS = LatestMetricModel.__table__
_PARAMS = ParamModel.__table__
_TAGS = TagModel.__table__
_DEFAULT_SORT = OrderBy(Entity.ATTRIBUTE, "start_time", ascending=False)


@dataclass(frozen=True, slots=True)
class Columns:
    """The param, metric and tag keys a table shows (and so reads)."""

    params: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunRow:
    """One row of a run table. ``context`` rows do not match the filter: they are the
    ancestors shown so that a matching child stays under its parent; ``depth`` is the
    row's indent within its page."""

    run_id: str
    experiment_id: str
    name: str
    status: RunStatus
    user_id: str
    start_time: int | None
    end_time: int | None
    parent_run_id: str | None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    children: int = 0
    failed_children: int = 0
    context: bool = False
    depth: int = 0

    @property
    def duration_ms(self) -> int | None:
        """End minus start, or None while either is unknown."""
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time


@dataclass(frozen=True, slots=True)
class RunPage:
    """A page of rows; ``cursor`` continues after its last row (None: the last page).
    ``total`` counts the matching rows (up to :data:`COUNT_CAP`, then ``COUNT_CAP + 1``),
    on the first page only."""

    rows: list[RunRow]
    cursor: str | None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    """What the experiment list shows beside an experiment."""

    runs: int
    last_activity: int | None


def parse_sort(text: str | None) -> OrderBy:
    """One ``order_by`` item (``"metrics.auc DESC"``); empty gives ``start_time DESC``."""
    if not text or not text.strip():
        return _DEFAULT_SORT
    items = parse_run_order_by([text])
    return items[0]


def _fingerprint(
    experiment_ids: Sequence[str],
    filter_string: str,
    view: ViewType,
    sort: OrderBy,
    parent_run_id: str | None,
) -> str:
    """Which table a cursor belongs to: a cursor of another table is refused, not misread."""
    order = [f"{sort.entity.value}.{sort.key} {sort.ascending}", f"parent={parent_run_id}"]
    return search_fingerprint(experiment_ids, filter_string, int(view), order)


def _encode_cursor(phase: int, value: Any, run_id: str, fingerprint: str) -> str:
    return pack_token({"k": [phase, value, run_id]}, fingerprint)


def _decode_cursor(cursor: str, fingerprint: str) -> tuple[int, Any, str]:
    try:
        phase, value, run_id = unpack_token(cursor, fingerprint)["k"]
        if phase not in (0, 1) or not isinstance(run_id, str):
            raise ValueError(phase)
    except (KeyError, ValueError, TypeError):  # TokenError is a ValueError
        raise InvalidParameterError(
            f"Invalid cursor {cursor[:40]!r}: expected the cursor of a previous page of the "
            "same table"
        ) from None
    return phase, value, run_id


class _SortKey:
    """How one sort item joins, orders and pages; ``nullable`` keys have a second phase.

    ``shared`` is the filter's own join of the key, when every match has it: the
    order then walks that join, and there are no runs without the key to page.
    """

    def __init__(self, item: OrderBy, shared: Any = None) -> None:
        self.item = item
        self.table = None
        self.shared = shared is not None
        if item.entity is Entity.ATTRIBUTE:
            self.expr: ColumnElement[Any] = _RUNS.c[RUN_ATTRIBUTE_COLUMNS[item.key]]
            self.nullable = bool(self.expr.nullable)
        else:
            self.base = {Entity.METRIC: _METRICS, Entity.PARAM: _PARAMS, Entity.TAG: _TAGS}[
                item.entity
            ]
            self.table = shared if shared is not None else self.base.alias("sort_key")
            self.expr = self.table.c.value
            # A filter never matches NaN, so with a shared join every match has a value.
            self.nullable = shared is None

    def _has_key(self, table: Any) -> ColumnElement[bool]:
        on = and_(table.c.run_uuid == _RUNS.c.run_uuid, table.c.key == self.item.key)
        if self.item.entity is Entity.METRIC:
            on = and_(on, table.c.special != SPECIAL_NAN)  # NaN sorts with the missing
        return on

    def phase(self, query: Select[Any], phase: int, after: tuple[Any, str] | None) -> Select[Any]:
        """``query`` restricted to one phase, after the cursor, in order."""
        up = self.item.ascending
        rid = _RUNS.c.run_uuid
        if phase == 1:
            if self.table is not None:
                other = self.base.alias("sort_missing")
                query = query.where(~exists(select(1).where(self._has_key(other))))
            else:
                query = query.where(self.expr.is_(None))
            if after is not None:
                query = query.where(rid > after[1] if up else rid < after[1])
            return query.order_by(rid.asc() if up else rid.desc())
        if self.table is not None:
            if self.shared:
                if self.item.entity is Entity.METRIC:
                    query = query.where(self.table.c.special != SPECIAL_NAN)
            else:
                query = query.join(self.table, self._has_key(self.table))
        elif self.nullable:
            query = query.where(self.expr.is_not(None))
        if after is not None:
            row = tuple_(self.expr, rid)
            mark = tuple_(*after)
            query = query.where(row > mark if up else row < mark)
        elif self.item.entity is Entity.METRIC:
            # Always true (+/-inf are stored as +/-DBL_MAX), but a range on the value lets
            # the planner walk ix_latest_metrics_key_value in order and stop at the limit
            # rather than sort every run.
            query = query.where(self.expr >= -_DBL_MAX if up else self.expr <= _DBL_MAX)
        if up:
            return query.order_by(self.expr.asc(), rid.asc())
        return query.order_by(self.expr.desc(), rid.desc())


def _stages(view: ViewType) -> list[str]:
    return [s.value for s in view.stages]


def _scope(
    experiment_ids: Sequence[str],
    view: ViewType,
    filter_string: str,
    parent_run_id: str | None,
    dialect: str,
    sort: OrderBy = _DEFAULT_SORT,
) -> tuple[Select[Any], _SortKey]:
    """The rows of a table (nothing selected yet) and how to order them by ``sort``: the
    children of ``parent_run_id`` (the filter does not apply), else the runs matching the
    filter at any depth, else the top-level runs; of the experiments, in the view."""
    query = select().select_from(_RUNS)
    query = query.where(
        _RUNS.c.experiment_id.in_(experiment_ints(experiment_ids)) if experiment_ids else false(),
        _RUNS.c.lifecycle_stage.in_(_stages(view)),
    )
    if parent_run_id is not None:
        query = query.where(_RUNS.c.parent_run_uuid == parent_run_id)
        filter_string = ""
    elif not filter_string.strip():
        query = query.where(_RUNS.c.parent_run_uuid.is_(None))
    wanted = None if sort.entity is Entity.ATTRIBUTE else (sort.entity, sort.key)
    query, shared = filter_runs(
        query, parse_run_filter(filter_string), dialect=dialect, sort_key=wanted
    )
    return query, _SortKey(sort, shared)


def browse_runs(
    store: SqlTrackingStore,
    experiment_ids: Sequence[str],
    *,
    filter_string: str = "",
    sort: OrderBy | None = None,
    cursor: str | None = None,
    limit: int = 100,
    columns: Columns = Columns(),
    parent_run_id: str | None = None,
    view: ViewType = ViewType.ACTIVE_ONLY,
    count: bool = False,
) -> RunPage:
    """One page of a run table (with ``count``, the first page also counts the matches:
    see :func:`count_runs`).

    * ``parent_run_id``: the children of that run (a tree node being expanded).
    * no filter: the top-level runs, each with its counts of children and of
      failed children.
    * a filter: the matching runs at any depth; each is preceded by those of its
      ancestors not already in the page (``context`` rows), so a matching child
      is shown under its parent even when the parent does not match.
    """
    if not 1 <= limit <= MAX_PAGE_ROWS:
        raise InvalidParameterError(
            f"Invalid limit {limit}: a page holds 1 to {MAX_PAGE_ROWS} rows"
        )
    scope, key = _scope(
        experiment_ids, view, filter_string, parent_run_id, store.dialect, sort or _DEFAULT_SORT
    )
    text = filter_string if parent_run_id is None else ""
    fingerprint = _fingerprint(experiment_ids, text, view, key.item, parent_run_id)
    phase, after = 0, None
    if cursor:
        phase, value, rid = _decode_cursor(cursor, fingerprint)
        after = (value, rid)
    filtered = bool(filter_string.strip()) and parent_run_id is None

    def work(conn: Connection) -> RunPage:
        found: list[tuple[str, Any, int]] = []
        current, mark = phase, after
        while True:
            query = key.phase(
                scope.add_columns(_RUNS.c.run_uuid, key.expr if current == 0 else null()),
                current,
                mark,
            ).limit(limit + 1 - len(found))
            found += [(str(r[0]), r[1], current) for r in conn.execute(query)]
            if len(found) > limit or current == 1 or not key.nullable:
                break
            current, mark = 1, None
        next_cursor = None
        if len(found) > limit:
            found = found[:limit]
            last = found[-1]
            next_cursor = _encode_cursor(last[2], last[1], last[0], fingerprint)
        total = _count(conn, scope) if count and cursor is None else None
        run_ids = [f[0] for f in found]
        rows = _load_rows(conn, run_ids, columns)
        if filtered:
            rows = _with_ancestors(conn, rows, columns)
        return RunPage(rows, next_cursor, total)

    return store.read(work)


def _count(conn: Connection, scope: Select[Any]) -> int:
    # Counted up to one past the cap: on a broad filter the count costs more than a page.
    capped = scope.add_columns(literal(1)).limit(COUNT_CAP + 1).subquery()
    return int(conn.execute(select(func.count()).select_from(capped)).scalar_one())


def count_runs(
    store: SqlTrackingStore,
    experiment_ids: Sequence[str],
    *,
    filter_string: str = "",
    parent_run_id: str | None = None,
    view: ViewType = ViewType.ACTIVE_ONLY,
) -> int:
    """How many rows :func:`browse_runs` would page through with these arguments (the
    matches, or the top-level runs, or the children), up to :data:`COUNT_CAP`, then
    ``COUNT_CAP + 1``. The UI asks for it after the first rows are shown."""
    scope, _ = _scope(experiment_ids, view, filter_string, parent_run_id, store.dialect)
    return store.read(lambda conn: _count(conn, scope))


def _chunks(items: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _cell(value: Any) -> Any:
    """A value read up to one past :data:`CELL_CHARS` characters (so a cut one shows)."""
    return func.substr(value, 1, CELL_CHARS + 1)


def _load_rows(conn: Connection, run_ids: Sequence[str], columns: Columns) -> list[RunRow]:
    """The rows of ``run_ids``, in that order, with the chosen keys and child counts."""
    if not run_ids:
        return []
    base: dict[str, Any] = {}
    params: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    metrics: dict[str, dict[str, float]] = {r: {} for r in run_ids}
    tags: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    counts: dict[str, tuple[int, int]] = {}
    tag_keys = list(dict.fromkeys((*PIPELINE_TAGS, *columns.tags)))
    failed = case((_RUNS.c.status == RunStatus.FAILED.value, 1), else_=0)
    for chunk in _chunks(run_ids):
        for row in conn.execute(
            select(
                _RUNS.c.run_uuid,
                _RUNS.c.experiment_id,
                _RUNS.c.name,
                _RUNS.c.status,
                _RUNS.c.user_id,
                _RUNS.c.start_time,
                _RUNS.c.end_time,
                _RUNS.c.parent_run_uuid,
            ).where(_RUNS.c.run_uuid.in_(chunk))
        ):
            base[row[0]] = row
        if columns.params:
            for rid, k, v in conn.execute(
                select(_PARAMS.c.run_uuid, _PARAMS.c.key, _cell(_PARAMS.c.value)).where(
                    _PARAMS.c.run_uuid.in_(chunk), _PARAMS.c.key.in_(columns.params)
                )
            ):
                params[rid][k] = v
        if columns.metrics:
            for rid, k, v, special in conn.execute(
                select(
                    _METRICS.c.run_uuid, _METRICS.c.key, _METRICS.c.value, _METRICS.c.special
                ).where(_METRICS.c.run_uuid.in_(chunk), _METRICS.c.key.in_(columns.metrics))
            ):
                metrics[rid][k] = decode_value(v, special) if special else v
        for rid, k, v in conn.execute(
            select(_TAGS.c.run_uuid, _TAGS.c.key, _cell(_TAGS.c.value)).where(
                _TAGS.c.run_uuid.in_(chunk), _TAGS.c.key.in_(tag_keys)
            )
        ):
            tags[rid][k] = v
        for parent, n, n_failed in conn.execute(
            select(_RUNS.c.parent_run_uuid, func.count(), func.sum(failed))
            .where(_RUNS.c.parent_run_uuid.in_(chunk), _RUNS.c.lifecycle_stage == "active")
            .group_by(_RUNS.c.parent_run_uuid)
        ):
            counts[parent] = (int(n), int(n_failed or 0))
    rows = []
    for rid in run_ids:
        found = base.get(rid)
        if found is None:  # deleted between the two reads
            continue
        row = found
        n, n_failed = counts.get(rid, (0, 0))
        rows.append(
            RunRow(
                run_id=rid,
                experiment_id=str(row[1]),
                name=row[2],
                status=RunStatus(row[3]),
                user_id=row[4],
                start_time=row[5],
                end_time=row[6],
                parent_run_id=row[7],
                params=params[rid],
                metrics=metrics[rid],
                tags=tags[rid],
                children=n,
                failed_children=n_failed,
            )
        )
    return rows


def _with_ancestors(conn: Connection, rows: list[RunRow], columns: Columns) -> list[RunRow]:
    """The page as a forest: each matching row under its ancestors (context rows added
    for those not matching), trees in the order of their first matching row."""
    by_id: dict[str, RunRow] = {r.run_id: r for r in rows}
    wanted = {r.parent_run_id for r in rows if r.parent_run_id} - by_id.keys()
    # Every ancestor at any depth, in one query; then their rows in chunks.
    found = set(_lineage(conn, sorted(wanted))) - by_id.keys() if wanted else set()
    context: set[str] = set()
    for r in _load_rows(conn, sorted(found), columns):
        by_id[r.run_id] = r
        context.add(r.run_id)
    children: dict[str | None, list[str]] = {}
    roots: list[str] = []
    order = [r.run_id for r in rows]
    seen: set[str] = set()
    for rid in order:  # walk up from each match; the first match decides a tree's place
        chain = [rid]
        while (parent := by_id[chain[-1]].parent_run_id) in by_id and parent not in chain:
            chain.append(parent)
        for child, parent in itertools.pairwise(chain):
            if child not in seen:
                children.setdefault(parent, []).append(child)
                seen.add(child)
        if chain[-1] not in seen:
            roots.append(chain[-1])
            seen.add(chain[-1])
    out: list[RunRow] = []
    # Depth first, without recursion: a tree may be thousands of levels deep.
    stack = [(root, 0) for root in reversed(roots)]
    while stack:
        rid, depth = stack.pop()
        out.append(replace(by_id[rid], context=rid in context, depth=depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(rid, [])))
    return out


def _lineage(conn: Connection, run_ids: Sequence[str]) -> dict[str, str | None]:
    """``run_id -> parent_run_id`` of ``run_ids`` and all their ancestors, at any depth:
    one recursive query (UNION, not UNION ALL, so a corrupt parent cycle ends)."""
    found: dict[str, str | None] = {}
    for chunk in _chunks(run_ids):
        seed = select(_RUNS.c.run_uuid, _RUNS.c.parent_run_uuid).where(_RUNS.c.run_uuid.in_(chunk))
        tree = seed.cte("ancestry", recursive=True)
        parent = _RUNS.alias("parent_run")
        tree = tree.union(
            select(parent.c.run_uuid, parent.c.parent_run_uuid).join(
                tree, parent.c.run_uuid == tree.c.parent_run_uuid
            )
        )
        for rid, parent_id in conn.execute(select(tree.c.run_uuid, tree.c.parent_run_uuid)):
            found[str(rid)] = parent_id
    return found


def available_keys(store: SqlTrackingStore, experiment_ids: Sequence[str]) -> dict[str, list[str]]:
    """The param, metric and tag keys of the experiments' latest runs (at most
    :data:`KEY_SAMPLE_RUNS` of them), sorted: what the column chooser offers."""
    ids = experiment_ints(experiment_ids)

    def work(conn: Connection) -> dict[str, list[str]]:
        latest = (
            select(_RUNS.c.run_uuid)
            .where(
                _RUNS.c.experiment_id.in_(ids) if ids else false(),
                _RUNS.c.lifecycle_stage == "active",
            )
            .order_by(_RUNS.c.start_time.desc())
            .limit(KEY_SAMPLE_RUNS)
        )
        run_ids = [str(r) for r in conn.execute(latest).scalars()]
        keys: dict[str, set[str]] = {"params": set(), "metrics": set(), "tags": set()}
        for name, table in (("params", _PARAMS), ("metrics", _METRICS), ("tags", _TAGS)):
            for chunk in _chunks(run_ids):
                keys[name].update(
                    conn.execute(
                        select(table.c.key).where(table.c.run_uuid.in_(chunk)).distinct()
                    ).scalars()
                )
        return {name: sorted(found) for name, found in keys.items()}

    return store.read(work)


def experiment_summaries(
    store: SqlTrackingStore, experiment_ids: Sequence[str]
) -> dict[str, ExperimentSummary]:
    """Active run counts and the latest run start of each experiment."""
    ids = experiment_ints(experiment_ids)
    if not ids:
        return {}

    def work(conn: Connection) -> dict[str, ExperimentSummary]:
        query = (
            select(_RUNS.c.experiment_id, func.count(), func.max(_RUNS.c.start_time))
            .where(_RUNS.c.experiment_id.in_(ids), _RUNS.c.lifecycle_stage == "active")
            .group_by(_RUNS.c.experiment_id)
        )
        return {
            str(eid): ExperimentSummary(int(n), latest) for eid, n, latest in conn.execute(query)
        }

    return store.read(work)


def run_names(store: SqlTrackingStore, run_ids: Sequence[str]) -> dict[str, str]:
    """The names of the runs that exist among ``run_ids`` (lineage links show them)."""
    wanted = sorted(set(run_ids))

    def work(conn: Connection) -> dict[str, str]:
        names: dict[str, str] = {}
        for chunk in _chunks(wanted):
            query = select(_RUNS.c.run_uuid, _RUNS.c.name).where(_RUNS.c.run_uuid.in_(chunk))
            names.update((str(rid), name) for rid, name in conn.execute(query))
        return names

    return store.read(work) if wanted else {}


def ancestors(store: SqlTrackingStore, run_id: str) -> list[tuple[str, str, str]]:
    """``(run_id, experiment_id, name)`` of a run's ancestors, the root first, at any
    depth (a corrupt parent cycle ends where it repeats)."""

    def work(conn: Connection) -> list[tuple[str, str, str]]:
        parents = _lineage(conn, [run_id])
        chain: list[str] = []
        seen = {run_id}
        current = parents.get(run_id)
        while current is not None and current in parents and current not in seen:
            seen.add(current)
            chain.append(current)
            current = parents[current]
        names: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(chain):
            query = select(_RUNS.c.run_uuid, _RUNS.c.experiment_id, _RUNS.c.name).where(
                _RUNS.c.run_uuid.in_(chunk)
            )
            names.update((str(r), (str(e), n)) for r, e, n in conn.execute(query))
        return [(r, *names[r]) for r in reversed(chain) if r in names]

    return store.read(work)


def run_record(store: SqlTrackingStore, run_id: str) -> Run:
    """A run with its info alone (no params, metrics or tags): what a page needs to place a
    run and find its artifacts, read without its data, however much of it there is."""

    def work(conn: Connection) -> RunInfo | None:
        row = conn.execute(select(*RUN_COLUMNS).where(_RUNS.c.run_uuid == run_id)).first()
        return run_info(row) if row is not None else None

    info = store.read(work)
    if info is None:
        raise RunNotFoundError(f"Run {run_id!r} not found")
    return Run(info, RunData())


def run_tags(store: SqlTrackingStore, run_id: str, keys: Sequence[str]) -> dict[str, str]:
    """The run's tags among ``keys`` (the ones a page always shows, whatever else it has)."""

    def work(conn: Connection) -> dict[str, str]:
        query = select(_TAGS.c.key, _TAGS.c.value).where(
            _TAGS.c.run_uuid == run_id, _TAGS.c.key.in_(list(keys))
        )
        return {k: v for k, v in conn.execute(query)}

    return store.read(work) if keys else {}


@dataclass(frozen=True, slots=True)
class ValuePage:
    """A page of one kind of a run's values, by key: ``items`` are ``(key, value)``, or
    ``(key, value, step)`` for metrics; ``after`` continues after the last key (None: the
    last page); ``total`` counts them all (first page only)."""

    items: list[tuple[Any, ...]]
    after: str | None
    total: int | None = None


def _value_query(kind: str, run_id: str) -> Select[Any]:
    if kind == "metrics":
        return select(_METRICS.c.key, _METRICS.c.value, _METRICS.c.special, _METRICS.c.step).where(
            _METRICS.c.run_uuid == run_id
        )
    if kind == "params":
        return select(_PARAMS.c.key, _PARAMS.c.value).where(_PARAMS.c.run_uuid == run_id)
    system = _TAGS.c.key.startswith("mlflow.", autoescape=True)
    return select(_TAGS.c.key, _TAGS.c.value).where(
        _TAGS.c.run_uuid == run_id, system if kind == "system" else ~system
    )


def run_values(
    store: SqlTrackingStore,
    run_id: str,
    kind: str,
    *,
    after: str | None = None,
    limit: int = 100,
    count: bool = False,
) -> ValuePage:
    """One page of a run's params, tags, system tags or latest metrics (``kind``, see
    :data:`VALUE_KINDS`), in key order, after the key ``after``. A run may hold tens of
    thousands of values of thousands of characters: a page holds ``limit`` of them."""
    if kind not in VALUE_KINDS:
        raise InvalidParameterError(
            f"Invalid kind {kind!r}: expected one of {', '.join(VALUE_KINDS)}"
        )
    if not 1 <= limit <= MAX_PAGE_ROWS:
        raise InvalidParameterError(f"Invalid limit {limit}: 1 to {MAX_PAGE_ROWS}")

    def work(conn: Connection) -> ValuePage:
        query = _value_query(kind, run_id)
        key = query.selected_columns[0]
        total = None
        if count:
            counted = query.with_only_columns(func.count()).order_by(None)
            total = int(conn.execute(counted).scalar_one())
        if after is not None:
            query = query.where(key > after)
        rows = [tuple(r) for r in conn.execute(query.order_by(key).limit(limit + 1))]
        if kind == "metrics":
            rows = [(k, decode_value(v, sp) if sp else v, step) for k, v, sp, step in rows]
        more = len(rows) > limit
        rows = rows[:limit]
        return ValuePage(rows, str(rows[-1][0]) if more else None, total)

    return store.read(work)


def compare_runs(store: SqlTrackingStore, run_ids: Sequence[str], max_keys: int) -> list[Run]:
    """The runs to compare, with their params (values cut to :data:`CELL_CHARS` + 1) and
    latest metric values, of the first ``max_keys`` param and metric keys; no tags.
    Missing runs are left out; raises nothing for them."""

    def work(conn: Connection) -> list[Run]:
        infos = {}
        for chunk in _chunks(run_ids):
            for row in conn.execute(select(*RUN_COLUMNS).where(_RUNS.c.run_uuid.in_(chunk))):
                infos[str(row[0])] = run_info(row)
        ids = [r for r in run_ids if r in infos]
        params: dict[str, dict[str, str]] = {r: {} for r in ids}
        metrics: dict[str, dict[str, float]] = {r: {} for r in ids}
        if ids:
            for table, into in ((_PARAMS, params), (_METRICS, metrics)):
                keys = list(
                    conn.execute(
                        select(table.c.key)
                        .where(table.c.run_uuid.in_(ids))
                        .distinct()
                        .order_by(table.c.key)
                        .limit(max_keys)
                    ).scalars()
                )
                if not keys:
                    continue
                value = _cell(table.c.value) if table is _PARAMS else table.c.value
                columns = [table.c.run_uuid, table.c.key, value]
                if table is _METRICS:
                    columns.append(table.c.special)
                query = select(*columns).where(table.c.run_uuid.in_(ids), table.c.key.in_(keys))
                for row in conn.execute(query):
                    got = row[2]
                    if table is _METRICS and row[3]:
                        got = decode_value(got, row[3])
                    into[row[0]][row[1]] = got
        return [Run(infos[r], RunData(params=params[r], metrics=metrics[r])) for r in ids]

    return store.read(work)


# -- pipelines: a pipeline run's steps and their lineage, a pipeline's runs -------------

#: The tags of a pipeline run's steps that the pipeline view reads.
STEP_TAGS = (
    "airflow.task_id",
    "airflow.map_index",
    "airflow.try_number",
    "prefect.task_run_id",
    "prefect.task_run_name",
    "prefect.map_index",
    "prefect.run_count",
    "prefect.flow_run_id",
    "trackflow.orchestrator",
    "trackflow.attempts",
    "trackflow.attempt",
    "trackflow.failureReason",
    "trackflow.champion",
    "trackflow.dethronedBy",
    "airflow.logical_date",
)
#: Tags a step of a pipeline carries (Airflow's task instances, Prefect's task runs,
#: any :class:`~tracking.pipelines.PipelineTracker` step): a parent with such children
#: gets the pipeline view.
STEP_MARKERS = ("airflow.task_id", "prefect.task_run_id", "trackflow.attempts")
#: The tags that name a pipeline on its runs, by orchestrator.
PIPELINE_ID_TAGS = {"airflow": "airflow.dag_id", "prefect": "prefect.flow_name"}
_ORCHESTRATOR_TAG = "trackflow.orchestrator"
#: The most steps the pipeline view reads of one pipeline run.
MAX_STEPS = 2000
#: The most pipeline runs a pipeline's history reads.
MAX_HISTORY = 1000


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step (child run) of a pipeline run, with the tags of :data:`STEP_TAGS`."""

    run_id: str
    name: str
    status: RunStatus
    start_time: int | None
    end_time: int | None
    tags: dict[str, str]
    children: int = 0


@dataclass(frozen=True, slots=True)
class PipelineSteps:
    """A pipeline run's steps (start order, at most :data:`MAX_STEPS`; ``total`` counts
    them all) and the lineage edges between them: ``(producer, consumer, artifact_path)``.
    ``external`` counts the edges with one end outside these steps."""

    steps: list[StepRecord]
    edges: list[tuple[str, str, str]]
    total: int
    external: int = 0


def _tags_of(
    conn: Connection, run_ids: Sequence[str], keys: Sequence[str]
) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    for chunk in _chunks(run_ids):
        query = select(_TAGS.c.run_uuid, _TAGS.c.key, _TAGS.c.value).where(
            _TAGS.c.run_uuid.in_(chunk), _TAGS.c.key.in_(list(keys))
        )
        for rid, k, v in conn.execute(query):
            found[str(rid)][k] = v
    return found


def _step_records(conn: Connection, parent_ids: Sequence[str], limit: int) -> list[StepRecord]:
    """The active children of ``parent_ids``, oldest start first, with their step tags."""
    rows = []
    for chunk in _chunks(parent_ids):
        query = (
            select(
                _RUNS.c.run_uuid,
                _RUNS.c.name,
                _RUNS.c.status,
                _RUNS.c.start_time,
                _RUNS.c.end_time,
                _RUNS.c.parent_run_uuid,
            )
            .where(_RUNS.c.parent_run_uuid.in_(chunk), _RUNS.c.lifecycle_stage == "active")
            .order_by(_RUNS.c.start_time, _RUNS.c.run_uuid)
            .limit(limit)
        )
        rows += list(conn.execute(query))
    rows.sort(key=lambda r: (r[3] or 0, str(r[0])))
    rows = rows[:limit]
    ids = [str(r[0]) for r in rows]
    tags = _tags_of(conn, ids, STEP_TAGS)
    counts: dict[str, int] = {}
    for chunk in _chunks(ids):
        counted = (
            select(_RUNS.c.parent_run_uuid, func.count())
            .where(_RUNS.c.parent_run_uuid.in_(chunk), _RUNS.c.lifecycle_stage == "active")
            .group_by(_RUNS.c.parent_run_uuid)
        )
        for parent, n in conn.execute(counted):
            counts[str(parent)] = int(n)
    return [
        StepRecord(
            run_id=str(r[0]),
            name=r[1] or str(r[0]),
            status=RunStatus(r[2]),
            start_time=r[3],
            end_time=r[4],
            tags={**tags[str(r[0])], "_parent": str(r[5])},
            children=counts.get(str(r[0]), 0),
        )
        for r in rows
    ]


def is_pipeline_run(store: SqlTrackingStore, run_id: str) -> bool:
    """Whether ``run_id`` is a pipeline run: tagged with its orchestrator, or the parent
    of a child carrying a step's tags (:data:`STEP_MARKERS`). Two indexed reads."""

    def work(conn: Connection) -> bool:
        own = conn.execute(
            select(_TAGS.c.key).where(_TAGS.c.run_uuid == run_id, _TAGS.c.key == _ORCHESTRATOR_TAG)
        ).first()
        if own is not None:
            return True
        child = _RUNS.alias("child")
        marked = select(child.c.run_uuid).where(
            child.c.parent_run_uuid == run_id,
            exists().where(_TAGS.c.run_uuid == child.c.run_uuid, _TAGS.c.key.in_(STEP_MARKERS)),
        )
        return conn.execute(marked.limit(1)).first() is not None

    return store.read(work)


def pipeline_steps(store: SqlTrackingStore, run_id: str, limit: int = MAX_STEPS) -> PipelineSteps:
    """The steps of the pipeline run ``run_id`` (its active children) and the lineage
    edges among them."""

    def work(conn: Connection) -> PipelineSteps:
        total = int(
            conn.execute(
                select(func.count()).where(
                    _RUNS.c.parent_run_uuid == run_id, _RUNS.c.lifecycle_stage == "active"
                )
            ).scalar_one()
        )
        steps = _step_records(conn, [run_id], limit)
        ids = {s.run_id for s in steps}
        lineage = LineageModel.__table__
        edges: set[tuple[str, str, str]] = set()
        external = 0
        for chunk in _chunks(sorted(ids)):
            for column in (lineage.c.consumer_run_uuid, lineage.c.producer_run_uuid):
                query = select(
                    lineage.c.producer_run_uuid,
                    lineage.c.consumer_run_uuid,
                    lineage.c.artifact_path,
                ).where(column.in_(chunk))
                for producer, consumer, path in conn.execute(query):
                    edge = (str(producer), str(consumer), str(path))
                    if edge[0] in ids and edge[1] in ids:
                        edges.add(edge)
                    elif edge not in edges:
                        external += 1
        return PipelineSteps(steps, sorted(edges), total, external)

    return store.read(work)


@dataclass(frozen=True, slots=True)
class PipelineSummary:
    """A pipeline of an experiment: its orchestrator, id and number of runs."""

    orchestrator: str
    pipeline_id: str
    runs: int


def experiment_pipelines(store: SqlTrackingStore, experiment_id: str) -> list[PipelineSummary]:
    """The pipelines whose runs an experiment holds (runs tagged with an orchestrator)."""
    ids = experiment_ints([experiment_id])
    if not ids:
        return []

    def work(conn: Connection) -> list[PipelineSummary]:
        orchestrator = _TAGS.alias("orchestrator")
        name = _TAGS.alias("name")
        query = (
            select(orchestrator.c.value, name.c.value, func.count())
            .select_from(_RUNS)
            .join(orchestrator, orchestrator.c.run_uuid == _RUNS.c.run_uuid)
            .join(name, name.c.run_uuid == _RUNS.c.run_uuid)
            .where(
                _RUNS.c.experiment_id.in_(ids),
                _RUNS.c.lifecycle_stage == "active",
                orchestrator.c.key == _ORCHESTRATOR_TAG,
                name.c.key.in_(list(PIPELINE_ID_TAGS.values())),
            )
            .group_by(orchestrator.c.value, name.c.value)
        )
        found = [
            PipelineSummary(str(o), str(n), int(c))
            for o, n, c in conn.execute(query)
            if PIPELINE_ID_TAGS.get(str(o)) is not None
        ]
        return sorted(found, key=lambda p: (p.orchestrator, p.pipeline_id))

    return store.read(work)


def pipeline_runs(
    store: SqlTrackingStore,
    experiment_id: str,
    orchestrator: str,
    pipeline_id: str,
    *,
    limit: int = MAX_HISTORY,
) -> tuple[list[StepRecord], dict[str, list[StepRecord]]]:
    """The runs of one pipeline (``orchestrator``, ``pipeline_id``: a ``dag_id``, a flow's
    name) in an experiment, newest first, and the steps of each (by its run id)."""
    key = PIPELINE_ID_TAGS.get(orchestrator)
    if key is None:
        raise InvalidParameterError(
            f"Invalid orchestrator {orchestrator!r}: expected one of "
            f"{', '.join(sorted(PIPELINE_ID_TAGS))}"
        )
    ids = experiment_ints([experiment_id])

    def work(conn: Connection) -> tuple[list[StepRecord], dict[str, list[StepRecord]]]:
        orch = _TAGS.alias("orchestrator")
        name = _TAGS.alias("name")
        query = (
            select(
                _RUNS.c.run_uuid,
                _RUNS.c.name,
                _RUNS.c.status,
                _RUNS.c.start_time,
                _RUNS.c.end_time,
            )
            .join(orch, orch.c.run_uuid == _RUNS.c.run_uuid)
            .join(name, name.c.run_uuid == _RUNS.c.run_uuid)
            .where(
                _RUNS.c.experiment_id.in_(ids) if ids else false(),
                _RUNS.c.lifecycle_stage == "active",
                orch.c.key == _ORCHESTRATOR_TAG,
                orch.c.value == orchestrator,
                name.c.key == key,
                name.c.value == pipeline_id,
            )
            .order_by(_RUNS.c.start_time.desc(), _RUNS.c.run_uuid)
            .limit(limit)
        )
        rows = list(conn.execute(query))
        run_ids = [str(r[0]) for r in rows]
        own = _tags_of(conn, run_ids, STEP_TAGS)
        runs = [
            StepRecord(str(r[0]), r[1] or str(r[0]), RunStatus(r[2]), r[3], r[4], own[str(r[0])])
            for r in rows
        ]
        steps: dict[str, list[StepRecord]] = {r: [] for r in run_ids}
        for step in _step_records(conn, run_ids, limit * 200):
            steps[step.tags["_parent"]].append(step)
        return runs, steps

    return store.read(work)


def latest_metrics(store: SqlTrackingStore, run_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """Every latest metric value of ``run_ids``, by run id then key."""

    def work(conn: Connection) -> dict[str, dict[str, float]]:
        found: dict[str, dict[str, float]] = {}
        for chunk in _chunks(run_ids):
            query = select(
                _METRICS.c.run_uuid, _METRICS.c.key, _METRICS.c.value, _METRICS.c.special
            ).where(_METRICS.c.run_uuid.in_(chunk))
            for rid, k, value, special in conn.execute(query):
                got = decode_value(value, special) if special else value
                found.setdefault(str(rid), {})[k] = got
        return found

    return store.read(work) if run_ids else {}


def runs_with_prefix(store: SqlTrackingStore, prefix: str, limit: int = 5) -> list[str]:
    """The ids of the runs (any lifecycle stage) whose id starts with ``prefix``, at most
    ``limit`` of them: what a short id the user typed may mean."""
    if not prefix:
        raise InvalidParameterError("Invalid run id prefix '': expected a few characters")

    def work(conn: Connection) -> list[str]:
        query = (
            select(_RUNS.c.run_uuid)
            .where(_RUNS.c.run_uuid.startswith(prefix, autoescape=True))
            .order_by(_RUNS.c.run_uuid)
            .limit(limit)
        )
        return [str(r) for r in conn.execute(query).scalars()]

    return store.read(work)


# -- models: lineage edges that hand a logged model on, a registered model's versions ----

#: How a lineage edge names a logged model handed between runs: ``models:/<model_id>``.
MODEL_URI_PREFIX = "models:/"
#: Versions per page of a registered model's page.
VERSION_PAGE = 100


def logged_model_refs(store: SqlTrackingStore, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``models:/<model_id>`` lineage paths -> ``(experiment_id, model name)`` of the
    logged models among them that exist (other paths are left out): one query."""
    from tracking.store.sql.models import LoggedModelModel

    models = LoggedModelModel.__table__
    ids = {p[len(MODEL_URI_PREFIX) :]: p for p in paths if p.startswith(MODEL_URI_PREFIX)}
    if not ids:
        return {}

    def work(conn: Connection) -> dict[str, tuple[str, str]]:
        found: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(sorted(ids)):
            for model_id, experiment_id, name in conn.execute(
                select(models.c.model_id, models.c.experiment_id, models.c.name).where(
                    models.c.model_id.in_(chunk)
                )
            ):
                found[ids[model_id]] = (str(experiment_id), name or model_id)
        return found

    return store.read(work)


@dataclass(frozen=True)
class VersionPage:
    """A page of a registered model's versions, newest first; ``before`` is the version
    number the next page starts below (None on the last page)."""

    versions: list[ModelVersion]
    before: int | None
    total: int


def version_page(
    store: SqlTrackingStore, name: str, before: int | None = None, limit: int = VERSION_PAGE
) -> VersionPage:
    """The versions of registered model ``name`` below version ``before`` (all when None),
    newest first, at most ``limit`` (with their tags and aliases), and how many it has:
    one read, whatever the number of versions."""
    from tracking.store.sql.models import ModelVersionModel

    mv = ModelVersionModel.__table__

    def work(conn: Connection) -> VersionPage:
        query = select(mv.c.version).where(mv.c.name == name)
        if before is not None:
            query = query.where(mv.c.version < before)
        numbers = list(conn.execute(query.order_by(mv.c.version.desc()).limit(limit + 1)).scalars())
        total = conn.execute(
            select(func.count()).select_from(mv).where(mv.c.name == name)
        ).scalar_one()
        shown = numbers[:limit]
        # The model store's own loader (tags and aliases included), for this page only.
        loaded = store._load_versions(conn, and_(mv.c.name == name, mv.c.version.in_(shown)))
        loaded.sort(key=lambda v: -int(v.version))
        return VersionPage(loaded, shown[-1] if len(numbers) > limit else None, int(total))

    return store.read(work)
