"""A real ``trackflow server`` process: the API over TCP, auth, workers, CLI errors, --demo."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from _server_support import MLFLOW, PROXY, TOKEN, TRACKFLOW, ServerProcess, start_server, unique

import tracking
from tracking.client import TrackingClient
from tracking.store.rest import RestTrackingStore
from tracking.store.sql.engine import create_tracking_engine
from tracking.store.sql.migrate import upgrade


def flow(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Create an experiment and a run, log, upload; return what was read back."""
    with httpx.Client(base_url=url, headers=headers or {}, timeout=30) as http:
        exp = http.post(f"{MLFLOW}/experiments/create", json={"name": unique()})
        assert exp.status_code == 200, exp.text
        run = http.post(
            f"{MLFLOW}/runs/create", json={"experiment_id": exp.json()["experiment_id"]}
        ).json()["run"]
        run_id = run["info"]["run_id"]
        assert (
            http.post(
                f"{MLFLOW}/runs/log-metric",
                json={
                    "run_id": run_id,
                    "key": "loss",
                    "value": "NaN",
                    "timestamp": 1,
                    "step": 0,
                },
            ).status_code
            == 200
        )
        assert (
            http.post(
                f"{MLFLOW}/runs/log-batch",
                json={
                    "run_id": run_id,
                    "params": [{"key": "lr", "value": "0.1"}],
                    "metrics": [{"key": "acc", "value": 0.9, "timestamp": 2, "step": 1}],
                },
            ).status_code
            == 200
        )
        root = run["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
        assert http.put(f"{PROXY}/{root}/notes.txt", content=b"hello").status_code == 200
        listing = http.get(f"{MLFLOW}/artifacts/list", params={"run_id": run_id}).json()
        download = http.get(f"{PROXY}/{root}/notes.txt").content
        got = http.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).json()["run"]
    return {"run": got, "listing": listing, "download": download}


