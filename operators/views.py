"""Redirects from Airflow's UI to trackflow's: the plugin's ``external_views``
point here, because a run's page needs ids the UI cannot fill in (the run id
derived from the DAG run, and its experiment)."""

from __future__ import annotations

from typing import Any

from operators._tracking import TaskKey, airflow_tracking, pipeline_for, step_for
from tracking.errors import RunNotFoundError
from tracking.links import run_url

__all__ = ["redirect_app", "run_page"]


def run_page(dag_id: str, run_id: str, task_id: str | None = None, map_index: int = -1) -> str:
    """The trackflow page of a DAG run's run, or of a task instance's run.

    Raises RunNotFoundError when it was not tracked, LookupError when no UI is known.
    """
    tracking_ = airflow_tracking()
    config = tracking_.config()
    if not config.ui_base:
        raise LookupError(
            "no trackflow UI is known: set the ui_base_url extra of the trackflow_default "
            "connection"
        )
    if task_id is None:
        tracked = pipeline_for(dag_id, run_id).run_id
    else:
        tracked = step_for(TaskKey(dag_id, run_id, task_id, map_index)).run_id
    run = tracking_.client().get_run(tracked)
    return run_url(config.ui_base, run.info.experiment_id, tracked)


def redirect_app() -> Any:
    """The FastAPI app the plugin mounts at ``/trackflow`` in the API server.

    Behind the API server's own authentication and authorisation, as its pages
    are: a request without Airflow's token (the UI's cookie or a bearer) gets 401,
    a user who may not read the DAG's runs or task instances 403."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import RedirectResponse

    app = FastAPI(title="trackflow links", docs_url=None, redoc_url=None, openapi_url=None)
    may_read_run = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]
    may_read_task = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))]

    def go(dag_id: str, run_id: str, task_id: str | None, map_index: int) -> RedirectResponse:
        try:
            return RedirectResponse(run_page(dag_id, run_id, task_id, map_index), 302)
        except RunNotFoundError:
            raise HTTPException(404, f"{dag_id} {run_id} was not tracked by trackflow") from None
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.get("/dag_run/{dag_id}/{run_id}", dependencies=may_read_run)
    def dag_run(dag_id: str, run_id: str) -> RedirectResponse:
        return go(dag_id, run_id, None, -1)

    @app.get("/task_instance/{dag_id}/{run_id}/{task_id}/{map_index}", dependencies=may_read_task)
    def task_instance(dag_id: str, run_id: str, task_id: str, map_index: str) -> RedirectResponse:
        try:
            index = int(map_index)
        except ValueError:
            index = -1  # the UI sends its placeholder for an unmapped task
        return go(dag_id, run_id, task_id, index)

    return app
