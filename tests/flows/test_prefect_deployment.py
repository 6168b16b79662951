"""Tracked flows on a real Prefect deployment: ``prefect server start``, a process work
pool, ``prefect worker start`` and deployments (see ``_prefect_deployment_support``), against
a real ``trackflow server``. The flows' only configuration is their own block name.

Skipped when the server or the worker cannot start, except under ``CI=true``."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _prefect_deployment_support import (
    Deployment,
    create_pool,
    deploy,
    real_deployment,
    start_worker,
    stop,
)
from _prefect_support import by_name, flow_tree
from _server_support import ServerProcess

from tracking import RunStatus, TrackingClient
from tracking.champions import CHAMPION_TAG
from tracking.pipelines import ATTEMPT_TAG, FAILURE_REASON_TAG

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.timeout(900)]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, tracking_server: ServerProcess
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("prefect-deployment")
    try:
        context = real_deployment(root, tracking_server.url)
        dep = context.__enter__()
    except Exception as exc:
        if _in_ci():
            pytest.fail(f"the Prefect deployment did not start: {exc}", pytrace=False)
        pytest.skip(f"the Prefect deployment did not start: {exc}")
    try:
        yield dep
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def client(tracking_server: ServerProcess) -> TrackingClient:
    return TrackingClient(tracking_server.url)


def _run(dep: Deployment, short: str, **parameters: Any) -> str:
    from prefect.deployments import run_deployment

    name = dep.deployments.get(short, short)
    with dep.settings():
        flow_run = run_deployment(name=name, parameters=parameters, timeout=0)
    return str(flow_run.id)  # type: ignore[union-attr]


def _state(dep: Deployment, flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as prefect:
            return (await prefect.read_flow_run(flow_run_id)).state

    with dep.settings():
        return asyncio.run(read())


def _final(dep: Deployment, flow_run_id: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(dep, flow_run_id)
        if state is not None and state.is_final():
            return state
        time.sleep(0.5)
    raise AssertionError(
        f"flow run {flow_run_id} never ended: {_state(dep, flow_run_id)}\n{dep.log_tail('worker')}"
    )


def _until(predicate: Any, timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"never happened: {what}")


def _links(dep: Deployment, flow_run_id: str) -> list[str]:
    """The ``trackflow-run`` link artifacts of a flow run, through Prefect's REST API."""
    response = httpx.post(
        f"{dep.api}/artifacts/filter",
        json={
            "artifacts": {
                "flow_run_id": {"any_": [flow_run_id]},
                "key": {"any_": ["trackflow-run"]},
            }
        },
        timeout=10,
    )
    response.raise_for_status()
    return [
        m.group(1)
        for a in response.json()
        for m in [re.search(r"\]\((http[^)]+)\)", str(a["data"]))]
        if m
    ]


def _follow(link: str, run_id: str) -> None:
    """The link opens the run's page in trackflow's UI."""
    base, _, route = link.partition("/#/")
    page = httpx.get(f"{base}/{route}", timeout=10, follow_redirects=True)
    assert page.status_code == 200, (link, page.status_code)
    assert run_id in page.text
    assert httpx.get(link, timeout=10).status_code == 200


def _pipeline_view(link: str) -> tuple[set[str], set[tuple[str, str]], str]:
    """The pipeline view on the run page a link opens: its steps, its lineage edges."""
    base, _, route = link.partition("/#/")
    html = httpx.get(f"{base}/{route}", timeout=10, follow_redirects=True).text
    nodes = set(re.findall(r'<g class="node [a-z]+" data-step="([^"]+)"', html))
    edges = set(re.findall(r'<g class="edge" data-from="([^"]+)" data-to="([^"]+)"', html))
    return nodes, edges, html


def _no_local_store(dep: Deployment) -> None:
    found = [
        p
        for p in dep.root.rglob("*.db")
        if "server-home" not in p.parts and "prefect-home" not in p.parts
    ]
    assert found == [], f"a local store appeared: {found}"


def _tree(client: TrackingClient, flow_run_id: str) -> tuple[Any, list[Any]]:
    return _until(lambda: _try_tree(client, flow_run_id), 30, f"the run of {flow_run_id}")


def _try_tree(client: TrackingClient, flow_run_id: str) -> tuple[Any, list[Any]] | None:
    try:
        return flow_tree(client, flow_run_id)
    except Exception:
        return None


