"""Running the server under uvicorn: what ``trackflow server`` does.

The store is opened (and a SQLite file migrated) before uvicorn starts, so a
database at an old schema stops the command with a message instead of a
traceback per worker. One worker serves the app object directly; more
workers make uvicorn import :func:`~tracking.server.app.create_app_from_env`
in each process, which reads the settings back from the environment.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import threading
import time

import click
import uvicorn

from tracking.artifacts import check_destination, resolve_artifact_root
from tracking.errors import StoreUnavailableError, TrackingError
from tracking.server.app import create_app, open_store
from tracking.server.settings import ServerSettings
from tracking.store.sql.store import SqlTrackingStore

__all__ = ["fill_with_demo", "serve"]

_FACTORY = "tracking.server.app:create_app_from_env"
_DEMO_TIMEOUT_S = 300.0


def serve(settings: ServerSettings, *, demo: bool = False, open_browser: bool = False) -> None:
    """Open the store and take the port, optionally fill the store with the demo sweep,
    then serve until stopped (with ``open_browser``, the UI opens once it answers).

    The port is bound before the demo runs, so a port already taken stops the
    command before anything is written; the address printed is the one served.
    """
    settings = settings.model_copy(
        update={"artifacts_destination": resolve_artifact_root(settings.artifacts_destination)}
    )
    _warn_if_exposed(settings)
    try:
        store = open_store(settings)
    except StoreUnavailableError as exc:
        raise StoreUnavailableError(
            f"{exc}\nThe server does not start without its database: check that the database "
            "is running and that --backend-store-uri (TRACKFLOW_SERVER_BACKEND_STORE_URI) "
            "points at it"
        ) from exc
    sock: socket.socket | None = None
    try:
        if settings.check_artifacts:
            check_destination(settings.artifacts_destination, settings.storage_options())
        _warn_if_pool_too_big(settings, store)
        sock = _bind(settings.host, settings.port)
        port = sock.getsockname()[1]
        if demo:
            fill_with_demo(settings, store, served_at=_url(settings.host, port))
        click.echo(
            f"trackflow server: {store.engine.url.render_as_string(hide_password=True)}, "
            f"artifacts in {settings.artifacts_destination}, serving {_url(settings.host, port)} "
            f"with {settings.workers} worker(s)"
            + ("" if settings.migrate else ", never migrating")
            + (" (bearer token required)" if settings.auth_token is not None else ""),
            err=True,
        )
        click.echo(f"web UI: {_url(settings.host, port)}/", err=True)
        if open_browser:
            _open_when_up(settings.host, port)
        common = {
            "access_log": settings.access_log,
            "log_level": "info",
            "loop": "auto",
            "http": "auto",
            "proxy_headers": False,
        }
        if settings.workers == 1:
            app = create_app(settings, store=store, checkpoint_wal=True)
            config = uvicorn.Config(app, host=settings.host, port=port, **common)  # type: ignore[arg-type]
            uvicorn.Server(config).run(sockets=[sock])
            return
        store.close()
        sock.close()
        os.environ.update(settings.model_copy(update={"port": port}).to_environ())
        uvicorn.run(
            _FACTORY,
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=port,
            **common,  # type: ignore[arg-type]
        )
    finally:
        if sock is not None:
            sock.close()
        store.close()


def pool_connections(settings: ServerSettings) -> int:
    """The most database connections one server (all its workers) may hold."""
    from tracking.store.sql.engine import DEFAULT_MAX_OVERFLOW, DEFAULT_POOL_SIZE

    pool = settings.db_pool_size if settings.db_pool_size is not None else DEFAULT_POOL_SIZE
    overflow = (
        settings.db_max_overflow if settings.db_max_overflow is not None else DEFAULT_MAX_OVERFLOW
    )
    return settings.workers * (pool + overflow)


def _warn_if_pool_too_big(settings: ServerSettings, store: SqlTrackingStore) -> None:
    """Warn when this server alone may open more connections than PostgreSQL allows."""
    if store.dialect != "postgresql":
        return
    from sqlalchemy import text

    with store.engine.connect() as conn:
        allowed = int(conn.execute(text("SHOW max_connections")).scalar_one())
        reserved = int(conn.execute(text("SHOW superuser_reserved_connections")).scalar_one())
    wanted = pool_connections(settings)
    if wanted > allowed - reserved:
        click.echo(
            f"WARNING: {settings.workers} worker(s) x (pool size + overflow) = {wanted} "
            f"database connections at most, but PostgreSQL accepts {allowed - reserved} "
            "(max_connections - superuser_reserved_connections); lower --db-pool-size / "
            "--db-max-overflow or raise max_connections, or requests will wait and fail "
            "with 503 under load.",
            err=True,
        )


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _open_when_up(host: str, port: int) -> None:
    """Open the UI in the default browser once the server answers ``/health`` (a thread:
    the server starts meanwhile)."""
    import threading
    import time
    import webbrowser

    import httpx

    wildcard = host in ("0.0.0.0", "::", "")
    url = _url("127.0.0.1" if wildcard else host, port)

    def wait_and_open() -> None:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    webbrowser.open(f"{url}/")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    threading.Thread(target=wait_and_open, name="trackflow-open-browser", daemon=True).start()


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on ``host:port``; a clear error if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise TrackingError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _warn_if_exposed(settings: ServerSettings) -> None:
    if settings.auth_token is None and not _is_loopback(settings.host):
        click.echo(
            f"WARNING: listening on {settings.host} without --auth-token: anyone who can reach "
            "this address can read, change and delete every run and artifact. Set a token "
            "(--auth-token-file or TRACKFLOW_SERVER_AUTH_TOKEN) or listen on 127.0.0.1.",
            err=True,
        )


def fill_with_demo(
    settings: ServerSettings, store: SqlTrackingStore, served_at: str | None = None
) -> None:
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
            [
                sys.executable,
                "-m",
                "tracking.cli",
                "demo",
                *(("--served-at", served_at) if served_at else ()),
            ],
            env=env,
            timeout=_DEMO_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise TrackingError(f"the demo sweep failed (exit status {done.returncode})")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