class TestRunningServer:
    def test_health(self, server_url: str) -> None:
        response = httpx.get(f"{server_url}/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    def test_mlflow_flow_over_tcp(self, server_url: str) -> None:
        seen = flow(server_url)
        metrics = {m["key"]: float(m["value"]) for m in seen["run"]["data"]["metrics"]}
        assert math.isnan(metrics["loss"])
        assert metrics["acc"] == 0.9
        assert seen["run"]["data"]["params"] == [{"key": "lr", "value": "0.1"}]
        assert seen["listing"]["files"] == [{"path": "notes.txt", "is_dir": False, "file_size": 5}]
        assert seen["download"] == b"hello"

    def test_artifacts_land_in_the_destination(self, running_server: ServerProcess) -> None:
        seen = flow(running_server.url)
        root = seen["run"]["info"]["artifact_uri"].removeprefix("mlflow-artifacts:/")
        assert (running_server.artifacts / root / "notes.txt").read_bytes() == b"hello"

    def test_trackflow_client_store_round_trip(self, server_url: str) -> None:
        client = TrackingClient.from_store(RestTrackingStore(server_url), server_url)
        exp_id = client.create_experiment(unique())
        parent = client.create_run(exp_id, run_name="parent")
        child = client.create_run(
            exp_id,
            parent_run_id=parent.info.run_id,
            run_id=tracking.run_id_for("dag", "run", "task"),
        )
        again = client.create_run(
            exp_id, parent_run_id=parent.info.run_id, run_id=child.info.run_id
        )
        assert again.info.run_id == child.info.run_id
        client.log_metric(child.info.run_id, "m", 1.5, step=3)
        assert [r.info.run_id for r in client.get_children(parent.info.run_id)] == [
            child.info.run_id
        ]
        assert client.get_run(child.info.run_id).data.metrics == {"m": 1.5}

    def test_unknown_endpoint_over_tcp(self, server_url: str) -> None:
        response = httpx.post(f"{server_url}/api/2.0/mlflow/runs/fly", json={})
        assert response.status_code == 404
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"


class TestAuthServer:
    def test_refuses_without_token(self, auth_server: ServerProcess) -> None:
        name = unique()
        response = httpx.post(f"{auth_server.url}{MLFLOW}/experiments/create", json={"name": name})
        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"
        found = httpx.get(
            f"{auth_server.url}{MLFLOW}/experiments/get-by-name",
            params={"experiment_name": name},
            headers=auth_server.headers(),
        )
        assert found.status_code == 404

    def test_health_open_and_flow_with_token(self, auth_server: ServerProcess) -> None:
        assert httpx.get(f"{auth_server.url}/health").status_code == 200
        seen = flow(auth_server.url, auth_server.headers())
        assert seen["download"] == b"hello"
        assert auth_server.token == TOKEN


@pytest.mark.slow
class TestWorkers:
    def test_two_workers_serve_the_api(self, tmp_path: Path) -> None:
        with start_server(tmp_path, extra=("--workers", "2")) as server:
            runs = []
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for _ in range(20):
                    created = http.post(f"{TRACKFLOW}/runs/create", json={"experiment_id": "0"})
                    assert created.status_code == 200, created.text
                    runs.append(created.json()["run"]["info"]["run_id"])
                found = http.post(
                    f"{MLFLOW}/runs/search", json={"experiment_ids": ["0"], "max_results": 100}
                ).json()
            assert {r["info"]["run_id"] for r in found["runs"]} == set(runs)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracking.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestCommandLine:
    def test_server_database_at_previous_revision_is_refused(
        self, postgres_url: str, tmp_path: Path
    ) -> None:
        engine = create_tracking_engine(postgres_url)
        try:
            upgrade(engine, "0001")
        finally:
            engine.dispose()
        done = _cli("server", "--backend-store-uri", postgres_url, "--port", "0", cwd=tmp_path)
        assert done.returncode == 1
        assert "revision 0001" in done.stderr
        assert "trackflow db upgrade" in done.stderr
        assert "Traceback" not in done.stderr + done.stdout

    def test_unusable_uri_is_refused_without_traceback(self, tmp_path: Path) -> None:
        done = _cli("server", "--backend-store-uri", "nosuchdb://x", "--port", "0", cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr.startswith("Error:")
        assert "Traceback" not in done.stderr

    def test_help_lists_the_options(self, tmp_path: Path) -> None:
        done = _cli("server", "--help", cwd=tmp_path)
        for option in (
            "--backend-store-uri",
            "--artifacts-destination",
            "--host",
            "--port",
            "--workers",
            "--auth-token",
            "--demo",
            "--access-log",
            "--artifacts-endpoint-url",
            "--artifacts-region",
            "--artifacts-path-style",
            "--artifacts-storage-options",
            "--artifacts-storage-options-file",
            "--no-migrate",
            "--db-pool-size",
            "--db-max-overflow",
        ):
            assert option in done.stdout

    @pytest.mark.slow
    def test_demo_fills_the_store_first(self, tmp_path: Path) -> None:
        with (
            start_server(tmp_path, extra=("--demo",)) as server,
            httpx.Client(base_url=server.url, timeout=30) as http,
        ):
            exp = http.get(
                f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "demo-sweep"}
            ).json()["experiment"]
            runs = http.post(
                f"{MLFLOW}/runs/search", json={"experiment_ids": [exp["experiment_id"]]}
            ).json()["runs"]
            assert len(runs) == 7  # the sweep and its six trials
            assert {r["info"]["status"] for r in runs} == {"FINISHED"}
            trial = next(r for r in runs if r["info"]["run_name"] == "trial-0")
            listing = http.get(
                f"{MLFLOW}/artifacts/list", params={"run_id": trial["info"]["run_id"]}
            ).json()
            assert listing["files"][0]["path"] == "trial.json"
            assert exp["artifact_location"] == f"mlflow-artifacts:/{exp['experiment_id']}"


@pytest.mark.parametrize("option", ["--workers", "--port"])
def test_bad_option_values_are_usage_errors(option: str, tmp_path: Path) -> None:
    done = _cli("server", option, "-3", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


class TestStartUp:
    def test_port_taken_stops_before_the_demo_writes(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = _cli("server", "--demo", "--port", str(port), cwd=tmp_path)
        assert done.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
        assert "Traceback" not in done.stderr
        client = TrackingClient(f"sqlite:///{tmp_path}/trackflow.db")
        assert client.get_experiment_by_name("demo-sweep") is None

    def test_exposed_without_token_warns(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("0.0.0.0", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = _cli("server", "--host", "0.0.0.0", "--port", str(port), cwd=tmp_path)
        assert "WARNING: listening on 0.0.0.0 without --auth-token" in done.stderr
        assert done.returncode == 1  # and the port was taken: it never served

    def test_bad_security_option_is_a_usage_error(self, tmp_path: Path) -> None:
        missing = tmp_path / "no-such-token"
        done = _cli("server", "--auth-token-file", str(missing), cwd=tmp_path)
        assert done.returncode == 2
        assert "auth_token_file" in done.stderr
        assert "Traceback" not in done.stderr

    @pytest.mark.slow
    def test_demo_twice_keeps_one_sweep_and_prints_the_served_address(self, tmp_path: Path) -> None:
        for _ in range(2):
            with start_server(tmp_path, extra=("--demo",)) as server:
                pass
        log = server.log.read_text()
        assert f"tracking URI: {server.url}" in log
        assert "already in 'demo-sweep'" in log
        client = TrackingClient(server.db_uri)
        exp = client.get_experiment_by_name("demo-sweep")
        assert exp is not None
        assert len(client.search_runs([exp.experiment_id])) == 7
