"""``trackflow server``: MLflow's tracking REST API (and trackflow's) on uvicorn."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["COMMANDS"]


@click.command()
@click.option(
    "--backend-store-uri",
    default=None,
    help="SQLAlchemy URL of the tracking database [default: TRACKFLOW_TRACKING_URI, else "
    "sqlite:///trackflow.db]. SQLite is migrated on start and an empty PostgreSQL/MySQL "
    "database gets the schema; one at an older schema needs `trackflow db upgrade` first.",
)
@click.option(
    "--artifacts-destination",
    default=None,
    help="fsspec URL or path where proxied artifacts are stored [default: ./trackflow-artifacts].",
)
@click.option(
    "--artifacts-storage-options",
    default=None,
    help="fsspec storage options of the artifacts destination, a JSON object.",
)
@click.option(
    "--artifacts-storage-options-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="A JSON file of storage options (e.g. a mounted secret with key and secret).",
)
@click.option(
    "--artifacts-endpoint-url",
    default=None,
    help="Endpoint URL of an S3-compatible store for an s3:// destination. Credentials: "
    "the storage options, else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
    "AWS_SHARED_CREDENTIALS_FILE.",
)
@click.option("--artifacts-region", default=None, help="Region of an s3:// destination.")
@click.option(
    "--artifacts-path-style/--no-artifacts-path-style",
    default=None,
    help="Path-style S3 addressing, which most S3-compatible stores need [default: off].",
)
@click.option(
    "--check-artifacts/--no-check-artifacts",
    default=None,
    help="Check at start-up that the artifacts destination is writable [default: on].",
)
@click.option(
    "--migrate/--no-migrate",
    default=None,
    help="Migrate the schema at start-up [default: on]. --no-migrate (replicas): never "
    "touch it, refuse a database not at the current revision.",
)
@click.option(
    "--db-pool-size",
    default=None,
    type=click.IntRange(1),
    help="Database connections kept open per worker process [default: 5].",
)
@click.option(
    "--db-max-overflow",
    default=None,
    type=click.IntRange(0),
    help="Further connections per worker under load [default: 10]. A server holds at most "
    "workers x (pool size + overflow).",
)
@click.option("--host", default=None, help="Interface to listen on [default: 127.0.0.1].")
@click.option(
    "--port", default=None, type=click.IntRange(0, 65535), help="TCP port [default: 5000]."
)
@click.option(
    "--workers", default=None, type=click.IntRange(1, 256), help="Worker processes [default: 1]."
)
@click.option(
    "--auth-token",
    default=None,
    help="Require `Authorization: Bearer <token>` on every API call [env: "
    "TRACKFLOW_SERVER_AUTH_TOKEN]; /health stays open. Prefer --auth-token-file or the "
    "environment: a command-line token shows in `ps`.",
)
@click.option(
    "--auth-token-file",
    default=None,
    type=click.Path(dir_okay=False),
    help="Read the bearer token from this file.",
)
@click.option(
    "--open-docs/--no-open-docs",
    default=None,
    help="Serve /docs, /redoc and /openapi.json without the token [default: they need it].",
)
@click.option(
    "--allowed-hosts",
    default=None,
    help="Host header values served, comma-separated ('*.example.com', 'private', '*') "
    "[default: localhost, 127.0.0.1, [::1] and private addresses]; others get 403.",
)
@click.option(
    "--cors-allowed-origins",
    default=None,
    help="Browser origins allowed to call the API, comma-separated, or '*' "
    "[default: http(s)://localhost, 127.0.0.1 and [::1], any port].",
)
@click.option(
    "--x-frame-options",
    default=None,
    type=click.Choice(["SAMEORIGIN", "DENY", "NONE"], case_sensitive=False),
    help="X-Frame-Options of every response [default: SAMEORIGIN].",
)
@click.option(
    "--allowed-artifact-roots",
    default=None,
    help="Further locations (fsspec URLs or paths), comma-separated, that experiments may "
    "use as artifact_location; the artifacts destination is always allowed.",
)
@click.option(
    "--max-artifact-bytes",
    default=None,
    type=click.IntRange(1),
    help="Largest artifact upload accepted, in bytes [default: 5 GiB].",
)
@click.option(
    "--access-log/--no-access-log", default=None, help="Log every request [default: off]."
)
@click.option(
    "--demo", is_flag=True, help="First fill the store with the demo sweep (`trackflow demo`)."
)
def server(demo: bool, open_browser: bool = False, **options: Any) -> None:
    """Serve MLflow's tracking REST API (and trackflow's additions) with FastAPI on uvicorn.

    MLflow clients work with MLFLOW_TRACKING_URI=http://HOST:PORT; trackflow's with
    TRACKFLOW_TRACKING_URI=http://HOST:PORT. Every option also comes from
    TRACKFLOW_SERVER_<OPTION> in the environment.
    """
    from pydantic import ValidationError

    from tracking.server.serve import serve
    from tracking.server.settings import ServerSettings

    given = {k: v for k, v in options.items() if v is not None}
    try:
        settings = ServerSettings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise click.UsageError(problems) from None
    serve(settings, demo=demo, open_browser=open_browser)


ui = click.Command(
    "ui",
    callback=server.callback,
    params=[
        *server.params,
        click.Option(
            ["--open-browser/--no-open-browser"],
            default=False,
            help="Open the UI in the default browser once it is up.",
        ),
    ],
    help="Serve the web UI at http://HOST:PORT/ (with the REST API): `trackflow server` "
    "with the UI's defaults, as `mlflow ui` is to `mlflow server`. Every option also "
    "comes from TRACKFLOW_SERVER_<OPTION> in the environment.",
    short_help="Serve the web UI (and the API).",
)

COMMANDS = [server, ui]
