"""An experiment's champion: the one run tagged ``trackflow.champion=true``.

Shared by the orchestrator integrations (Airflow's ChampionChallengerOperator
and PromoteRunOperator, the Prefect ``retrain`` flow)::

    best = champion_of(client, experiment_id)        # None before the first
    if best is None or challenger_beats(...):
        promote_run(client, challenger)               # exactly one champion
"""

from __future__ import annotations

import math
from typing import Any

from tracking.entities import Run
from tracking.errors import InvalidParameterError

__all__ = ["CHAMPION_TAG", "champion_of", "improvement", "metric_of", "promote_run"]

#: The tag that marks an experiment's champion run.
CHAMPION_TAG = "trackflow.champion"
_DIRECTIONS = {"max": "max", "maximize": "max", "min": "min", "minimize": "min"}


def champion_of(client: Any, experiment_id: str) -> Run | None:
    """The experiment's champion run, or None before the first promotion."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{CHAMPION_TAG}` = 'true'",
        max_results=10,
        order_by=["attributes.start_time DESC"],
    )
    return runs[0] if runs else None


def promote_run(client: Any, run: Run) -> list[str]:
    """Make ``run`` its experiment's champion; returns the ids of the runs that lost it."""
    others = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.`{CHAMPION_TAG}` = 'true'",
        max_results=1000,
    )
    client.set_tag(run.info.run_id, CHAMPION_TAG, "true")
    dethroned = []
    for other in others:
        if other.info.run_id != run.info.run_id:
            client.delete_tag(other.info.run_id, CHAMPION_TAG)
            client.set_tag(other.info.run_id, "trackflow.dethronedBy", run.info.run_id)
            dethroned.append(other.info.run_id)
    return dethroned


def metric_of(run: Run, metric: str, role: str) -> float:
    """``run``'s latest value of ``metric``; a clear error when it has none or NaN."""
    value = run.data.metrics.get(metric)
    if value is None:
        known = ", ".join(sorted(run.data.metrics)) or "none"
        raise InvalidParameterError(
            f"the {role} run {run.info.run_id} has no metric {metric!r} (its metrics: {known})"
        )
    if math.isnan(value):
        raise InvalidParameterError(f"the {role} run {run.info.run_id} has {metric} = NaN")
    return float(value)


def improvement(challenger: float, champion: float, direction: str) -> float:
    """How much better the challenger is (``direction`` ``max`` or ``min``)."""
    way = _DIRECTIONS.get(str(direction).lower())
    if way is None:
        raise InvalidParameterError(f"direction must be 'max' or 'min', got {direction!r}")
    return challenger - champion if way == "max" else champion - challenger
