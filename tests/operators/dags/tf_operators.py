"""trackflow's decorator and operators, no tag: using them is what makes it tracked."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, task

import tracking
from operators import (
    ChampionChallengerOperator,
    PromoteRunOperator,
    TrackedPythonOperator,
    TrackflowRunSensor,
)
from tracking import ArtifactRef


def _fit(lr: float, epochs: int = 2) -> float:
    for epoch in range(epochs):
        tracking.log_metric("loss", lr / (epoch + 1), step=epoch)
    return lr


def _one(k: int) -> int:
    tracking.log_metric("k", k)
    return k


@dag(
    dag_id="tf_operators",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"score": 0.5, "min_improvement": 0.05},
)
def tf_operators() -> None:
    @task.trackflow(log_params=True)
    def produce(name: str, size: int = 3, params: dict[str, Any] | None = None) -> ArtifactRef:
        path = Path(tempfile.mkdtemp()) / name
        path.write_text("x" * size)
        tracking.log_metric("score", float((params or {})["score"]))
        return tracking.log_artifact(path, "data")

    @task.trackflow
    def consume(ref: ArtifactRef, factor: int) -> int:
        return len(Path(tracking.use_artifact(ref)).read_text()) * factor

    @task.trackflow(experiment="tf_operators_side", run_name="side-run")
    def side() -> None:
        tracking.log_metric("side", 1.0)

    fit = TrackedPythonOperator(
        task_id="fit", python_callable=_fit, op_kwargs={"lr": 0.1}, log_params=True
    )
    mapped = TrackedPythonOperator.partial(task_id="mapped", python_callable=_one).expand(
        op_kwargs=[{"k": 1}, {"k": 2}, {"k": 3}]
    )
    by_id = TrackflowRunSensor(
        task_id="wait_by_id",
        run_id="{{ macros.trackflow.task_run_id(ti, 'fit') }}",
        poke_interval=0.1,
        timeout=30,
    )
    by_filter = TrackflowRunSensor(
        task_id="wait_by_filter",
        experiment="tf_operators",
        filter_string="tags.`airflow.task_id` = 'fit' and tags.`airflow.run_id` = '{{ run_id }}'",
        poke_interval=0.1,
        timeout=30,
    )
    decide = ChampionChallengerOperator(
        task_id="decide",
        challenger_task_id="produce",
        metric="score",
        direction="max",
        min_improvement="{{ params.min_improvement }}",
        promote_task_ids="promote",
        keep_task_ids="keep",
    )
    promote = PromoteRunOperator(task_id="promote", run_task_id="produce")

    @task.trackflow
    def keep() -> None:
        tracking.set_tag("kept", "yes")

    ref = produce("data.txt")
    consume(ref, 2)
    fit >> [by_id, by_filter]
    ref >> decide >> [promote, keep()]
    side() >> mapped


tf_operators()
