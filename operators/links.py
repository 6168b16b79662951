"""The "trackflow run" extra link: from a task instance in the Airflow UI to its run.

On trackflow's operators it is resolved in the worker when the task ends and
kept in XCom per map index; on every other task the plugin adds it as a global
link, which the API server resolves. Either way the URL is built from the
connection's UI base URL (``ui_base_url`` extra, else the tracking server)::

    https://tracking.example.com/#/experiments/3/runs/6f1c...
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.sdk import BaseOperatorLink

__all__ = ["TrackflowRunLink"]


class TrackflowRunLink(BaseOperatorLink):
    """Links a task instance (per map index) to its trackflow run."""

    name: ClassVar[str] = "trackflow run"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """The run's page; "" when the task was not tracked or no UI is known."""
        from operators._tracking import run_link

        try:
            return run_link(ti_key)
        except Exception:  # a link must never break the page or the task
            return ""
