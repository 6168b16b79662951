"""Compile search syntax trees (:mod:`tracking.search`) into SQLAlchemy selects.

Filtering, ordering and paging all happen in SQL. The store parses, calls
:func:`select_runs` / :func:`select_experiments` with its dialect name, runs
the select and loads what it needs for the ids that come back::

    tree = parse_run_filter("metrics.acc > 0.5 and params.opt = 'adam'")
    order = parse_run_order_by(["metrics.acc DESC"])
    query = select_runs([1], tree, ["active"], order, offset=0, limit=101,
                        dialect=engine.dialect.name)
    run_ids = conn.execute(query).scalars().all()

How it compiles, and why:

* Each distinct ``(entity, key)`` the filter or the order mentions is joined
  once, as an aliased ``latest_metrics``/``params``/``tags`` table on
  ``(run_uuid, key)``, and that one alias serves both the filter and the order.
  A key that every matching run must have (it appears in a top-level
  ``AND`` conjunct, or in every branch of an ``OR``) is INNER JOINed, which
  lets the planner start from the key's index; the others are LEFT OUTER
  JOINed. A run lacking a key never matches a comparison on it, ``!=`` and
  ``NOT IN`` included (SQL's NULL semantics, as in MLflow).
* Metric comparisons never match NaN points (``special != 1``), ``!=``
  included. +/-inf are stored as +/-DBL_MAX, which compares correctly with
  every finite number; a comparison with +/-inf or +/-DBL_MAX itself is
  compiled exactly from ``special``.
* Ordering puts runs lacking the key (and NaN metrics) last in both
  directions on every dialect. On SQLite a DESC order is emitted as a plain
  ``DESC`` (NULLs already sort last) so that ``ix_latest_metrics_key_value``
  can drive the scan when the key is filtered too; NaN cannot reach the
  order then, since the filter excludes it. Unfiltered metric orders sort
  ``CASE WHEN special = 1 THEN NULL ELSE value END``: NaN goes with the NULLs.
  Every order ends with the tie-break ``start_time DESC, run_uuid ASC``
  (experiments: ``experiment_id ASC``), so paging by offset is stable.
* ``LIKE`` is case-sensitive and ``ILIKE`` case-insensitive everywhere.
  Backslash escapes ``%``, ``_`` and itself in both (PostgreSQL's and
  MySQL's default, made explicit). SQLite's LIKE ignores ASCII case, so on
  SQLite ``LIKE`` compiles to the equivalent ``GLOB`` pattern, which is
  case-sensitive; its ``ILIKE`` (``lower(x) LIKE lower(p)``) folds ASCII only.
  MySQL tables use ``utf8mb4_bin``, so its LIKE is already case-sensitive.
"""

from __future__ import annotations

import math
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    case,
    false,
    null,
    or_,
    select,
)
from sqlalchemy.sql.elements import UnaryExpression

from tracking.search.ast import And, Comparison, Entity, Filter, Op, Or, OrderBy
from tracking.store.sql.models import (
    SPECIAL_FINITE,
    SPECIAL_NAN,
    SPECIAL_NEG_INF,
    SPECIAL_POS_INF,
    ExperimentModel,
    ExperimentTagModel,
    LatestMetricModel,
    ParamModel,
    RunModel,
    TagModel,
)

__all__ = [
    "RUN_ATTRIBUTE_COLUMNS",
    "filter_runs",
    "like_to_glob",
    "select_experiments",
    "select_runs",
]

_DBL_MAX = sys.float_info.max
_SQLITE_NULLS_LAST = sqlite3.sqlite_version_info >= (3, 30, 0)

_RUNS = RunModel.__table__
_EXPERIMENTS = ExperimentModel.__table__

#: The ``attributes.<name>`` of run searches and the ``runs`` columns they compare.
RUN_ATTRIBUTE_COLUMNS: Mapping[str, str] = {
    "run_id": "run_uuid",
    "run_name": "name",
    "status": "status",
    "user_id": "user_id",
    "artifact_uri": "artifact_uri",
    "lifecycle_stage": "lifecycle_stage",
    "start_time": "start_time",
    "end_time": "end_time",
}
_EXPERIMENT_ATTRIBUTES: Mapping[str, str] = {
    "name": "name",
    "experiment_id": "experiment_id",
    "creation_time": "creation_time",
    "last_update_time": "last_update_time",
}

