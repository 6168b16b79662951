"""The hot path: writing params, tags and metric points, reading metric history.

Each statement is built with SQLAlchemy once per dialect, compiled once, and
run on the pooled DBAPI connection: SQLAlchemy's per-execution bookkeeping
costs more than SQLite's own work for these tiny writes (a single
``log_metric`` went from ~370 to well under 100 microseconds). Driver errors are
wrapped back into SQLAlchemy's exception classes, so retries and translation
work as for any other statement.

Points go into ``metrics`` with insert-or-ignore (a re-sent point is a no-op)
and the newest point per key is pushed into ``latest_metrics`` with a
conditional upsert, so concurrent writers can never move a summary backwards.
"""

from __future__ import annotations

import gc
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import (
    ClauseElement,
    Connection,
    Engine,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

from tracking.entities import LifecycleStage, Metric, Param, RunInfo, RunStatus, RunTag
from tracking.errors import InvalidParameterError, InvalidStateError, RunNotFoundError
from tracking.store.sql.engine import write_lock_for
from tracking.store.sql.inputs import LOAD_INPUTS
from tracking.store.sql.models import (
    ROLLUP_BLOCK,
    SPECIAL_FINITE,
    SPECIAL_NAN,
    SPECIAL_NEG_INF,
    SPECIAL_POS_INF,
    LatestMetricModel,
    MetricModel,
    MetricRollupModel,
    ParamModel,
    RunModel,
    TagModel,
    table_of,
)

__all__ = [
    "RUN_COLUMNS",
    "HotPath",
    "RetryTransactionError",
    "decode_value",
    "encode_value",
    "run_info",
]

_MAX_FLOAT = 1.7976931348623157e308
_DECODE = {SPECIAL_NAN: math.nan, SPECIAL_POS_INF: math.inf, SPECIAL_NEG_INF: -math.inf}

_metrics = table_of(MetricModel)
_latest = table_of(LatestMetricModel)
_params = table_of(ParamModel)
_tags = table_of(TagModel)
#: Tags that say why a run failed; a run that goes on or ends otherwise loses them.
FAILURE_TAGS = ("trackflow.failureReason", "trackflow.reapedAt")
_CLEARS_FAILURE = frozenset({RunStatus.RUNNING, RunStatus.SCHEDULED, RunStatus.FINISHED})
TERMINATED = (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED)
_runs = table_of(RunModel)
_rollups = table_of(MetricRollupModel)

#: The run columns in the order :func:`run_info` reads them.
RUN_COLUMNS = (
    _runs.c.run_uuid,
    _runs.c.experiment_id,
    _runs.c.name,
    _runs.c.user_id,
    _runs.c.status,
    _runs.c.start_time,
    _runs.c.end_time,
    _runs.c.artifact_uri,
    _runs.c.lifecycle_stage,
    _runs.c.parent_run_uuid,
)

_POINT = ("run_uuid", "key", "step", "timestamp", "value", "special")
_EXTREMES = ("value", "special", "step", "timestamp")
#: Where each of _EXTREMES is in a point tuple (_POINT order).
_EXTREME_AT = tuple(_POINT.index(c) for c in _EXTREMES)
_ROLLUP = (
    "run_uuid",
    "key",
    "block",
    *(f"min_{c}" for c in _EXTREMES),
    *(f"max_{c}" for c in _EXTREMES),
)


class RetryTransactionError(Exception):
    """Raised inside a transaction that lost a race; the store runs it again."""


def encode_value(value: float) -> tuple[float, int]:
    """The stored ``(value, special)`` pair of a metric value."""
    if value != value:
        return 0.0, SPECIAL_NAN
    if value == math.inf:
        return _MAX_FLOAT, SPECIAL_POS_INF
    if value == -math.inf:
        return -_MAX_FLOAT, SPECIAL_NEG_INF
    return value, SPECIAL_FINITE


def decode_value(value: float, special: int) -> float:
    """The metric value a stored ``(value, special)`` pair stands for."""
    return value if not special else _DECODE[special]


def run_info(row: Sequence[Any]) -> RunInfo:
    """A RunInfo from a row of :data:`RUN_COLUMNS`."""
    return RunInfo(
        run_id=row[0],
        experiment_id=str(row[1]),
        run_name=row[2],
        user_id=row[3],
        status=RunStatus(row[4]),
        start_time=row[5],
        end_time=row[6],
        artifact_uri=row[7],
        lifecycle_stage=LifecycleStage(row[8]),
        parent_run_id=row[9],
    )


class _Statement:
    """A statement compiled once for a dialect, run on a raw DBAPI cursor.

    Rows are dicts keyed by column name; a bind named ``b_<name>`` (SQLAlchemy
    reserves plain column names in UPDATE ... SET) reads ``row[<name>]``.
    """

    __slots__ = ("_compiled", "_engine", "_keys", "_statement")

    def __init__(self, statement: ClauseElement, engine: Engine, keys: Sequence[str]) -> None:
        # Compiled on first use: a process that runs one task (an Airflow task
        # process) uses a few of the statements, and compiling them all takes ~50 ms.
        self._statement, self._engine, self._keys = statement, engine, list(keys)
        self._compiled: tuple[str, bool, tuple[str, ...], tuple[tuple[str, str], ...]] | None
        self._compiled = None

    def _compile(self) -> tuple[str, bool, tuple[str, ...], tuple[tuple[str, str], ...]]:
        compiled = cast(
            SQLCompiler,
            self._statement.compile(dialect=self._engine.dialect, column_keys=self._keys),
        )
        names = tuple(_source(n) for n in compiled.positiontup or ())
        renamed = [(bind, _source(bind)) for bind in compiled.binds if bind.startswith("b_")]
        pairs = tuple((b, _source(b)) for b in compiled.binds) if renamed else ()
        # One assignment: a thread that races this one compiles the same again.
        self._compiled = (compiled.string, self._engine.dialect.positional, names, pairs)
        return self._compiled

    @property
    def sql(self) -> str:
        return (self._compiled or self._compile())[0]

    @property
    def positional(self) -> bool:
        return (self._compiled or self._compile())[1]

    @property
    def names(self) -> tuple[str, ...]:
        return (self._compiled or self._compile())[2]

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        return (self._compiled or self._compile())[3]

    def _args(self, row: Mapping[str, Any]) -> Any:
        _, positional, names, pairs = self._compiled or self._compile()
        if positional:
            return tuple([row[n] for n in names])
        if pairs:
            return {bind: row[name] for bind, name in pairs}
        return row

    def execute(self, cursor: Any, row: Mapping[str, Any]) -> Any:
        cursor.execute(self.sql, self._args(row))
        return cursor

    def executemany(self, cursor: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        if len(rows) == 1:
            cursor.execute(self.sql, self._args(rows[0]))
        else:
            cursor.executemany(self.sql, [self._args(r) for r in rows])

    def executemany_points(self, cursor: Any, points: Sequence[tuple[Any, ...]]) -> None:
        """Run once per metric point, each a tuple in :data:`_POINT` order."""
        if self.positional and self.names == _POINT:
            # The statement takes its binds in point order: the tuples go as they are.
            cursor.executemany(self.sql, points)
        else:
            self.executemany(cursor, [dict(zip(_POINT, p, strict=True)) for p in points])


class _Repeated:
    """SQL with one group repeated a variable number of times (``IN (?, ?, ...)``,
    ``VALUES (...), (...)``), written once per count and kept for the common ones."""

    __slots__ = ("head", "sqls", "tail", "unit")

    def __init__(self, head: str, unit: str, tail: str) -> None:
        self.head, self.unit, self.tail = head, unit, tail
        self.sqls: dict[int, str] = {}

    def sql(self, count: int) -> str:
        sql = self.sqls.get(count)
        if sql is None:
            sql = f"{self.head}{', '.join([self.unit] * count)}{self.tail}"
            if len(self.sqls) < 256:
                self.sqls[count] = sql
        return sql


class _MultiRowInsert:
    """A qmark ``INSERT ... VALUES (?, ...)`` sent as one statement of many rows.

    sqlite3's ``executemany`` steps the statement once per row; one ``VALUES``
    list of up to :attr:`ROWS` rows does the same insert in four fifths of the
    time. Falls back to ``executemany`` for SQL it cannot split.
    """

    ROWS = 500  # 500 rows x 6 columns stays far below SQLite's 32,766 variables

    __slots__ = ("rows", "statement")

    def __init__(self, statement: _Statement) -> None:
        self.statement = statement
        self.rows: _Repeated | None = None
        values = " VALUES "
        at = statement.sql.find(values + "(")
        close = statement.sql.find(")", at)
        if statement.positional and statement.names == _POINT and at > 0 and close > at:
            start = at + len(values)
            self.rows = _Repeated(
                statement.sql[:start], statement.sql[start : close + 1], statement.sql[close + 1 :]
            )

    def executemany_points(self, cursor: Any, points: Sequence[tuple[Any, ...]]) -> None:
        if self.rows is None or len(points) < 2:
            self.statement.executemany_points(cursor, points)
            return
        for start in range(0, len(points), self.ROWS):
            chunk = points[start : start + self.ROWS]
            cursor.execute(self.rows.sql(len(chunk)), list(itertools.chain.from_iterable(chunk)))


class _UnnestInsert:
    """PostgreSQL: the points of a batch inserted from arrays, one per column
    (``INSERT ... SELECT ... FROM unnest(...)``), in one statement.

    psycopg's ``executemany`` sends one execution per row; PostgreSQL takes about
    twice as long over those as over one statement fed by arrays (1,000 points:
    ~15 ms against ~8 ms, measured side by side). The numeric arrays go as array
    literals written by ``repr`` (shortest round-trip form; stored values are
    finite), cast by the server: psycopg's list dumper checks every element for
    quoting and took 3.1 ms of the client's CPU per 1,000 points, against 0.9.
    The run id goes once; the keys go once each, the points naming theirs by
    position (a batch holds a few keys: dumping 1,000 key strings alone took the
    server 3 ms of CPU per batch). The arrays' types come from the table's columns.

    A plain ``INSERT`` goes first, in a savepoint: ``ON CONFLICT DO NOTHING``
    probes the primary key before each row and costs PostgreSQL a third more
    (5.5 against 3.5 ms per 1,000 points). Only a batch holding a point already
    stored (a retried request) or twice gets the unique violation, and is then
    inserted again with ``ON CONFLICT DO NOTHING``.
    """

    __slots__ = ("duplicate", "plain", "sql")

    def __init__(self, table: Table, engine: Engine) -> None:
        # Only built for PostgreSQL, whose driver (psycopg 3) is then installed.
        from psycopg.errors import UniqueViolation

        self.duplicate: type[Exception] = UniqueViolation
        quote = engine.dialect.identifier_preparer.quote
        types = engine.dialect.type_compiler_instance
        columns = [table.c[name] for name in _POINT]
        key_type = types.process(columns[1].type)
        numbers = ", ".join(f"%s::text::{types.process(c.type)}[]" for c in columns[2:])
        self.plain = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in columns)}) "
            f"SELECT %s, (%s::{key_type}[])[p.k], p.s, p.t, p.v, p.x "
            f"FROM unnest(%s::text::integer[], {numbers}) AS p(k, s, t, v, x)"
        )
        self.sql = f"{self.plain} ON CONFLICT DO NOTHING"

    def executemany_points(self, cursor: Any, points: Sequence[tuple[Any, ...]]) -> None:
        runs: dict[str, list[tuple[Any, ...]]] = {}
        for point in points:
            runs.setdefault(point[0], []).append(point)
        for run_id, rows in runs.items():
            _, keys, steps, times, values, specials = zip(*rows, strict=True)
            names = list(dict.fromkeys(keys))
            position = {name: i for i, name in enumerate(names, 1)}  # arrays count from 1
            # int() and float() first: repr() of a bool, Decimal or float subclass is
            # no number literal.
            literals = [
                "{" + ",".join(map(repr, map(kind, column))) + "}"
                for kind, column in (
                    (position.__getitem__, keys),
                    (int, steps),
                    (int, times),
                    (float, values),
                    (int, specials),
                )
            ]
            args = [run_id, names, *literals]
            try:
                with cursor.connection.transaction():  # a savepoint
                    cursor.execute(self.plain, args)
            except self.duplicate:
                cursor.execute(self.sql, args)


