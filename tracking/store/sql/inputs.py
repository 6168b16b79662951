"""Data sets and run inputs in SQL: what ``log_inputs`` writes and runs read back.

A data set is stored once per experiment, name and digest, under an id derived
from the three (a UUID 5), so logging it from many runs, many processes or
twice over finds the same row; a run's use of it is one ``run_inputs`` row,
which a repeated ``log_inputs`` leaves as it is (as MLflow does).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from tracking.entities import Dataset, DatasetInput, InputTag, RunInputs
from tracking.store.sql.engine import insert_ignoring
from tracking.store.sql.models import DatasetModel, RunInputModel, table_of

__all__ = [
    "LOAD_INPUTS",
    "MAX_DATASET_SUMMARIES",
    "dataset_summaries",
    "dataset_uuid",
    "inputs_of",
    "log_inputs",
]

_datasets = table_of(DatasetModel)
_inputs = table_of(RunInputModel)
_NAMESPACE = uuid.UUID("6f1d3c52-6a0e-4c1b-9c55-7d7a1b0e2f11")


def dataset_uuid(experiment_id: int, name: str, digest: str) -> str:
    """The id of a data set of an experiment: the same for the same name and digest."""
    return str(uuid.uuid5(_NAMESPACE, json.dumps([experiment_id, name, digest])))


def log_inputs(
    conn: Connection, run_id: str, experiment_id: int, inputs: Sequence[DatasetInput]
) -> None:
    """Record that run ``run_id`` used these data sets (those it already has are kept)."""
    datasets: dict[str, dict[str, Any]] = {}
    uses: dict[str, dict[str, Any]] = {}
    start = conn.execute(
        select(func.count()).select_from(_inputs).where(_inputs.c.run_uuid == run_id)
    ).scalar_one()
    for item in inputs:
        ds = item.dataset
        key = dataset_uuid(experiment_id, ds.name, ds.digest)
        datasets.setdefault(
            key,
            {
                "dataset_uuid": key,
                "experiment_id": experiment_id,
                "name": ds.name,
                "digest": ds.digest,
                "source_type": ds.source_type,
                "source": ds.source,
                "schema": ds.schema,
                "profile": ds.profile,
            },
        )
        uses.setdefault(
            key,
            {
                "run_uuid": run_id,
                "dataset_uuid": key,
                "tags": json.dumps({t.key: t.value for t in item.tags}, ensure_ascii=False),
                "position": start + len(uses),
            },
        )
    insert_ignoring(conn, _datasets, list(datasets.values()))
    insert_ignoring(conn, _inputs, list(uses.values()))


#: The inputs of a list of runs (``run_ids``), in logging order; run by the hot
#: path's raw cursor (:class:`~tracking.store.sql.hotpath.HotPath`) with the other
#: queries that load runs.
LOAD_INPUTS = (
    select(
        _inputs.c.run_uuid,
        _inputs.c.tags,
        _datasets.c.name,
        _datasets.c.digest,
        _datasets.c.source_type,
        _datasets.c.source,
        _datasets.c.schema,
        _datasets.c.profile,
    )
    .join(_datasets, _datasets.c.dataset_uuid == _inputs.c.dataset_uuid)
    .where(_inputs.c.run_uuid.in_(bindparam("ids", expanding=True)))
    .order_by(_inputs.c.run_uuid, _inputs.c.position)
)


def inputs_of(rows: Iterable[Sequence[Any]]) -> Mapping[str, RunInputs]:
    """Rows of :data:`LOAD_INPUTS` as each run's inputs, by run id."""
    found: dict[str, list[DatasetInput]] = {}
    for run_uuid, tags, name, digest, source_type, source, schema, profile in rows:
        dataset = Dataset(name, digest, source_type, source, schema, profile)
        pairs = tuple(InputTag(k, v) for k, v in json.loads(tags).items())
        found.setdefault(run_uuid, []).append(DatasetInput(dataset, pairs))
    return {run_id: RunInputs(tuple(items)) for run_id, items in found.items()}


#: The most summaries :func:`dataset_summaries` returns (MLflow's limit).
MAX_DATASET_SUMMARIES = 1000
_CONTEXT_TAG = "mlflow.data.context"


def dataset_summaries(
    conn: Connection, experiment_ids: Sequence[int]
) -> list[tuple[str, str, str, str | None]]:
    """``(experiment_id, name, digest, context)`` of each data set the runs of these
    experiments used, once per context (``mlflow.data.context``, None without one)."""
    rows = conn.execute(
        select(_datasets.c.experiment_id, _datasets.c.name, _datasets.c.digest, _inputs.c.tags)
        .join(_inputs, _inputs.c.dataset_uuid == _datasets.c.dataset_uuid)
        .where(_datasets.c.experiment_id.in_(list(experiment_ids)))
        .order_by(_datasets.c.experiment_id, _datasets.c.name, _datasets.c.digest)
    )
    seen: dict[tuple[str, str, str, str | None], None] = {}
    for experiment_id, name, digest, tags in rows:
        context = json.loads(tags).get(_CONTEXT_TAG)
        seen.setdefault((str(experiment_id), name, digest, context), None)
        if len(seen) >= MAX_DATASET_SUMMARIES:
            break
    return list(seen)
