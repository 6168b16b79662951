"""``TRACKFLOW_*`` settings, read once through pydantic-settings.

Nothing reads the environment at import time: :func:`get_settings` reads it on
first use and caches the result; :func:`reset_settings` forgets it (tests, and
code that changes the environment on purpose).
"""

from __future__ import annotations

import functools
import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_ARTIFACT_ROOT",
    "DEFAULT_TRACKING_URI",
    "TrackingSettings",
    "configured_tracking_uri",
    "get_settings",
    "get_tracking_uri",
    "reset_settings",
    "resolve_tracking_uri",
    "set_tracking_uri",
]

DEFAULT_TRACKING_URI = "sqlite:///trackflow.db"
DEFAULT_ARTIFACT_ROOT = "./trackflow-artifacts"


class TrackingSettings(BaseSettings):
    """Client-side settings; each field is ``TRACKFLOW_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="TRACKFLOW_", extra="ignore")

    tracking_uri: str = Field(
        DEFAULT_TRACKING_URI,
        description="Where runs are stored: a SQLAlchemy URL (sqlite:///..., postgresql://..., "
        "mysql+pymysql://...) or a tracking server's http(s):// address.",
    )
    artifact_root: str | None = Field(
        None,
        description="fsspec URL under which new experiments keep artifacts "
        f"(default: {DEFAULT_ARTIFACT_ROOT} beside a SQLite file, resolved to an absolute path).",
    )
    experiment_name: str | None = Field(
        None, description="Experiment the fluent API logs to when none was set."
    )
    heartbeat_interval: float = Field(
        30.0, gt=0, description="Seconds between heartbeats of an active fluent run."
    )
    tracking_token: str | None = Field(
        None, description="Bearer token sent to a tracking server that requires one."
    )
    http_timeout: float = Field(30.0, gt=0, description="Seconds before an HTTP call times out.")
    http_max_retries: int | None = Field(
        None,
        ge=0,
        description="At most this many retries of a failed HTTP call (connection errors, "
        "429, 50x), on top of TRACKFLOW_RETRY_TIMEOUT; default: no cap but the timeout.",
    )
    retry_timeout: float = Field(
        120.0,
        ge=0,
        description="Seconds a call keeps being retried, with backoff, while the tracking "
        "server cannot be reached or answers 503 (its database is down), or while a "
        "PostgreSQL/MySQL store used directly cannot be reached; buffered logging waits as "
        "long for its batches. 0: no retries. TRACKFLOW_HTTP_MAX_RETRIES, when set, also "
        "caps how many times an HTTP call is retried.",
    )
    ui_base_url: str | None = Field(
        None,
        description="Where the web UI is (http(s)://host[:port][/prefix]), for the run links "
        "orchestrators show; default: the tracking server's own address.",
    )
    buffered_logging: bool = Field(
        False,
        description="Fluent log_* calls return at once and a background thread sends batches.",
    )


#: Environment variables naming the run a process joins, in order of precedence.
RUN_ID_ENV_VARS = ("TRACKFLOW_RUN_ID", "MLFLOW_RUN_ID")


def env_run_id() -> str | None:
    """The run an orchestrator's step handed this process through the environment
    (``TRACKFLOW_RUN_ID``, else MLflow's ``MLFLOW_RUN_ID``), read at each call: a
    worker runs many steps one after another."""
    for name in RUN_ID_ENV_VARS:
        if value := os.environ.get(name, "").strip():
            return value
    return None


@functools.cache
def get_settings() -> TrackingSettings:
    """The settings, read from the environment on first call."""
    return TrackingSettings()


def reset_settings() -> None:
    """Forget the cached settings so the next call reads the environment again."""
    get_settings.cache_clear()


#: What ``set_tracking_uri`` chose for this process (None: the environment decides).
_tracking_uri: str | None = None


def set_tracking_uri(uri: str | os.PathLike[str] | None) -> None:
    """Make ``uri`` the tracking URI of this process (``None`` forgets the choice).

    It overrides ``TRACKFLOW_TRACKING_URI`` for the fluent API and for every
    ``TrackingClient()`` built without a URI, as ``mlflow.set_tracking_uri``
    does for ``MlflowClient()``.
    """
    global _tracking_uri
    _tracking_uri = os.fspath(uri) if uri is not None else None


def get_tracking_uri() -> str:
    """The tracking URI in force: ``set_tracking_uri``, else the environment, else the default."""
    return _tracking_uri or get_settings().tracking_uri


def configured_tracking_uri() -> str | None:
    """The tracking URI this process was given (``set_tracking_uri``, else
    ``TRACKFLOW_TRACKING_URI``), or None where only the embedded default applies: an
    orchestrator's processes, each in its own working directory, must not each
    fall back to a ``./trackflow.db`` of their own."""
    return _tracking_uri or os.environ.get("TRACKFLOW_TRACKING_URI", "").strip() or None


def resolve_tracking_uri(uri: str | os.PathLike[str] | None = None) -> str:
    """``uri`` if given, else :func:`get_tracking_uri`: the one rule every caller follows."""
    return os.fspath(uri) if uri else get_tracking_uri()
