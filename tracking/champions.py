"""An experiment's champion: the one run tagged ``trackflow.champion=true``.

Shared by the orchestrator integrations (Airflow's ChampionChallengerOperator
and PromoteRunOperator, the Prefect ``retrain`` flow)::

    best = champion_of(client, experiment_id)        # None before the first
    if best is None or challenger_beats(...):
        promote_run(client, challenger)               # exactly one champion
        promote_model(client, challenger, "churn")    # its logged model: churn@champion

The run tag serves search; the registered model's alias (``champion`` by
default) is what serving code loads, as ``models:/churn@champion``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from tracking.entities import ModelVersion, Run
from tracking.errors import AlreadyExistsError, InvalidParameterError

__all__ = [
    "CHAMPION_ALIAS",
    "CHAMPION_TAG",
    "MODEL_VERSION_TAG",
    "champion_of",
    "improvement",
    "metric_of",
    "model_of",
    "promote_model",
    "promote_run",
]

#: The tag that marks an experiment's champion run.
CHAMPION_TAG = "trackflow.champion"
#: The registered model's alias that follows the champion (``models:/<name>@champion``).
CHAMPION_ALIAS = "champion"
#: On a promoted run: the registered model version made from its model (``name/3``).
MODEL_VERSION_TAG = "trackflow.modelVersion"
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


def model_of(client: Any, run: Run) -> str | None:
    """The id of the logged model ``run`` produced last (``tracking.log_model``), or None."""
    _, outputs = client.get_run_models(run.info.run_id)
    if not outputs:
        return None
    return str(max(enumerate(outputs), key=lambda item: (item[1][1], item[0]))[1][0])


def promote_model(
    client: Any, run: Run, registered_model: str, alias: str = CHAMPION_ALIAS
) -> ModelVersion:
    """Register ``run``'s logged model as the next version of ``registered_model``
    (created if missing) and move ``alias`` to it; the run is tagged with the version.
    A clear error when the run logged no model."""
    model_id = model_of(client, run)
    if model_id is None:
        raise InvalidParameterError(
            f"run {run.info.run_id} logged no model (tracking.log_model) to register as "
            f"{registered_model!r}"
        )
    with contextlib.suppress(AlreadyExistsError):  # the first promotion creates it
        client.create_registered_model(registered_model)
    version = client.create_model_version(
        registered_model, f"models:/{model_id}", run_id=run.info.run_id, model_id=model_id
    )
    client.set_registered_model_alias(registered_model, alias, version.version)
    client.set_tag(run.info.run_id, MODEL_VERSION_TAG, f"{registered_model}/{version.version}")
    return version  # type: ignore[no-any-return]
