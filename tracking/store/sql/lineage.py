"""The artifact graph in SQL: ``record_lineage`` writes an edge, ``get_lineage`` reads
a run's edges both ways. Recording the same edge again keeps the first one."""

from __future__ import annotations

from sqlalchemy import Connection, select

from tracking.entities import Lineage, LineageEdge
from tracking.store.sql.engine import insert_ignoring
from tracking.store.sql.models import LineageModel, table_of

__all__ = ["get_lineage", "record_lineage"]

_lineage = table_of(LineageModel)
_COLUMNS = (
    _lineage.c.consumer_run_uuid,
    _lineage.c.producer_run_uuid,
    _lineage.c.artifact_path,
    _lineage.c.sha256,
    _lineage.c.timestamp,
)


def record_lineage(conn: Connection, edge: LineageEdge) -> None:
    """Store one edge (a no-op when it is there already)."""
    insert_ignoring(
        conn,
        _lineage,
        [
            {
                "consumer_run_uuid": edge.consumer_run_id,
                "producer_run_uuid": edge.producer_run_id,
                "artifact_path": edge.artifact_path,
                "sha256": edge.sha256,
                "timestamp": edge.timestamp,
            }
        ],
    )


def get_lineage(conn: Connection, run_id: str) -> Lineage:
    """What the run consumed and who consumed what it produced, oldest first."""
    order = (_lineage.c.timestamp, _lineage.c.artifact_path)
    consumed = conn.execute(
        select(*_COLUMNS).where(_lineage.c.consumer_run_uuid == run_id).order_by(*order)
    ).all()
    produced = conn.execute(
        select(*_COLUMNS).where(_lineage.c.producer_run_uuid == run_id).order_by(*order)
    ).all()
    return Lineage(
        tuple(LineageEdge(*row) for row in consumed), tuple(LineageEdge(*row) for row in produced)
    )
