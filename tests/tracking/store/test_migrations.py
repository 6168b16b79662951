"""Alembic owns the schema: head revision, models in sync, upgrade paths per backend."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import MetaData, inspect

from tracking.cli import cli
from tracking.errors import SchemaOutOfDateError
from tracking.store.sql.engine import create_tracking_engine
from tracking.store.sql.migrate import (
    HEAD_REVISION,
    current_revision,
    downgrade,
    include_object,
    upgrade,
)
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
                # The foreign key of metrics is the models' on SQLite only (0007).
                opts = {"include_object": include_object(conn.dialect.name)}
                diff = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
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


# -- upgrading a database with data in it, from the first migration to head ------

_FIRST = "0001"
_EXPERIMENTS = [
    # experiment_id, name, lifecycle_stage
    (1, "upgrade-exp-a", "active"),
    (2, "upgrade-exp-b", "deleted"),
]
_RUNS = [
    # run_uuid, name, experiment_id, status, end_time, lifecycle_stage, parent
    ("a" * 32, "parent", 1, "FINISHED", 1_700_000_100_000, "active", None),
    ("b" * 32, "child", 1, "FAILED", 1_700_000_200_000, "active", "a" * 32),
    ("c" * 32, "running", 1, "RUNNING", None, "active", None),
    ("d" * 32, "gone", 2, "KILLED", 1_700_000_300_000, "deleted", None),
]
#: run -> {key: [(step, timestamp, value)]}: NaN and infinities included.
_METRICS = {
    "a" * 32: {
        "loss": [(s, 1_700_000_000_000 + s, 1.0 / (s + 1)) for s in range(40)],
        "odd": [(0, 5, math.nan), (1, 6, math.inf), (2, 7, -math.inf), (3, 8, -0.5)],
    },
    "b" * 32: {"acc": [(0, 10, 0.25), (1, 11, 0.5), (1, 12, 0.75)]},
    "c" * 32: {"loss": [(0, 1, 3.0)]},
    "d" * 32: {"loss": [(0, 1, 4.0)]},
}
_PARAMS = {
    "a" * 32: {"lr": "0.1", "layers": "3", "text": "ünïcödé " + "x" * 5000},
    "b" * 32: {"lr": "0.01"},
    "c" * 32: {},
    "d" * 32: {"seed": "7"},
}
_TAGS = {
    "a" * 32: {"mlflow.runName": "parent", "team": "ml", "note": "n" * 4000},
    "b" * 32: {"mlflow.runName": "child", "mlflow.parentRunId": "a" * 32},
    "c" * 32: {"mlflow.runName": "running"},
    "d" * 32: {"mlflow.runName": "gone"},
}
_EXPERIMENT_TAGS = {1: {"owner": "alice", "mlflow.note.content": "first"}, 2: {}}


def _fill_first_schema(engine: Any) -> None:
    """Rows in the tables of migration 0001, written with that schema's columns only."""
    from tracking.store.sql.hotpath import encode_value

    experiments = [
        {
            "experiment_id": eid,
            "name": name,
            "artifact_location": f"mlflow-artifacts:/{eid}",
            "lifecycle_stage": stage,
            "creation_time": 1_600_000_000_000 + eid,
            "last_update_time": 1_600_000_000_500 + eid,
        }
        for eid, name, stage in _EXPERIMENTS
    ]
    runs = [
        {
            "run_uuid": run_id,
            "name": name,
            "experiment_id": eid,
            "user_id": "bob",
            "status": status,
            "start_time": 1_700_000_000_000,
            "end_time": end,
            "artifact_uri": f"mlflow-artifacts:/{eid}/{run_id}/artifacts",
            "lifecycle_stage": stage,
            "parent_run_uuid": parent,
            "heartbeat_time": None,
            "deleted_time": 1_700_000_400_000 if stage == "deleted" else None,
        }
        for run_id, name, eid, status, end, stage, parent in _RUNS
    ]
    metrics, latest = [], []
    for run_id, series in _METRICS.items():
        for key, points in series.items():
            for step, timestamp, value in points:
                stored, special = encode_value(value)
                metrics.append(
                    {
                        "run_uuid": run_id,
                        "key": key,
                        "step": step,
                        "timestamp": timestamp,
                        "value": stored,
                        "special": special,
                    }
                )
            step, timestamp, value = max(points, key=lambda p: (p[0], p[1]))
            stored, special = encode_value(value)
            latest.append(
                {
                    "run_uuid": run_id,
                    "key": key,
                    "step": step,
                    "timestamp": timestamp,
                    "value": stored,
                    "special": special,
                }
            )
    rows = {
        "experiments": experiments,
        "experiment_tags": [
            {"experiment_id": eid, "key": k, "value": v}
            for eid, tags in _EXPERIMENT_TAGS.items()
            for k, v in tags.items()
        ],
        "runs": runs,
        "metrics": metrics,
        "latest_metrics": latest,
        "params": [
            {"run_uuid": r, "key": k, "value": v}
            for r, ps in _PARAMS.items()
            for k, v in ps.items()
        ],
        "tags": [
            {"run_uuid": r, "key": k, "value": v} for r, ts in _TAGS.items() for k, v in ts.items()
        ],
    }
    metadata = MetaData()
    metadata.reflect(engine, only=list(rows))
    with engine.begin() as conn:
        for name in ("experiments", "experiment_tags", "runs", "metrics", "latest_metrics"):
            conn.execute(metadata.tables[name].insert(), rows[name])
        for name in ("params", "tags"):
            conn.execute(metadata.tables[name].insert(), rows[name])


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_upgrade_from_the_first_migration_keeps_every_row(db_url: str) -> None:
    """A database made at 0001 with data in it, upgraded to head by `trackflow db upgrade`
    (whatever head is), reads back through the store with nothing lost or changed."""
    script_head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    engine = create_tracking_engine(db_url)
    try:
        upgrade(engine, _FIRST)
        _fill_first_schema(engine)
    finally:
        engine.dispose()
    runner = CliRunner()
    done = runner.invoke(cli, ["db", "upgrade", "--backend-store-uri", db_url])
    assert done.exit_code == 0, done.output
    assert f"from {_FIRST} to " in done.output
    engine = create_tracking_engine(db_url)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == script_head
    finally:
        engine.dispose()

    store = SqlTrackingStore(db_url)
    try:
        for eid, name, stage in _EXPERIMENTS:
            exp = store.get_experiment(str(eid))
            assert (exp.name, exp.lifecycle_stage) == (name, stage)
            assert dict(exp.tags) == _EXPERIMENT_TAGS[eid]
        for run_id, name, eid, status, end, stage, _parent in _RUNS:
            run = store.get_run(run_id)
            assert run.info.run_name == name
            assert run.info.experiment_id == str(eid)
            assert (run.info.status, run.info.end_time, run.info.lifecycle_stage) == (
                status,
                end,
                stage,
            )
            assert run.info.artifact_uri == f"mlflow-artifacts:/{eid}/{run_id}/artifacts"
            assert dict(run.data.params) == _PARAMS[run_id]
            assert dict(run.data.tags) == _TAGS[run_id]
            assert set(run.data.metrics) == set(_METRICS[run_id])
            for key, points in _METRICS[run_id].items():
                history = store.get_metric_history(run_id, key)
                got = sorted((m.step, m.timestamp, m.value) for m in history)
                want = sorted(points)
                assert len(got) == len(want), key
                for (gs, gt, gv), (ws, wt, wv) in zip(got, want, strict=True):
                    assert (gs, gt) == (ws, wt) and _same(gv, wv), (key, gs)
                last = max(points, key=lambda p: (p[0], p[1]))
                assert _same(run.data.metrics[key], last[2])
        active = store.search_runs(["1"])
        assert {r.info.run_id for r in active} == {"a" * 32, "b" * 32, "c" * 32}
    finally:
        store.close()