class _InList:
    """A SELECT whose one parameter is an expanding ``IN`` list (``bindparam("ids",
    expanding=True)``), compiled once; the driver placeholders for each list
    length are written in place of SQLAlchemy's marker."""

    __slots__ = ("ids",)

    _MARKER = "__[POSTCOMPILE_ids]"

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        head, tail = statement.compile(dialect=engine.dialect).string.split(self._MARKER)
        # qmark (sqlite3) or format/pyformat (psycopg, PyMySQL), which take "%s" with a tuple.
        self.ids = _Repeated(head, "?" if engine.dialect.paramstyle == "qmark" else "%s", tail)

    def fetchall(self, cursor: Any, ids: Sequence[Any]) -> list[Any]:
        cursor.execute(self.ids.sql(len(ids)), tuple(ids))
        return cast(list[Any], cursor.fetchall())


def _unnest(table: Table, names: Sequence[str]) -> Any:
    """PostgreSQL: ``SELECT ... FROM unnest(:a_<name>, ...)``, the rows of an upsert
    as one array per column (binds ``a_<name>``, see :func:`_arrays`): one statement
    instead of one execution per row (a batch's ten keys: ten executions each of
    ``latest_metrics`` and ``metric_rollups``, and their foreign key checks)."""
    arrays = [bindparam(f"a_{n}", type_=postgresql.ARRAY(table.c[n].type)) for n in names]
    rows = func.unnest(*arrays).table_valued(*names).render_derived()
    return select(*[rows.c[n] for n in names])