class TestReusableFlows:
    def test_retrain_and_sweep(self, deployment: Deployment, client: TrackingClient) -> None:
        retrain = _run(deployment, "retrain", day="2026-11-03")
        sweep = _run(deployment, "sweep", families={"plain": 0.0, "ridge": 0.05}, lrs=[0.5, 1.0])
        assert _final(deployment, retrain).name == "Completed"
        assert _final(deployment, sweep).name == "Completed"
        parent, runs = _tree(client, retrain)
        assert parent.info.status is RunStatus.FINISHED
        assert set(by_name(runs, parent)) == {"extract", "validate", "train", "evaluate", "decide"}
        train = by_name(runs, parent)["train"]
        assert train.data.tags.get(CHAMPION_TAG) == "true"
        (link,) = _links(deployment, retrain)
        _follow(link, parent.info.run_id)
        # The page the link opens shows the flow run as a pipeline: a node per task
        # run, each linking to its run, and the lineage between them.
        nodes, edges, html = _pipeline_view(link)
        assert nodes == {"extract", "validate", "train", "evaluate", "decide"}
        assert {("train", "evaluate"), ("extract", "evaluate")} <= edges, edges
        for run in by_name(runs, parent).values():
            assert f"/runs/{run.info.run_id}" in html
        # Promoted: the challenger's logged model is models:/deploy-retrain@champion.
        version = client.get_model_version_by_alias("deploy-retrain", "champion")
        assert version.run_id == train.info.run_id
        top, swept = _tree(client, sweep)
        families = [r for r in swept if r.info.parent_run_id == top.info.run_id]
        families = [r for r in families if r.info.run_name == "family"]
        assert len(families) == 2
        for family in families:
            assert sorted(by_name(swept, family)) == ["trial[0]", "trial[1]"]
            assert family.info.experiment_id == top.info.experiment_id
        assert client.get_experiment_by_name("family") is None
        assert all(r.info.status is RunStatus.FINISHED for r in swept)
        _no_local_store(deployment)


class TestFlowLevelConfiguration:
    def test_a_map_of_300_a_subflow_and_the_link(
        self, deployment: Deployment, client: TrackingClient
    ) -> None:
        flow_run_id = _run(deployment, "mapped", n=300)
        assert _final(deployment, flow_run_id).name == "Completed"
        parent, runs = _tree(client, flow_run_id)
        assert parent.info.status is RunStatus.FINISHED
        assert parent.data.tags["prefect.url"].startswith("http://127.0.0.1:")
        items = by_name(runs, parent)
        assert sorted(k for k in items if k.startswith("item[")) == sorted(
            f"item[{i}]" for i in range(300)
        )
        for name, run in items.items():
            if name.startswith("item["):
                assert run.data.metrics["x"] == float(name[5:-1])
                assert run.info.status is RunStatus.FINISHED
        sub = items["part"]
        assert sorted(by_name(runs, sub)) == ["item[0]", "item[1]", "item[2]"]
        (link,) = _links(deployment, flow_run_id)
        _follow(link, parent.info.run_id)
        _no_local_store(deployment)

    def test_two_concurrent_runs_of_one_deployment(
        self, deployment: Deployment, client: TrackingClient
    ) -> None:
        first = _run(deployment, "mapped", n=20)
        second = _run(deployment, "mapped", n=22)
        for flow_run_id, n in ((first, 20), (second, 22)):
            assert _final(deployment, flow_run_id).name == "Completed"
            parent, runs = _tree(client, flow_run_id)
            items = [r for r in by_name(runs, parent) if r.startswith("item[")]
            assert sorted(items) == sorted(f"item[{i}]" for i in range(n))


def _says_cancel() -> bool:
    """Whether this Prefect's runner tells a flow run's process of a cancellation."""
    try:
        import prefect._internal.control_listener  # noqa: F401
    except ImportError:
        return False
    return True


