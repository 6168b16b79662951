"""Reads of Airflow's metadata database for the listener's background thread.

Each read opens a session of its own on Airflow's engine, never one from
``airflow.settings.Session`` (the scoped registry whose session the scheduler's
loop is using), and returns plain values, so no ORM object crosses a thread.
"""

from __future__ import annotations

from typing import Any

from operators._tracking import TaskKey

__all__ = ["NoMetadataDatabaseError", "dag_run_state", "dag_tags", "task_instance_states"]


class NoMetadataDatabaseError(RuntimeError):
    """This process has no metadata database (a task worker talks to the API server)."""


def _session() -> Any:
    from airflow import settings
    from sqlalchemy.orm import Session

    engine = getattr(settings, "engine", None)
    if engine is None:
        raise NoMetadataDatabaseError("no metadata database engine in this process")
    return Session(engine, expire_on_commit=False)


def dag_tags(dag_id: str) -> list[str]:
    """The tags of a DAG, as the dag-processor stored them."""
    from airflow.models.dag import DagTag
    from sqlalchemy import select

    with _session() as session:
        return list(session.scalars(select(DagTag.name).where(DagTag.dag_id == dag_id)))


def task_instance_states(dag_id: str, run_id: str) -> list[tuple[TaskKey, str | None]]:
    """Every task instance of a DAG run with its state (``"success"``, ``"failed"``...)."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    ti = TaskInstance
    query = select(ti.task_id, ti.map_index, ti.try_number, ti.state).where(
        ti.dag_id == dag_id, ti.run_id == run_id
    )
    with _session() as session:
        rows = session.execute(query).all()
    return [
        (
            TaskKey(dag_id, run_id, task_id, -1 if index is None else int(index), try_ or 1),
            None if state is None else str(getattr(state, "value", state)),
        )
        for task_id, index, try_, state in rows
    ]


def dag_run_state(dag_id: str, run_id: str) -> tuple[str | None, Any] | None:
    """A DAG run's state and end date, or None when Airflow has no such DAG run (it
    was deleted)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    query = select(DagRun.state, DagRun.end_date).where(
        DagRun.dag_id == dag_id, DagRun.run_id == run_id
    )
    with _session() as session:
        row = session.execute(query).first()
    if row is None:
        return None
    state, end_date = row
    return (None if state is None else str(getattr(state, "value", state))), end_date
