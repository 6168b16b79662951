"""Pipeline runs for the pipeline view's tests and benchmark, written the way the Airflow
listener and the Prefect decorators write them: :class:`~tracking.pipelines.PipelineTracker`
on a real :class:`~tracking.TrackingClient`, with the tags of ``operators._tracking``'s
``pipeline_tags``/``step_tags`` and ``flows.decorators``' ``_task_tags`` (imported by
basename, so uniquely named)."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from tracking import TrackingClient
from tracking.champions import promote_run
from tracking.entities import RunStatus
from tracking.pipelines import PipelineRun, PipelineTracker, Step

AIRFLOW_BASE = "http://airflow.example:8080"
PREFECT_BASE = "http://prefect.example:4200"
SHA = hashlib.sha256(b"artifact").hexdigest()


@dataclass
class Pipelines:
    """What :func:`airflow_dag_runs` and :func:`prefect_flow_run` wrote."""

    experiment_id: str = ""
    dag_runs: list[str] = field(default_factory=list)
    steps: dict[str, str] = field(default_factory=dict)
    flow_run: str = ""
    big_dag_run: str = ""


def _airflow_step_tags(
    dag_id: str, run_id: str, task_id: str, map_index: int, tries: int
) -> dict[str, str]:
    # operators._tracking.step_tags, for a task instance of these attributes.
    return {
        "airflow.dag_id": dag_id,
        "airflow.run_id": run_id,
        "airflow.task_id": task_id,
        "airflow.map_index": str(map_index),
        "airflow.try_number": str(tries),
        "airflow.url": f"{AIRFLOW_BASE}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}"
        + (f"/mapped/{map_index}" if map_index >= 0 else ""),
        "airflow.operator": "_PythonDecoratedOperator",
    }


def _airflow_pipeline(tracker: PipelineTracker, dag_id: str, run_id: str, day: str) -> PipelineRun:
    pipeline = PipelineRun("airflow", dag_id, run_id)
    tracker.pipeline_started(
        pipeline,
        run_name=f"{dag_id} {day}",
        # operators._tracking.pipeline_tags
        tags={
            "airflow.dag_id": dag_id,
            "airflow.run_id": run_id,
            "airflow.url": f"{AIRFLOW_BASE}/dags/{dag_id}/runs/{run_id}",
            "airflow.run_type": "scheduled",
            "airflow.logical_date": f"{day}T00:00:00+00:00",
        },
    )
    return pipeline


def _run_step(
    tracker: PipelineTracker,
    pipeline: PipelineRun,
    task_id: str,
    *,
    map_index: int = -1,
    fail_first: bool = False,
    status: RunStatus = RunStatus.FINISHED,
    pause: float = 0.0,
) -> str:
    tries = 2 if fail_first else 1
    step = None
    for attempt in range(1, tries + 1):
        step = Step(
            pipeline, task_id, map_index=map_index if map_index >= 0 else None, attempt=attempt
        )
        tags = _airflow_step_tags(
            pipeline.pipeline_id, pipeline.run_key, task_id, map_index, attempt
        )
        tracker.step_running(step, tags=tags)
        if pause:
            time.sleep(pause)
        if attempt < tries:
            tracker.step_ended(step, RunStatus.FAILED, reason="OOM in attempt 1", retrying=True)
        else:
            tracker.step_ended(
                step, status, reason="score failed" if status is RunStatus.FAILED else None
            )
    assert step is not None
    return step.run_id


def airflow_dag_runs(
    url: str, experiment: str, *, days: int = 3, mapped: int = 3, artifact_root: str | None = None
) -> Pipelines:
    """``days`` scheduled runs of DAG ``retrain``: extract → train (fails once, retried)
    → score (mapped ``mapped`` times) → evaluate (logs ``holdout_accuracy``); lineage
    edges between them; ``train`` promoted champion on the first and the last day."""
    client = TrackingClient(url, artifact_root)
    tracker = PipelineTracker(client, experiment)
    found = Pipelines(experiment_id=tracker.experiment_id())
    accuracy = [0.82, 0.79, 0.88, 0.86, 0.9]
    for day in range(days):
        date = f"2026-11-{day + 1:02d}"
        pipeline = _airflow_pipeline(tracker, "retrain", f"scheduled__{date}T00:00:00+00:00", date)
        found.dag_runs.append(pipeline.run_id)
        pause = 0.03 if day == days - 1 else 0.0
        extract = _run_step(tracker, pipeline, "extract", pause=pause)
        train = _run_step(tracker, pipeline, "train", fail_first=True, pause=pause)
        client.record_lineage(train, extract, "data/train.csv", SHA)
        scores = []
        for i in range(mapped):
            failed = day == days - 1 and i == mapped - 1
            status = RunStatus.FAILED if failed else RunStatus.FINISHED
            scores.append(
                _run_step(tracker, pipeline, "score", map_index=i, status=status, pause=pause / 3)
            )
            client.record_lineage(scores[-1], train, "model/model.pkl", SHA)
        evaluate_step = Step(pipeline, "evaluate")
        tracker.step_running(
            evaluate_step, tags=_airflow_step_tags("retrain", pipeline.run_key, "evaluate", -1, 1)
        )
        client.log_metric(evaluate_step.run_id, "holdout_accuracy", accuracy[day % len(accuracy)])
        client.log_metric(evaluate_step.run_id, "holdout_loss", 1 - accuracy[day % len(accuracy)])
        tracker.step_ended(evaluate_step, RunStatus.FINISHED)
        for score in scores:
            client.record_lineage(evaluate_step.run_id, score, "predictions.parquet", SHA)
        if day in (0, 2):
            promote_run(client, client.get_run(train))
        tracker.pipeline_ended(pipeline, RunStatus.FINISHED)
        found.steps.update(
            {
                "extract": extract,
                "train": train,
                "evaluate": evaluate_step.run_id,
                "score0": scores[0],
            }
        )
    return found


def big_dag_run(
    url: str, experiment: str, instances: int = 200, artifact_root: str | None = None
) -> str:
    """One DAG run of ``instances`` task instances: prepare → ``instances - 2`` mapped
    ``work`` instances → gather, with lineage edges for each instance."""
    client = TrackingClient(url, artifact_root)
    tracker = PipelineTracker(client, experiment)
    pipeline = _airflow_pipeline(
        tracker, "fanout", "manual__2026-11-20T00:00:00+00:00", "2026-11-20"
    )
    prepare = _run_step(tracker, pipeline, "prepare")
    works = []
    for i in range(instances - 2):
        status = RunStatus.FAILED if i % 50 == 49 else RunStatus.FINISHED
        works.append(_run_step(tracker, pipeline, "work", map_index=i, status=status))
        client.record_lineage(works[-1], prepare, "shards/index.json", SHA)
    gather = _run_step(tracker, pipeline, "gather")
    for work in works:
        client.record_lineage(gather, work, "partial/result.json", SHA)
    tracker.pipeline_ended(pipeline, RunStatus.FAILED, reason="2 work instances failed")
    return pipeline.run_id


def prefect_flow_run(
    url: str, experiment: str, artifact_root: str | None = None
) -> tuple[str, dict[str, str]]:
    """A Prefect flow run ``nightly``: ``load``, ``featurize`` mapped twice (the second
    retried once), ``fit``; lineage load → featurize[i] → fit."""
    client = TrackingClient(url, artifact_root)
    tracker = PipelineTracker(client, experiment)
    flow_run_id = "5f0c1d2e-0000-4000-8000-00000000abcd"
    pipeline = PipelineRun("prefect", "flow-run", flow_run_id)
    # flows.decorators: the flow run's tags
    tracker.pipeline_started(
        pipeline,
        run_name="crimson-otter",
        tags={
            "prefect.flow_name": "nightly",
            "prefect.flow_run_id": flow_run_id,
            "prefect.flow_run_name": "crimson-otter",
            "prefect.run_count": "1",
            "prefect.url": f"{PREFECT_BASE}/runs/flow-run/{flow_run_id}",
        },
    )
    ids: dict[str, str] = {}

    def task(task_run_id: str, name: str, index: int | None, tries: int = 1) -> str:
        step = None
        for attempt in range(1, tries + 1):
            step = Step(pipeline, task_run_id, attempt=attempt, name=name)
            # flows.decorators._task_tags
            tags = {
                "prefect.flow_name": "nightly",
                "prefect.flow_run_id": flow_run_id,
                "prefect.task_run_id": task_run_id,
                "prefect.task_run_name": f"{name.split('[')[0]}-{task_run_id[:3]}",
                "prefect.map_index": str(index if index is not None else -1),
                "prefect.run_count": str(attempt),
                "prefect.url": f"{PREFECT_BASE}/runs/task-run/{task_run_id}",
            }
            tracker.step_running(step, tags=tags)
            if attempt < tries:
                tracker.step_ended(step, RunStatus.FAILED, reason="timeout", retrying=True)
            else:
                tracker.step_ended(step, RunStatus.FINISHED)
        assert step is not None
        ids[name] = step.run_id
        return step.run_id

    load = task("a1b2c3", "load", None)
    feats = [task(f"f{i}e5d6", f"featurize[{i}]", i, tries=2 if i == 1 else 1) for i in range(2)]
    fit = task("c9d8e7", "fit", None)
    for feat in feats:
        client.record_lineage(feat, load, "raw.csv", SHA)
        client.record_lineage(fit, feat, "features.npy", SHA)
    tracker.pipeline_ended(pipeline, RunStatus.FINISHED)
    return pipeline.run_id, ids
