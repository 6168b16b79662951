"""Ending the runs of flow runs whose process died: ``reap_lost_runs``.

A tracked flow run's process ends its runs itself, and Prefect's hooks end them
when the runner sees a cancel or a crash. When the flow run's process and its
worker die together (``kill -9``, a lost machine), nothing is left to do it:
the flow run's run stays RUNNING. Every tracked flow run's process therefore
beats a heartbeat on its run (``trackflow.pipelineHeartbeat``, every
``TRACKFLOW_HEARTBEAT_INTERVAL`` seconds, 30 by default), and this flow, run on
a schedule, ends the runs whose heartbeat is older than ``older_than_s``
(default 300 s): FAILED, or what Prefect's API says of the flow run when it
knows (Cancelled: KILLED), with a reason that says what happened; the task
runs still open under them end the same way::

    from flows.maintenance import reap_lost_runs
    reap_lost_runs.serve(name="trackflow-reaper", interval=60)

A lost flow run's runs so end within ``older_than_s`` plus the schedule's
interval (6 minutes with the defaults).
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from prefect import flow

from flows.blocks import TrackflowConfig, load_block, resolve_config
from tracking.entities import Run, RunStatus
from tracking.pipelines import reap_lost_pipeline_runs

__all__ = ["prefect_verdict", "reap_lost_runs"]

_log = logging.getLogger("flows")


def prefect_verdict(run: Run) -> tuple[RunStatus, str] | None:
    """What Prefect's API says of the flow run of ``run``: a final state as the run's
    status and reason, or None (Prefect still thinks it runs, or does not know it)."""
    flow_run_id = run.data.tags.get("prefect.flow_run_id")
    if not flow_run_id:
        return None
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(flow_run_id)).state
    if state is None:
        return None
    message = (state.message or "").strip()
    kind = state.type.value
    if kind in ("CANCELLED", "CANCELLING"):
        return RunStatus.KILLED, f"cancelled: {message or 'the flow run was cancelled'}"
    if kind in ("CRASHED", "FAILED"):
        return RunStatus.FAILED, f"{kind.lower()}: {message or state.name}"
    if kind == "COMPLETED":
        return RunStatus.FINISHED, ""
    return None


@flow(name="trackflow-reap-lost-runs")
def reap_lost_runs(
    older_than_s: float = 300.0,
    config: str | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """End the runs of flow runs whose process stopped beating ``older_than_s`` ago
    (see the module docstring); ``config`` names a ``TrackflowConfig`` block."""
    block: TrackflowConfig | None = load_block(config) if config else None
    client = resolve_config(block, tracking_uri, what="the reaper").client()
    steps = client.reap_stale_runs(older_than_s)
    pipelines = reap_lost_pipeline_runs(client, older_than_s, ask=prefect_verdict)
    if pipelines:
        _log.warning("trackflow: ended %d lost flow run(s): %s", len(pipelines), pipelines)
    return {"flow_runs": pipelines, "task_runs": steps}
