"""A worker killed outright (SIGKILL), and task instances and DAG runs marked from the
UI or API: the reaper, the API server's hooks and the DAG run's end close the runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _airflow_support import run_tree

from operators._tracking import pipeline_for
from tracking import RunStatus, TrackingClient
from tracking.pipelines import FAILURE_REASON_TAG

pytestmark = [pytest.mark.airflow, pytest.mark.slow]
AIRFLOW = (sys.executable, "-m", "airflow")


def _killed_worker(tmp_path: Path, client: TrackingClient, **env: str) -> str:
    """Run tf_longrun in ``airflow dags test`` and SIGKILL it while its task runs;
    returns the DAG run's id."""
    markers = tmp_path / "markers"
    markers.mkdir()
    process = subprocess.Popen(
        [*AIRFLOW, "dags", "test", "tf_longrun", "-c", json.dumps({"markers": str(markers)})],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not (markers / "sleeping").exists():
            assert process.poll() is None, "airflow dags test ended early"
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    exp = client.get_experiment_by_name("tf_longrun")
    assert exp is not None
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.parent_run_id is None]
    return parent.data.tags["airflow.run_id"]


def test_sigkill_then_the_reaper_and_the_dag_run_marked_failed(
    tmp_path: Path, embedded: TrackingClient, airflow_api: Any
) -> None:
    run_id = _killed_worker(tmp_path, embedded, TRACKFLOW_HEARTBEAT_INTERVAL="0.5")
    parent, children = run_tree(embedded, "tf_longrun", run_id)
    assert children["sleeper"].info.status is RunStatus.RUNNING
    time.sleep(1.5)
    # Nothing beats for the dead worker's run any more; the DAG run's run is left alone.
    assert embedded.reap_stale_runs(older_than=1.0) == [children["sleeper"].info.run_id]
    parent, children = run_tree(embedded, "tf_longrun", run_id)
    assert parent.info.status is RunStatus.RUNNING
    assert children["sleeper"].info.status is RunStatus.FAILED
    assert "heartbeat" in children["sleeper"].data.tags[FAILURE_REASON_TAG]

    answer = airflow_api.patch(
        f"/api/v2/dags/tf_longrun/dagRuns/{run_id}", json={"state": "failed"}
    )
    assert answer.status_code == 200, answer.text
    parent, children = run_tree(embedded, "tf_longrun", run_id)
    assert parent.info.status is RunStatus.FAILED
    assert children["sleeper"].info.status is RunStatus.FAILED


@pytest.mark.parametrize("state", ["failed", "success"])
def test_marked_from_the_ui_while_running_is_killed(
    tmp_path: Path, embedded: TrackingClient, airflow_api: Any, state: str
) -> None:
    run_id = _killed_worker(tmp_path, embedded)
    answer = airflow_api.patch(
        f"/api/v2/dags/tf_longrun/dagRuns/{run_id}/taskInstances/sleeper",
        json={"new_state": state},
    )
    assert answer.status_code == 200, answer.text
    _, children = run_tree(embedded, "tf_longrun", run_id)
    sleeper = children["sleeper"]
    assert sleeper.info.status is RunStatus.KILLED
    assert sleeper.data.tags[FAILURE_REASON_TAG] == (
        f"task instance marked {state} from the Airflow UI or API while running"
    )
    # Marking the DAG run afterwards closes its run; the killed task stays KILLED.
    answer = airflow_api.patch(f"/api/v2/dags/tf_longrun/dagRuns/{run_id}", json={"state": state})
    assert answer.status_code == 200, answer.text
    parent, children = run_tree(embedded, "tf_longrun", run_id)
    assert parent.info.status is (RunStatus.FAILED if state == "failed" else RunStatus.FINISHED)
    assert children["sleeper"].info.status is RunStatus.KILLED
    assert pipeline_for("tf_longrun", run_id).run_id == parent.info.run_id