class TestStates:
    def test_retries_stay_in_one_run(self, deployment: Deployment, client: TrackingClient) -> None:
        flow_run_id = _run(deployment, "retried", key=f"k{time.monotonic_ns()}")
        assert _final(deployment, flow_run_id).name == "Completed"
        parent, runs = _tree(client, flow_run_id)
        assert parent.info.status is RunStatus.FINISHED
        assert parent.data.tags["prefect.run_count"] == "2"
        flaky = [r for r in runs if r.info.run_name == "flaky"]
        assert len(flaky) == 2  # one per flow attempt; the task's retry in the same run
        assert {r.info.status for r in flaky} == {RunStatus.FINISHED}
        assert sorted(r.data.tags[ATTEMPT_TAG] for r in flaky) == ["1", "2"]
        assert len(_links(deployment, flow_run_id)) == 1

    def test_caching(self, deployment: Deployment, client: TrackingClient) -> None:
        x = time.monotonic_ns() % 100_000
        first = _run(deployment, "caching", x=x)
        assert _final(deployment, first).name == "Completed"
        second = _run(deployment, "caching", x=x)
        assert _final(deployment, second).name == "Completed"
        _, (computed,) = _tree(client, first)
        _, (cached,) = _tree(client, second)
        assert cached.data.tags["trackflow.cached"] == "true"
        assert cached.data.tags["trackflow.cachedFrom"] == computed.info.run_id
        assert "/" not in computed.data.tags["prefect.cache_key"]
        assert cached.data.tags["prefect.flow_name"] == "caching"

    def test_cancel_while_a_task_sleeps(
        self, deployment: Deployment, client: TrackingClient
    ) -> None:
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelling

        marker = deployment.markers / f"cancel-{time.monotonic_ns()}"
        flow_run_id = _run(deployment, "sleepy", marker=str(marker))
        _until(marker.exists, 120, "the task started")

        async def cancel() -> None:
            async with get_client() as prefect:
                await prefect.set_flow_run_state(flow_run_id, Cancelling())

        started = time.monotonic()
        with deployment.settings():
            asyncio.run(cancel())
        assert _final(deployment, flow_run_id, 60).name == "Cancelled"
        parent, (task,) = _tree(client, flow_run_id)
        _until(
            lambda: client.get_run(parent.info.run_id).info.status is RunStatus.KILLED, 30, "KILLED"
        )
        parent, (task,) = _tree(client, flow_run_id)
        assert time.monotonic() - started < 60
        assert parent.data.tags[FAILURE_REASON_TAG].startswith("cancelled: ")
        assert task.info.status is RunStatus.KILLED
        # Only the flow's process ends the task's run: on a Prefect whose runner says
        # "cancel" before its SIGTERM (3.7 and later), the process knew why.
        why = (
            "the flow run was cancelled through Prefect"
            if _says_cancel()
            else "the flow run was cancelled, or its process was stopped"
        )
        assert task.data.tags[FAILURE_REASON_TAG] == f"killed: SIGTERM ({why})"

    def test_kill_9_of_the_flow_run_process(
        self, deployment: Deployment, client: TrackingClient
    ) -> None:
        marker = deployment.markers / f"kill-{time.monotonic_ns()}"
        flow_run_id = _run(deployment, "sleepy", marker=str(marker))
        _until(lambda: marker.exists() and marker.read_text(), 120, "the task started")
        os.kill(int(marker.read_text()), signal.SIGKILL)
        assert _final(deployment, flow_run_id, 60).name == "Crashed"
        parent = _until(
            lambda: (
                (r := client.get_run(_tree(client, flow_run_id)[0].info.run_id))
                and r.info.status.is_terminated
                and r
            ),
            30,
            "the flow's run ended",
        )
        assert parent.info.status is RunStatus.FAILED
        assert parent.data.tags[FAILURE_REASON_TAG].startswith("crashed: ")
        _, (task,) = _tree(client, flow_run_id)
        assert task.info.status.is_terminated


class TestLostWorker:
    def test_kill_9_of_the_worker_and_the_flow_process(
        self, deployment: Deployment, client: TrackingClient
    ) -> None:
        from flows.maintenance import reap_lost_runs

        pool = "tf-pool-doomed"
        with deployment.settings():
            create_pool(pool)
            name = deploy(deployment.src, "deploy_flows.py:sleepy", "sleepy-doomed", pool)
        worker = start_worker(deployment.root, deployment.api, pool, "doomed-worker")
        try:
            marker = deployment.markers / f"doomed-{time.monotonic_ns()}"
            flow_run_id = _run(deployment, name, marker=str(marker))
            _until(lambda: marker.exists() and marker.read_text(), 120, "the task started")
            time.sleep(1.5)  # a beat or two
            os.kill(int(marker.read_text()), signal.SIGKILL)
        finally:
            stop(worker, signal.SIGKILL)
        time.sleep(4)
        parent, _ = _tree(client, flow_run_id)
        assert client.get_run(parent.info.run_id).info.status is RunStatus.RUNNING
        with deployment.settings():
            out = reap_lost_runs.fn(older_than_s=3, tracking_uri=deployment.tracking_url)
        assert parent.info.run_id in out["flow_runs"]
        parent, (task,) = _tree(client, flow_run_id)
        assert parent.info.status is RunStatus.FAILED
        assert parent.data.tags[FAILURE_REASON_TAG].startswith("lost: no heartbeat")
        assert task.info.status is RunStatus.FAILED
        assert (
            "lost: no heartbeat" in task.data.tags[FAILURE_REASON_TAG]
            or task.data.tags[FAILURE_REASON_TAG]
        )
        _no_local_store(deployment)
