"""A flow run cancelled from the API while a real Prefect runner runs it: the runner
terminates the flow's process and runs the on_cancellation hooks; the run is KILLED."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from cancel_flows import sleepy

from flows._tracking import flow_pipeline
from tracking import RunStatus, TrackingClient
from tracking.pipelines import FAILURE_REASON_TAG

pytestmark = [pytest.mark.prefect, pytest.mark.slow]


def test_a_cancelled_flow_run_is_killed(tmp_path: Path, embedded: TrackingClient) -> None:
    from prefect.client.orchestration import get_client
    from prefect.runner import Runner
    from prefect.states import Cancelling

    if not hasattr(Runner, "execute_flow_run"):  # gone in Prefect 3.9
        pytest.skip("no Runner.execute_flow_run: test_prefect_deployment cancels via a worker")
    marker = tmp_path / "started"

    async def scenario() -> tuple[str, str]:
        deployment = await sleepy.to_deployment(
            name="cancel-test", parameters={"marker": str(marker)}
        )
        deployment_id = await deployment.apply()
        async with get_client() as client:
            flow_run = await client.create_flow_run_from_deployment(deployment_id)
            running = asyncio.create_task(Runner(query_seconds=1).execute_flow_run(flow_run.id))
            deadline = time.monotonic() + 90
            while not marker.exists():
                assert time.monotonic() < deadline, "the flow run never started"
                assert not running.done(), "the runner stopped early"
                await asyncio.sleep(0.1)
            await client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
            await asyncio.wait_for(running, 90)
            state = (await client.read_flow_run(flow_run.id)).state
            return str(flow_run.id), str(state.name if state else None)

    flow_run_id, state = asyncio.run(scenario())
    assert state == "Cancelled"
    run = embedded.get_run(flow_pipeline(flow_run_id).run_id)
    assert run.info.status is RunStatus.KILLED
    reason = run.data.tags[FAILURE_REASON_TAG]
    assert reason.startswith("cancelled: "), reason
    assert "Cancelling" not in reason, reason
    (task,) = embedded.get_children(run.info.run_id)
    assert task.info.run_name == "nap"
    assert task.info.status is RunStatus.KILLED
    assert task.data.tags[FAILURE_REASON_TAG].startswith("killed: SIGTERM"), task.data.tags
