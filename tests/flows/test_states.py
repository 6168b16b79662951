"""States of tracked flow and task runs: failure, retry in the same run, crash, cached
results, async flows, concurrent tasks, two runs of one flow, artifacts."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from _prefect_support import TRACKFLOW_UI, by_name, flow_tree
from prefect.cache_policies import INPUTS
from prefect.context import FlowRunContext
from prefect.futures import wait

import tracking
from flows import tracked_flow, tracked_task
from tracking import RunStatus, TrackingClient
from tracking.pipelines import ATTEMPT_TAG, FAILURE_REASON_TAG

pytestmark = pytest.mark.prefect
_ids: list[str] = []


def _remember() -> None:
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    _ids.append(str(ctx.flow_run.id))


def _last() -> str:
    return _ids[-1]


_tries: dict[str, int] = {}


@tracked_task(retries=1, retry_delay_seconds=0)
def flaky(key: str) -> int:
    _tries[key] = _tries.get(key, 0) + 1
    tracking.log_metric("try", _tries[key])
    if _tries[key] == 1:
        raise RuntimeError("transient")
    return _tries[key]


@tracked_task
def boom() -> None:
    raise ValueError("boom: bad rows")


@tracked_flow
def retrying_flow(key: str) -> int:
    _remember()
    return flaky(key)


@tracked_flow
def failing_flow() -> None:
    _remember()
    boom()


class Crash(BaseException):
    """Not an Exception: Prefect calls that a crash."""


@tracked_flow
def crashing_flow() -> None:
    _remember()
    raise Crash("the worker went away")


@tracked_task(cache_policy=INPUTS, persist_result=True)
def expensive(x: int) -> int:
    tracking.log_metric("computed", x)
    return x * 10


@tracked_flow
def caching_flow(x: int) -> int:
    _remember()
    return expensive(x)


@tracked_flow
def caching_map(xs: list[int]) -> list[int]:
    _remember()
    return [f.result() for f in expensive.map(xs)]


@tracked_task
def plain(x: int) -> int:
    return x


@tracked_flow
def plain_flow() -> int:
    _remember()
    return plain(1) + plain(2)


_flow_tries: dict[str, int] = {}


@tracked_flow(retries=2, retry_delay_seconds=0)
def retried_flow(key: str) -> int:
    _remember()
    _flow_tries[key] = _flow_tries.get(key, 0) + 1
    if _flow_tries[key] < 3:
        raise RuntimeError("not yet")
    return _flow_tries[key]


@tracked_task
def log_in_thread(i: int) -> str:
    for step in range(20):
        tracking.log_metric("i", i, step=step)
    active = tracking.active_run()
    assert active is not None
    return active.info.run_id


@tracked_flow
def concurrent_flow(n: int) -> list[str]:
    _remember()
    futures = [log_in_thread.submit(i) for i in range(n)]
    wait(futures)
    return [f.result() for f in futures]


@tracked_task
async def async_task(x: int) -> int:
    await asyncio.sleep(0.01)
    tracking.log_metric("x", x)
    return x + 1


@tracked_flow
async def async_flow(xs: list[int]) -> int:
    _remember()
    results = await asyncio.gather(*(async_task(x) for x in xs))
    tracking.log_metric("total", sum(results))
    return sum(results)


class TestStates:
    def test_a_failing_task_and_flow(self, store: TrackingClient) -> None:
        with pytest.raises(ValueError, match="boom"):
            failing_flow()
        parent, runs = flow_tree(store, _last())
        assert parent.info.status is RunStatus.FAILED
        assert parent.data.tags[FAILURE_REASON_TAG] == "ValueError: boom: bad rows"
        (task,) = runs
        assert task.info.run_name == "boom"
        assert task.info.status is RunStatus.FAILED
        assert task.data.tags[FAILURE_REASON_TAG] == "ValueError: boom: bad rows"

    def test_a_retry_is_the_same_run(self, store: TrackingClient) -> None:
        key = f"k{len(_ids)}"
        assert retrying_flow(key) == 2
        parent, runs = flow_tree(store, _last())
        assert parent.info.status is RunStatus.FINISHED
        (task,) = runs
        assert task.info.status is RunStatus.FINISHED
        assert task.data.tags[ATTEMPT_TAG] == "2"
        assert task.data.tags["prefect.run_count"] == "2"
        assert FAILURE_REASON_TAG not in task.data.tags
        history = store.get_metric_history(task.info.run_id, "try")
        assert [m.value for m in history] == [1.0, 2.0]

    def test_a_crash(self, embedded: TrackingClient) -> None:
        with pytest.raises(Crash):
            crashing_flow()
        parent, _ = flow_tree(embedded, _last())
        assert parent.info.status is RunStatus.FAILED
        assert parent.data.tags[FAILURE_REASON_TAG] == "crashed: Crash: the worker went away"

    def test_a_cached_task(self, embedded: TrackingClient) -> None:
        x = 7 + len(_ids)  # nothing cached for it yet
        assert caching_flow(x) == x * 10
        _first, first_runs = flow_tree(embedded, _last())
        assert caching_flow(x) == x * 10
        second, second_runs = flow_tree(embedded, _last())
        (computed,) = first_runs
        (cached,) = second_runs
        assert computed.data.metrics == {"computed": float(x)}
        assert cached.info.status is RunStatus.FINISHED
        assert cached.data.tags["trackflow.cached"] == "true"
        assert cached.data.tags["trackflow.cachedFrom"] == computed.info.run_id
        assert cached.data.metrics == {}
        assert cached.info.parent_run_id == second.info.run_id


class TestCaching:
    def test_a_cache_key_only_when_the_task_caches_and_never_a_path(
        self, embedded: TrackingClient
    ) -> None:
        plain_flow()
        _, runs = flow_tree(embedded, _last())
        assert [r for r in runs if "prefect.cache_key" in r.data.tags] == []
        caching_flow(1000 + len(_ids))
        _, (computed,) = flow_tree(embedded, _last())
        key = computed.data.tags["prefect.cache_key"]
        assert "/" not in key and "\\" not in key and "storage" not in key

    def test_cached_runs_get_the_tags_of_any_task_run(self, embedded: TrackingClient) -> None:
        xs = [2000 + len(_ids), 2001 + len(_ids)]
        caching_map(xs)
        _, first = flow_tree(embedded, _last())
        caching_map(xs)
        _, second = flow_tree(embedded, _last())
        computed = {r.info.run_name: r for r in first}
        cached = {r.info.run_name: r for r in second}
        assert sorted(cached) == ["expensive[0]", "expensive[1]"]
        for name, run in cached.items():
            assert run.data.tags["trackflow.cached"] == "true"
            assert run.data.tags["trackflow.cachedFrom"] == computed[name].info.run_id
            own = {k for k in computed[name].data.tags if k.startswith("prefect.")}
            assert own - {"prefect.task_run_id", "prefect.task_run_name"} <= set(run.data.tags)
            assert run.data.tags["prefect.map_index"] == name[-2]
            assert run.data.tags["prefect.flow_name"] == "caching-map"
            assert run.data.tags["prefect.run_count"] == "1"
            assert run.data.tags["prefect.flow_run_id"] == _last()


class TestConcurrency:
    def test_submitted_tasks_each_log_into_their_own_run(self, store: TrackingClient) -> None:
        ids = concurrent_flow(6)
        parent, runs = flow_tree(store, _last())
        assert sorted(ids) == sorted(r.info.run_id for r in runs)
        for run in runs:
            history = store.get_metric_history(run.info.run_id, "i")
            assert len(history) == 20
            assert {m.value for m in history} == {history[0].value}
            assert run.info.parent_run_id == parent.info.run_id
        assert threading.active_count() >= 1

    def test_an_async_flow(self, embedded: TrackingClient) -> None:
        assert asyncio.run(async_flow([1, 2, 3])) == 9
        parent, runs = flow_tree(embedded, _last())
        assert parent.info.status is RunStatus.FINISHED
        assert parent.data.metrics == {"total": 9.0}
        assert sorted(r.data.metrics["x"] for r in runs) == [1.0, 2.0, 3.0]

    def test_the_same_flow_twice(self, embedded: TrackingClient) -> None:
        key = f"t{len(_ids)}"
        retrying_flow(key + "a")
        first = _last()
        retrying_flow(key + "b")
        second = _last()
        assert first != second
        one, one_runs = flow_tree(embedded, first)
        two, two_runs = flow_tree(embedded, second)
        assert one.info.run_id != two.info.run_id
        assert [r.info.parent_run_id for r in one_runs] == [one.info.run_id]
        assert [r.info.parent_run_id for r in two_runs] == [two.info.run_id]


class TestArtifacts:
    def test_link_and_metrics_artifacts(self, embedded: TrackingClient) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        assert asyncio.run(async_flow([4])) == 5
        flow_run_id = _last()
        parent, _ = flow_tree(embedded, flow_run_id)

        async def read() -> list[Any]:
            async with get_client() as client:
                return await client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                    )
                )

        artifacts = {a.key: a for a in asyncio.run(read())}
        url = f"{TRACKFLOW_UI}/#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}"
        assert artifacts["trackflow-run"].type == "markdown"
        assert f"]({url})" in artifacts["trackflow-run"].data
        assert artifacts["trackflow-metrics"].type == "table"
        assert "total" in str(artifacts["trackflow-metrics"].data)

    def test_one_link_per_flow_run_however_often_it_retries(self, embedded: TrackingClient) -> None:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        assert retried_flow(f"r{len(_ids)}") == 3
        flow_run_id = _last()

        async def read() -> list[Any]:
            async with get_client() as client:
                return await client.read_artifacts(
                    artifact_filter=ArtifactFilter(
                        flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
                    )
                )

        keys = [a.key for a in asyncio.run(read())]
        assert keys.count("trackflow-run") == 1, keys
        parent, _ = flow_tree(embedded, flow_run_id)
        assert parent.data.tags["prefect.run_count"] == "3"


class TestReasons:
    @pytest.mark.parametrize(
        ("state", "status", "reason"),
        [
            pytest.param(
                "Cancelled",
                RunStatus.KILLED,
                "cancelled: the flow run was cancelled through Prefect",
                id="cancel",
            ),
            pytest.param(
                "Crashed",
                RunStatus.FAILED,
                "crashed: the flow run's process ended without reporting a final state",
                id="crash",
            ),
        ],
    )
    def test_a_state_set_from_outside(
        self, embedded: TrackingClient, state: str, status: RunStatus, reason: str
    ) -> None:
        import prefect.states
        from prefect.client.orchestration import get_client

        from flows.decorators import _state_hook

        plain_flow()
        flow_run_id = _last()

        async def read() -> Any:
            async with get_client() as client:
                return await client.read_flow_run(flow_run_id)

        flow_run = asyncio.run(read())
        # A run the flow's process never ended, as after a kill: reopen it.
        parent, _ = flow_tree(embedded, flow_run_id)
        embedded.update_run(parent.info.run_id, status=RunStatus.RUNNING)
        message = "Cancelling" if state == "Cancelled" else "Crashed"
        made = getattr(prefect.states, state)(message=message)
        _state_hook(status)(plain_flow, flow_run, made)
        parent, _ = flow_tree(embedded, flow_run_id)
        assert parent.info.status is status
        assert parent.data.tags[FAILURE_REASON_TAG] == reason


_ = by_name
