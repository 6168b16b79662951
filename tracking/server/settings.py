"""``TRACKFLOW_SERVER_*`` settings of the tracking server.

The ``trackflow server`` command builds a :class:`ServerSettings` from its
options; worker processes started by uvicorn (``--workers`` > 1) read the same
settings back from the environment, where the command put them
(:meth:`ServerSettings.to_environ`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tracking.settings import DEFAULT_TRACKING_URI

__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "DEFAULT_ARTIFACTS_DESTINATION",
    "DEFAULT_CORS_ORIGIN_REGEX",
    "DEFAULT_MAX_ARTIFACT_BYTES",
    "DEFAULT_MAX_REQUEST_BYTES",
    "ENV_PREFIX",
    "ServerSettings",
]

ENV_PREFIX = "TRACKFLOW_SERVER_"
DEFAULT_ARTIFACTS_DESTINATION = "./trackflow-artifacts"
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ARTIFACT_BYTES = 5 * 1024**3
#: Host headers accepted when none are configured: loopback names and private addresses.
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]", "private")
#: Browser origins allowed by CORS when none are configured: pages served from this machine.
DEFAULT_CORS_ORIGIN_REGEX = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$"

_CommaList = Annotated[tuple[str, ...], NoDecode]
_JsonObject = Annotated[dict[str, Any], NoDecode]


def _split(value: object) -> object:
    """A comma-separated string (as the command line and the environment give it), a
    JSON list, or a sequence."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return tuple(json.loads(text))
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return value


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
    artifacts_storage_options: _JsonObject = Field(
        default_factory=dict,
        description="fsspec storage options of the artifacts destination, a JSON object "
        '(e.g. {"endpoint_url": "http://seaweedfs:8333"} for s3://); merged over those of '
        "artifacts_storage_options_file.",
    )
    artifacts_storage_options_file: Path | None = Field(
        None,
        description="A JSON file of fsspec storage options (a mounted secret may hold "
        '{"key": ..., "secret": ...}), so credentials need not be in the environment.',
    )
    artifacts_endpoint_url: str | None = Field(
        None,
        description="Endpoint of an S3-compatible store for an s3:// destination "
        "(SeaweedFS, Garage, Ceph ...). Credentials come from the storage options, else "
        "from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_SHARED_CREDENTIALS_FILE.",
    )
    artifacts_region: str | None = Field(None, description="Region of an s3:// destination.")
    artifacts_path_style: bool = Field(
        False,
        description="Path-style S3 addressing (http://endpoint/bucket/key), which most "
        "S3-compatible stores need.",
    )
    check_artifacts: bool = Field(
        True,
        description="At start-up, write, read back and delete a small object in the "
        "artifacts destination; stop with a message naming the bucket and the cause if that "
        "fails.",
    )
    migrate: bool = Field(
        True,
        description="Migrate at start-up: a SQLite file is upgraded and an empty server "
        "database gets the schema. False (replicas): never touch the schema; a database "
        "that is not at the current revision stops the server, naming `trackflow db upgrade`.",
    )
    db_pool_size: int | None = Field(
        None,
        ge=1,
        description="Database connections each worker process keeps open (server "
        "databases; default 5).",
    )
    db_max_overflow: int | None = Field(
        None,
        ge=0,
        description="Further connections each worker may open under load (default 10). "
        "Every worker has its own pool: a server holds up to "
        "workers x (db_pool_size + db_max_overflow) connections.",
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
    auth_token_file: Path | None = Field(
        None,
        description="A file whose content (stripped) is the bearer token, so the token need "
        "not show on the command line (`ps`).",
    )
    open_docs: bool = Field(
        False,
        description="Serve /docs, /redoc and /openapi.json without the bearer token "
        "(by default they need it like the API).",
    )
    allowed_hosts: _CommaList = Field(
        DEFAULT_ALLOWED_HOSTS,
        description="Host header values accepted, comma-separated: names, addresses, "
        "'*.example.com' wildcards, 'private' (any private or loopback address) or '*' "
        "(any). Other hosts get 403, so DNS rebinding cannot reach the server from a "
        "browser. Default: localhost, 127.0.0.1, [::1] and private addresses.",
    )
    cors_allowed_origins: _CommaList = Field(
        (),
        description="Browser origins allowed to call the API (CORS), comma-separated, or '*'. "
        "Default: pages on localhost, 127.0.0.1 and [::1], any port.",
    )
    x_frame_options: str = Field(
        "SAMEORIGIN",
        description="X-Frame-Options on every response (SAMEORIGIN, DENY, or NONE to send none).",
    )
    allowed_artifact_roots: _CommaList = Field(
        (),
        description="Locations (fsspec URLs or paths), comma-separated, that clients may give "
        "experiments as artifact_location, besides the artifacts destination; any other "
        "location is refused with 400 and never read by the server.",
    )
    max_artifact_bytes: int | None = Field(
        DEFAULT_MAX_ARTIFACT_BYTES,
        gt=0,
        description="Largest artifact upload accepted (streamed to storage), in bytes; larger "
        "ones get 413. Default: 5 GiB.",
    )
    inline_writes: bool | None = Field(
        None,
        description="Run the small calls (log-metric, log-batch, creating, reading and ending "
        "a run ...) on the event loop instead of a worker thread: faster for SQLite, whose "
        "writes are serialized anyway. "
        "None: inline for SQLite, threaded for server databases.",
    )

    @field_validator(
        "allowed_hosts", "cors_allowed_origins", "allowed_artifact_roots", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)

    @field_validator("artifacts_storage_options", mode="before")
    @classmethod
    def _json_object(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f"expected a JSON object, got invalid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        return value

    @field_validator("x_frame_options")
    @classmethod
    def _frame_option(cls, value: str) -> str:
        upper = value.strip().upper()
        if upper not in ("SAMEORIGIN", "DENY", "NONE"):
            raise ValueError(f"x_frame_options must be SAMEORIGIN, DENY or NONE, not {value!r}")
        return upper

    @model_validator(mode="after")
    def _token_from_file(self) -> Self:
        if self.auth_token_file is not None and self.auth_token is None:
            try:
                token = self.auth_token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"cannot read auth_token_file {str(self.auth_token_file)!r}: {exc.strerror}"
                ) from None
            if not token:
                raise ValueError(f"auth_token_file {str(self.auth_token_file)!r} is empty")
            self.auth_token = SecretStr(token)
        return self

    @model_validator(mode="after")
    def _usable_storage_options(self) -> Self:
        from tracking.errors import TrackingError

        try:
            self.storage_options()
        except TrackingError as exc:
            raise ValueError(str(exc)) from None
        return self

    def storage_options(self) -> dict[str, Any]:
        """The fsspec storage options of the artifacts destination: the file's, then
        ``artifacts_storage_options``, then the endpoint, region and addressing style."""
        from tracking.artifacts.storage import s3_options

        options: dict[str, Any] = {}
        if self.artifacts_storage_options_file is not None:
            path = self.artifacts_storage_options_file
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
            except OSError as exc:
                raise ValueError(
                    f"cannot read artifacts_storage_options_file {str(path)!r}: {exc.strerror}"
                ) from None
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"artifacts_storage_options_file {str(path)!r} is not valid JSON: {exc}"
                ) from None
            if not isinstance(loaded, dict):
                raise ValueError(
                    f"artifacts_storage_options_file {str(path)!r} must hold a JSON object"
                )
            options.update(loaded)
        options.update(self.artifacts_storage_options)
        s3_specific = (
            self.artifacts_endpoint_url is not None
            or self.artifacts_region is not None
            or self.artifacts_path_style
        )
        if s3_specific and not self.artifacts_destination.startswith(("s3://", "s3a://")):
            raise ValueError(
                "artifacts_endpoint_url, artifacts_region and artifacts_path_style apply to an "
                f"s3:// artifacts destination, not {self.artifacts_destination!r}"
            )
        return s3_options(
            endpoint_url=self.artifacts_endpoint_url,
            region=self.artifacts_region,
            path_style=self.artifacts_path_style,
            base=options,
        )

    def database_uri(self) -> str:
        """``backend_store_uri`` with the pool sizes in its query, where the engine reads them."""
        if self.db_pool_size is None and self.db_max_overflow is None:
            return self.backend_store_uri
        from tracking.store.sql.engine import normalize_db_url

        url = normalize_db_url(self.backend_store_uri)
        sizes = {"pool_size": self.db_pool_size, "max_overflow": self.db_max_overflow}
        url = url.update_query_dict({k: str(v) for k, v in sizes.items() if v is not None})
        return url.render_as_string(hide_password=False)

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
            if isinstance(value, tuple | list):
                value = ",".join(value)
            if isinstance(value, dict):
                value = json.dumps(value)
            environ[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        return environ
