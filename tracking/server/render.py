"""Entities as MLflow's JSON: int64 as numbers, unset fields left out.

Metric values that are not finite are written as the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``, as MLflow's server (protobuf's JSON
printer) writes them: protobuf's JSON parser in MLflow's client refuses the
bare ``NaN`` token ("Couldn't parse NaN, use quoted "NaN" instead"), while
``float()`` reads the strings back in any Python client.

Example::

    run_json(run)
    # {"info": {"run_id": ..., "run_uuid": ..., ...}, "data": {...}, "inputs": {}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tracking.entities import Experiment, FileInfo, Metric, Run, RunInfo, RunInputs
from tracking.store.rest_json import dataset_input_json

__all__ = [
    "NO_MODELS",
    "RunModels",
    "compact_run_json",
    "double_json",
    "experiment_json",
    "file_info_json",
    "inputs_json",
    "metric_json",
    "metrics_json",
    "outputs_json",
    "run_info_json",
    "run_json",
    "series_columns_json",
]


_SPECIAL = {math.inf: "Infinity", -math.inf: "-Infinity"}


def double_json(value: float) -> float | str:
    """A double as protobuf writes it in JSON: the number, or "NaN", "Infinity", "-Infinity"."""
    if value - value == 0.0:  # finite: the common case, one subtraction
        return value
    return _SPECIAL.get(value, "NaN")


def run_info_json(info: RunInfo) -> dict[str, Any]:
    """MLflow's RunInfo; ``start_time``/``end_time`` are left out while unset."""
    out: dict[str, Any] = {
        "run_id": info.run_id,
        "run_uuid": info.run_id,
        "experiment_id": info.experiment_id,
        "run_name": info.run_name,
        "user_id": info.user_id,
        "status": info.status.value,
    }
    if info.start_time is not None:
        out["start_time"] = info.start_time
    if info.end_time is not None:
        out["end_time"] = info.end_time
    out["artifact_uri"] = info.artifact_uri
    out["lifecycle_stage"] = info.lifecycle_stage.value
    return out


def _pairs(mapping: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


#: A run's logged models: the ids it used, and ``(model_id, step)`` of those it produced.
RunModels = tuple[Sequence[str], Sequence[tuple[str, int]]]
#: A run that used and produced no logged model.
NO_MODELS: RunModels = ((), ())


def run_json(
    run: Run, models: RunModels | None = None, *, model_inputs: bool = True
) -> dict[str, Any]:
    """A run with its data; each metric with the step and timestamp of its latest point.

    Those come from ``run.data.latest``; a metric the store gave no point for
    (a run read without them) gets step and timestamp 0. ``models`` (what
    ``get_run_models`` answers) fills MLflow 3's ``inputs.model_inputs`` and
    ``outputs.model_outputs``; ``model_inputs=False`` leaves the former out, as
    MLflow's ``runs/search`` does. Without ``models`` (not looked up) there is no
    ``outputs``.
    """
    points = run.data.latest
    metrics = []
    for key, value in run.data.metrics.items():
        point = points.get(key)
        metrics.append(
            {
                "key": key,
                "value": double_json(value),
                "timestamp": 0 if point is None else point.timestamp,
                "step": 0 if point is None else point.step,
            }
        )
    out: dict[str, Any] = {
        "info": run_info_json(run.info),
        "data": {
            "metrics": metrics,
            "params": _pairs(run.data.params),
            "tags": _pairs(run.data.tags),
        },
    }
    if models is None:
        out["inputs"] = inputs_json(run.inputs)
        return out
    used, produced = models
    out["inputs"] = inputs_json(run.inputs, used if model_inputs else ())
    out["outputs"] = outputs_json(produced)
    return out


def inputs_json(inputs: RunInputs, model_ids: Sequence[str] = ()) -> dict[str, Any]:
    """MLflow's RunInputs: ``{"dataset_inputs": [{"tags", "dataset"}], "model_inputs":
    [{"model_id"}]}``, each list left out when empty (``{}`` if both are)."""
    out: dict[str, Any] = {}
    if inputs.dataset_inputs:
        out["dataset_inputs"] = [dataset_input_json(item) for item in inputs.dataset_inputs]
    if model_ids:
        out["model_inputs"] = [{"model_id": m} for m in model_ids]
    return out


def outputs_json(produced: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """MLflow 3's RunOutputs: ``{"model_outputs": [{"model_id", "step"}]}``, ``{}`` if none."""
    if not produced:
        return {}
    return {"model_outputs": [{"model_id": m, "step": s} for m, s in produced]}


def compact_run_json(run: Run) -> dict[str, Any]:
    """A run in trackflow's compact shape, for trackflow's own client: params and
    tags as objects, each metric as ``[value, timestamp, step]`` of its latest point.

    Not MLflow's JSON: NaN and the infinities stay floats (the encoder writes the
    bare tokens), and there are no per-item objects to build, which halves the
    bytes of a search page and the work on both ends.
    """
    data = run.data
    points = data.latest
    metrics: dict[str, tuple[float, int, int]] = {}
    for key, value in data.metrics.items():
        point = points.get(key)
        metrics[key] = (value, 0, 0) if point is None else (value, point.timestamp, point.step)
    out = {
        "info": run_info_json(run.info),
        "params": dict(data.params),
        "tags": dict(data.tags),
        "metrics": metrics,
    }
    if run.inputs.dataset_inputs:
        out["inputs"] = inputs_json(run.inputs)
    return out


def metric_json(metric: Metric) -> dict[str, Any]:
    """``{"key", "value", "timestamp", "step"}``."""
    return {
        "key": metric.key,
        "value": double_json(metric.value),
        "timestamp": metric.timestamp,
        "step": metric.step,
    }


def metrics_json(metrics: Iterable[Metric]) -> list[dict[str, Any]]:
    """A list of :func:`metric_json` (a series can hold a million points: kept lean)."""
    return [
        {"key": k, "value": v if v - v == 0.0 else double_json(v), "timestamp": t, "step": s}
        for k, v, t, s in metrics
    ]


def series_columns_json(run_id: str, metrics: Sequence[Metric]) -> dict[str, Any]:
    """One run's series as columns (``steps``, ``timestamps``, ``values``): a chart's data."""
    return {
        "run_id": run_id,
        "steps": [m.step for m in metrics],
        "timestamps": [m.timestamp for m in metrics],
        "values": [v if v - v == 0.0 else double_json(v) for _, v, _, _ in metrics],
    }


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    """MLflow's Experiment, its tags as a list of pairs."""
    out: dict[str, Any] = {
        "experiment_id": experiment.experiment_id,
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": experiment.lifecycle_stage.value,
    }
    if experiment.last_update_time is not None:
        out["last_update_time"] = experiment.last_update_time
    if experiment.creation_time is not None:
        out["creation_time"] = experiment.creation_time
    out["tags"] = _pairs(experiment.tags)
    return out


def file_info_json(info: FileInfo, path: str | None = None) -> dict[str, Any]:
    """An artifact listing entry; ``file_size`` left out for directories."""
    out: dict[str, Any] = {"path": info.path if path is None else path, "is_dir": info.is_dir}
    if not info.is_dir and info.file_size is not None:
        out["file_size"] = info.file_size
    return out
