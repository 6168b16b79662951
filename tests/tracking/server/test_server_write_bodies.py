"""Write bodies that would store nothing are refused, naming the field (issue 17, item 8).

The server ignores fields it does not know, so that newer MLflow clients keep
working; but a body whose data sits only under unknown names (a misspelt
``"metrix"``) used to be answered 200 with nothing written. It gets a 400 that
names the field now, as does a known field of the wrong type, and a refused
request writes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from _server_support import MLFLOW, TRACKFLOW
from fastapi.testclient import TestClient

POINT = {"key": "m", "value": 1.5, "timestamp": 1_764_000_000_000, "step": 3}


def _run(client: TestClient) -> str:
    answer = client.post(f"{MLFLOW}/runs/create", json={"experiment_id": "0"})
    assert answer.status_code == 200, answer.text
    run_id: str = answer.json()["run"]["info"]["run_id"]
    return run_id


def _data(client: TestClient, run_id: str) -> dict[str, Any]:
    answer = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id})
    assert answer.status_code == 200, answer.text
    run = answer.json()["run"]
    data: dict[str, Any] = run["data"]
    data["status"] = run["info"]["status"]
    data["run_name"] = run["info"]["run_name"]
    return data


REFUSED = [
    pytest.param("runs/log-batch", {"metrix": [POINT]}, "metrix", id="log-batch-misspelt-metrics"),
    pytest.param(
        "runs/log-batch", {"metrics": {"key": "m"}}, "metrics", id="log-batch-metrics-not-a-list"
    ),
    pytest.param(
        "runs/log-batch",
        {"params": [{"key": "p", "valeu": "1"}]},
        "valeu",
        id="log-batch-misspelt-param-value",
    ),
    pytest.param(
        "runs/log-batch", {"tags": [{"key": "t", "value": 3}]}, "tags[0].value", id="tag-not-text"
    ),
    pytest.param(
        "runs/log-batch",
        {"metrics": [{**POINT, "value": "high"}]},
        "metrics[0].value",
        id="log-batch-value-not-a-number",
    ),
    pytest.param(
        "trackflow:runs/log-batch",
        {"metrix": {"key": ["m"], "value": [1.0], "timestamp": [1], "step": [0]}},
        "metrix",
        id="columns-misspelt-metrics",
    ),
    pytest.param(
        "trackflow:runs/log-batch",
        {"metrics": {"keys": ["m"], "values": [1.0], "timestamps": [1], "steps": [0]}},
        "keys",
        id="columns-misspelt-columns",
    ),
    pytest.param(
        "trackflow:runs/log-batch",
        {"metrics": {"key": "m", "value": [1.0], "timestamp": [1], "step": [0]}},
        "key",
        id="columns-key-not-a-list",
    ),
    pytest.param("runs/log-parameter", {"key": "p", "val": "1"}, "val", id="param-misspelt-value"),
    pytest.param("runs/set-tag", {"key": "t", "valeu": "x"}, "valeu", id="tag-misspelt-value"),
    pytest.param("runs/update", {"stauts": "FINISHED"}, "stauts", id="update-misspelt-status"),
    pytest.param("runs/update", {"status": 3.5}, "status", id="update-status-wrong-type"),
    pytest.param(
        "runs/log-metric", {"key": "m", "value": [1.0], "step": 1}, "value", id="metric-not-number"
    ),
]


class TestRefused:
    @pytest.mark.parametrize(("endpoint", "body", "field"), REFUSED)
    def test_400_naming_the_field_and_nothing_written(
        self, client: TestClient, endpoint: str, body: dict[str, Any], field: str
    ) -> None:
        run_id = _run(client)
        before = _data(client, run_id)
        api, _, path = endpoint.rpartition(":")
        prefix = TRACKFLOW if api == "trackflow" else MLFLOW
        answer = client.post(f"{prefix}/{path}", json={"run_id": run_id, **body})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert f"'{field}'" in answer.json()["message"] or field in answer.json()["message"]
        assert _data(client, run_id) == before


class TestStillAccepted:
    def test_unknown_fields_beside_known_ones(self, client: TestClient) -> None:
        run_id = _run(client)
        body = {
            "run_id": run_id,
            "metrics": [{**POINT, "dataset_name": "d", "dataset_digest": "abc"}],
            "params": [{"key": "p", "value": "1"}],
            "some_future_field": {"x": 1},
        }
        answer = client.post(f"{MLFLOW}/runs/log-batch", json=body)
        assert answer.status_code == 200, answer.text
        data = _data(client, run_id)
        assert [m["key"] for m in data["metrics"]] == ["m"]
        assert data["params"] == [{"key": "p", "value": "1"}]

    def test_empty_batch_is_a_no_op(self, client: TestClient) -> None:
        run_id = _run(client)
        answer = client.post(f"{MLFLOW}/runs/log-batch", json={"run_id": run_id})
        assert answer.status_code == 200, answer.text

    def test_param_without_value_is_the_empty_string(self, client: TestClient) -> None:
        # protobuf's JSON leaves an empty string out: MLflow's clients send no "value".
        run_id = _run(client)
        answer = client.post(f"{MLFLOW}/runs/log-parameter", json={"run_id": run_id, "key": "p"})
        assert answer.status_code == 200, answer.text
        assert _data(client, run_id)["params"] == [{"key": "p", "value": ""}]

    def test_update_with_a_known_field_and_an_unknown_one(self, client: TestClient) -> None:
        run_id = _run(client)
        body = {"run_id": run_id, "status": "FINISHED", "new_in_mlflow_4": True}
        answer = client.post(f"{MLFLOW}/runs/update", json=body)
        assert answer.status_code == 200, answer.text
        assert _data(client, run_id)["status"] == "FINISHED"
