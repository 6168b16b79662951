"""The app on every backend (SQLite, PostgreSQL, MySQL): the SQL behind the endpoints."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _server_support import MLFLOW, TRACKFLOW

from tracking.server import ServerSettings, create_app
from tracking.store.sql.store import SqlTrackingStore

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def backend_client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """A client of the app on ``db_url`` (migrated first, as `trackflow db upgrade` would)."""
    SqlTrackingStore(db_url, auto_upgrade=True).close()
    settings = ServerSettings(
        backend_store_uri=db_url, artifacts_destination=str(tmp_path / "artifacts")
    )
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        yield client


def _post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_flow_search_and_sampling(backend_client: TestClient) -> None:
    exp = _post(backend_client, f"{MLFLOW}/experiments/create", {"name": "backend"})
    run = _post(
        backend_client,
        f"{TRACKFLOW}/runs/create",
        {"experiment_id": exp["experiment_id"], "run_id": "backend-run"},
    )["run"]
    run_id = run["info"]["run_id"]
    for start in range(0, 3000, 1000):
        _post(
            backend_client,
            f"{MLFLOW}/runs/log-batch",
            {
                "run_id": run_id,
                "metrics": [
                    {
                        "key": "loss",
                        "value": 500.0 if i == 1234 else math.cos(i / 100),
                        "timestamp": i,
                        "step": i,
                    }
                    for i in range(start, start + 1000)
                ],
            },
        )
    backend_client.post(
        f"{MLFLOW}/runs/log-metric",
        content=(f'{{"run_id": "{run_id}", "key": "odd", "value": NaN, "timestamp": 1}}'),
        headers={"content-type": "application/json"},
    )
    found = _post(
        backend_client,
        f"{MLFLOW}/runs/search",
        {
            "experiment_ids": [exp["experiment_id"]],
            "filter": "metrics.loss < 1",
        },
    )["runs"]
    assert [r["info"]["run_id"] for r in found] == [run_id]
    sampled = backend_client.get(
        f"{TRACKFLOW}/metrics/get-history-sampled",
        params={
            "run_id": run_id,
            "metric_key": "loss",
            "max_points": 100,
        },
    ).json()["metrics"]
    assert len(sampled) <= 100
    assert {"key": "loss", "value": 500.0, "timestamp": 1234, "step": 1234} in sampled
    assert min(p["value"] for p in sampled) == pytest.approx(-1.0, abs=1e-4)
    got = backend_client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).json()["run"]
    metrics = {m["key"]: m for m in got["data"]["metrics"]}
    assert metrics["loss"]["step"] == 2999
    assert metrics["odd"]["value"] == "NaN"  # quoted, as MLflow writes it
