"""Run and experiment searches of :class:`SqlTrackingStore`: parse, compile, page, load."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Select

from tracking.entities import Experiment, PagedList, Run, ViewType
from tracking.errors import InvalidParameterError
from tracking.search import (
    Filter,
    OrderBy,
    decode_page_token,
    encode_page_token,
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_run_filter,
    parse_run_order_by,
    search_fingerprint,
)
from tracking.store.sql.models import ExperimentModel
from tracking.store.sql.search import select_experiments, select_runs

if TYPE_CHECKING:
    from tracking.store.sql.store import SqlTrackingStore

__all__ = ["experiment_ints", "search_experiments", "search_runs"]


def experiment_ints(experiment_ids: Sequence[str]) -> list[int]:
    """Experiment ids as the integers the tables hold; InvalidParameterError for others."""
    ids = []
    for eid in experiment_ids:
        try:
            ids.append(int(eid))
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"experiment_ids must hold integer strings such as '1', got {eid!r}"
            ) from None
    return ids


@functools.lru_cache(maxsize=256)
def _select_runs(
    ids: tuple[int, ...],
    tree: Filter | None,
    stages: tuple[str, ...],
    order: tuple[OrderBy, ...],
    offset: int,
    limit: int,
    dialect: str,
) -> Select[tuple[str]]:
    """:func:`select_runs`, built once for a search asked again (a UI polling, a
    dashboard): the statement is immutable, and building it costs as much as
    running it on a few hundred runs."""
    return select_runs(ids, tree, stages, order, offset, limit, dialect=dialect)


def search_runs(
    store: SqlTrackingStore,
    experiment_ids: Sequence[str],
    filter_string: str,
    view: ViewType,
    max_results: int,
    order_by: Sequence[str] | None,
    page_token: str | None,
) -> PagedList[Run]:
    """One page of runs; the query returns ids only, then one load for the page."""
    ids = experiment_ints(experiment_ids)
    tree = parse_run_filter(filter_string)
    order = parse_run_order_by(order_by)
    fingerprint = search_fingerprint(experiment_ids, filter_string, int(view), order_by)
    offset = decode_page_token(page_token, fingerprint)
    if not ids:
        return PagedList([], None)
    query = _select_runs(
        tuple(ids),
        tree,
        tuple(s.value for s in view.stages),
        tuple(order),
        offset,
        max_results + 1,
        store.dialect,
    )

    def work(conn: Connection) -> PagedList[Run]:
        run_ids = [str(r) for r in conn.execute(query).scalars().all()]
        token = None
        if len(run_ids) > max_results:
            run_ids.pop()
            token = encode_page_token(offset + max_results, fingerprint)
        return PagedList(store.load_runs(conn, run_ids), token)

    return store.read(work)


def search_experiments(
    store: SqlTrackingStore,
    view: ViewType,
    max_results: int,
    filter_string: str,
    order_by: Sequence[str] | None,
    page_token: str | None,
) -> PagedList[Experiment]:
    """One page of experiments."""
    tree = parse_experiment_filter(filter_string)
    order = parse_experiment_order_by(order_by)
    fingerprint = search_fingerprint(["experiments"], filter_string, int(view), order_by)
    offset = decode_page_token(page_token, fingerprint)
    query = select_experiments(
        tree, [s.value for s in view.stages], order, offset, max_results + 1, dialect=store.dialect
    )

    def work(conn: Connection) -> PagedList[Experiment]:
        exp_ids = list(conn.execute(query).scalars().all())
        token = None
        if len(exp_ids) > max_results:
            exp_ids.pop()
            token = encode_page_token(offset + max_results, fingerprint)
        found = {
            e.experiment_id: e
            for e in store.load_experiments(conn, ExperimentModel.experiment_id.in_(exp_ids))
        }
        return PagedList([found[str(i)] for i in exp_ids], token)

    return store.read(work)