_Key = tuple[Entity, str]


def like_to_glob(pattern: str) -> str:
    """The SQLite GLOB pattern matching exactly what LIKE ``pattern`` (escape ``\\``) matches.

    ``%`` becomes ``*``, ``_`` becomes ``?``, GLOB's own ``*?[`` are bracketed
    and ``\\x`` is a literal ``x``::

        >>> like_to_glob("run_%[1]\\\\_*")
        'run_?[[]1]_[*]'
    """
    out: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            char = next(chars, "\\")
            out.append(f"[{char}]" if char in "*?[" else char)
        elif char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


def _like_pattern(pattern: str) -> str:
    # A trailing lone backslash is an error on PostgreSQL; make it literal everywhere.
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return pattern + "\\" if trailing % 2 else pattern


def _compare_string(column: ColumnElement[Any], op: Op, value: Any, dialect: str) -> Any:
    if op is Op.EQ:
        return column == value
    if op is Op.NE:
        return column != value
    if op is Op.IN:
        return column.in_(value)
    if op is Op.NOT_IN:
        return column.not_in(value)
    if op is Op.LIKE:
        pattern = _like_pattern(str(value))
        if dialect == "sqlite":
            return column.op("GLOB")(like_to_glob(pattern))
        return column.like(pattern, escape="\\")
    if op is Op.ILIKE:
        return column.ilike(_like_pattern(str(value)), escape="\\")
    return _compare_number(column, op, value)


def _compare_number(column: ColumnElement[Any], op: Op, value: Any) -> Any:
    if op is Op.EQ:
        return column == value
    if op is Op.NE:
        return column != value
    if op is Op.LT:
        return column < value
    if op is Op.LE:
        return column <= value
    if op is Op.GT:
        return column > value
    if op is Op.GE:
        return column >= value
    raise AssertionError(f"operator {op} does not compare numbers")  # the parser checks


def _holds(op: Op, left: float, right: float) -> bool:
    """``left op right`` in Python, for comparisons with the infinities."""
    results = {
        Op.EQ: left == right,
        Op.NE: left != right,
        Op.LT: left < right,
        Op.LE: left <= right,
        Op.GT: left > right,
        Op.GE: left >= right,
    }
    return results[op]


def _compare_metric(table: FromClause, op: Op, value: float) -> ColumnElement[bool]:
    """A metric comparison on a ``latest_metrics`` alias; never true for NaN."""
    column, special = table.c.value, table.c.special
    if abs(value) < _DBL_MAX:
        # The +/-inf stand-ins (+/-DBL_MAX) compare right with any value strictly inside.
        return and_(_compare_number(column, op, value), special != SPECIAL_NAN)
    # Comparing with +/-inf or +/-DBL_MAX: decide the infinities in Python (and, against
    # an infinity, the finite values too: no driver can bind inf on MySQL).
    branches: list[ColumnElement[bool]] = []
    if not math.isinf(value):
        branches.append(and_(special == SPECIAL_FINITE, _compare_number(column, op, value)))
    elif _holds(op, 0.0, value):
        branches.append(special == SPECIAL_FINITE)
    if _holds(op, float("inf"), value):
        branches.append(special == SPECIAL_POS_INF)
    if _holds(op, float("-inf"), value):
        branches.append(special == SPECIAL_NEG_INF)
    return or_(*branches) if branches else false()


def _required(node: Filter) -> frozenset[_Key]:
    """The (entity, key) pairs every run matching ``node`` must have."""
    if isinstance(node, Comparison):
        if node.entity is Entity.ATTRIBUTE:
            return frozenset()
        return frozenset({(node.entity, node.key)})
    sets = [_required(operand) for operand in node.operands]
    if isinstance(node, And):
        return frozenset().union(*sets)
    return frozenset.intersection(*sets)


