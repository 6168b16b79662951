"""``TRACKFLOW_SERVER_*`` settings of the tracking server.

The ``trackflow server`` command builds a :class:`ServerSettings` from its
options; worker processes started by uvicorn (``--workers`` > 1) read the same
settings back from the environment, where the command put them
(:meth:`ServerSettings.to_environ`).
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from tracking.settings import DEFAULT_TRACKING_URI

__all__ = [
    "DEFAULT_ARTIFACTS_DESTINATION",
    "DEFAULT_MAX_REQUEST_BYTES",
    "ENV_PREFIX",
    "ServerSettings",
]

ENV_PREFIX = "TRACKFLOW_SERVER_"
DEFAULT_ARTIFACTS_DESTINATION = "./trackflow-artifacts"
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


class ServerSettings(BaseSettings):
    """How the tracking server stores data, listens and authenticates.

    Each field is ``TRACKFLOW_SERVER_<NAME>`` in the environment; the backend
    store URI also falls back to ``TRACKFLOW_TRACKING_URI``. Example::

        settings = ServerSettings(backend_store_uri="sqlite:///runs.db", port=8080)
        app = tracking.server.create_app(settings)
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_by_name=True)

    backend_store_uri: str = Field(
        DEFAULT_TRACKING_URI,
        validation_alias=AliasChoices(f"{ENV_PREFIX}BACKEND_STORE_URI", "TRACKFLOW_TRACKING_URI"),
        description="SQLAlchemy URL of the tracking database (sqlite:///..., postgresql://..., "
        "mysql+pymysql://...). A SQLite file is migrated on start; a server database at an "
        "older schema is refused until `trackflow db upgrade` ran.",
    )
    artifacts_destination: str = Field(
        DEFAULT_ARTIFACTS_DESTINATION,
        description="fsspec URL (or local path) where proxied artifacts are stored: "
        "mlflow-artifacts:/<path> maps to <artifacts_destination>/<path>.",
    )
    host: str = Field("127.0.0.1", description="Interface to listen on.")
    port: int = Field(5000, ge=0, le=65535, description="TCP port to listen on.")
    workers: int = Field(1, ge=1, description="Worker processes serving requests.")
    auth_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices(f"{ENV_PREFIX}AUTH_TOKEN", f"{ENV_PREFIX}TOKEN"),
        description="When set, every API request needs `Authorization: Bearer <token>`; "
        "/health stays open. Also read from TRACKFLOW_SERVER_TOKEN.",
    )
    access_log: bool = Field(False, description="Log one line per request.")
    max_request_bytes: int = Field(
        DEFAULT_MAX_REQUEST_BYTES,
        gt=0,
        description="Largest body accepted by the JSON APIs; larger ones get 413.",
    )
    max_artifact_bytes: int | None = Field(
        None,
        gt=0,
        description="Largest artifact upload accepted (streamed to storage); None: no limit.",
    )
    inline_writes: bool | None = Field(
        None,
        description="Run the small calls (log-metric, log-batch, creating, reading and ending "
        "a run ...) on the event loop instead of a worker thread: faster for SQLite, whose "
        "writes are serialized anyway. "
        "None: inline for SQLite, threaded for server databases.",
    )

    def to_environ(self) -> dict[str, str]:
        """The environment variables that rebuild these settings in another process."""
        environ: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if isinstance(value, bool):
                value = "true" if value else "false"
            environ[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        return environ
