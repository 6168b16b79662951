"""A flow run whose process dies with nothing left to end its runs (``kill -9`` of the
flow's process and its worker alike): its heartbeat stops, and the reaper ends the
flow run's run and every run under it, FAILED, saying what happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _prefect_support import flow_tree
from _server_support import ServerProcess

from flows.maintenance import reap_lost_runs
from tracking import RunStatus, TrackingClient
from tracking.pipelines import FAILURE_REASON_TAG, PIPELINE_HEARTBEAT_TAG

pytestmark = [pytest.mark.prefect, pytest.mark.slow]
HERE = Path(__file__).resolve().parent


def _killed_flow(tmp_path: Path, uri: str) -> str:
    """Start ``lost_flows.doomed`` in a process of its own, kill -9 it mid-task; the
    id of its flow run."""
    from prefect.settings import PREFECT_API_URL

    marker = tmp_path / "started"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKFLOW_", "PREFECT_"))}
    env.update(
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        TRACKFLOW_TRACKING_URI=uri,
        TRACKFLOW_HEARTBEAT_INTERVAL="0.5",
    )
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "lost_flows.py"), str(marker)], cwd=work, env=env
    )
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert process.poll() is None, "the flow's process ended early"
            assert time.monotonic() < deadline, "the flow never started its task"
            time.sleep(0.1)
        time.sleep(1.0)  # a beat or two
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    client = TrackingClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("doomed").experiment_id],  # type: ignore[union-attr]
        filter_string="attributes.status = 'RUNNING' and tags.`prefect.flow_name` = 'doomed' "
        f"and tags.`{PIPELINE_HEARTBEAT_TAG}` LIKE '%'",
    )
    return run.data.tags["prefect.flow_run_id"]


def test_the_reaper_ends_a_lost_flow_run_and_its_task_runs(
    tmp_path: Path, served: TrackingClient, tracking_server: ServerProcess
) -> None:
    uri = tracking_server.url
    flow_run_id = _killed_flow(tmp_path, uri)
    parent, runs = flow_tree(served, flow_run_id)
    assert parent.info.status is RunStatus.RUNNING
    assert PIPELINE_HEARTBEAT_TAG in parent.data.tags
    time.sleep(2.5)
    # The store's own reaper ends the task run, never the flow run's run.
    served.reap_stale_runs(2)
    assert served.get_run(parent.info.run_id).info.status is RunStatus.RUNNING
    out = reap_lost_runs(older_than_s=2, tracking_uri=uri)
    assert out["flow_runs"] == [parent.info.run_id]
    parent, runs = flow_tree(served, flow_run_id)
    assert parent.info.status is RunStatus.FAILED
    reason = parent.data.tags[FAILURE_REASON_TAG]
    assert reason.startswith("lost: no heartbeat from the process that ran it"), reason
    assert str(os.getpid()) not in reason  # names the dead process, not ours
    (task,) = runs
    assert task.info.status is RunStatus.FAILED
    assert task.data.tags[FAILURE_REASON_TAG]
    # A second pass finds nothing more to do.
    assert reap_lost_runs(older_than_s=2, tracking_uri=uri)["flow_runs"] == []