def _arrays(names: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """The binds of an :func:`_unnest` source: rows (tuples in ``names`` order) as columns."""
    return {
        f"a_{n}": list(column) for n, column in zip(names, zip(*rows, strict=True), strict=True)
    }


def _rollup_row(
    run_id: str, key: str, block: int, low: tuple[Any, ...], high: tuple[Any, ...]
) -> dict[str, Any]:
    """A ``metric_rollups`` row from the lowest and highest point (tuples) of a block."""
    row: dict[str, Any] = {"run_uuid": run_id, "key": key, "block": block}
    for column in _EXTREMES:
        index = _POINT.index(column)
        row[f"min_{column}"] = low[index]
        row[f"max_{column}"] = high[index]
    return row


def _no_invalidate(_exc: BaseException) -> None:
    """Nothing to invalidate: no connection was checked out."""


def _source(bind: str) -> str:
    return bind[2:] if bind.startswith("b_") else bind


class HotPath:
    """The hot statements of one engine's dialect, compiled once."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        self._sqlite = dialect == "sqlite"
        self._write_lock = write_lock_for(engine)
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        newer = or_(
            bindparam("b_step") > _latest.c.step,
            and_(
                bindparam("b_step") == _latest.c.step,
                or_(
                    bindparam("b_timestamp") > _latest.c.timestamp,
                    and_(
                        bindparam("b_timestamp") == _latest.c.timestamp,
                        bindparam("b_value") > _latest.c.value,
                    ),
                ),
            ),
        )
        latest_steps: list[ClauseElement]
        rollup_steps: list[ClauseElement]
        if dialect in ("sqlite", "postgresql"):
            ins: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
            insert_metrics = ins(_metrics).on_conflict_do_nothing()
            latest = ins(_latest)
            if dialect == "postgresql":
                latest = latest.from_select(_POINT, _unnest(_latest, _POINT))
            ex = latest.excluded
            latest_steps = [
                latest.on_conflict_do_update(
                    index_elements=["run_uuid", "key"],
                    set_={
                        "value": ex.value,
                        "special": ex.special,
                        "timestamp": ex.timestamp,
                        "step": ex.step,
                    },
                    where=or_(
                        ex.step > _latest.c.step,
                        and_(
                            ex.step == _latest.c.step,
                            or_(
                                ex.timestamp > _latest.c.timestamp,
                                and_(
                                    ex.timestamp == _latest.c.timestamp, ex.value > _latest.c.value
                                ),
                            ),
                        ),
                    ),
                )
            ]
            rollup = ins(_rollups)
            if dialect == "postgresql":
                rollup = rollup.from_select(_ROLLUP, _unnest(_rollups, _ROLLUP))
            ex = rollup.excluded
            lower = ex.min_value < _rollups.c.min_value
            higher = ex.max_value > _rollups.c.max_value
            # Every SET sees the old row, so each column follows its own comparison.
            rollup_steps = [
                rollup.on_conflict_do_update(
                    index_elements=["run_uuid", "key", "block"],
                    set_={
                        **{
                            f"min_{c}": case((lower, ex[f"min_{c}"]), else_=_rollups.c[f"min_{c}"])
                            for c in _EXTREMES
                        },
                        **{
                            f"max_{c}": case((higher, ex[f"max_{c}"]), else_=_rollups.c[f"max_{c}"])
                            for c in _EXTREMES
                        },
                    },
                    where=or_(lower, higher),
                )
            ]
            tags = ins(_tags)
            upsert_tags = tags.on_conflict_do_update(
                index_elements=["run_uuid", "key"], set_={"value": tags.excluded.value}
            )
            insert_params = ins(_params).on_conflict_do_nothing()
        elif dialect in ("mysql", "mariadb"):
            insert_metrics = mysql.insert(_metrics).prefix_with("IGNORE")
            # MySQL evaluates ON DUPLICATE KEY assignments left to right, each
            # seeing the last, so "update if newer" is an insert-or-ignore plus
            # a guarded UPDATE instead.
            latest_steps = [
                mysql.insert(_latest).prefix_with("IGNORE"),
                update(_latest)
                .where(
                    _latest.c.run_uuid == bindparam("b_run_uuid"),
                    _latest.c.key == bindparam("b_key"),
                    newer,
                )
                .values(
                    value=bindparam("b_value"),
                    special=bindparam("b_special"),
                    timestamp=bindparam("b_timestamp"),
                    step=bindparam("b_step"),
                ),
            ]
            # As for latest_metrics: insert-or-ignore, then one guarded UPDATE per extreme.
            in_block = (
                _rollups.c.run_uuid == bindparam("b_run_uuid"),
                _rollups.c.key == bindparam("b_key"),
                _rollups.c.block == bindparam("b_block"),
            )
            rollup_steps = [
                mysql.insert(_rollups).prefix_with("IGNORE"),
                update(_rollups)
                .where(*in_block, bindparam("b_min_value") < _rollups.c.min_value)
                .values({f"min_{c}": bindparam(f"b_min_{c}") for c in _EXTREMES}),
                update(_rollups)
                .where(*in_block, bindparam("b_max_value") > _rollups.c.max_value)
                .values({f"max_{c}": bindparam(f"b_max_{c}") for c in _EXTREMES}),
            ]
            tags = mysql.insert(_tags)
            upsert_tags = tags.on_duplicate_key_update(value=tags.inserted.value)
            insert_params = mysql.insert(_params).prefix_with("IGNORE")
        else:  # pragma: no cover - the registry only hands us the three above
            raise InvalidParameterError(f"unsupported database dialect {dialect!r}")

        def compile_(statement: ClauseElement, keys: Sequence[str]) -> _Statement:
            return _Statement(statement, engine, keys)

        self._insert_metrics: _Statement | _MultiRowInsert | _UnnestInsert
        self._insert_metrics = compile_(insert_metrics, _POINT)
        if self._sqlite:
            self._insert_metrics = _MultiRowInsert(self._insert_metrics)
        elif dialect == "postgresql":
            self._insert_metrics = _UnnestInsert(_metrics, engine)
        # PostgreSQL takes the rows of each upsert as arrays, in one statement (_unnest).
        self._upsert_in_arrays = dialect == "postgresql"
        self._upsert_latest = [
            compile_(s, () if self._upsert_in_arrays else _POINT) for s in latest_steps
        ]
        # The guarded UPDATEs name their columns themselves: compiling them with
        # column keys would add every other column of the row to their SET.
        self._upsert_rollups = [
            compile_(s, _ROLLUP if i == 0 and not self._upsert_in_arrays else ())
            for i, s in enumerate(rollup_steps)
        ]
        self._upsert_tags = compile_(upsert_tags, ("run_uuid", "key", "value"))
        self._insert_params = compile_(insert_params, ("run_uuid", "key", "value"))
        run_stage = select(_runs.c.lifecycle_stage).where(_runs.c.run_uuid == bindparam("run_uuid"))
        self._run_stage = compile_(run_stage, ())
        # What a batch of points reads instead: the run row locked against deletion
        # until the batch commits (PostgreSQL's FOR KEY SHARE, MySQL's LOCK IN SHARE
        # MODE; SQLite writes one at a time), as the foreign key that ``metrics`` has
        # on SQLite only did for every point (migration 0007). Purging a run deletes
        # its row first, so it waits for the batch, then its points, committed by then.
        self._lock_run_stage = compile_(run_stage.with_for_update(read=True, key_share=True), ())
        self._param_values = compile_(
            select(_params.c.key, _params.c.value).where(
                _params.c.run_uuid == bindparam("run_uuid")
            ),
            (),
        )
        self._update_run = compile_(
            update(_runs)
            .where(_runs.c.run_uuid == bindparam("b_run_uuid"))
            # end_time first: MySQL evaluates SET left to right, so the CASE must
            # read the status the run had before this update.
            .ordered_values(
                (
                    _runs.c.end_time,
                    case(
                        (bindparam("b_reopen") == literal_column("1"), null()),
                        # Ended again the same way (a repeated event): the first end stands.
                        (
                            and_(
                                _runs.c.status == bindparam("b_status"),
                                # Constants in the SQL, as in _clear_failure.
                                _runs.c.status.in_(
                                    [literal_column(f"'{s.value}'") for s in TERMINATED]
                                ),
                                _runs.c.end_time.is_not(None),
                            ),
                            _runs.c.end_time,
                        ),
                        else_=func.coalesce(bindparam("b_end_time"), _runs.c.end_time),
                    ),
                ),
                (_runs.c.status, func.coalesce(bindparam("b_status"), _runs.c.status)),
                (_runs.c.name, func.coalesce(bindparam("b_name"), _runs.c.name)),
                (
                    _runs.c.heartbeat_time,
                    func.coalesce(bindparam("b_heartbeat_time"), _runs.c.heartbeat_time),
                ),
            ),
            (),
        )
        self._select_run = compile_(
            select(*RUN_COLUMNS).where(_runs.c.run_uuid == bindparam("run_uuid")), ()
        )
        self._history = compile_(
            select(_metrics.c.value, _metrics.c.special, _metrics.c.timestamp, _metrics.c.step)
            .where(_metrics.c.run_uuid == bindparam("run_uuid"), _metrics.c.key == bindparam("key"))
            .order_by(_metrics.c.step, _metrics.c.timestamp, _metrics.c.value, _metrics.c.special)
            .limit(bindparam("limit"))
            .offset(bindparam("offset")),
            (),
        )
        self._clear_failure = compile_(
            delete(_tags).where(
                _tags.c.run_uuid == bindparam("run_uuid"),
                # Constants in the SQL: the compiled statement binds only the run.
                or_(*(_tags.c.key == literal_column(f"'{key}'") for key in FAILURE_TAGS)),
            ),
            (),
        )
        self._rename_run = compile_(
            update(_runs)
            .where(_runs.c.run_uuid == bindparam("b_run_uuid"))
            .values(name=bindparam("b_name")),
            (),
        )

        ids: BindParameter[str] = bindparam("ids", expanding=True)
        self._load_runs = _InList(select(*RUN_COLUMNS).where(_runs.c.run_uuid.in_(ids)), engine)
        self._load_params = _InList(
            select(_params.c.run_uuid, _params.c.key, _params.c.value).where(
                _params.c.run_uuid.in_(ids)
            ),
            engine,
        )
        self._load_tags = _InList(
            select(_tags.c.run_uuid, _tags.c.key, _tags.c.value).where(_tags.c.run_uuid.in_(ids)),
            engine,
        )
        self._load_inputs = _InList(LOAD_INPUTS, engine)
        self._load_latest = _InList(
            select(
                _latest.c.run_uuid,
                _latest.c.key,
                _latest.c.value,
                _latest.c.special,
                _latest.c.timestamp,
                _latest.c.step,
            ).where(_latest.c.run_uuid.in_(ids)),
            engine,
        )

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Any]:
        """A DBAPI cursor in a transaction; driver errors come out as SQLAlchemy's."""
        engine = self._engine
        lock = self._write_lock if write else None
        try:
            # Checking a connection out pings it and may open a new one: a database
            # that is down fails here, with the driver's own exception.
            raw = engine.raw_connection()
        except self._dbapi_error as exc:
            raise self._driver_error(exc, None, None, _no_invalidate) from exc
        if lock is not None:
            lock.acquire()
        try:
            cursor = raw.cursor()
            try:
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cursor
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
            finally:
                cursor.close()
                if lock is not None:
                    lock.release()
                    lock = None
        except self._dbapi_error as exc:
            raise self._driver_error(exc, raw.dbapi_connection, None, raw.invalidate) from exc
        finally:
            raw.close()

    @contextmanager
    def cursor_in(self, conn: Connection) -> Iterator[Any]:
        """A DBAPI cursor in the transaction of ``conn`` (SQLAlchemy's); driver errors
        come out as SQLAlchemy's."""
        raw = conn.connection
        cursor = raw.cursor()
        try:
            yield cursor
        except self._dbapi_error as exc:
            raise self._driver_error(exc, raw.dbapi_connection, cursor, conn.invalidate) from exc
        finally:
            cursor.close()

    def _driver_error(
        self,
        exc: Exception,
        dbapi_connection: Any,
        cursor: Any,
        invalidate: Callable[[BaseException], None],
    ) -> StatementError:
        """SQLAlchemy's exception for a driver error; a lost connection is invalidated."""
        invalidated = self._engine.dialect.is_disconnect(
            exc,  # type: ignore[arg-type]
            dbapi_connection,
            cursor,
        )
        if invalidated:
            invalidate(exc)
        return DBAPIError.instance(
            None,
            None,
            exc,
            self._dbapi_error,
            connection_invalidated=invalidated,
            dialect=self._engine.dialect,
        )

    def run_rows(
        self, cursor: Any, run_ids: Sequence[str]
    ) -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
        """The rows of these runs: :data:`RUN_COLUMNS`, then ``(run_uuid, key, value)``
        of params and of tags, then ``(run_uuid, key, value, special, timestamp, step)``
        of latest metrics, then the rows of :data:`~tracking.store.sql.inputs.LOAD_INPUTS`
        (a search page's worth in five queries)."""
        runs = self._load_runs.fetchall(cursor, run_ids)
        if not runs:
            return runs, [], [], [], []
        return (
            runs,
            self._load_params.fetchall(cursor, run_ids),
            self._load_tags.fetchall(cursor, run_ids),
            self._load_latest.fetchall(cursor, run_ids),
            self._load_inputs.fetchall(cursor, run_ids),
        )

    def check_active(self, cursor: Any, run_id: str, *, lock: bool = False) -> None:
        """RunNotFoundError or InvalidStateError unless the run can take writes;
        ``lock``: the run stays there until the transaction ends (before points)."""
        stage = self._lock_run_stage if lock else self._run_stage
        row = stage.execute(cursor, {"run_uuid": run_id}).fetchone()
        if row is None:
            raise RunNotFoundError(f"Run {run_id!r} not found")
        if row[0] != "active":
            raise InvalidStateError(
                f"The run {run_id} must be in the 'active' state. Current state is {row[0]}."
            )

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric],
        params: Sequence[Param],
        tags: Sequence[RunTag],
    ) -> None:
        """One transaction: check the run, then params, tags and metrics (all or nothing)."""
        with self.transaction() as cursor:
            self.check_active(cursor, run_id, lock=bool(metrics))
            if params:
                self.write_params(cursor, run_id, params)
            if tags:
                self.write_tags(cursor, run_id, tags)
            if metrics:
                self.write_metrics(cursor, run_id, metrics)

    def update_run(
        self,
        run_id: str,
        status: RunStatus | None,
        end_time: int | None,
        run_name: str | None,
        now: int,
    ) -> RunInfo:
        """Change status, end time or name of an active run; returns the new RunInfo."""
        if status is not None and status.is_terminated and end_time is None:
            end_time = now
        with self.transaction() as cursor:
            self.check_active(cursor, run_id)
            self._update_run.execute(
                cursor,
                {
                    "run_uuid": run_id,
                    "status": status.value if status is not None else None,
                    "end_time": end_time,
                    "name": run_name,
                    "heartbeat_time": now if status is RunStatus.RUNNING else None,
                    # A run set RUNNING or SCHEDULED again has not ended (MLflow clears it too).
                    "reopen": int(
                        status is not None and not status.is_terminated and end_time is None
                    ),
                },
            )
            if status in _CLEARS_FAILURE:
                # Why it failed (or was reaped) no longer holds for a run that goes on
                # or finishes; a run ended FAILED or KILLED (again) keeps its reason.
                self._clear_failure.execute(cursor, {"run_uuid": run_id})
            if run_name is not None:
                self._upsert_tags.execute(
                    cursor, {"run_uuid": run_id, "key": "mlflow.runName", "value": run_name}
                )
            return run_info(self._select_run.execute(cursor, {"run_uuid": run_id}).fetchone())

    def metric_history(self, run_id: str, key: str, offset: int, limit: int) -> list[Metric]:
        """Points of one series in (step, timestamp) order, built as fast as Python allows."""
        with self.transaction(write=False) as cursor:
            if self._run_stage.execute(cursor, {"run_uuid": run_id}).fetchone() is None:
                raise RunNotFoundError(f"Run {run_id!r} not found")
            rows = self._history.execute(
                cursor, {"run_uuid": run_id, "key": key, "limit": limit, "offset": offset}
            ).fetchall()
        new = Metric._make
        # A million short-lived tuples would set off the cyclic GC again and
        # again for nothing: none of them can be part of a cycle.
        enabled = gc.isenabled()
        gc.disable()
        try:
            return [
                new((key, v, t, s)) if not sp else new((key, decode_value(v, sp), t, s))
                for v, sp, t, s in rows
            ]
        finally:
            if enabled:
                gc.enable()

    def write_metrics(self, cursor: Any, run_id: str, metrics: Sequence[Metric]) -> None:
        """Append points, move each key's latest value forward, widen the rollups."""
        # Points are tuples in _POINT order: (run_uuid, key, step, timestamp, value, special).
        rows = []
        latest: dict[str, tuple[Any, ...]] = {}
        blocks: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
        for key, value, timestamp, step in metrics:
            if value - value == 0.0:  # finite: the common case, cheapest test
                stored, special = value, SPECIAL_FINITE
            else:
                stored, special = encode_value(value)
            row = (run_id, key, step, timestamp, stored, special)
            rows.append(row)
            best = latest.get(key)
            if best is None or (step, timestamp, stored) > best[2:5]:
                latest[key] = row
            extremes = blocks.get((key, step // ROLLUP_BLOCK))
            if extremes is None:
                blocks[key, step // ROLLUP_BLOCK] = [row, row]
            elif stored < extremes[0][4]:
                extremes[0] = row
            elif stored > extremes[1][4]:
                extremes[1] = row
        self._insert_metrics.executemany_points(cursor, rows)
        candidates = list(latest.values())
        if self._upsert_in_arrays:
            (upsert_latest,) = self._upsert_latest
            upsert_latest.execute(cursor, _arrays(_POINT, candidates))
            (upsert_rollups,) = self._upsert_rollups
            rollups = [
                (
                    run_id,
                    key,
                    block,
                    *(low[i] for i in _EXTREME_AT),
                    *(high[i] for i in _EXTREME_AT),
                )
                for (key, block), (low, high) in blocks.items()
            ]
            upsert_rollups.execute(cursor, _arrays(_ROLLUP, rollups))
            return
        for statement in self._upsert_latest:
            statement.executemany_points(cursor, candidates)
        rollup_rows = [
            _rollup_row(run_id, key, block, low, high)
            for (key, block), (low, high) in blocks.items()
        ]
        for statement in self._upsert_rollups:
            statement.executemany(cursor, rollup_rows)

    def write_params(self, cursor: Any, run_id: str, params: Sequence[Param]) -> None:
        """Insert new params; the same value again is a no-op, another value an error."""
        wanted = dict(params)
        new = [{"run_uuid": run_id, "key": k, "value": v} for k, v in wanted.items()]
        # Insert-or-ignore first, then compare: a concurrent writer of the same
        # key cannot slip between a read and our insert.
        self._insert_params.executemany(cursor, new)
        existing = dict(self._param_values.execute(cursor, {"run_uuid": run_id}).fetchall())
        for key, value in wanted.items():
            old = existing.get(key)
            if old is not None and old != value:
                raise InvalidParameterError(
                    f"Changing param values is not allowed. Param with key={key!r} was already "
                    f"logged with value={old!r} for run ID={run_id!r}. Attempted logging new "
                    f"value {value!r}."
                )

    def write_tags(self, cursor: Any, run_id: str, tags: Sequence[RunTag]) -> None:
        """Set tags (the last value of a key wins); ``mlflow.runName`` renames the run."""
        latest = dict(tags)
        self._upsert_tags.executemany(
            cursor, [{"run_uuid": run_id, "key": k, "value": v} for k, v in latest.items()]
        )
        if "mlflow.runName" in latest:
            self._rename_run.execute(cursor, {"run_uuid": run_id, "name": latest["mlflow.runName"]})
