"""A database outage in the middle of logging loses nothing and doubles nothing.

Four client processes log through a real ``trackflow server``, and a fifth to
the database itself, on a private PostgreSQL (or MariaDB) that the test crashes
mid-write (``pg_ctl -m immediate stop``, ``kill -9``) and starts again a few
seconds later. The server
answers 503 while the database is away, never 500, and recovers without a
restart; the clients' retries (their defaults: no retry setting is given) ride
the outage out, buffered or not; afterwards the database holds exactly what the
clients logged and every run ended as its code said.

A SQLite file still locked once its busy timeout has passed is a 503 as well.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from _outage_support import private_mariadb, private_postgres
from _server_support import MLFLOW, SUMMARY, free_port, server_command
from fastapi.testclient import TestClient

from tracking.server import ServerSettings, create_app
from tracking.store.sql.store import SqlTrackingStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX")

#: How long the database stays down: long enough for several retries of every client.
OUTAGE_S = 8.0
#: Logging before the crash and after the restart, so writes are in flight at both edges.
BEFORE_S, AFTER_S = 2.0, 3.0

WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import tracking
    from tracking import Metric, Param, RunTag

    url, experiment_id, mode, stop_file, out_file, db_url = sys.argv[1:7]
    BASE_TS = 1_764_000_000_000
    # What the code asked to log, whether or not the call raised: an error is data lost.
    logged = {"metrics": [], "params": {}, "tags": {}, "errors": []}


    def point(key, step, i):
        return Metric(key, step * 0.5 + i / 7, BASE_TS + step, step)


    def steps():
        step = 0
        while not os.path.exists(stop_file) or step < 20:
            yield step
            step += 1
            time.sleep(0.01)


    def record(metrics=(), params=(), tags=()):
        logged["metrics"].extend(list(m) for m in metrics)
        logged["params"].update(dict(params))
        logged["tags"].update(dict(tags))


    def explicit(status, log, uri=url):
        client = tracking.TrackingClient(uri)
        run = client.create_run(experiment_id, run_name=mode)
        run_id = run.info.run_id
        print("ready", run_id, flush=True)
        for step in steps():
            try:
                log(client, run_id, step)
            except tracking.TrackingError as exc:
                logged["errors"].append(f"{type(exc).__name__}: {exc}")
        try:
            client.set_terminated(run_id, status)
        except tracking.TrackingError as exc:
            logged["errors"].append(f"{type(exc).__name__}: {exc}")
        return run_id


    def single(client, run_id, step):
        metric = point("single", step, 0)
        record(metrics=[metric])
        client.log_metric(run_id, metric.key, metric.value, metric.timestamp, metric.step)
        if step % 5 == 0:
            record(params=[(f"p{step}", str(step))], tags=[("last", str(step))])
            client.log_param(run_id, f"p{step}", str(step))
            client.set_tag(run_id, "last", str(step))


    def batch(client, run_id, step):
        metrics = [point(f"k{i}", step, i) for i in range(25)]
        params = [Param(f"p{step}", str(step))]
        tags = [RunTag("last", str(step))]
        record(metrics, params, tags)
        client.log_batch(run_id, metrics, params, tags)


    def fluent(status):
        tracking.set_tracking_uri(url)
        try:
            opened = tracking.start_run(experiment_id=experiment_id, run_name=mode, buffered=True)
            with opened as run:
                print("ready", run.info.run_id, flush=True)
                for step in steps():
                    for i in range(10):
                        metric = point(f"b{i}", step, i)
                        tracking.log_metric(metric.key, metric.value, metric.step, metric.timestamp)
                        record(metrics=[metric])
                    if step % 5 == 0:
                        tracking.log_param(f"p{step}", step)
                        tracking.set_tag("last", step)
                        record(params=[(f"p{step}", str(step))], tags=[("last", str(step))])
                if status == "FAILED":
                    raise RuntimeError("the training code failed")
        except RuntimeError:
            pass
        except tracking.TrackingError as exc:
            logged["errors"].append(f"{type(exc).__name__}: {exc}")
        return run.info.run_id


    if mode == "single":
        status, run_id = "FINISHED", explicit("FINISHED", single)
    elif mode == "batch":
        status, run_id = "KILLED", explicit("KILLED", batch)
    elif mode == "direct":  # no server: the client talks to the database itself
        status, run_id = "FINISHED", explicit("FINISHED", batch, db_url)
    else:
        status = "FINISHED" if mode == "buffered" else "FAILED"
        run_id = fluent(status)
    with open(out_file, "w") as out:
        json.dump({"run_id": run_id, "status": status, **logged}, out)
    """
)

