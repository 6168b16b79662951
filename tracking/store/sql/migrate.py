"""Schema migrations: Alembic owns the schema; this module runs and checks it.

An embedded SQLite file is upgraded automatically when a store opens it. A
shared database (PostgreSQL, MySQL) is upgraded on purpose with ``trackflow db
upgrade``; a store opened on an older schema refuses with
:class:`~tracking.errors.SchemaOutOfDateError` saying so.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from tracking.errors import SchemaOutOfDateError, StoreError
from tracking.store.sql.engine import WRITE

__all__ = ["HEAD_REVISION", "current_revision", "downgrade", "ensure_schema", "upgrade"]

#: The newest migration; a test checks that it is Alembic's head.
HEAD_REVISION = "0002"

_MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(connection: Connection) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def current_revision(connection: Connection) -> str | None:
    """The revision a database is at (``None`` for an empty database)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision``.

    The check and the migration share one write transaction (``BEGIN
    IMMEDIATE`` on SQLite), so processes opening a new database file at the
    same moment migrate it once, one after the other.
    """
    from alembic import command

    try:
        with engine.connect() as connection:
            connection.execution_options(**{WRITE: True})
            with connection.begin():
                if revision != "head" or current_revision(connection) != HEAD_REVISION:
                    command.upgrade(_alembic_config(connection), revision)  # type: ignore[arg-type]
    except SQLAlchemyError as exc:
        raise StoreError(f"migrating the tracking database failed: {exc}") from exc


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database behind ``engine`` back to ``revision`` (``"base"``: empty)."""
    from alembic import command

    try:
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection), revision)  # type: ignore[arg-type]
    except SQLAlchemyError as exc:
        raise StoreError(f"migrating the tracking database failed: {exc}") from exc


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Check the schema is current; migrate it when ``auto_upgrade`` (embedded SQLite)."""
    with engine.connect() as connection:
        revision = current_revision(connection)
        connection.rollback()
    if revision == HEAD_REVISION:
        return
    if auto_upgrade:
        upgrade(engine)
        return
    url = engine.url.render_as_string(hide_password=True)
    if revision is None:
        raise SchemaOutOfDateError(
            f"the tracking database {url} has no trackflow schema yet; create it with "
            f"`trackflow db upgrade --backend-store-uri {url}`"
        )
    raise SchemaOutOfDateError(
        f"the tracking database {url} is at schema revision {revision}, this trackflow needs "
        f"{HEAD_REVISION}; migrate it with `trackflow db upgrade --backend-store-uri {url}`"
    )