class _Joins:
    """One aliased key-value table per distinct (entity, key), in first-use order."""

    def __init__(self, tables: Mapping[Entity, FromClause], required: frozenset[_Key]) -> None:
        self._tables = tables
        self.required = required
        self.aliases: dict[_Key, FromClause] = {}

    def alias(self, entity: Entity, key: str) -> FromClause:
        found = self.aliases.get((entity, key))
        if found is None:
            name = f"{entity.value}_{len(self.aliases)}"
            found = self.aliases[(entity, key)] = self._tables[entity].alias(name)
        return found

    def apply(self, query: Select[Any], owner: ColumnElement[Any], id_column: str) -> Select[Any]:
        for (entity, key), table in self.aliases.items():
            on = and_(table.c[id_column] == owner, table.c.key == key)
            query = query.join(table, on, isouter=(entity, key) not in self.required)
        return query


def _condition(
    node: Filter, joins: _Joins, attributes: Mapping[str, ColumnElement[Any]], dialect: str
) -> ColumnElement[bool]:
    if isinstance(node, And):
        return and_(*(_condition(o, joins, attributes, dialect) for o in node.operands))
    if isinstance(node, Or):
        return or_(*(_condition(o, joins, attributes, dialect) for o in node.operands))
    if node.entity is Entity.ATTRIBUTE:
        column = attributes[node.key]
        return _compare_string(column, node.op, node.value, dialect)  # type: ignore[no-any-return]
    table = joins.alias(node.entity, node.key)
    if node.entity is Entity.METRIC:
        assert isinstance(node.value, int | float)
        return _compare_metric(table, node.op, float(node.value))
    return _compare_string(table.c.value, node.op, node.value, dialect)  # type: ignore[no-any-return]


def _order_terms(
    expr: ColumnElement[Any], ascending: bool, nullable: bool, dialect: str
) -> list[ColumnElement[Any] | UnaryExpression[Any]]:
    """``expr`` in the given direction with NULLs last, in the form each dialect indexes best."""
    plain = expr.asc() if ascending else expr.desc()
    if not nullable:
        return [plain]
    if dialect == "sqlite":
        if not ascending:
            return [plain]  # NULLs are the smallest values: already last, index-friendly.
        if _SQLITE_NULLS_LAST:
            return [plain.nulls_last()]
    elif dialect == "postgresql":
        return [plain if ascending else plain.nulls_last()]  # NULLs are the largest values.
    elif dialect in ("mysql", "mariadb") and not ascending:
        return [plain]  # NULLs are the smallest values.
    return [expr.is_(None).asc(), plain]


def _order_by(
    items: Sequence[OrderBy],
    joins: _Joins,
    attributes: Mapping[str, ColumnElement[Any]],
    dialect: str,
) -> list[ColumnElement[Any] | UnaryExpression[Any]]:
    terms: list[ColumnElement[Any] | UnaryExpression[Any]] = []
    for item in items:
        expr: ColumnElement[Any]
        if item.entity is Entity.ATTRIBUTE:
            expr = attributes[item.key]
            nullable = bool(getattr(expr, "nullable", True))
        else:
            table = joins.alias(item.entity, item.key)
            required = (item.entity, item.key) in joins.required
            nullable = not required
            expr = table.c.value
            if item.entity is Entity.METRIC and not required:
                # NaN is stored as 0: sort it with the runs that lack the metric.
                expr = case((table.c.special == SPECIAL_NAN, null()), else_=table.c.value)
        terms.extend(_order_terms(expr, item.ascending, nullable, dialect))
    return terms


def _where(
    filter_ast: Filter | None,
    joins: _Joins,
    attributes: Mapping[str, ColumnElement[Any]],
    dialect: str,
) -> list[ColumnElement[bool]]:
    return [] if filter_ast is None else [_condition(filter_ast, joins, attributes, dialect)]


