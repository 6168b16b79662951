"""The pipeline view of a pipeline run (a timeline and a lineage graph of its steps) and a
pipeline's history page (``/experiments/{id}/pipelines/{orchestrator}/{pipeline_id}``).

Both are drawn on the server, as HTML and SVG with their positions computed here: the
page needs no script to show them, is drawn as soon as it arrives (a DAG run of 200 task
instances with lineage included), and every bar, node and point is a link with a
hover label (``title``). Steps are grouped by their task: Airflow's ``task_id``, else
the run's name without a mapped instance's ``[index]``; a mapped task's instances are
one group (one timeline row each, one node of small squares in the graph).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tracking.champions import CHAMPION_TAG
from tracking.entities import LifecycleStage, Run, RunData, RunInfo, RunStatus
from tracking.errors import TrackingError
from tracking.pipelines import attempts
from tracking.server.state import StateDep
from tracking.store.sql.browse import (
    PIPELINE_ID_TAGS,
    PipelineSteps,
    StepRecord,
    experiment_pipelines,
    latest_metrics,
    pipeline_runs,
    pipeline_steps,
    run_record,
)
from tracking.ui.render import duration, number, page, timestamp

__all__ = [
    "GRAPH_LABELS",
    "Graph",
    "Timeline",
    "graph",
    "group_key",
    "history_chart",
    "pipeline_of",
    "router",
    "timeline",
]

router = APIRouter(include_in_schema=False)

#: A mapped task's instances are shown open in the timeline up to this many.
OPEN_GROUP = 12
#: Edge labels are written on the graph up to this many edges (beyond: hover only).
GRAPH_LABELS = 60
_MAPPED = re.compile(r"\[[^\[\]]*\]$")
_NODE_W, _LAYER_GAP, _NODE_GAP, _SQUARE, _PER_ROW = 190, 310, 18, 12, 15


def group_key(step: StepRecord) -> str:
    """The task a step is an instance of: ``airflow.task_id``, else its name without a
    trailing ``[index]``."""
    return step.tags.get("airflow.task_id") or _MAPPED.sub("", step.name) or step.run_id


def _map_index(step: StepRecord) -> int:
    for key in ("airflow.map_index", "prefect.map_index"):
        try:
            return int(step.tags.get(key, "-1"))
        except ValueError:
            continue
    return -1


def pipeline_of(tags: dict[str, str]) -> tuple[str, str] | None:
    """``(orchestrator, pipeline_id)`` of a pipeline run's (or a step's) tags."""
    for orchestrator, key in PIPELINE_ID_TAGS.items():
        if tags.get(key):
            return orchestrator, tags[key]
    return None


def _attempts(step: StepRecord) -> list[dict[str, Any]]:
    """The step's attempts (see :func:`tracking.pipelines.attempts`)."""
    info = RunInfo(
        step.run_id,
        "",
        step.name,
        "",
        step.status,
        step.start_time,
        step.end_time,
        "",
        LifecycleStage.ACTIVE,
    )
    return attempts(Run(info, RunData(tags=step.tags)))


# -- timeline ---------------------------------------------------------------------------


@dataclass
class Bar:
    """One attempt of a step on the timeline: ``left`` and ``width`` in percent."""

    left: float
    width: float
    status: str
    title: str
    attempt: int
    last: bool


@dataclass
class Lane:
    """One step's row: its attempts' bars."""

    step: StepRecord
    bars: list[Bar]
    attempts: int
    duration: str


@dataclass
class Group:
    """A task: its instances' lanes (one lane when not mapped)."""

    key: str
    lanes: list[Lane]
    mapped: bool
    counts: dict[str, int]
    start: int

    @property
    def open(self) -> bool:
        """Shown open: a few instances."""
        return len(self.lanes) <= OPEN_GROUP


@dataclass
class Timeline:
    """The timeline's groups, its time axis ``ticks`` (percent, label) and its span."""

    groups: list[Group]
    ticks: list[tuple[float, str]]
    start: int
    end: int


#: Time axis steps in ms: 10 ms to a day.
_TICKS_MS = (
    *(10, 20, 50, 100, 200, 500),
    *(s * 1000 for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)),
    *(21600_000, 86400_000),
)


