"""What a deployment needs from ``trackflow server``, on real processes: artifacts on an
S3 server (moto_server) with storage options, start-up checks of the bucket and the
database, a server that never migrates, worker processes with a pool sized per worker."""

from __future__ import annotations

import json
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from _deploy_support import (
    MLFLOW,
    PROXY,
    S3_KEY,
    S3_REGION,
    S3_SECRET,
    S3Server,
    clean_env,
    free_port,
    run_trackflow,
    trackflow_server,
)
from sqlalchemy.engine import make_url

from tracking.cli import main
from tracking.errors import InvalidParameterError
from tracking.store.sql.engine import create_tracking_engine
from tracking.store.sql.migrate import HEAD_REVISION, upgrade


def _bucket(s3: S3Server) -> str:
    name = f"art-{uuid.uuid4().hex[:10]}"
    s3.make_bucket(name)
    return name


def _s3_options(s3: S3Server) -> list[str]:
    return [
        "--artifacts-endpoint-url",
        s3.endpoint,
        "--artifacts-region",
        S3_REGION,
        "--artifacts-path-style",
    ]


@dataclass
class Exited:
    code: int
    stderr: str


def _command(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Exited:
    """``trackflow <args>`` in this process, through the console script's entry point, for
    commands that stop before serving (start-up checks, usage errors)."""
    monkeypatch.setattr(sys, "argv", ["trackflow", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    assert isinstance(exited.value.code, int)
    return Exited(exited.value.code, capsys.readouterr().err)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3_SECRET)


def _connections(db_url: str) -> int:
    url = make_url(db_url)
    with psycopg.connect(
        host=url.host, port=url.port or 5432, user=url.username, dbname="postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (url.database,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _log_one(url: str, index: int) -> tuple[str, str]:
    """Create a run, log to it, upload an artifact; (run_id, artifact root path)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        run = http.post(f"{MLFLOW}/runs/create", json={"experiment_id": "0"})
        assert run.status_code == 200, run.text
        info = run.json()["run"]["info"]
        batch = http.post(
            f"{MLFLOW}/runs/log-batch",
            json={
                "run_id": info["run_id"],
                "params": [{"key": "i", "value": str(index)}],
                "metrics": [
                    {"key": "m", "value": float(s), "timestamp": 1, "step": s} for s in range(50)
                ],
            },
        )
        assert batch.status_code == 200, batch.text
        root = info["artifact_uri"].removeprefix("mlflow-artifacts:/")
        put = http.put(f"{PROXY}/{root}/out/notes-{index}.txt", content=f"run {index}".encode())
        assert put.status_code == 200, put.text
    return info["run_id"], root


def test_s3_workers_pool_and_no_migrate(s3: S3Server, postgres_url: str, tmp_path: Path) -> None:
    bucket = _bucket(s3)
    # Credentials from a file (a mounted secret), not the environment.
    secret = tmp_path / "s3.json"
    secret.write_text(json.dumps({"key": S3_KEY, "secret": S3_SECRET}))
    env = clean_env()
    done = run_trackflow(
        "db", "upgrade", "--backend-store-uri", postgres_url, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    options = [
        "--backend-store-uri",
        postgres_url,
        "--no-migrate",
        "--workers",
        "2",
        "--db-pool-size",
        "2",
        "--db-max-overflow",
        "1",
        "--artifacts-destination",
        f"s3://{bucket}/trackflow",
        "--artifacts-storage-options-file",
        str(secret),
        *_s3_options(s3),
    ]
    with trackflow_server(tmp_path, options, env) as server:
        with ThreadPoolExecutor(12) as pool:
            logged = list(pool.map(lambda i: _log_one(server.url, i), range(12)))
            peak = max(pool.map(lambda _: _connections(postgres_url), range(4)))
        assert "never migrating" in server.log_text()
        assert "with 2 worker(s)" in server.log_text()
        fs = s3.filesystem()
        for index, (run_id, root) in enumerate(logged):
            key = f"{bucket}/trackflow/{root}/out/notes-{index}.txt"
            assert fs.cat_file(key) == f"run {index}".encode(), run_id
            got = httpx.get(f"{server.url}{PROXY}/{root}/out/notes-{index}.txt", timeout=30)
            assert got.content == f"run {index}".encode()
        # Two workers, each with a pool of 2 + 1: never more than 6 connections.
        after = _connections(postgres_url)
    assert 0 < max(peak, after) <= 6, (peak, after)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # where an in-process command's default SQLite file goes


def _stopped_at_start_up(done: Exited, *expected: str) -> None:
    assert done.code == 1, done.stderr
    for text in expected:
        assert text in done.stderr
    assert done.stderr.startswith("Error:")
    assert "Traceback" not in done.stderr
    assert "serving" not in done.stderr


@pytest.mark.usefixtures("aws_env")
def test_missing_bucket_stops_the_server(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    destination = ["--artifacts-destination", "s3://no-such-bucket-here/trackflow"]
    done = _command(["server", "--port", "0", *destination, *_s3_options(s3)], monkeypatch, capsys)
    _stopped_at_start_up(done, "bucket 'no-such-bucket-here'", "does not exist")
    assert not s3.filesystem().exists("no-such-bucket-here")  # reported, never created


@pytest.mark.usefixtures("aws_env")
def test_unreachable_s3_endpoint_stops_the_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    options = ["--artifacts-destination", "s3://bucket/trackflow"]
    options += ["--artifacts-endpoint-url", endpoint, "--artifacts-path-style"]
    # Any fsspec option, merged with the ones above: here botocore's retries, off.
    options += [
        "--artifacts-storage-options",
        '{"config_kwargs": {"retries": {"max_attempts": 1}}}',
    ]
    done = _command(["server", "--port", "0", *options], monkeypatch, capsys)
    _stopped_at_start_up(done, f"bucket 'bucket' at {endpoint}", "Could not connect")
    assert f"{endpoint}/bucket/trackflow/" in done.stderr  # path-style, merged with the JSON


def test_unwritable_local_destination_stops_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    options = ["--artifacts-destination", str(blocker / "artifacts")]
    done = _command(["server", "--port", "0", *options], monkeypatch, capsys)
    _stopped_at_start_up(done, "cannot write to the artifacts destination")


def test_unreachable_database_stops_the_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    done = _command(["server", "--port", "0", "--backend-store-uri", uri], monkeypatch, capsys)
    _stopped_at_start_up(
        done, "cannot open the tracking database", "does not start without its database"
    )


def test_no_migrate_refuses_an_older_or_empty_schema(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["server", "--port", "0", "--backend-store-uri", postgres_url]
    done = _command([*args, "--no-migrate"], monkeypatch, capsys)
    _stopped_at_start_up(done, "has no trackflow schema yet", "trackflow db upgrade")
    engine = create_tracking_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert not conn.dialect.get_table_names(conn)  # nothing was created
        upgrade(engine, "0001")
    finally:
        engine.dispose()
    monkeypatch.setenv("TRACKFLOW_SERVER_MIGRATE", "false")
    done = _command(args, monkeypatch, capsys)
    _stopped_at_start_up(
        done, "is at revision 0001", f"needs {HEAD_REVISION}", "trackflow db upgrade"
    )


def test_no_migrate_leaves_a_sqlite_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path}/new.db"
    done = _command(
        ["server", "--port", "0", "--no-migrate", "--backend-store-uri", uri], monkeypatch, capsys
    )
    _stopped_at_start_up(done, "has no trackflow schema yet")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--artifacts-storage-options", "[1, 2]"],
            "artifacts_storage_options: expected a JSON object",
        ),
        (
            ["--artifacts-storage-options-file", "/no/such/file.json"],
            "cannot read artifacts_storage_options_file",
        ),
        (
            ["--artifacts-endpoint-url", "http://127.0.0.1:1"],
            "apply to an s3:// artifacts destination",
        ),
        (
            ["--artifacts-destination", "s3://b/x", "--artifacts-endpoint-url", "ftp://x"],
            "expected http(s)://host[:port]",
        ),
        (["--db-pool-size", "0"], "--db-pool-size"),
    ],
)
def test_bad_deployment_options_are_usage_errors(
    options: list[str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = _command(["server", "--port", "0", *options], monkeypatch, capsys)
    assert done.code == 2, done.stderr
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("query", ["pool_size=0", "max_overflow=-1", "pool_size=many"])
def test_bad_pool_sizes_in_the_uri_are_refused(query: str) -> None:
    with pytest.raises(InvalidParameterError, match=query.split("=")[0]):
        create_tracking_engine(f"postgresql://postgres@127.0.0.1/test?{query}")


def test_pool_sizes_in_the_uri_size_the_pool() -> None:
    engine = create_tracking_engine(
        "postgresql://postgres@127.0.0.1/test?pool_size=3&max_overflow=2"
    )
    try:
        assert engine.pool.size() == 3  # type: ignore[attr-defined]
        assert engine.pool._max_overflow == 2  # type: ignore[attr-defined]
        assert "pool_size" not in engine.url.query
    finally:
        engine.dispose()


def test_a_pool_bigger_than_postgres_allows_is_warned_about(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracking.server.serve import _warn_if_pool_too_big, pool_connections
    from tracking.server.settings import ServerSettings
    from tracking.store.sql.store import SqlTrackingStore

    store = SqlTrackingStore(postgres_url)
    try:
        fits = ServerSettings(backend_store_uri=postgres_url, workers=2)
        assert pool_connections(fits) == 2 * (5 + 10)
        _warn_if_pool_too_big(fits, store)
        assert "WARNING" not in capsys.readouterr().err
        too_many = ServerSettings(
            backend_store_uri=postgres_url, workers=8, db_pool_size=20, db_max_overflow=5
        )
        assert pool_connections(too_many) == 200
        _warn_if_pool_too_big(too_many, store)
        warning = capsys.readouterr().err
        assert "8 worker(s) x (pool size + overflow) = 200" in warning
        assert "--db-pool-size" in warning
    finally:
        store.close()
