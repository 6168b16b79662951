"""MLflow REST JSON <-> trackflow entities, by hand (no pydantic on the client's hot path).

The server writes MLflow's JSON: runs as ``{"info": {...}, "data": {"metrics":
[...], "params": [...], "tags": [...]}}``, key/value lists for tags, and
numbers that may be the bare tokens ``NaN``/``Infinity``/``-Infinity``. The
readers here also accept what protobuf's JSON printer writes (64-bit integers
as strings, ``"NaN"`` as a string), so an MLflow-flavoured server works too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from tracking.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    LifecycleStage,
    Lineage,
    LineageEdge,
    Metric,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    metric_of,
)

__all__ = [
    "compact_run_from_json",
    "dataset_input_from_json",
    "dataset_input_json",
    "experiment_from_json",
    "key_values",
    "lineage_edge_json",
    "lineage_from_json",
    "metric_from_json",
    "metrics_json",
    "pairs_json",
    "run_from_json",
    "run_info_from_json",
    "run_inputs_from_json",
]

PARENT_RUN_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"


def _int_or_none(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def key_values(items: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """``[{"key": k, "value": v}, ...]`` as a dict (later entries win)."""
    return {item["key"]: str(item.get("value", "")) for item in items or ()}


def pairs_json(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    """Key/value pairs (params, tags) as MLflow's list of objects."""
    return [{"key": key, "value": value} for key, value in pairs]


def metrics_json(metrics: Sequence[Metric]) -> list[dict[str, Any]]:
    """Metric points as MLflow's list of objects."""
    return [
        {"key": key, "value": value, "timestamp": timestamp, "step": step}
        for key, value, timestamp, step in metrics
    ]


def metric_from_json(item: Mapping[str, Any]) -> Metric:
    """One metric point; ``float`` reads both ``NaN`` tokens and ``"NaN"`` strings."""
    return Metric(
        item["key"],
        float(item["value"]),
        int(item.get("timestamp", 0)),
        int(item.get("step", 0)),
    )


def experiment_from_json(item: Mapping[str, Any]) -> Experiment:
    """An :class:`~tracking.entities.Experiment` from MLflow's experiment object."""
    return Experiment(
        experiment_id=str(item["experiment_id"]),
        name=item["name"],
        artifact_location=item.get("artifact_location", ""),
        lifecycle_stage=LifecycleStage(item.get("lifecycle_stage", "active")),
        tags=MappingProxyType(key_values(item.get("tags"))),
        creation_time=_int_or_none(item.get("creation_time")),
        last_update_time=_int_or_none(item.get("last_update_time")),
    )


def run_info_from_json(info: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> RunInfo:
    """A :class:`~tracking.entities.RunInfo`; ``tags`` fill in what MLflow keeps there."""
    tags = tags or {}
    parent = info.get("parent_run_id") or tags.get(PARENT_RUN_TAG)
    return RunInfo(
        run_id=info.get("run_id") or info["run_uuid"],
        experiment_id=str(info["experiment_id"]),
        run_name=info.get("run_name") or tags.get(RUN_NAME_TAG, ""),
        user_id=info.get("user_id", ""),
        status=RunStatus(info.get("status", "RUNNING")),
        start_time=_int_or_none(info.get("start_time")),
        end_time=_int_or_none(info.get("end_time")),
        artifact_uri=info.get("artifact_uri", ""),
        lifecycle_stage=LifecycleStage(info.get("lifecycle_stage", "active")),
        parent_run_id=parent or None,
    )


def dataset_input_json(item: DatasetInput) -> dict[str, Any]:
    """MLflow's DatasetInput: ``{"tags": [{"key", "value"}], "dataset": {...}}``."""
    ds = item.dataset
    dataset: dict[str, Any] = {
        "name": ds.name,
        "digest": ds.digest,
        "source_type": ds.source_type,
        "source": ds.source,
    }
    if ds.schema is not None:
        dataset["schema"] = ds.schema
    if ds.profile is not None:
        dataset["profile"] = ds.profile
    return {"tags": [{"key": k, "value": v} for k, v in item.tags], "dataset": dataset}


def dataset_input_from_json(item: Mapping[str, Any]) -> DatasetInput:
    """The inverse of :func:`dataset_input_json`."""
    ds = item["dataset"]
    return DatasetInput(
        Dataset(
            ds["name"],
            ds["digest"],
            ds["source_type"],
            ds["source"],
            ds.get("schema"),
            ds.get("profile"),
        ),
        tuple(InputTag(t["key"], str(t.get("value", ""))) for t in item.get("tags") or ()),
    )


def run_inputs_from_json(inputs: Mapping[str, Any] | None) -> RunInputs:
    """MLflow's ``run.inputs`` (``{}`` or missing: none)."""
    items = (inputs or {}).get("dataset_inputs") or ()
    return RunInputs(tuple(dataset_input_from_json(item) for item in items)) if items else _NONE


_NONE = RunInputs()


def lineage_edge_json(edge: LineageEdge) -> dict[str, Any]:
    """``{"consumer_run_id", "producer_run_id", "artifact_path", "sha256", "timestamp"}``."""
    return edge._asdict()


def _edges(items: Iterable[Mapping[str, Any]]) -> tuple[LineageEdge, ...]:
    return tuple(
        LineageEdge(
            str(e["consumer_run_id"]),
            str(e["producer_run_id"]),
            str(e["artifact_path"]),
            str(e["sha256"]),
            int(e["timestamp"]),
        )
        for e in items
    )


def lineage_from_json(answer: Mapping[str, Any]) -> Lineage:
    """``{"consumed": [edge, ...], "produced": [edge, ...]}`` as a Lineage."""
    return Lineage(_edges(answer.get("consumed") or ()), _edges(answer.get("produced") or ()))


def run_from_json(item: Mapping[str, Any]) -> Run:
    """A :class:`~tracking.entities.Run` with its params, latest metrics (values and
    points) and tags."""
    data = item.get("data") or {}
    tags = key_values(data.get("tags"))
    latest = {m["key"]: metric_from_json(m) for m in data.get("metrics") or ()}
    return Run(
        run_info_from_json(item["info"], tags),
        RunData(
            params=MappingProxyType(key_values(data.get("params"))),
            metrics=MappingProxyType({key: point.value for key, point in latest.items()}),
            tags=MappingProxyType(tags),
            latest=MappingProxyType(latest),
        ),
        run_inputs_from_json(item.get("inputs")),
    )


def compact_run_from_json(item: Mapping[str, Any]) -> Run:
    """A :class:`~tracking.entities.Run` from trackflow's compact shape (see
    ``tracking.server.render.compact_run_json``): params and tags as objects,
    metrics as ``{key: [value, timestamp, step]}``."""
    tags = item["tags"]
    latest = {
        key: metric_of((key, float(value), timestamp, step))
        for key, (value, timestamp, step) in item["metrics"].items()
    }
    return Run(
        run_info_from_json(item["info"], tags),
        RunData(
            params=MappingProxyType(item["params"]),
            metrics=MappingProxyType({key: point.value for key, point in latest.items()}),
            tags=MappingProxyType(tags),
            latest=MappingProxyType(latest),
        ),
        run_inputs_from_json(item.get("inputs")),
    )