def _ticks(start: int, end: int) -> list[tuple[float, str]]:
    """Time axis ticks, about 5 to 8 of them, as (percent, ``+12.0 s``)."""
    span = max(end - start, 1)
    step = next((s for s in _TICKS_MS if span / s <= 8), _TICKS_MS[-1])
    ticks = []
    offset = 0
    while offset <= span:
        ticks.append((round(100 * offset / span, 3), "+0" if offset == 0 else duration(offset)))
        offset += step
    return ticks


def _title(step: StepRecord, attempt: dict[str, Any], n: int, end: int) -> str:
    start = attempt.get("start") or step.start_time or end
    stop = attempt.get("end") or end
    status = attempt.get("status") or step.status.value
    parts = [step.name]
    if n > 1:
        parts.append(f"attempt {attempt.get('attempt')} of {n}")
    parts += [str(status), duration(stop - start), f"from {timestamp(start)}"]
    reason = step.tags.get("trackflow.failureReason")
    if reason and status in ("FAILED", "KILLED") and attempt.get("end") == step.end_time:
        parts.append(reason[:300])
    return " · ".join(p for p in parts if p)


def timeline(steps: list[StepRecord], now_ms: int | None = None) -> Timeline:
    """Lay the steps out on a time axis: a lane per step, one bar per attempt."""
    now = now_ms or int(time.time() * 1000)
    history = {s.run_id: _attempts(s) for s in steps}
    starts: list[int] = [int(a["start"]) for h in history.values() for a in h if a.get("start")]
    starts += [s.start_time for s in steps if s.start_time]
    ends: list[int] = [int(a.get("end") or now) for h in history.values() for a in h]
    start = min(starts) if starts else now
    end = max([*ends, start + 1])
    span = end - start
    grouped: dict[str, list[StepRecord]] = defaultdict(list)
    for step in steps:
        grouped[group_key(step)].append(step)
    groups = []
    for key, members in grouped.items():
        members.sort(key=lambda s: (_map_index(s), s.start_time or 0, s.name))
        lanes = []
        counts: dict[str, int] = defaultdict(int)
        for step in members:
            counts[step.status.value] += 1
            tries = history[step.run_id]
            bars = []
            for i, attempt in enumerate(tries):
                a_start = int(attempt.get("start") or step.start_time or start)
                a_end = int(
                    attempt.get("end") or (now if not step.status.is_terminated else a_start)
                )
                left = 100 * (a_start - start) / span
                width = max(100 * (a_end - a_start) / span, 0.25)
                bars.append(
                    Bar(
                        left=round(min(left, 99.75), 3),
                        width=round(min(width, 100 - min(left, 99.75)), 3),
                        status=str(attempt.get("status") or step.status.value).lower(),
                        title=_title(step, attempt, len(tries), now),
                        attempt=int(attempt.get("attempt") or i + 1),
                        last=i == len(tries) - 1,
                    )
                )
            own_end = step.end_time or (now if not step.status.is_terminated else None)
            took = duration(own_end - step.start_time) if own_end and step.start_time else ""
            lanes.append(Lane(step, bars, len(tries), took))
        mapped = len(members) > 1 or any(_map_index(s) >= 0 for s in members)
        first = min((s.start_time or now) for s in members)
        groups.append(Group(key, lanes, mapped, dict(counts), first))
    groups.sort(key=lambda g: (g.start, g.key))
    return Timeline(groups, _ticks(start, end), start, end)


# -- lineage graph ------------------------------------------------------------------------


