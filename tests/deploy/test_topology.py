"""The deployment of docker/compose.yaml, run natively on loopback (no Docker engine).

PostgreSQL (a database of this module's own on the suite's server), an S3 server
(moto_server), the bucket created once, ``trackflow db upgrade`` once, then two
``trackflow server`` processes on two ports sharing the database and the bucket,
started exactly as compose starts its replicas (``_topology.py``; a test in
``test_offline_checks.py`` keeps the two the same) and never migrating. Client
processes log runs with artifacts through both; one server is killed mid-run
and restarted, and nothing is lost.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _deploy_support import PROXY, TrackflowProcess
from _native_topology import Topology
from _topology import BUCKET

from tracking.settings import reset_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENT = Path(__file__).with_name("_client.py")


@pytest.fixture(autouse=True)
def _token(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKFLOW_TRACKING_TOKEN", topology.token)
    monkeypatch.setenv("TRACKFLOW_RETRY_TIMEOUT", "60")
    reset_settings()


def _client(
    topology: Topology, server: TrackflowProcess, name: str, steps: int, pause: float
) -> tuple[subprocess.Popen[bytes], Path]:
    out = topology.workdir / f"{name}.run_id"
    log = topology.workdir / f"{name}.log"
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(CLIENT), "topology", name, str(steps), str(pause), str(out)],
            env=topology.client_env(server),
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=topology.workdir,
        )
    return process, out


def _wait(process: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    assert process.wait(timeout=timeout) == 0, log.read_text(errors="replace")


def _check_run(topology: Topology, run_id: str, name: str, steps: int) -> None:
    """The run, read through every server, and its artifacts, in the bucket and through
    every server's proxy."""
    fs = topology.s3.filesystem()
    for server in topology.servers:
        client = topology.client(server)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED", server.url
        assert run.data.params == {"name": name}
        assert run.data.tags["client"] == "topology"
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.step for m in history) == list(range(steps)), server.url
        assert {f"m{i}" for i in range(10)} <= set(run.data.metrics)
        root = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
        expected = {
            "model/model.bin": name.encode() * 1000,
            "report.txt": f"report of {name}\n".encode(),
        }
        for path, content in expected.items():
            # An object in the bucket ...
            assert fs.cat_file(f"{BUCKET}/artifacts/{root}/{path}") == content, path
            # ... downloadable through this server's proxy.
            got = httpx.get(
                f"{server.url}{PROXY}/{root}/{path}", headers=topology.headers(), timeout=30
            )
            assert got.status_code == 200 and got.content == content, (server.url, path)


def test_servers_never_migrate(topology: Topology) -> None:
    for server in topology.servers:
        log = server.log_text()
        assert "never migrating" in log, log
        assert "s3://trackflow/artifacts" in log


def test_clients_through_both_servers_share_database_and_bucket(topology: Topology) -> None:
    started = [
        (_client(topology, server, f"both-{i}", steps=20, pause=0), f"both-{i}")
        for i, server in enumerate(topology.servers)
    ]
    for (process, out), name in started:
        _wait(process, topology.workdir / f"{name}.log")
        _check_run(topology, out.read_text(), name, steps=20)
    listed = topology.s3.filesystem().find(f"{BUCKET}/artifacts")
    assert len([key for key in listed if key.endswith("/model/model.bin")]) >= 2


def test_a_server_killed_mid_run_loses_nothing(topology: Topology) -> None:
    victim = topology.servers[0]
    steps = 60
    process, out = _client(topology, victim, "killed", steps=steps, pause=0.05)
    log = topology.workdir / "killed.log"
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)
    run_id = out.read_text()
    # Kill it mid-run, with no clean shutdown; the client keeps retrying meanwhile.
    time.sleep(0.5)
    victim.kill()
    assert process.poll() is None, "the client finished before the server was killed"
    time.sleep(1.0)
    victim.restart()
    _wait(process, log)
    _check_run(topology, run_id, "killed", steps=steps)
    assert victim.process.poll() is None
