"""Schema migrations: Alembic owns the schema; this module runs and checks it.

An embedded SQLite file is upgraded automatically when a store opens it. A
shared database (PostgreSQL, MySQL) gets the schema created when a store opens
it empty, as MLflow does, under a database lock so that processes starting at
once create it once; an older schema is upgraded only on purpose with
``trackflow db upgrade``, and a store opened on one refuses with
:class:`~tracking.errors.SchemaOutOfDateError` saying so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from tracking.errors import SchemaOutOfDateError, StoreError
from tracking.store.sql.engine import WRITE

__all__ = [
    "HEAD_REVISION",
    "create_schema_if_empty",
    "current_revision",
    "downgrade",
    "ensure_schema",
    "include_object",
    "require_current_schema",
    "upgrade",
]

#: The newest migration; a test checks that it is Alembic's head.
HEAD_REVISION = "0007"

_MIGRATIONS = Path(__file__).with_name("migrations")
#: The name of the lock that serialises schema creation on a server database.
_LOCK_NAME = "trackflow_schema"
_LOCK_TIMEOUT_S = 120


def _alembic_config(connection: Connection) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def include_object(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` for comparing the models with a ``dialect``
    database: a constraint the models create on another dialect only (``ONLY_ON``)
    is not expected there."""
    from tracking.store.sql.models import ONLY_ON

    def include(obj: object, _name: str | None, kind: str, reflected: bool, _other: object) -> bool:
        only_on = getattr(obj, "info", {}).get(ONLY_ON) if not reflected else None
        return not (kind == "foreign_key_constraint" and only_on not in (None, dialect))

    return include


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


@contextlib.contextmanager
def _schema_lock(connection: Connection) -> Iterator[None]:
    """Hold a database-wide lock (a session-level advisory lock) for the block."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        acquire = text("SELECT pg_advisory_lock(hashtext(:name))")
        release = text("SELECT pg_advisory_unlock(hashtext(:name))")
    elif dialect in ("mysql", "mariadb"):
        acquire = text(f"SELECT GET_LOCK(:name, {_LOCK_TIMEOUT_S})")
        release = text("SELECT RELEASE_LOCK(:name)")
    else:
        yield
        return
    got = connection.execute(acquire, {"name": _LOCK_NAME}).scalar()
    connection.commit()
    if got == 0:
        raise StoreError(
            f"waited {_LOCK_TIMEOUT_S}s for another process creating the trackflow schema"
        )
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(release, {"name": _LOCK_NAME})
        connection.commit()


def create_schema_if_empty(engine: Engine) -> str | None:
    """Create the schema in a database that holds no tables; returns the revision the
    database is at afterwards, read under the lock.

    Runs under a database lock: of several processes opening the same empty
    database at once, one creates the schema and the others wait and find it
    done (MySQL's DDL is not transactional: without the lock they would see it
    half made). A database with tables but no trackflow schema is refused
    rather than written into.
    """
    from alembic import command

    url = engine.url.render_as_string(hide_password=True)
    with engine.connect() as connection, _schema_lock(connection):
        with connection.begin():
            revision = current_revision(connection)
            if revision is not None:
                return revision
            others = set(inspect(connection).get_table_names()) - {"alembic_version"}
        if others:
            raise SchemaOutOfDateError(
                f"the tracking database {url} has tables ({', '.join(sorted(others)[:5])}"
                f"{', ...' if len(others) > 5 else ''}) but no trackflow schema; give trackflow "
                "an empty database of its own"
            )
        with connection.begin():
            command.upgrade(_alembic_config(connection), "head")  # type: ignore[arg-type]
    return HEAD_REVISION


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Check the schema is current; migrate it when ``auto_upgrade`` (embedded SQLite),
    create it in an empty database, refuse an older one."""
    with engine.connect() as connection:
        revision = current_revision(connection)
        connection.rollback()
    if revision == HEAD_REVISION:
        return
    if auto_upgrade:
        upgrade(engine)
        return
    url = engine.url.render_as_string(hide_password=True)
    # Read again under the lock: another process may be creating the schema right now.
    try:
        revision = create_schema_if_empty(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"creating the trackflow schema in {url} failed: {exc}") from exc
    if revision == HEAD_REVISION:
        return
    raise SchemaOutOfDateError(
        f"the tracking database {url} is at schema revision {revision}, this trackflow needs "
        f"{HEAD_REVISION}; migrate it with `trackflow db upgrade --backend-store-uri {url}`"
    )


def require_current_schema(engine: Engine) -> None:
    """Raise :class:`~tracking.errors.SchemaOutOfDateError` unless the database is at
    :data:`HEAD_REVISION`; never writes (what a server that must not migrate calls)."""
    with engine.connect() as connection:
        revision = current_revision(connection)
        connection.rollback()
    if revision == HEAD_REVISION:
        return
    url = engine.url.render_as_string(hide_password=True)
    state = "has no trackflow schema yet" if revision is None else f"is at revision {revision}"
    raise SchemaOutOfDateError(
        f"the tracking database {url} {state}, this trackflow needs {HEAD_REVISION}, and this "
        "server does not migrate (--no-migrate); run `trackflow db upgrade "
        f"--backend-store-uri {url}` once, then start the server again"
    )
