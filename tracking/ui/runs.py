"""The runs table (``/experiments/{ids}``), its pages and tree levels (``/ui/rows``),
and the compare page (``/compare``).

Everything a table shows is in its URL (experiments, filter, sort, columns), so
each view can be shared. A table shows at most :data:`MAX_COLUMNS` param, metric
and tag columns, and cuts long values (:data:`~tracking.store.sql.browse.CELL_CHARS`),
so one page stays a few MB however it is asked for. The handlers are plain
``def``: FastAPI runs them in its threadpool, off the event loop. The first page
is part of the page itself; further pages and tree levels come as ``<tr>``
fragments that htmx inserts (a page when the last row scrolls into view, a level
when a node is expanded).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from tracking.entities import Experiment, ViewType
from tracking.errors import InvalidParameterError, NotFoundError, TrackingError
from tracking.search import Entity, OrderBy
from tracking.server.state import ServerState, StateDep
from tracking.store.sql.browse import (
    COUNT_CAP,
    Columns,
    RunPage,
    available_keys,
    browse_runs,
    compare_runs,
    count_runs,
    parse_sort,
    run_record,
)
from tracking.ui.render import VIEWS, page, query_string

__all__ = ["MAX_COLUMNS", "MAX_COMPARE", "MAX_COMPARE_KEYS", "TableView", "router"]

router = APIRouter(include_in_schema=False)
#: Rows per fetched page (the table keeps at most ten pages in the document).
PAGE_ROWS = 100
#: Default columns: the first keys of each kind, when the URL names none.
DEFAULT_COLUMNS = 5
#: The most runs the compare page takes.
MAX_COMPARE = 100
#: The most param and metric keys (each) the compare page shows.
MAX_COMPARE_KEYS = 500
#: The most param, metric and tag columns a table shows (a table of 2,000 columns took
#: 20 s and 80 MB to build).
MAX_COLUMNS = 100
_PREFIX = {"p": "params", "m": "metrics", "t": "tags"}
_ENTITY_PREFIX = {Entity.PARAM: "params", Entity.METRIC: "metrics", Entity.TAG: "tags"}


def order_text(entity: str, key: str, ascending: bool) -> str:
    """An ``order_by`` item the search grammar reads back (keys in backticks)."""
    direction = "ASC" if ascending else "DESC"
    if entity == "attributes":
        return f"attributes.{key} {direction}"
    return f"{entity}.`{key}` {direction}"


@dataclass(frozen=True)
class TableView:
    """What the URL of a runs table says."""

    experiment_ids: list[str]
    filter: str
    sort_text: str
    sort: OrderBy
    columns: Columns
    cols_given: bool
    view: str

    def query(self) -> dict[str, Any]:
        """The URL parameters that reproduce this view."""
        cols = [f"p:{k}" for k in self.columns.params]
        cols += [f"m:{k}" for k in self.columns.metrics]
        cols += [f"t:{k}" for k in self.columns.tags]
        return {
            "filter": self.filter,
            "sort": self.sort_text,
            "cols": (cols or ["_"]) if self.cols_given else [],
            "view": "" if self.view == "active" else self.view,
        }

    def sorted_by(self, entity: str, key: str) -> str | None:
        """``"asc"``/``"desc"`` when the table is sorted by this column."""
        current = self.sort
        name = (
            "attributes" if current.entity is Entity.ATTRIBUTE else _ENTITY_PREFIX[current.entity]
        )
        if name == entity and current.key == key:
            return "asc" if current.ascending else "desc"
        return None

    def sort_link(self, entity: str, key: str) -> str:
        """The ``sort`` value a header click asks for: descending first, then ascending."""
        return order_text(entity, key, ascending=self.sorted_by(entity, key) == "desc")


def parse_columns(cols: list[str]) -> tuple[Columns, bool]:
    """``cols=p:lr&cols=m:auc&cols=t:team`` into :class:`Columns`; ``_`` alone means none.
    More than :data:`MAX_COLUMNS` columns are refused (InvalidParameterError)."""
    asked = sum(1 for c in cols if c != "_")
    if asked > MAX_COLUMNS:
        raise InvalidParameterError(
            f"Too many columns: {asked} asked for, a table shows at most {MAX_COLUMNS} columns "
            "of params, metrics and tags; choose fewer in the column chooser"
        )
    chosen: dict[str, list[str]] = {"params": [], "metrics": [], "tags": []}
    for item in cols:
        if item == "_":
            continue
        kind, sep, key = item.partition(":")
        if not sep or kind not in _PREFIX or not key:
            raise InvalidParameterError(
                f"Invalid column {item!r}: expected p:<param>, m:<metric> or t:<tag>"
            )
        if key not in chosen[_PREFIX[kind]]:
            chosen[_PREFIX[kind]].append(key)
    return (
        Columns(tuple(chosen["params"]), tuple(chosen["metrics"]), tuple(chosen["tags"])),
        bool(cols),
    )


def table_view(
    experiment_ids: list[str], filter: str, sort: str, cols: list[str], view: str
) -> TableView:
    """Parse the URL's parameters (InvalidParameterError/SearchSyntaxError on bad ones)."""
    columns, given = parse_columns(cols)
    return TableView(
        experiment_ids=experiment_ids,
        filter=filter.strip(),
        sort_text=sort.strip(),
        sort=parse_sort(sort),
        columns=columns,
        cols_given=given,
        view=view if view in VIEWS else "active",
    )


