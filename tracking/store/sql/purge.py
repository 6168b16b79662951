"""Deleting for good what was deleted: ``trackflow gc``.

``delete_run`` and ``delete_experiment`` only move things to the deleted
stage (``restore_*`` brings them back). These functions remove deleted runs,
and deleted experiments with no runs left, from the database; the caller
removes their artifacts first. Child rows (params, tags, inputs ...) go
with their run through the foreign keys' ``ON DELETE CASCADE``; metric points
have that key on SQLite only (migration 0007) and are deleted here, after
their run's row: deleting it waits for a batch of points still writing to the
run (which locks the row), so its points are committed and deleted too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, delete, exists, select

from tracking.store.sql.models import ExperimentModel, MetricModel, RunModel, table_of

if TYPE_CHECKING:
    from tracking.store.sql.store import SqlTrackingStore

__all__ = ["Deleted", "deleted_experiments", "deleted_runs", "purge_experiments", "purge_runs"]

_runs = table_of(RunModel)
_exp = table_of(ExperimentModel)
_metrics = table_of(MetricModel)


class Deleted(NamedTuple):
    """A deleted run or experiment: its id and where its artifacts are."""

    id: str
    artifact_uri: str


def _active() -> Any:
    """EXISTS an active run in the experiment of the outer query's row."""
    return exists().where(
        _runs.c.experiment_id == _exp.c.experiment_id, _runs.c.lifecycle_stage == "active"
    )


def deleted_runs(
    store: SqlTrackingStore,
    *,
    deleted_before: int | None = None,
    run_ids: Sequence[str] | None = None,
    experiment_ids: Sequence[str] | None = None,
) -> list[Deleted]:
    """Runs in the deleted stage (deleted before ``deleted_before`` ms, when given)."""
    query = select(_runs.c.run_uuid, _runs.c.artifact_uri).where(
        _runs.c.lifecycle_stage == "deleted"
    )
    if deleted_before is not None:
        query = query.where(_runs.c.deleted_time < deleted_before)
    if run_ids:
        query = query.where(_runs.c.run_uuid.in_(list(run_ids)))
    if experiment_ids:
        query = query.where(_runs.c.experiment_id.in_([int(e) for e in experiment_ids]))
    rows = store.read(lambda conn: conn.execute(query.order_by(_runs.c.run_uuid)).all())
    return [Deleted(r.run_uuid, r.artifact_uri) for r in rows]


def deleted_experiments(
    store: SqlTrackingStore, experiment_ids: Sequence[str] | None = None
) -> list[Deleted]:
    """Deleted experiments that hold no active run (their deleted runs go with them)."""
    query = select(_exp.c.experiment_id, _exp.c.artifact_location).where(
        _exp.c.lifecycle_stage == "deleted", ~_active()
    )
    if experiment_ids:
        query = query.where(_exp.c.experiment_id.in_([int(e) for e in experiment_ids]))
    rows = store.read(lambda conn: conn.execute(query.order_by(_exp.c.experiment_id)).all())
    return [Deleted(str(r.experiment_id), r.artifact_location) for r in rows]


def purge_runs(store: SqlTrackingStore, run_ids: Sequence[str]) -> None:
    """Remove these runs for good, if they are still in the deleted stage."""

    def work(conn: Connection) -> None:
        for start in range(0, len(run_ids), 500):
            chunk = list(run_ids[start : start + 500])
            conn.execute(
                delete(_runs).where(
                    _runs.c.run_uuid.in_(chunk), _runs.c.lifecycle_stage == "deleted"
                )
            )
            _delete_points(conn, chunk)

    store.write(work)


def purge_experiments(store: SqlTrackingStore, experiment_ids: Sequence[str]) -> None:
    """Remove these deleted experiments, with the deleted runs they still hold."""

    def work(conn: Connection) -> None:
        ids = [int(e) for e in experiment_ids]
        held = select(_runs.c.run_uuid).where(_runs.c.experiment_id.in_(ids))
        run_ids = list(conn.execute(held).scalars())
        # A run restored meanwhile keeps its experiment; the others go through the cascade.
        conn.execute(
            delete(_exp).where(
                _exp.c.experiment_id.in_(ids), _exp.c.lifecycle_stage == "deleted", ~_active()
            )
        )
        _delete_points(conn, run_ids)

    store.write(work)


def _delete_points(conn: Connection, run_ids: Sequence[str]) -> None:
    """Delete the metric points of those of these runs whose row is gone."""
    gone = ~exists().where(_runs.c.run_uuid == _metrics.c.run_uuid)
    for start in range(0, len(run_ids), 500):
        chunk = list(run_ids[start : start + 500])
        conn.execute(delete(_metrics).where(_metrics.c.run_uuid.in_(chunk), gone))