MODES = ("single", "batch", "buffered", "buffered-failing", "direct")


class Database(Protocol):
    """A private database server (see ``_outage_support``)."""

    url: str

    def start(self) -> None: ...

    def crash(self) -> None: ...


@dataclass
class Outcome:
    """What the clients logged against what the database holds."""

    logged: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    errors: int = 0


def _start_server(workdir: Path, db_url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKFLOW_", "MLFLOW_"))}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            server_command(port, db_url, workdir / "artifacts", "--access-log"),
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url, log
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"trackflow server did not come up:\n{log.read_text()[-3000:]}")


def _statuses(log: Path) -> Counter[int]:
    """HTTP statuses of the server's access log lines."""
    found = re.findall(r'HTTP/1\.1" (\d{3})', log.read_text(errors="replace"))
    return Counter(int(status) for status in found)


def _compare(store: SqlTrackingStore, report: dict[str, Any]) -> tuple[Outcome, list[str]]:
    """Count what the run holds against what the worker says it logged."""
    problems: list[str] = []
    outcome = Outcome()
    run = store.get_run(report["run_id"])
    logged = Counter(tuple(m) for m in report["metrics"])
    stored: Counter[tuple[Any, ...]] = Counter()
    for key in {m[0] for m in report["metrics"]} | set(run.data.metrics):
        history = store.get_metric_history(run.info.run_id, key)
        stored.update((m.key, m.value, m.timestamp, m.step) for m in history)
    outcome.logged = sum(logged.values())
    outcome.stored = sum(stored.values())
    outcome.lost = sum((logged - stored).values())
    outcome.unexpected = sum((stored - logged).values())
    outcome.duplicated = sum(count - 1 for count in stored.values() if count > 1)
    outcome.errors = len(report["errors"])
    if report["errors"]:
        problems.append(f"{len(report['errors'])} calls raised, first: {report['errors'][0]}")
    if run.data.params != report["params"]:
        problems.append(f"params differ: {len(run.data.params)} vs {len(report['params'])}")
    tags = {k: v for k, v in run.data.tags.items() if k in report["tags"]}
    if tags != report["tags"]:
        problems.append(f"tags differ: {tags} vs {report['tags']}")
    if run.info.status.value != report["status"]:
        problems.append(f"run ended {run.info.status.value}, its code said {report['status']}")
    return outcome, problems


