"""The FastAPI application: routes, error mapping, auth and body limits around one store.

Routes are served under ``/api/2.0/mlflow/`` and again under
``/ajax-api/2.0/mlflow/`` (the prefix MLflow's web UI uses); the artifact
proxy lives under ``/api/2.0/mlflow-artifacts/artifacts``, trackflow's own
endpoints under ``/api/2.0/trackflow/``, ``/health`` at the root, and the web UI
(:mod:`tracking.ui`) at ``/``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from tracking.artifacts import register_storage_options, resolve_artifact_root
from tracking.client import TrackingClient
from tracking.server.artifacts import PROXY_ROOT, ArtifactProxy
from tracking.server.errors import install_error_handlers
from tracking.server.middleware import (
    DOCS_PATHS,
    OPEN_PATHS,
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    HostCheckMiddleware,
    HostMatcher,
    PageConcurrencyMiddleware,
)
from tracking.server.responses import MlflowJSONResponse
from tracking.server.routes import artifacts, experiments, models, runs, trackflow
from tracking.server.settings import DEFAULT_CORS_ORIGIN_REGEX, ServerSettings
from tracking.server.state import ServerState
from tracking.store.sql.engine import WalCheckpointer, write_lock_for
from tracking.store.sql.store import SqlTrackingStore
from tracking.ui.app import UI_OPEN_PREFIXES, install_ui
from tracking.ui.auth import SessionSigner, TokenThrottle

__all__ = ["API_PREFIXES", "create_app", "create_app_from_env", "open_store"]

#: Where MLflow's tracking API is served (the second is what MLflow's UI calls).
API_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")

_log = logging.getLogger("tracking.server")
#: Web UI requests inside the app at once (the others wait without a thread), so pages
#: never take the threads the API needs.
UI_PAGES_AT_ONCE = 4


def open_store(settings: ServerSettings) -> SqlTrackingStore:
    """The server's store: new experiments get ``mlflow-artifacts:/<experiment_id>``.

    A SQLite database is migrated on open; a server database at an older
    schema raises :class:`~tracking.errors.SchemaOutOfDateError`. With
    ``settings.migrate`` off nothing is migrated or created: any database not
    at the current revision raises it. The pool is sized by
    ``settings.db_pool_size`` and ``settings.db_max_overflow`` (per process).
    """
    uri = settings.database_uri()
    if not settings.migrate:
        _require_current_schema(uri)
    return SqlTrackingStore(
        uri, artifact_root=PROXY_ROOT, auto_upgrade=None if settings.migrate else False
    )


def _require_current_schema(uri: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from tracking.store.sql.engine import create_tracking_engine, translate_db_error
    from tracking.store.sql.migrate import require_current_schema

    engine = create_tracking_engine(uri)
    try:
        require_current_schema(engine)
    except SQLAlchemyError as exc:
        error = translate_db_error(exc)
        raise type(error)(
            f"cannot open the tracking database "
            f"{engine.url.render_as_string(hide_password=True)}: {error}"
        ) from exc
    finally:
        engine.dispose()


def _mlflow_router() -> APIRouter:
    router = APIRouter()
    # Routes are matched in order: the run routes (the log calls) come first.
    router.include_router(runs.router)
    router.include_router(runs.metrics_router)
    router.include_router(experiments.router)
    router.include_router(artifacts.router)
    router.include_router(models.router)
    return router


def create_app(
    settings: ServerSettings | None = None,
    *,
    store: SqlTrackingStore | None = None,
    checkpoint_wal: bool | None = None,
) -> FastAPI:
    """The tracking server's ASGI app.

    ``settings`` default to the ``TRACKFLOW_SERVER_*`` environment; ``store``
    (if given) is used instead of opening ``settings.backend_store_uri`` and
    stays the caller's to close (a store the app opened closes with it).
    ``checkpoint_wal`` (default: whether the app opened the store) has a SQLite
    file's WAL checkpointed in the background while the app runs
    (:class:`~tracking.store.sql.engine.WalCheckpointer`). Example::

        app = create_app(ServerSettings(backend_store_uri="sqlite:///runs.db",
                                        artifacts_destination="s3://bucket/artifacts"))
        # uvicorn.run(app, port=5000)
    """
    settings = settings or ServerSettings()
    owned = store is None
    if checkpoint_wal is None:
        checkpoint_wal = owned
    store = store or open_store(settings)
    storage_options = settings.storage_options()
    if storage_options:
        register_storage_options(
            resolve_artifact_root(settings.artifacts_destination), storage_options
        )
    inline = settings.inline_writes
    if inline is None:
        inline = store.dialect == "sqlite"
    state = ServerState(
        settings=settings,
        store=store,
        client=TrackingClient.from_store(store, settings.backend_store_uri),
        proxy=ArtifactProxy(settings.artifacts_destination, settings.allowed_artifact_roots),
        inline_writes=inline,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # A server that owns its SQLite file checkpoints the WAL in the background
        # rather than on the request whose commit fills it.
        checkpointer = None
        if checkpoint_wal and write_lock_for(store.engine) is not None:
            checkpointer = WalCheckpointer(store.engine)
            checkpointer.start()
        # What exists now (modules, routes, schemas) lives as long as the process:
        # out of the collector's sight, a full collection no longer walks it all.
        gc.freeze()
        try:
            yield
        finally:
            if checkpointer is not None:
                checkpointer.stop()
            if owned:
                store.close()

    app = FastAPI(
        title="trackflow tracking server",
        version="2.0",
        description="MLflow's tracking REST API 2.0, its artifact proxy, and trackflow's "
        "own endpoints (run trees, heartbeats, sampled metric history).",
        default_response_class=MlflowJSONResponse,
        lifespan=lifespan,
        # Served by the UI from the vendored Swagger UI and Redoc: no CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.trackflow = state
    # Routes are matched one by one in this order: the busiest go first (trackflow's
    # client sends its log-batch and searches to trackflow's own endpoints).
    mlflow_api = _mlflow_router()
    app.include_router(trackflow.health_router)
    app.include_router(trackflow.router, prefix="/api/2.0/trackflow")
    app.include_router(mlflow_api, prefix=API_PREFIXES[0])
    app.include_router(artifacts.proxy_router, prefix="/api/2.0/mlflow-artifacts")
    app.include_router(artifacts.root_router)
    app.include_router(mlflow_api, prefix=API_PREFIXES[1], include_in_schema=False)
    sessions = (
        SessionSigner(settings.auth_token.get_secret_value())
        if settings.auth_token is not None
        else None
    )
    throttle = TokenThrottle() if sessions is not None else None
    install_ui(app, sessions, throttle)
    install_error_handlers(app)
    # Innermost: only requests that passed the checks below wait for a page slot.
    app.add_middleware(PageConcurrencyMiddleware, limit=UI_PAGES_AT_ONCE)
    # Added last = outermost: refuse unauthenticated requests before reading any body.
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_request_bytes,
        artifact_limit=settings.max_artifact_bytes,
    )
    if settings.auth_token is not None:
        open_paths = OPEN_PATHS | DOCS_PATHS if settings.open_docs else OPEN_PATHS
        app.add_middleware(
            BearerAuthMiddleware,
            token=settings.auth_token.get_secret_value(),
            open_paths=open_paths,
            sessions=sessions,
            open_prefixes=UI_OPEN_PREFIXES,
            throttle=throttle,
        )
    _add_browser_protection(app, settings)
    _log.info(
        "trackflow server on %s, artifacts in %s%s",
        store.engine.url.render_as_string(hide_password=True),
        state.proxy.destination,
        " (bearer token required)" if settings.auth_token is not None else "",
    )
    return app


def _add_browser_protection(app: FastAPI, settings: ServerSettings) -> None:
    """CORS for the allowed origins (preflights answered before the token check), and
    outermost the Host check with the security headers."""
    from starlette.middleware.cors import CORSMiddleware

    origins = list(settings.cors_allowed_origins)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_origin_regex=None if origins else DEFAULT_CORS_ORIGIN_REGEX,
        allow_methods=["*"],
        allow_headers=["*"],
        max_age=600,
    )
    hosts = list(settings.allowed_hosts)
    if settings.host not in ("0.0.0.0", "::", ""):
        hosts.append(settings.host)  # the address it listens on is always its own
    frame = None if settings.x_frame_options == "NONE" else settings.x_frame_options
    app.add_middleware(HostCheckMiddleware, matcher=HostMatcher(hosts), frame_options=frame)


def create_app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings from ``TRACKFLOW_SERVER_*``."""
    return create_app(ServerSettings())
