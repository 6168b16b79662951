"""The database fixtures of ``conftest.py``: each test gets an empty database of its own."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text


def _table_names(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


class TestDbUrl:
    """Two tests write the same table: the second passes only if it got an empty database."""

    @pytest.mark.parametrize("attempt", ["first", "second"])
    def test_database_is_empty_and_writable(self, db_url: str, attempt: str) -> None:
        assert _table_names(db_url) == []
        engine = create_engine(db_url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY)"))
            conn.execute(text("INSERT INTO probe (id) VALUES (1)"))
        # Leave a connection open in a transaction, as a failing test might: emptying the
        # database must cope. Detached, so the pool does not try to reuse it afterwards.
        leaked = engine.connect()
        leaked.detach()
        leaked.execute(text("SELECT id FROM probe"))
        assert _table_names(db_url) == ["probe"]

    def test_backends_are_distinct(self, db_url: str, request: pytest.FixtureRequest) -> None:
        backend = request.node.callspec.id
        expected = {
            "sqlite": "sqlite",
            "postgres": "postgresql+psycopg",
            "mysql": "mysql+pymysql",
        }
        assert db_url.split("://", 1)[0] == expected[backend]


class TestMarkers:
    def test_server_fixtures_mark_their_tests(
        self, request: pytest.FixtureRequest, db_url: str
    ) -> None:
        backend = request.node.callspec.id
        marks = {mark.name for mark in request.node.iter_markers()}
        assert (backend in marks) == (backend != "sqlite")
