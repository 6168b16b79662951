"""Constants and helpers of the Prefect tests (imported by basename, so uniquely named;
nothing here imports Prefect)."""

from __future__ import annotations

from typing import Any

from tracking import Run, TrackingClient

#: Where the trackflow UI pretends to be, for the links.
TRACKFLOW_UI = "http://tracking.test:5000"


def flow_tree(client: TrackingClient, flow_run_id: Any) -> tuple[Run, list[Run]]:
    """A flow run's run and every run under it (at any depth)."""
    from flows._tracking import flow_pipeline

    parent = client.get_run(flow_pipeline(str(flow_run_id)).run_id)
    return parent, client.get_subtree(parent.info.run_id)


def by_name(runs: list[Run], parent: Run) -> dict[str, Run]:
    """The children of ``parent`` among ``runs``, by name."""
    return {r.info.run_name: r for r in runs if r.info.parent_run_id == parent.info.run_id}