def select_runs(
    experiment_ids: Sequence[int],
    filter_ast: Filter | None,
    stages: Sequence[str],
    order_by: Sequence[OrderBy],
    offset: int,
    limit: int | None,
    *,
    dialect: str,
) -> Select[tuple[str]]:
    """The ``run_uuid`` of the matching runs, ordered, from ``offset``, at most ``limit``.

    ``dialect`` is ``engine.dialect.name``. Ask for one row more than a page
    to learn whether a next page exists. To fetch run columns instead of
    ids, swap the columns: ``select_runs(...).with_only_columns(*columns)``.
    """
    attributes = {name: _RUNS.c[column] for name, column in RUN_ATTRIBUTE_COLUMNS.items()}
    required = _required(filter_ast) if filter_ast is not None else frozenset()
    tables = {
        Entity.METRIC: LatestMetricModel.__table__,
        Entity.PARAM: ParamModel.__table__,
        Entity.TAG: TagModel.__table__,
    }
    joins = _Joins(tables, required)
    condition = _where(filter_ast, joins, attributes, dialect)
    order = _order_by(order_by, joins, attributes, dialect)
    order += [_RUNS.c.start_time.desc(), _RUNS.c.run_uuid.asc()]

    query: Select[tuple[str]] = select(RunModel.run_uuid)
    query = joins.apply(query, _RUNS.c.run_uuid, "run_uuid")
    query = query.where(
        _RUNS.c.experiment_id.in_(list(experiment_ids)) if experiment_ids else false(),
        _RUNS.c.lifecycle_stage.in_(list(stages)),
        *condition,
    )
    query = query.order_by(*order).offset(offset)
    return query if limit is None else query.limit(limit)


def filter_runs(
    query: Select[Any],
    filter_ast: Filter | None,
    *,
    dialect: str,
    sort_key: tuple[Entity, str] | None = None,
) -> tuple[Select[Any], FromClause | None]:
    """``query`` (a select from ``runs``) with the joins and the condition of a filter.

    The browsing queries of the web UI (:mod:`tracking.store.sql.browse`) page
    by key rather than by offset and build their own order on top of this. When
    the filter requires ``sort_key`` (every match has it), the alias it joins
    comes back too, so the order can walk the same join (and its index) rather
    than a second one; otherwise None.
    """
    if filter_ast is None:
        return query, None
    attributes = {name: _RUNS.c[column] for name, column in RUN_ATTRIBUTE_COLUMNS.items()}
    tables = {
        Entity.METRIC: LatestMetricModel.__table__,
        Entity.PARAM: ParamModel.__table__,
        Entity.TAG: TagModel.__table__,
    }
    joins = _Joins(tables, _required(filter_ast))
    condition = _condition(filter_ast, joins, attributes, dialect)
    shared = None
    if sort_key is not None and sort_key in joins.required:
        shared = joins.aliases.get(sort_key)
    return joins.apply(query, _RUNS.c.run_uuid, "run_uuid").where(condition), shared


def select_experiments(
    filter_ast: Filter | None,
    stages: Sequence[str],
    order_by: Sequence[OrderBy],
    offset: int,
    limit: int | None,
    *,
    dialect: str,
) -> Select[tuple[int]]:
    """The ``experiment_id`` of the matching experiments, ordered and paged like runs.

    Without ``order_by`` the order is ``creation_time DESC``; ``experiment_id
    ASC`` always breaks ties.
    """
    attributes = {name: _EXPERIMENTS.c[column] for name, column in _EXPERIMENT_ATTRIBUTES.items()}
    required = _required(filter_ast) if filter_ast is not None else frozenset()
    joins = _Joins({Entity.TAG: ExperimentTagModel.__table__}, required)
    condition = _where(filter_ast, joins, attributes, dialect)
    items = list(order_by) or [OrderBy(Entity.ATTRIBUTE, "creation_time", ascending=False)]
    order = _order_by(items, joins, attributes, dialect)
    if not any(i.entity is Entity.ATTRIBUTE and i.key == "experiment_id" for i in items):
        order.append(_EXPERIMENTS.c.experiment_id.asc())

    query: Select[tuple[int]] = select(ExperimentModel.experiment_id)
    query = joins.apply(query, _EXPERIMENTS.c.experiment_id, "experiment_id")
    query = query.where(_EXPERIMENTS.c.lifecycle_stage.in_(list(stages)), *condition)
    query = query.order_by(*order).offset(offset)
    return query if limit is None else query.limit(limit)
