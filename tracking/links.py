"""Links to runs in a trackflow (or MLflow) web UI, by MLflow's URL scheme.

The orchestrator integrations put these in Airflow's and Prefect's UIs; the
stock mlflow client prints the same shape ("View run at ...")::

    run_url("http://tracking:5000", "3", "9f2c...")
    # 'http://tracking:5000/#/experiments/3/runs/9f2c...'
"""

from __future__ import annotations

from urllib.parse import quote

from tracking.errors import InvalidParameterError

__all__ = ["experiment_url", "run_url", "ui_base_for"]


def _base(ui_base: str) -> str:
    if not isinstance(ui_base, str) or not ui_base.startswith(("http://", "https://")):
        raise InvalidParameterError(
            f"Invalid UI base URL {ui_base!r}: expected http(s)://host[:port][/prefix]"
        )
    return ui_base.rstrip("/")


def experiment_url(ui_base: str, experiment_id: str) -> str:
    """The page of an experiment: ``{ui_base}/#/experiments/{experiment_id}``."""
    return f"{_base(ui_base)}/#/experiments/{quote(str(experiment_id), safe='')}"


def run_url(ui_base: str, experiment_id: str, run_id: str) -> str:
    """The page of a run: ``{ui_base}/#/experiments/{experiment_id}/runs/{run_id}``."""
    return f"{experiment_url(ui_base, experiment_id)}/runs/{quote(str(run_id), safe='')}"


def ui_base_for(tracking_uri: str) -> str | None:
    """The UI base of a tracking server URI (the server serves its UI at ``/``), or
    None for a database URI, which has no UI of its own."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None
