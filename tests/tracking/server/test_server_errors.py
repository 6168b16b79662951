"""Every kind of bad input gets MLflow's error JSON with the right status, never a 500,
and a refused request writes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from _server_support import MLFLOW, PROXY, TRACKFLOW

from tracking.server.errors import validation_message

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

ERROR_KEYS = {"error_code", "message", "error_class"}


def new_run(client: TestClient) -> str:
    response = client.post(f"{MLFLOW}/runs/create", json={"experiment_id": "0"})
    run_id: str = response.json()["run"]["info"]["run_id"]
    return run_id


def assert_error(response: Any, status: int, code: str, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == code
    for word in words:
        assert word in body["message"], body["message"]
    return body


# (description, body) -> the words the error message must contain
BAD_LOG_METRIC = [
    pytest.param(b"{not json", ("Malformed JSON",), id="malformed-json"),
    pytest.param(b"[1, 2]", ("request body",), id="array-not-object"),
    pytest.param(b'"text"', ("request body",), id="string-not-object"),
    pytest.param(
        b'{"run_id": "R", "value": 1, "timestamp": 1}', ("'key'", "Missing"), id="missing-key"
    ),
    pytest.param(
        b'{"run_id": "R", "key": "m", "timestamp": 1}', ("'value'", "Missing"), id="missing-value"
    ),
    pytest.param(
        b'{"run_id": "R", "key": "m", "value": "high", "timestamp": 1}',
        ("'value'",),
        id="value-not-a-number",
    ),
    pytest.param(
        b'{"run_id": "R", "key": "m", "value": true, "timestamp": 1}',
        ("'value'", "boolean"),
        id="value-boolean",
    ),
    pytest.param(
        b'{"run_id": "R", "key": 5, "value": 1, "timestamp": 1}', ("'key'",), id="key-not-a-string"
    ),
    pytest.param(
        b'{"run_id": "R", "key": "m", "value": 1, "timestamp": 1.5}',
        ("'timestamp'",),
        id="timestamp-fraction",
    ),
    pytest.param(
        b'{"run_id": "R", "key": "m", "value": 1, "timestamp": 1, "step": 1e30}',
        ("'step'",),
        id="step-past-int64",
    ),
    pytest.param(
        b'{"run_id": "R", "key": "m", "value": 1, "step": 99999999999999999999}',
        ("'step'",),
        id="step-int-past-int64",
    ),
    pytest.param(
        b'{"run_id": "R", "key": "m", "value": 1e999, "timestamp": "x"}',
        ("'timestamp'",),
        id="timestamp-not-a-number",
    ),
    pytest.param(b'{"key": "m", "value": 1, "timestamp": 1}', ("run_id",), id="no-run-id"),
    pytest.param(
        b'{"run_id": "R", "key": "../m", "value": 1, "timestamp": 1}', ("key",), id="bad-metric-key"
    ),
]


class TestBadBodies:
    @pytest.mark.parametrize(("raw", "words"), BAD_LOG_METRIC)
    def test_log_metric(self, client: TestClient, raw: bytes, words: tuple[str, ...]) -> None:
        run_id = new_run(client)
        response = client.post(
            f"{MLFLOW}/runs/log-metric",
            content=raw.replace(b'"R"', f'"{run_id}"'.encode()),
            headers={"content-type": "application/json"},
        )
        body = assert_error(response, 400, "INVALID_PARAMETER_VALUE", *words)
        assert body["error_class"] == "InvalidParameterError"
        history = client.get(
            f"{MLFLOW}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}
        ).json()
        assert history == {"metrics": []}

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            pytest.param("experiments/create", {}, "'name'", id="create-experiment-no-name"),
            pytest.param(
                "experiments/create", {"name": ["x"]}, "'name'", id="create-experiment-name-list"
            ),
            pytest.param(
                "experiments/create",
                {"name": "x", "tags": [{"value": "v"}]},
                "'tags[0].key'",
                id="tag-without-key",
            ),
            pytest.param(
                "runs/create",
                {"experiment_id": "0", "start_time": "soon"},
                "'start_time'",
                id="create-run-start-time",
            ),
            pytest.param(
                "runs/log-batch",
                {"run_id": "R", "metrics": [{"key": "m"}]},
                "'metrics[0].value'",
                id="batch-metric-without-value",
            ),
            pytest.param(
                "runs/log-batch",
                {"run_id": "R", "params": "p=1"},
                "'params'",
                id="batch-params-not-a-list",
            ),
            pytest.param(
                "runs/search",
                {"experiment_ids": "0"},
                "'experiment_ids'",
                id="search-ids-not-a-list",
            ),
            pytest.param(
                "runs/search",
                {"experiment_ids": ["0"], "max_results": 0},
                "max_results",
                id="search-max-results-zero",
            ),
            pytest.param(
                "runs/search",
                {"experiment_ids": ["x1"]},
                "'experiment_ids[0]'",
                id="search-bad-experiment-id",
            ),
        ],
    )
    def test_fields_are_named(
        self, client: TestClient, path: str, body: dict[str, Any], field: str
    ) -> None:
        run_id = new_run(client)
        body = {k: (run_id if v == "R" else v) for k, v in body.items()}
        response = client.post(f"{MLFLOW}/{path}", json=body)
        assert_error(response, 400, "INVALID_PARAMETER_VALUE", field)

    def test_form_encoded_body_is_refused(self, client: TestClient) -> None:
        response = client.post(f"{MLFLOW}/experiments/create", data={"name": "x"})
        assert_error(response, 400, "INVALID_PARAMETER_VALUE")
        listed = client.get(f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "x"})
        assert listed.status_code == 404


class TestRouting:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("GET", "/api/2.0/mlflow/nothing/here", id="unknown-mlflow-path"),
            pytest.param("POST", "/api/2.0/trackflow/runs/teleport", id="unknown-trackflow"),
            pytest.param("GET", "/nothing/here", id="unknown-page"),
        ],
    )
    def test_unknown_endpoint(self, client: TestClient, method: str, path: str) -> None:
        body = assert_error(client.request(method, path), 404, "ENDPOINT_NOT_FOUND", path)
        assert body["error_class"] == "NotFoundError"

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("GET", f"{MLFLOW}/runs/log-metric", id="get-on-post"),
            pytest.param("DELETE", f"{MLFLOW}/experiments/get", id="delete-on-get"),
            pytest.param("PUT", f"{TRACKFLOW}/runs/heartbeat", id="put-on-post"),
        ],
    )
    def test_wrong_method(self, client: TestClient, method: str, path: str) -> None:
        response = client.request(method, path)
        assert_error(response, 405, "BAD_REQUEST", method)
        assert "allow" in response.headers


class TestLimits:
    def test_oversized_json_body_is_413(self, client: TestClient) -> None:
        run_id = new_run(client)
        padding = "x" * (17 * 1024 * 1024)
        response = client.post(
            f"{MLFLOW}/runs/set-tag",
            content=f'{{"run_id": "{run_id}", "key": "t", "value": "{padding}"}}',
            headers={"content-type": "application/json"},
        )
        assert_error(response, 413, "INVALID_PARAMETER_VALUE", "16777216")
        tags = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).json()
        assert all(t["key"] != "t" for t in tags["run"]["data"]["tags"])

    def test_oversized_chunked_body_is_413(self, client: TestClient) -> None:
        def chunks() -> Any:
            for _ in range(20):
                yield b" " * (1024 * 1024)

        response = client.post(
            f"{MLFLOW}/experiments/create",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        assert_error(response, 413, "INVALID_PARAMETER_VALUE")

    def test_artifact_uploads_are_not_held_to_the_json_limit(self, client: TestClient) -> None:
        response = client.put(f"{PROXY}/big/blob.bin", content=b"\0" * (17 * 1024 * 1024))
        assert response.status_code == 200, response.text


class TestValidationMessage:
    @pytest.mark.parametrize(
        ("errors", "expected"),
        [
            pytest.param(
                [{"type": "missing", "loc": ("body", "metrics", 2, "key")}],
                "Missing value for required parameter 'metrics[2].key'.",
                id="nested",
            ),
            pytest.param(
                [{"type": "missing", "loc": ("body",)}],
                "Missing request body: expected a JSON object.",
                id="no-body",
            ),
            pytest.param(
                [
                    {
                        "type": "int_parsing",
                        "loc": ("query", "max_points"),
                        "input": "a",
                        "msg": "Input should be a valid integer",
                    }
                ],
                "Invalid value \"a\" for parameter 'max_points' supplied: "
                "Input should be a valid integer.",
                id="query",
            ),
        ],
    )
    def test_sentences(self, errors: list[dict[str, Any]], expected: str) -> None:
        assert validation_message(errors) == expected


class TestBodyThatIsNotJson:
    @pytest.mark.parametrize(
        ("path", "content_type"),
        [
            pytest.param(
                f"{MLFLOW}/experiments/create", "application/x-www-form-urlencoded", id="curl-d"
            ),
            pytest.param(f"{MLFLOW}/experiments/create", None, id="no-content-type"),
            pytest.param(f"{MLFLOW}/runs/log-batch", "text/plain", id="log-batch-text"),
            pytest.param(
                "/api/2.0/trackflow/runs/log-batch",
                "application/x-www-form-urlencoded",
                id="lean-log-batch",
            ),
        ],
    )
    def test_form_body_is_told_to_send_json(
        self, client: Any, path: str, content_type: str | None
    ) -> None:
        headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
        response = client.post(path, content=b"name=x", headers=headers)
        body = assert_error(
            response,
            400,
            "INVALID_PARAMETER_VALUE",
            "must be a JSON object",
            "Content-Type: application/json",
        )
        assert "valid dictionary" not in body["message"]
        lookup = client.get(f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "x"})
        assert lookup.status_code == 404

    def test_json_without_content_type_is_told_so(self, client: Any) -> None:
        response = client.post(
            f"{MLFLOW}/experiments/create", content=b'{"name": "x"}', headers={"Content-Type": ""}
        )
        assert_error(response, 400, "INVALID_PARAMETER_VALUE", "no Content-Type")

    def test_json_array_is_named(self, client: Any) -> None:
        response = client.post(f"{MLFLOW}/experiments/create", json=[1])
        assert_error(response, 400, "INVALID_PARAMETER_VALUE", "not a JSON array")


class TestLoggedModels:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("GET", f"{MLFLOW}/logged-models/m-123", id="get"),
            pytest.param("PATCH", f"{MLFLOW}/logged-models/m-123", id="finalize"),
            pytest.param("DELETE", f"{MLFLOW}/logged-models/m-123/tags/k", id="delete-tag"),
        ],
    )
    def test_malformed_model_id_is_named(self, client: Any, method: str, path: str) -> None:
        response = client.request(method, path, json={"status": "LOGGED_MODEL_READY"})
        assert_error(response, 400, "INVALID_PARAMETER_VALUE", "model_id")

    def test_missing_model_is_not_found(self, client: Any) -> None:
        response = client.get(f"{MLFLOW}/logged-models/m-{'0' * 32}")
        assert_error(response, 404, "RESOURCE_DOES_NOT_EXIST", "not found")

    def test_search_still_answers_none(self, client: Any) -> None:
        response = client.post(f"{MLFLOW}/logged-models/search", json={"experiment_ids": ["0"]})
        assert response.status_code == 200
        assert response.json() == {"models": []}

    def test_model_inputs_are_refused_and_nothing_written(self, client: Any) -> None:
        run_id = new_run(client)
        dataset = {"name": "d", "digest": "1", "source_type": "local", "source": "/d"}
        response = client.post(
            f"{MLFLOW}/runs/log-inputs",
            json={
                "run_id": run_id,
                "datasets": [{"dataset": dataset}],
                "models": [{"model_id": "m-1"}],
            },
        )
        assert_error(response, 400, "INVALID_PARAMETER_VALUE", "model_id")
        run = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).json()["run"]
        assert run["inputs"] == {}
        ok = client.post(
            f"{MLFLOW}/runs/log-inputs", json={"run_id": run_id, "datasets": [{"dataset": dataset}]}
        )
        assert ok.status_code == 200
        run = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).json()["run"]
        assert run["inputs"]["dataset_inputs"][0]["dataset"]["name"] == "d"