def _with_default_columns(table: TableView, keys: dict[str, list[str]]) -> TableView:
    if table.cols_given:
        return table
    columns = Columns(
        tuple(keys["params"][:DEFAULT_COLUMNS]),
        tuple(keys["metrics"][:DEFAULT_COLUMNS]),
        (),
    )
    # Explicit from here on: the rows fetched later (pages, tree levels) need the same cells.
    return replace(table, columns=columns, cols_given=True)


def _page(
    state: ServerState,
    table: TableView,
    cursor: str | None = None,
    parent: str | None = None,
) -> RunPage:
    return browse_runs(
        state.store,
        table.experiment_ids,
        filter_string=table.filter,
        sort=table.sort,
        cursor=cursor,
        limit=PAGE_ROWS,
        columns=table.columns,
        parent_run_id=parent,
        view=VIEWS[table.view],
    )


def _split_ids(ids: str) -> list[str]:
    found = [i.strip() for i in ids.split(",") if i.strip()]
    if not found or not all(i.isdigit() for i in found):
        raise InvalidParameterError(
            f"Invalid experiment ids {ids!r}: expected ids such as 1 or 1,4 (comma-separated)"
        )
    return found


@router.get("/experiments/{ids}")
def runs_page(
    request: Request,
    state: StateDep,
    ids: str,
    filter: str = "",
    sort: str = "",
    cols: list[str] = Query([]),  # noqa: B008 - FastAPI's way
    view: str = "active",
) -> Response:
    """The runs table of one or more experiments."""
    try:
        experiment_ids = _split_ids(ids)
        experiments: list[Experiment] = [state.store.get_experiment(e) for e in experiment_ids]
    except NotFoundError as exc:
        return page(request, "error.html", status_code=404, title="Not found", error=str(exc))
    except InvalidParameterError as exc:
        return page(request, "error.html", status_code=400, title="Bad address", error=str(exc))
    error = None
    first: RunPage | None = None
    try:
        table = table_view(experiment_ids, filter, sort, cols, view)
    except TrackingError as exc:
        error = str(exc)
        table = table_view(experiment_ids, "", "", [], view)
        table = replace(table, filter=filter)
    keys = available_keys(state.store, experiment_ids)
    table = _with_default_columns(table, keys)
    if error is None:
        try:
            first = _page(state, table)
        except TrackingError as exc:
            error = str(exc)
    return page(
        request,
        "runs.html",
        status_code=400 if error else 200,
        experiments=experiments,
        experiment_names={e.experiment_id: e.name for e in experiments},
        table=table,
        first=first,
        keys=keys,
        error=error,
    )


