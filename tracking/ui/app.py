"""Adding the web UI, its static files and the offline API docs to the server's app."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from tracking.ui import vendoring
from tracking.ui.auth import SessionSigner, TokenThrottle
from tracking.ui.render import page

__all__ = ["UI_OPEN_PREFIXES", "install_ui"]

_HERE = Path(__file__).resolve().parent
#: Served without a session: the UI's own files, the vendored libraries, the login page.
UI_OPEN_PREFIXES = ("/ui/static/", "/ui/vendor/", "/ui/login")
_log = logging.getLogger("tracking.server")


def _missing_page(absent: list[str]) -> HTMLResponse:
    names = ", ".join(html.escape(n) for n in absent)
    body = (
        "<!doctype html><meta charset=utf-8><title>trackflow: UI assets missing</title>"
        "<h1>The web UI's assets are not built</h1>"
        f"<p>Missing from <code>{html.escape(str(vendoring.VENDOR_DIR))}</code>: {names}.</p>"
        "<p>Rebuild them (they are fetched from the npm registry, pinned and verified):</p>"
        "<pre>uv run python -m tracking.ui.vendoring</pre>"
        "<p>or reinstall the package: <code>uv sync --reinstall-package trackflow</code>. "
        "The REST API works meanwhile.</p>"
    )
    return HTMLResponse(body, status_code=503)


def _docs_router(app: FastAPI) -> APIRouter:
    """``/docs`` and ``/redoc`` from the vendored files. Swagger UI is started by
    ``static/swagger-init.js`` rather than FastAPI's inline script, which the pages'
    CSP forbids; Redoc's sidebar logo (from its CDN) is refused by that CSP too."""
    router = APIRouter(include_in_schema=False)
    vendor = "/ui/vendor"

    @router.get("/docs")
    def swagger(request: Request) -> HTMLResponse:
        return page(
            request, "docs.html", title=f"{app.title} - Swagger UI", openapi_url=app.openapi_url
        )

    @router.get("/redoc")
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{vendor}/redoc.standalone.js",
            redoc_favicon_url=f"{root}/ui/static/favicon.svg",
            with_google_fonts=False,
        )

    return router


def install_ui(
    app: FastAPI, sessions: SessionSigner | None, throttle: TokenThrottle | None = None
) -> None:
    """Mount the UI at ``/`` (pages), ``/ui/...`` (fragments, static files, login) and
    serve ``/docs`` and ``/redoc`` from the vendored Swagger UI and Redoc.

    The app must have been created with ``docs_url=None, redoc_url=None``. When
    the vendored assets are missing every UI page answers 503 saying how to
    rebuild them. ``throttle`` counts wrong tokens on the login form (shared with the
    bearer-token middleware).

    Every page route is a plain ``def``: FastAPI runs it in its threadpool, so
    reading the store and rendering a large page never hold up the event loop
    (``/health``, the API) meanwhile.
    """
    from tracking.ui import experiments, login, models, pipeline, run_page, runs

    app.state.ui_sessions = sessions
    app.state.ui_throttle = throttle
    app.mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static")
    absent = vendoring.missing()
    if absent:
        _log.warning(
            "web UI assets missing (%s): run `uv run python -m tracking.ui.vendoring`",
            ", ".join(absent),
        )
        fallback = APIRouter(include_in_schema=False)

        @fallback.get("/")
        @fallback.get("/docs")
        @fallback.get("/redoc")
        @fallback.get("/experiments/{rest:path}")
        @fallback.get("/runs/{rest:path}")
        @fallback.get("/compare")
        @fallback.get("/models")
        @fallback.get("/models/{rest:path}")
        @fallback.get("/logged-models/{rest:path}")
        @fallback.get("/ui/{rest:path}")
        def missing(rest: str = "") -> Response:
            return _missing_page(absent)

        app.include_router(fallback)
        return
    app.mount("/ui/vendor", StaticFiles(directory=vendoring.VENDOR_DIR), name="ui-vendor")
    app.include_router(_docs_router(app))
    # models before run_page: its /ui/artifact/models/... must not be taken for a run's file.
    for module in (login, experiments, runs, models, run_page, pipeline):
        app.include_router(module.router)
