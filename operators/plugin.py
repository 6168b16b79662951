"""The Airflow plugin (the ``airflow.plugins`` entry point): the listener, the
macros, the "trackflow run" link on every task, and the views that take the
Airflow UI from a DAG run or a task instance to its run in trackflow."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from operators import listener, macros
from operators.links import TrackflowRunLink

__all__ = ["TrackflowPlugin"]


class _LazyApps(list[Any]):
    """The FastAPI app, built when the API server asks: a worker loading the plugin
    (for its listener) never imports FastAPI for it."""

    def _load(self) -> None:
        if not super().__len__():
            from operators.views import redirect_app

            super().append({"app": redirect_app(), "url_prefix": "/trackflow", "name": "trackflow"})

    def __iter__(self) -> Any:
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def __getitem__(self, index: Any) -> Any:
        self._load()
        return super().__getitem__(index)


class TrackflowPlugin(AirflowPlugin):
    """Tracks DAG runs and task instances (see :mod:`operators.listener`)."""

    name = "trackflow"
    listeners = [listener]
    macros = [
        macros.run_id,
        macros.task_run_id,
        macros.parent_run_id,
        macros.tracking_uri,
        macros.run_url,
    ]
    global_operator_extra_links = [TrackflowRunLink()]
    fastapi_apps = _LazyApps()
    external_views = [
        {
            "name": "trackflow run",
            "href": "/trackflow/dag_run/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
        },
        {
            "name": "trackflow run",
            "href": "/trackflow/task_instance/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}",
            "destination": "task_instance",
        },
    ]