@router.get("/ui/count")
def count_fragment(
    request: Request,
    state: StateDep,
    experiments: str,
    filter: str = "",
    view: str = "active",
) -> Response:
    """How many runs the table holds (asked for once its first rows are shown)."""
    try:
        ids = _split_ids(experiments)
        found = count_runs(
            state.store,
            ids,
            filter_string=filter.strip(),
            view=VIEWS.get(view, ViewType.ACTIVE_ONLY),
        )
    except TrackingError as exc:
        return page(request, "count.html", status_code=400, error=str(exc))
    shown = f"{COUNT_CAP:,}+" if found > COUNT_CAP else f"{found:,}"
    noun = "run" if found == 1 else "runs"
    what = f"matching {noun}" if filter.strip() else f"top-level {noun}"
    return page(request, "count.html", error=None, text=f"{shown} {what}")


@router.get("/ui/rows")
def rows_fragment(
    request: Request,
    state: StateDep,
    experiments: str,
    filter: str = "",
    sort: str = "",
    cols: list[str] = Query([]),  # noqa: B008
    view: str = "active",
    cursor: str | None = None,
    parent: str | None = None,
    depth: int = 0,
) -> Response:
    """More rows: the next page (``cursor``) or a tree level (``parent``), as ``<tr>``s."""
    try:
        table = table_view(_split_ids(experiments), filter, sort, cols, view)
        found = _page(state, table, cursor=cursor, parent=parent)
        names = {}
        if len(table.experiment_ids) > 1:  # the Experiment column
            names = {e: state.store.get_experiment(e).name for e in table.experiment_ids}
    except TrackingError as exc:
        return page(request, "rows_error.html", status_code=400, error=str(exc))
    return page(
        request,
        "rows.html",
        table=table,
        experiment_names=names,
        rows=found.rows,
        cursor=found.cursor,
        parent=parent,
        depth=depth,
    )


@router.get("/runs/{run_id}")
def run_redirect(request: Request, state: StateDep, run_id: str) -> Response:
    """A run by id alone (lineage links, breadcrumbs): on to its page."""
    try:
        run = run_record(state.store, run_id)
    except TrackingError as exc:
        return page(request, "error.html", status_code=404, title="Run not found", error=str(exc))
    root = request.scope.get("root_path", "").rstrip("/")
    return RedirectResponse(
        f"{root}/experiments/{run.info.experiment_id}/runs/{run.info.run_id}", status_code=303
    )


def dir_keys(asked: list[str]) -> list[str]:
    """The metrics a URL's ``dir`` items name."""
    return [item.rpartition(":")[0] for item in asked if ":" in item]


def _differs(values: list[str | None]) -> bool:
    return len(set(values)) > 1


def _best(values: list[float | None], higher: bool) -> float | None:
    """The best of ``values`` (NaN and missing left out): the largest when ``higher``."""
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return None
    return max(finite) if higher else min(finite)


#: Metric names whose lower values are better (a word of the name, or its end).
_LOWER_IS_BETTER = re.compile(
    r"(^|[^a-z])(loss|error|err|rmse|mse|mae|mape|smape|latency|perplexity|wer|cer|"
    r"duration|time|seconds|ms|cost|regret)([^a-z]|$)|(loss|error)$",
    re.IGNORECASE,
)
#: MLflow's experiment tags naming the primary metric and its direction.
PRIMARY_METRIC_TAG = "mlflow.experiment.primaryMetric.name"
GREATER_IS_BETTER_TAG = "mlflow.experiment.primaryMetric.greaterIsBetter"


def higher_is_better(key: str) -> bool:
    """The default direction of a metric, from its name: ``loss``, ``val_error``,
    ``rmse``, ``mae``, ``latency_ms`` are lower-is-better, anything else higher."""
    return _LOWER_IS_BETTER.search(key) is None


