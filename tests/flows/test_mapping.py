"""Mapped task runs know their index when they start: named ``task[i]`` and tagged
``prefect.map_index`` with no wait for ``.map`` to return, at any size, through any
task runner."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from _prefect_support import flow_tree
from prefect.context import FlowRunContext
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped

import tracking
from flows import tracked_flow, tracked_task
from flows.decorators import MAP_INDEX_PARAM
from tracking import RunStatus, TrackingClient

pytestmark = pytest.mark.prefect

_first_done = threading.Event()


def _flow_run_id() -> str:
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    return str(ctx.flow_run.id)


class SlowSubmitter(ThreadPoolTaskRunner):  # type: ignore[type-arg]
    """A runner that hands out the second run only once the first has finished (as a
    busy scheduler may): ``.map`` cannot return before a mapped run has ended."""

    def duplicate(self) -> SlowSubmitter:
        return type(self)(max_workers=self._max_workers)

    def submit(self, task: Any, parameters: Any, *args: Any, **kwargs: Any) -> Any:
        if parameters.get(MAP_INDEX_PARAM, 0) != 0 or parameters.get("x", 0) != 0:
            assert _first_done.wait(30), "the first mapped run never finished"
        return super().submit(task, parameters, *args, **kwargs)


@tracked_task(log_params=True)
def item(x: int, scale: int = 1) -> str:
    active = tracking.active_run()
    assert active is not None
    if x == 0:
        _first_done.set()
    return active.info.run_name


@tracked_flow(task_runner=SlowSubmitter(max_workers=4))
def slow_map(n: int) -> dict[str, Any]:
    _first_done.clear()
    return {"id": _flow_run_id(), "names": [f.result() for f in item.map(range(n))]}


@tracked_flow
def big_map(n: int) -> dict[str, Any]:
    futures = item.map(list(range(n)), scale=unmapped(2))
    return {"id": _flow_run_id(), "names": [f.result() for f in futures]}


@tracked_flow
def generator_map(n: int) -> dict[str, Any]:
    futures = item.with_options(name="gen").map(x for x in range(n))
    return {"id": _flow_run_id(), "names": [f.result() for f in futures]}


class TestMapIndex:
    def test_known_when_the_run_starts(self, embedded: TrackingClient) -> None:
        out = slow_map(3)
        assert out["names"] == ["item[0]", "item[1]", "item[2]"]

    def test_a_map_of_several_hundred(self, store: TrackingClient) -> None:
        n = 300
        out = big_map(n)
        assert out["names"] == [f"item[{i}]" for i in range(n)]
        _, runs = flow_tree(store, out["id"])
        assert len(runs) == n
        for run in runs:
            index = run.data.tags["prefect.map_index"]
            assert run.info.run_name == f"item[{index}]"
            assert run.data.params == {"x": index, "scale": "2"}  # the index is no param
            assert run.info.status is RunStatus.FINISHED

    def test_a_one_shot_iterable_and_with_options(self, embedded: TrackingClient) -> None:
        out = generator_map(4)
        assert out["names"] == [f"gen[{i}]" for i in range(4)]
