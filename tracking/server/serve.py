"""Running the server under uvicorn: what ``trackflow server`` does.

The store is opened (and a SQLite file migrated) before uvicorn starts, so a
database at an old schema stops the command with a message instead of a
traceback per worker. One worker serves the app object directly; more
workers make uvicorn import :func:`~tracking.server.app.create_app_from_env`
in each process, which reads the settings back from the environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import click
import uvicorn

from tracking.artifacts import resolve_artifact_root
from tracking.errors import TrackingError
from tracking.server.app import create_app, open_store
from tracking.server.settings import ServerSettings
from tracking.store.sql.store import SqlTrackingStore

__all__ = ["fill_with_demo", "serve"]

_FACTORY = "tracking.server.app:create_app_from_env"
_DEMO_TIMEOUT_S = 300.0


def serve(settings: ServerSettings, *, demo: bool = False) -> None:
    """Open the store, optionally fill it with the demo sweep, then serve until stopped."""
    settings = settings.model_copy(
        update={"artifacts_destination": resolve_artifact_root(settings.artifacts_destination)}
    )
    store = open_store(settings)
    try:
        if demo:
            fill_with_demo(settings, store)
        url = f"http://{settings.host}:{settings.port}"
        click.echo(
            f"trackflow server: {store.engine.url.render_as_string(hide_password=True)}, "
            f"artifacts in {settings.artifacts_destination}, {url}"
            + (" (bearer token required)" if settings.auth_token is not None else ""),
            err=True,
        )
        common = {
            "host": settings.host,
            "port": settings.port,
            "access_log": settings.access_log,
            "log_level": "info",
            "loop": "auto",
            "http": "auto",
            "proxy_headers": False,
        }
        if settings.workers == 1:
            app = create_app(settings, store=store, checkpoint_wal=True)
            uvicorn.run(app, **common)  # type: ignore[arg-type]
            return
        store.close()
        os.environ.update(settings.to_environ())
        uvicorn.run(_FACTORY, factory=True, workers=settings.workers, **common)  # type: ignore[arg-type]
    finally:
        store.close()


def fill_with_demo(settings: ServerSettings, store: SqlTrackingStore) -> None:
    """Log ``trackflow demo`` into the store through the server's own API.

    The demo runs in a child process against a private instance of the app
    on a free loopback port, before the real server listens: its runs get
    ``mlflow-artifacts:`` URIs and its artifacts land in the destination,
    exactly as a remote client's would.
    """
    private = settings.model_copy(update={"auth_token": None, "access_log": False})
    config = uvicorn.Config(
        create_app(private, store=store),
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="trackflow-demo-server", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise TrackingError("the demo could not start a private server")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")}
        env["TRACKFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
        click.echo("filling the store with the demo sweep ...", err=True)
        done = subprocess.run(
            [sys.executable, "-m", "tracking.cli", "demo"],
            env=env,
            timeout=_DEMO_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise TrackingError(f"the demo sweep failed (exit status {done.returncode})")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