def metric_directions(
    keys: list[str], experiments: list[Experiment], asked: list[str]
) -> dict[str, bool]:
    """Whether higher is better, per metric: ``asked`` (the URL's ``dir=key:max`` or
    ``key:min``) over the experiments' primary-metric tags over the name's default."""
    found = {k: higher_is_better(k) for k in keys}
    for experiment in experiments:
        name = experiment.tags.get(PRIMARY_METRIC_TAG)
        greater = experiment.tags.get(GREATER_IS_BETTER_TAG)
        if name in found and greater is not None:
            found[name] = greater.strip().lower() == "true"
    for item in asked:
        key, sep, way = item.rpartition(":")
        if not sep or way not in ("max", "min"):
            raise InvalidParameterError(
                f"Invalid dir {item!r}: expected <metric>:max or <metric>:min"
            )
        if key in found:
            found[key] = way == "max"
    return found


@router.get("/compare")
def compare_page(
    request: Request,
    state: StateDep,
    runs: str = "",
    dir: list[str] = Query([]),  # noqa: B008 - the URL's name; FastAPI's way
) -> Response:
    """Params with differences marked, metrics side by side, overlaid charts, and a scatter
    or parallel-coordinates view of params against a metric."""
    run_ids = list(dict.fromkeys(r.strip() for r in runs.replace(" ", ",").split(",") if r.strip()))
    if not run_ids:
        return page(
            request,
            "error.html",
            status_code=400,
            title="Nothing to compare",
            error="Select runs in a runs table, then Compare (the URL takes ?runs=id1,id2,...)",
        )
    if len(run_ids) > MAX_COMPARE:
        return page(
            request,
            "error.html",
            status_code=400,
            title="Too many runs",
            error=f"Compare takes at most {MAX_COMPARE} runs, got {len(run_ids)}",
        )
    # Params and latest metrics only (no tags), long values cut, at most MAX_COMPARE_KEYS
    # keys of each: a run may hold tens of thousands of long values.
    found = compare_runs(state.store, run_ids, MAX_COMPARE_KEYS)
    if len(found) < len(run_ids):
        missing = sorted(set(run_ids) - {r.info.run_id for r in found})
        return page(
            request,
            "error.html",
            status_code=404,
            title="Run not found",
            error=f"Run {missing[0]!r} not found",
        )
    param_keys = sorted({k for r in found for k in r.data.params})
    metric_keys = sorted({k for r in found for k in r.data.metrics})
    params = [
        (k, [r.data.params.get(k) for r in found], _differs([r.data.params.get(k) for r in found]))
        for k in param_keys
    ]
    experiments = [
        state.store.get_experiment(e) for e in dict.fromkeys(r.info.experiment_id for r in found)
    ]
    try:
        higher = metric_directions(metric_keys, experiments, dir)
    except InvalidParameterError as exc:
        return page(request, "error.html", status_code=400, title="Bad address", error=str(exc))
    metrics = []
    for k in metric_keys:
        values = [r.data.metrics.get(k) for r in found]
        metrics.append((k, values, _best(values, higher[k]), higher[k]))
    # The URL with one metric's direction flipped (the others' as they are asked).
    flips = {
        k: query_string(
            {"runs": ",".join(run_ids)},
            dir=[f"{m}:{'max' if higher[m] else 'min'}" for m in dir_keys(dir) if m != k]
            + [f"{k}:{'min' if higher[k] else 'max'}"],
        )
        for k in metric_keys
    }
    return page(
        request,
        "compare.html",
        runs=found,
        params=params,
        metrics=metrics,
        flips=flips,
        higher=higher,
        param_keys=param_keys,
        varying_params=[k for k, _values, differs in params if differs] or param_keys,
        metric_keys=metric_keys,
        only_differences=request.query_params.get("diff") == "1",
        params_json={"keys": param_keys, "values": [dict(r.data.params) for r in found]},
        metrics_json=[{k: v for k, v in r.data.metrics.items() if math.isfinite(v)} for r in found],
    )