def _outage_round(tmp_path: Path, database: Database, how: str) -> None:
    db_url = database.url
    server, url, server_log = _start_server(tmp_path, db_url)
    workers: list[subprocess.Popen[str]] = []
    try:
        experiment_id = httpx.post(
            f"{url}/api/2.0/mlflow/experiments/create", json={"name": "outage"}, timeout=30
        ).json()["experiment_id"]
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        stop = tmp_path / "stop"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKFLOW_", "MLFLOW_"))}
        for mode in MODES:
            out = str(tmp_path / f"{mode}.json")
            workers.append(
                subprocess.Popen(
                    [sys.executable, str(script), url, experiment_id, mode, str(stop), out, db_url],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            assert line.startswith("ready "), worker.stderr.read() if worker.stderr else line

        time.sleep(BEFORE_S)
        database.crash()
        down = time.monotonic()
        time.sleep(OUTAGE_S)
        database.start()
        outage = time.monotonic() - down
        time.sleep(AFTER_S)
        stop.touch()
        for worker in workers:
            _, stderr = worker.communicate(timeout=150)
            assert worker.returncode == 0, stderr
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        server.terminate()
        server.wait(30)

    store = SqlTrackingStore(database.url, str(tmp_path / "artifacts"))
    try:
        total, problems = Outcome(), []
        for mode in MODES:
            report = json.loads((tmp_path / f"{mode}.json").read_text())
            outcome, found = _compare(store, report)
            problems += [f"{mode}: {p}" for p in found]
            for field in ("logged", "stored", "lost", "duplicated", "unexpected", "errors"):
                setattr(total, field, getattr(total, field) + getattr(outcome, field))
    finally:
        store.close()
    statuses = _statuses(server_log)
    SUMMARY.append(
        f"outage ({how}, {outage:.1f} s): {total.logged} points logged, {total.stored} stored, "
        f"{total.lost} lost, {total.duplicated} duplicated; {total.errors} client calls "
        f"raised; {statuses[503]} answers 503, {statuses[500]} answers 500"
    )
    print(SUMMARY[-1])
    assert statuses[500] == 0, f"500s in the server log:\n{server_log.read_text()[-4000:]}"
    assert statuses[503] > 0, "the outage reached no request: the test proves nothing"
    assert total.lost == 0 and total.duplicated == 0 and total.unexpected == 0, total
    assert problems == []
    assert "Traceback" not in server_log.read_text()


def _rounds() -> dict[str, Callable[[], AbstractContextManager[Any]]]:
    return {"postgres": private_postgres, "mysql": private_mariadb}


@pytest.fixture
def outage_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    with _rounds()[request.param]() as database:
        yield database


@pytest.mark.slow
class TestDatabaseOutage:
    @pytest.mark.postgres
    @pytest.mark.parametrize("outage_db", ["postgres"], indirect=True)
    def test_postgres_immediate_stop(self, tmp_path: Path, outage_db: Database) -> None:
        _outage_round(tmp_path, outage_db, "pg_ctl -m immediate stop")

    @pytest.mark.mysql
    @pytest.mark.parametrize("outage_db", ["mysql"], indirect=True)
    def test_mariadb_kill_9(self, tmp_path: Path, outage_db: Database) -> None:
        _outage_round(tmp_path, outage_db, "kill -9 mariadbd")


class TestSqliteLocked:
    def test_write_past_the_busy_timeout_is_503(self, tmp_path: Path) -> None:
        path = tmp_path / "server.db"
        settings = ServerSettings(
            backend_store_uri=f"sqlite:///{path}?timeout=0.5",
            artifacts_destination=str(tmp_path / "artifacts"),
        )
        with TestClient(
            create_app(settings), base_url="http://localhost", raise_server_exceptions=False
        ) as client:
            created = client.post(f"{MLFLOW}/runs/create", json={"experiment_id": "0"})
            run_id = created.json()["run"]["info"]["run_id"]
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            try:
                point = {"key": "m", "value": 1.0, "timestamp": 1, "step": 0}
                for endpoint, body in [
                    ("runs/log-batch", {"run_id": run_id, "metrics": [point]}),
                    ("runs/log-metric", {"run_id": run_id, **point}),
                    ("runs/set-tag", {"run_id": run_id, "key": "t", "value": "v"}),
                    ("runs/update", {"run_id": run_id, "status": "FINISHED"}),
                ]:
                    answer = client.post(f"{MLFLOW}/{endpoint}", json=body)
                    assert answer.status_code == 503, (endpoint, answer.text)
                    assert answer.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            finally:
                holder.execute("ROLLBACK")
                holder.close()
            answer = client.post(
                f"{MLFLOW}/runs/update", json={"run_id": run_id, "status": "FINISHED"}
            )
            assert answer.status_code == 200, answer.text