@dataclass
class Node:
    """A task in the graph, at ``x``, ``y`` (its top left), ``height`` high."""

    key: str
    steps: list[StepRecord]
    layer: int = 0
    x: int = 0
    y: int = 0
    height: int = 44
    squares: list[tuple[int, int, StepRecord]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The worst state of its steps (failed over running over finished)."""
        order = ("FAILED", "KILLED", "RUNNING", "SCHEDULED", "FINISHED")
        states = {s.status.value for s in self.steps}
        return next((s for s in order if s in states), "FINISHED").lower()


@dataclass
class Edge:
    """Artifacts that went from one task to another: a path from ``start`` to ``end``."""

    source: str
    target: str
    artifacts: list[str]
    count: int
    path: str
    label_x: float
    label_y: float

    @property
    def label(self) -> str:
        """The first artifact's path (cut), and how many more."""
        first = self.artifacts[0]
        first = first if len(first) <= 22 else "…" + first[-21:]
        return first + (f" +{len(self.artifacts) - 1}" if len(self.artifacts) > 1 else "")


@dataclass
class Graph:
    """The graph's nodes and edges, and its size in pixels."""

    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    labels: bool


def _layers(keys: list[str], links: set[tuple[str, str]], starts: dict[str, int]) -> dict[str, int]:
    """Each task's column: the longest chain of lineage before it; a task with no lineage
    goes after the last linked task that ended before it started."""
    preds: dict[str, set[str]] = defaultdict(set)
    succs: dict[str, set[str]] = defaultdict(set)
    for a, b in links:
        if a != b:
            preds[b].add(a)
            succs[a].add(b)
    layer: dict[str, int] = {}
    waiting = {k: len(preds[k]) for k in keys}
    ready = [k for k in keys if waiting[k] == 0 and (preds[k] or succs[k])]
    while ready:
        k = ready.pop()
        layer[k] = max((layer[p] + 1 for p in preds[k] if p in layer), default=0)
        for s in succs[k]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.append(s)
    linked = [k for k in keys if preds[k] or succs[k]]
    for k in linked:  # a cycle: placed after what of it was placed
        if k not in layer:
            layer[k] = max((layer[p] + 1 for p in preds[k] if p in layer), default=0)
    for k in keys:
        if k not in layer:
            before = [layer[o] for o in linked if starts[o] <= starts[k]]
            layer[k] = max(before) + 1 if before else 0
    return layer


def graph(steps: list[StepRecord], edges: list[tuple[str, str, str]]) -> Graph:
    """Tasks as nodes in columns by lineage, edges labelled with the artifacts."""
    by_run = {s.run_id: group_key(s) for s in steps}
    members: dict[str, list[StepRecord]] = defaultdict(list)
    for step in steps:
        members[by_run[step.run_id]].append(step)
    starts = {k: min((s.start_time or 0) for s in m) for k, m in members.items()}
    keys = sorted(members, key=lambda k: (starts[k], k))
    artifacts: dict[tuple[str, str], list[str]] = defaultdict(list)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for producer, consumer, path in edges:
        pair = (by_run[producer], by_run[consumer])
        counts[pair] += 1
        if path not in artifacts[pair]:
            artifacts[pair].append(path)
    layer = _layers(keys, set(artifacts), starts)
    nodes = {
        k: Node(k, sorted(members[k], key=lambda s: (_map_index(s), s.name)), layer[k])
        for k in keys
    }
    columns: dict[int, list[str]] = defaultdict(list)
    for k in keys:
        columns[layer[k]].append(k)
    preds: dict[str, list[str]] = defaultdict(list)
    for a, b in artifacts:
        preds[b].append(a)
    height = 0
    for col in sorted(columns):
        # Beside its producers where it has some (their mean height), else by start.
        def place(k: str, col: int = col) -> tuple[float, int]:
            ys = [nodes[p].y for p in preds[k] if nodes[p].layer < col]
            return (sum(ys) / len(ys) if ys else math.inf, starts[k])

        y = 10
        for k in sorted(columns[col], key=place):
            node = nodes[k]
            node.x = 10 + col * _LAYER_GAP
            node.y = y
            if len(node.steps) > 1 or _map_index(node.steps[0]) >= 0:
                rows = math.ceil(len(node.steps) / _PER_ROW)
                node.height = 32 + rows * _SQUARE + 4
                node.squares = [
                    (
                        node.x + 8 + (i % _PER_ROW) * _SQUARE,
                        node.y + 30 + (i // _PER_ROW) * _SQUARE,
                        s,
                    )
                    for i, s in enumerate(node.steps)
                ]
            y += node.height + _NODE_GAP
        height = max(height, y)
    drawn = []
    for (a, b), paths in artifacts.items():
        if a == b:
            continue
        na, nb = nodes[a], nodes[b]
        x1, y1 = na.x + _NODE_W, na.y + na.height / 2
        x2, y2 = nb.x, nb.y + nb.height / 2
        bend = max(40.0, abs(x2 - x1) / 2)
        path = f"M{x1},{y1:.1f} C{x1 + bend},{y1:.1f} {x2 - bend},{y2:.1f} {x2},{y2:.1f}"
        drawn.append(Edge(a, b, paths, counts[(a, b)], path, (x1 + x2) / 2, (y1 + y2) / 2 - 4))
    width = 20 + (max(columns) + 1) * _LAYER_GAP if columns else 200
    return Graph(
        [nodes[k] for k in keys], drawn, width, max(height, 60), len(drawn) <= GRAPH_LABELS
    )


def pipeline_view(found: PipelineSteps) -> dict[str, Any]:
    """What ``_pipeline.html`` draws for a pipeline run's steps."""
    counts: dict[str, int] = defaultdict(int)
    for step in found.steps:
        counts[step.status.value] += 1
    return {
        "timeline": timeline(found.steps),
        "graph": graph(found.steps, found.edges),
        "counts": dict(sorted(counts.items())),
        "total": found.total,
        "shown": len(found.steps),
        "external": found.external,
        "node_w": _NODE_W,
        "square": _SQUARE - 2,
    }


# -- history ----------------------------------------------------------------------------


@dataclass
class Point:
    """A pipeline run on the history chart."""

    x: float
    y: float
    run: StepRecord
    step: StepRecord
    value: float
    champion: bool

    @property
    def label_anchor(self) -> str:
        """Where a label beside the point goes: left of it near the right edge."""
        return "end" if self.x > 760 else "start"


def history_chart(
    points: list[tuple[StepRecord, StepRecord, float, bool]], width: int = 900, height: int = 280
) -> dict[str, Any]:
    """Positions for the chart of a step's metric across pipeline runs (oldest first):
    x by the pipeline run's start, y by the value; ``champion`` points marked."""
    pad_l, pad_r, pad_t, pad_b = 64, 20, 16, 36
    finite = [(r, s, v, c) for r, s, v, c in points if math.isfinite(v)]
    if not finite:
        return {"points": [], "width": width, "height": height, "yticks": [], "xticks": []}
    xs = [_when(r) for r, _s, _v, _c in finite]
    ys = [v for _r, _s, v, _c in finite]
    x0, x1 = min(xs), max(xs)
    lo, hi = min(ys), max(ys)
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.05 or 1), hi + (abs(hi) * 0.05 or 1)
    margin = (hi - lo) * 0.08
    lo, hi = lo - margin, hi + margin

    def px(x: int, i: int) -> float:
        if x1 == x0:
            return pad_l + (width - pad_l - pad_r) * ((i + 0.5) / len(finite))
        return pad_l + (width - pad_l - pad_r) * (x - x0) / (x1 - x0)

    def py(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - (v - lo) / (hi - lo))

    placed = [
        Point(round(px(x, i), 1), round(py(v), 1), r, s, v, c)
        for i, (x, (r, s, v, c)) in enumerate(zip(xs, finite, strict=True))
    ]
    raw = (hi - lo) / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    tick = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    yticks = []
    value = math.ceil(lo / tick) * tick
    while value <= hi:
        yticks.append((round(py(value), 1), number(round(value, 10))))
        value += tick
    xticks = []
    if placed:
        chosen = placed if len(placed) <= 6 else placed[:: math.ceil(len(placed) / 6)]
        xticks = [
            (p.x, timestamp(_when(p.run))[:10], "end" if p.x > width - 60 else "middle")
            for p in chosen
        ]
    line = " ".join(f"{p.x},{p.y}" for p in placed)
    return {
        "points": placed,
        "line": line,
        "width": width,
        "height": height,
        "yticks": yticks,
        "xticks": xticks,
        "bottom": height - pad_b,
        "left": pad_l,
        "right": width - pad_r,
    }


def _when(run: StepRecord) -> int:
    """When a pipeline run ran for: its logical date (a scheduled DAG run's day), else its
    start, in ms."""
    logical = run.tags.get("airflow.logical_date")
    if logical:
        try:
            return int(dt.datetime.fromisoformat(logical).timestamp() * 1000)
        except ValueError:
            pass
    return run.start_time or 0


def _promoted(step: StepRecord) -> bool:
    """The step's run became champion (it holds the tag, or lost it since)."""
    return step.tags.get(CHAMPION_TAG) == "true" or "trackflow.dethronedBy" in step.tags


@router.get("/experiments/{experiment_id}/pipelines/{orchestrator}/{pipeline_id:path}")
def history_page(
    request: Request,
    state: StateDep,
    experiment_id: str,
    orchestrator: str,
    pipeline_id: str,
    step: str = "",
    metric: str = "",
) -> Response:
    """One pipeline's runs over time: a table of them, and a chosen step's metric across
    them with the champion changes marked."""
    try:
        experiment = state.store.get_experiment(experiment_id)
        runs, steps = pipeline_runs(state.store, experiment_id, orchestrator, pipeline_id)
    except TrackingError as exc:
        return page(
            request, "error.html", status_code=404, title="Pipeline not found", error=str(exc)
        )
    if not runs:
        return page(
            request,
            "error.html",
            status_code=404,
            title="Pipeline not found",
            error=f"No runs of {orchestrator} pipeline {pipeline_id!r} in experiment "
            f"{experiment.name!r}",
        )
    order: dict[str, int] = {}
    for run in reversed(runs):
        for s in steps[run.run_id]:
            order.setdefault(group_key(s), len(order))
    all_steps = [s for found in steps.values() for s in found]
    values = latest_metrics(state.store, [s.run_id for s in all_steps])
    keys_of: dict[str, set[str]] = defaultdict(set)
    for s in all_steps:
        keys_of[group_key(s)].update(values.get(s.run_id, {}))
    step_names = sorted(order, key=lambda k: order[k])
    with_metrics = [k for k in step_names if keys_of[k]]
    error = None
    if step and step not in order:
        error = f"No step {step!r} in pipeline {pipeline_id!r}: its steps are " + ", ".join(
            step_names
        )
        step = ""
    chosen = step or (with_metrics[-1] if with_metrics else "")
    metric_names = sorted(keys_of.get(chosen, set()))
    if metric and metric not in metric_names:
        error = f"Step {chosen!r} logged no metric {metric!r}" + (
            f": its metrics are {', '.join(metric_names)}" if metric_names else ""
        )
        metric = ""
    metric = metric or (metric_names[0] if metric_names else "")
    rows = []
    points = []
    for run in runs:
        members = steps[run.run_id]
        chosen_steps = [s for s in members if group_key(s) == chosen]
        value = next(
            (
                (s, values[s.run_id][metric])
                for s in chosen_steps
                if metric in values.get(s.run_id, {})
            ),
            None,
        )
        promoted = [s for s in members if _promoted(s)] + ([run] if _promoted(run) else [])
        failed = sum(1 for s in members if s.status is RunStatus.FAILED)
        rows.append((run, len(members), failed, value, promoted))
        if value is not None:
            points.append((run, value[0], value[1], bool(promoted)))
    chart = history_chart(list(reversed(points)))
    return page(
        request,
        "pipeline_history.html",
        experiment=experiment,
        orchestrator=orchestrator,
        pipeline_id=pipeline_id,
        rows=rows,
        chart=chart,
        steps=step_names,
        step=chosen,
        metrics=metric_names,
        metric=metric,
        error=error,
        changes=sum(1 for p in points if p[3]),
    )


@router.get("/ui/pipeline-lanes")
def lanes_fragment(request: Request, state: StateDep, run_id: str, step: str) -> Response:
    """The timeline rows of one task's instances (a mapped task's, shown closed at
    first), on the same time axis as the page's."""
    try:
        run = run_record(state.store, run_id)
        found = pipeline_steps(state.store, run_id)
    except TrackingError as exc:
        return page(request, "rows_error.html", status_code=404, error=str(exc))
    group = next((g for g in timeline(found.steps).groups if g.key == step), None)
    if group is None:
        return page(
            request,
            "rows_error.html",
            status_code=404,
            error=f"No step {step!r} in pipeline run {run_id}",
        )
    return page(request, "_lanes.html", group=group, experiment_id=run.info.experiment_id)


@router.get("/ui/pipelines")
def pipelines_fragment(request: Request, state: StateDep, experiment: str) -> Response:
    """The pipelines of an experiment, as links to their history (the runs page's)."""
    try:
        found = experiment_pipelines(state.store, experiment)
    except TrackingError as exc:
        return page(request, "rows_error.html", status_code=400, error=str(exc))
    return page(request, "pipelines.html", experiment_id=experiment, pipelines=found)
