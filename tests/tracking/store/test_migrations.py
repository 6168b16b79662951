"""Alembic owns the schema: head revision, models in sync, upgrade paths per backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from tracking.errors import SchemaOutOfDateError
from tracking.store.sql.engine import create_tracking_engine
from tracking.store.sql.migrate import HEAD_REVISION, downgrade, upgrade
from tracking.store.sql.models import Base
from tracking.store.sql.store import SqlTrackingStore

MIGRATIONS = Path(__file__).parents[3] / "tracking" / "store" / "sql" / "migrations"
TABLES = {
    "experiments",
    "experiment_tags",
    "runs",
    "params",
    "tags",
    "metrics",
    "latest_metrics",
    "alembic_version",
}


def test_head_revision_constant_is_alembic_head() -> None:
    script = ScriptDirectory(str(MIGRATIONS))
    assert script.get_current_head() == HEAD_REVISION


class TestMigrations:
    """Each case runs on SQLite, PostgreSQL and MySQL."""

    def test_models_match_migrations(self, db_url: str) -> None:
        engine = create_tracking_engine(db_url)
        try:
            upgrade(engine)
            with engine.connect() as conn:
                diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == []
        finally:
            engine.dispose()

    def test_downgrade_to_base_and_up_again(self, db_url: str) -> None:
        engine = create_tracking_engine(db_url)
        try:
            upgrade(engine)
            assert set(inspect(engine).get_table_names()) >= TABLES
            downgrade(engine, "base")
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
            upgrade(engine)
            assert set(inspect(engine).get_table_names()) >= TABLES
        finally:
            engine.dispose()


class TestSharedDatabases:
    """PostgreSQL and MySQL get the schema created when empty; an older one is only
    migrated on purpose, never when a store opens it."""

    @pytest.fixture(params=["postgres_url", "mysql_url"], ids=["postgres", "mysql"])
    def server_url(self, request: pytest.FixtureRequest) -> str:
        url: str = request.getfixturevalue(request.param)
        return url

    def test_empty_database_gets_the_schema(self, server_url: str, tmp_path: Path) -> None:
        store = SqlTrackingStore(server_url, str(tmp_path))
        try:
            assert store.get_experiment("0").name == "Default"
            assert set(inspect(store.engine).get_table_names()) >= TABLES
        finally:
            store.close()

    def test_processes_opening_an_empty_database_at_once_create_it_once(
        self, server_url: str, tmp_path: Path
    ) -> None:
        script = (
            "import sys\n"
            "from tracking.store.sql.store import SqlTrackingStore\n"
            "s = SqlTrackingStore(sys.argv[1], sys.argv[2])\n"
            "print(s.get_experiment('0').name)\n"
            "s.close()\n"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", script, server_url, str(tmp_path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [err for _, err in outputs]
        assert [out.strip() for out, _ in outputs] == ["Default"] * 4
        engine = create_tracking_engine(server_url)
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM experiments").scalar() == 1
        finally:
            engine.dispose()

    def test_database_with_other_tables_is_not_written_into(
        self, server_url: str, tmp_path: Path
    ) -> None:
        engine = create_tracking_engine(server_url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE someone_elses (id INTEGER)")
        finally:
            engine.dispose()
        with pytest.raises(SchemaOutOfDateError, match="someone_elses"):
            SqlTrackingStore(server_url, str(tmp_path))

    def test_old_revision_is_reported(self, server_url: str, tmp_path: Path) -> None:
        db_url = server_url
        engine = create_tracking_engine(db_url)
        try:
            upgrade(engine)
            with engine.begin() as conn:
                conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
        finally:
            engine.dispose()
        with pytest.raises(SchemaOutOfDateError, match="revision 0000"):
            SqlTrackingStore(db_url, str(tmp_path))


def test_sqlite_file_is_migrated_on_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    store = SqlTrackingStore(url, str(tmp_path / "artifacts"))
    try:
        assert set(inspect(store.engine).get_table_names()) >= TABLES
        assert store.get_experiment("0").artifact_location == str(tmp_path / "artifacts" / "0")
    finally:
        store.close()
