"""``trackflow db upgrade`` and ``trackflow db current``: the schema of a tracking database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

__all__ = ["COMMANDS"]

_URI_OPTION = click.option(
    "--backend-store-uri",
    envvar="TRACKFLOW_TRACKING_URI",
    default="sqlite:///trackflow.db",
    show_default=True,
    help="SQLAlchemy URL of the tracking database [env: TRACKFLOW_TRACKING_URI].",
)


@click.group()
def db() -> None:
    """Manage the tracking database schema."""


@contextlib.contextmanager
def _engine(uri: str) -> Iterator[Any]:
    """An engine on ``uri`` for the block, its driver errors translated, then disposed."""
    from sqlalchemy.exc import SQLAlchemyError

    from tracking.store.sql.engine import create_tracking_engine, translate_db_error

    engine = create_tracking_engine(uri)
    try:
        yield engine
    except SQLAlchemyError as exc:
        raise translate_db_error(exc) from exc
    finally:
        engine.dispose()


def _revision(engine: Any) -> str | None:
    from tracking.store.sql.migrate import current_revision

    with engine.connect() as conn:
        return current_revision(conn)


@db.command("upgrade")
@_URI_OPTION
def db_upgrade(backend_store_uri: str) -> None:
    """Migrate the database to the schema this trackflow needs."""
    from tracking.store.sql.migrate import HEAD_REVISION, upgrade

    with _engine(backend_store_uri) as engine:
        before = _revision(engine)
        upgrade(engine)
        url = engine.url.render_as_string(hide_password=True)
    if before == HEAD_REVISION:
        click.echo(f"{url} is already at revision {HEAD_REVISION}")
    else:
        click.echo(f"upgraded {url} from {before or 'an empty database'} to {HEAD_REVISION}")


@db.command("current")
@_URI_OPTION
def db_current(backend_store_uri: str) -> None:
    """Print the schema revision of the database and whether it is current (exit 1 if not)."""
    from tracking.store.sql.migrate import HEAD_REVISION

    with _engine(backend_store_uri) as engine:
        revision = _revision(engine)
        url = engine.url.render_as_string(hide_password=True)
    if revision == HEAD_REVISION:
        click.echo(f"{url}: revision {revision} (current)")
        return
    state = "no trackflow schema yet" if revision is None else f"revision {revision}"
    click.echo(f"{url}: {state}; this trackflow needs {HEAD_REVISION} (run `trackflow db upgrade`)")
    raise click.exceptions.Exit(1)


COMMANDS = [db]
