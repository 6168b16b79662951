"""MLflow's run endpoints: create/get/update/delete/search, the log calls, metric history."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from _server_support import MLFLOW

from tracking.entities import Metric
from tracking.server.schemas.mlflow import plain_log_batch

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

RUN_INFO_KEYS = {
    "run_id",
    "run_uuid",
    "experiment_id",
    "run_name",
    "user_id",
    "status",
    "start_time",
    "artifact_uri",
    "lifecycle_stage",
}


def post(client: TestClient, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    response = client.post(f"{MLFLOW}/{path}", json=body)
    assert response.status_code == status, response.text
    result: dict[str, Any] = response.json()
    return result


def new_run(client: TestClient, experiment_id: str = "0", **extra: Any) -> dict[str, Any]:
    run: dict[str, Any] = post(client, "runs/create", {"experiment_id": experiment_id, **extra})[
        "run"
    ]
    return run


def get_run(client: TestClient, run_id: str) -> dict[str, Any]:
    response = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id})
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()["run"]
    return run


class TestCreateAndGet:
    def test_create_renders_mlflow_run(self, client: TestClient) -> None:
        run = new_run(
            client,
            run_name="baseline",
            start_time=1_700_000_000_000,
            user_id="alice",
            tags=[{"key": "team", "value": "ml"}],
        )
        assert set(run) == {"info", "data", "inputs"}
        info = run["info"]
        assert set(info) == RUN_INFO_KEYS  # no end_time while the run has none
        assert info["run_id"] == info["run_uuid"]
        assert len(info["run_id"]) == 32
        assert info["experiment_id"] == "0"
        assert info["run_name"] == "baseline"
        assert info["user_id"] == "alice"
        assert info["status"] == "RUNNING"
        assert info["start_time"] == 1_700_000_000_000
        assert info["artifact_uri"] == f"mlflow-artifacts:/0/{info['run_id']}/artifacts"
        assert info["lifecycle_stage"] == "active"
        assert run["data"]["metrics"] == []
        assert run["data"]["params"] == []
        assert {"key": "team", "value": "ml"} in run["data"]["tags"]
        assert {"key": "mlflow.runName", "value": "baseline"} in run["data"]["tags"]
        assert run["inputs"] == {}

    def test_get_and_search_name_the_logged_models_a_run_used_and_produced(
        self, client: TestClient
    ) -> None:
        producer = new_run(client)["info"]["run_id"]
        consumer = new_run(client)["info"]["run_id"]
        assert get_run(client, producer)["outputs"] == {}  # MLflow 3's RunOutputs, empty
        created = client.post(
            f"{MLFLOW}/logged-models",
            json={"experiment_id": "0", "name": "m", "source_run_id": producer},
        )
        assert created.status_code == 200, created.text
        model_id = created.json()["model"]["info"]["model_id"]
        post(
            client,
            "runs/outputs",
            {"run_id": producer, "models": [{"model_id": model_id, "step": 3}]},
        )
        post(client, "runs/log-inputs", {"run_id": consumer, "models": [{"model_id": model_id}]})
        made, used = get_run(client, producer), get_run(client, consumer)
        assert (made["inputs"], made["outputs"]) == (
            {},
            {"model_outputs": [{"model_id": model_id, "step": 3}]},
        )
        assert (used["inputs"], used["outputs"]) == ({"model_inputs": [{"model_id": model_id}]}, {})
        found = post(
            client,
            "runs/search",
            {
                "experiment_ids": ["0"],
                "filter": f"attributes.run_id IN ('{producer}', '{consumer}')",
            },
        )["runs"]
        by_id = {r["info"]["run_id"]: r for r in found}
        # As MLflow's runs/search: the outputs, not the model inputs.
        assert by_id[producer]["outputs"] == made["outputs"]
        assert (by_id[consumer]["inputs"], by_id[consumer]["outputs"]) == ({}, {})

    def test_get_accepts_run_uuid(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        response = client.get(f"{MLFLOW}/runs/get", params={"run_uuid": run_id})
        assert response.json()["run"]["info"]["run_id"] == run_id

    def test_parent_run_tag_makes_a_child(self, client: TestClient) -> None:
        parent = new_run(client)["info"]["run_id"]
        child = new_run(client, tags=[{"key": "mlflow.parentRunId", "value": parent}])
        children = client.get("/api/2.0/trackflow/runs/children", params={"run_id": parent}).json()[
            "runs"
        ]
        assert [c["info"]["run_id"] for c in children] == [child["info"]["run_id"]]

    def test_unknown_run_is_404(self, client: TestClient) -> None:
        response = client.get(f"{MLFLOW}/runs/get", params={"run_id": "f" * 32})
        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert response.json()["error_class"] == "RunNotFoundError"

    def test_missing_run_id_names_it(self, client: TestClient) -> None:
        response = client.get(f"{MLFLOW}/runs/get")
        assert response.status_code == 400
        assert "run_id" in response.json()["message"]

    def test_run_in_unknown_experiment_is_404(self, client: TestClient) -> None:
        body = post(client, "runs/create", {"experiment_id": "777"}, status=404)
        assert body["error_class"] == "ExperimentNotFoundError"


class TestUpdate:
    def test_finish_sets_end_time_and_returns_run_info(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        info = post(
            client,
            "runs/update",
            {"run_id": run_id, "status": "FINISHED", "end_time": 1_800_000_000_000},
        )["run_info"]
        assert set(info) == RUN_INFO_KEYS | {"end_time"}
        assert info["status"] == "FINISHED"
        assert info["end_time"] == 1_800_000_000_000

    def test_rename_with_run_uuid(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        info = post(client, "runs/update", {"run_uuid": run_id, "run_name": "renamed"})
        assert info["run_info"]["run_name"] == "renamed"

    def test_unknown_status_names_the_field(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        body = post(client, "runs/update", {"run_id": run_id, "status": "DONE"}, status=400)
        assert "'status'" in body["message"]

    def test_delete_restore_and_writes_to_deleted_runs(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        assert post(client, "runs/delete", {"run_id": run_id}) == {}
        assert get_run(client, run_id)["info"]["lifecycle_stage"] == "deleted"
        body = post(
            client,
            "runs/log-metric",
            {"run_id": run_id, "key": "m", "value": 1, "timestamp": 1},
            status=400,
        )
        assert body["error_code"] == "INVALID_STATE"
        assert post(client, "runs/restore", {"run_id": run_id}) == {}
        assert get_run(client, run_id)["info"]["lifecycle_stage"] == "active"


class TestLogging:
    def test_log_metric_param_tag(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        assert (
            post(
                client,
                "runs/log-metric",
                {"run_id": run_id, "key": "loss", "value": 0.5, "timestamp": 10, "step": 3},
            )
            == {}
        )
        assert (
            post(client, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
            == {}
        )
        assert post(client, "runs/set-tag", {"run_id": run_id, "key": "t", "value": "v"}) == {}
        data = get_run(client, run_id)["data"]
        assert data["metrics"] == [{"key": "loss", "value": 0.5, "timestamp": 10, "step": 3}]
        assert data["params"] == [{"key": "lr", "value": "0.1"}]
        assert {"key": "t", "value": "v"} in data["tags"]

    def test_int64_fields_accept_decimal_strings(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        post(
            client,
            "runs/log-metric",
            {"run_uuid": run_id, "key": "m", "value": "2.5", "timestamp": "12", "step": "4"},
        )
        assert get_run(client, run_id)["data"]["metrics"] == [
            {"key": "m", "value": 2.5, "timestamp": 12, "step": 4}
        ]

    def test_changing_a_param_is_refused(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        post(client, "runs/log-parameter", {"run_id": run_id, "key": "lr", "value": "0.1"})
        body = post(
            client,
            "runs/log-parameter",
            {"run_id": run_id, "key": "lr", "value": "0.2"},
            status=400,
        )
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"

    def test_delete_tag(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        post(client, "runs/set-tag", {"run_id": run_id, "key": "t", "value": "v"})
        assert post(client, "runs/delete-tag", {"run_id": run_id, "key": "t"}) == {}
        assert all(t["key"] != "t" for t in get_run(client, run_id)["data"]["tags"])
        body = post(client, "runs/delete-tag", {"run_id": run_id, "key": "t"}, status=404)
        assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_log_batch(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        assert (
            post(
                client,
                "runs/log-batch",
                {
                    "run_id": run_id,
                    "metrics": [
                        {"key": "m", "value": float(i), "timestamp": i, "step": i} for i in range(5)
                    ],
                    "params": [{"key": "p", "value": "1"}],
                    "tags": [{"key": "t", "value": "x"}],
                },
            )
            == {}
        )
        data = get_run(client, run_id)["data"]
        assert data["metrics"] == [{"key": "m", "value": 4.0, "timestamp": 4, "step": 4}]
        assert data["params"] == [{"key": "p", "value": "1"}]

    def test_invalid_batch_writes_nothing(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        body = post(
            client,
            "runs/log-batch",
            {
                "run_id": run_id,
                "metrics": [{"key": "good", "value": 1, "timestamp": 1}],
                "params": [{"key": "bad key!", "value": "1"}],
            },
            status=400,
        )
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        data = get_run(client, run_id)["data"]
        assert data["metrics"] == []
        assert data["params"] == []

    def test_batch_over_the_limit_is_refused(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        metrics = [{"key": "m", "value": 1, "timestamp": i} for i in range(1001)]
        body = post(client, "runs/log-batch", {"run_id": run_id, "metrics": metrics}, 400)
        assert "1000" in body["message"]

    def test_log_model_appends_to_history_tag(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        for path in ("model-a", "model-b"):
            model = {
                "artifact_path": path,
                "flavors": {},
                "run_id": run_id,
                "utc_time_created": "2024-01-01",
            }
            assert (
                post(client, "runs/log-model", {"run_id": run_id, "model_json": json.dumps(model)})
                == {}
            )
        tags = {t["key"]: t["value"] for t in get_run(client, run_id)["data"]["tags"]}
        history = json.loads(tags["mlflow.log-model.history"])
        assert [m["artifact_path"] for m in history] == ["model-a", "model-b"]


class TestLogBatchLanes:
    """Plain metric points take the fast lane (:func:`plain_log_batch`); anything else
    takes full model validation. Both must store the same points and refuse the same
    bad input with a 400 that names the problem."""

    @staticmethod
    def history(client: TestClient, run_id: str, key: str = "m") -> list[dict[str, Any]]:
        params = {"run_id": run_id, "metric_key": key}
        metrics: list[dict[str, Any]] = client.get(
            f"{MLFLOW}/metrics/get-history", params=params
        ).json()["metrics"]
        return metrics

    def test_plain_points_are_taken_by_the_fast_lane(self) -> None:
        body = {
            "run_uuid": "r" * 32,
            "metrics": [{"key": "m", "value": 0.5, "timestamp": 7, "step": 3, "extra": 1}],
        }
        assert plain_log_batch(json.dumps(body).encode()) == ("r" * 32, [Metric("m", 0.5, 7, 3)])

    @pytest.mark.parametrize(
        "metric",
        [
            {"key": "m", "value": 1, "timestamp": 7, "step": 3},  # an int value
            {"key": "m", "value": "NaN", "timestamp": 7, "step": 3},  # protobuf's NaN
            {"key": "m", "value": 0.5, "timestamp": "7", "step": "3"},  # int64 as strings
            {"key": "m", "value": 0.5, "timestamp": 7},  # step left out
            {"key": "m", "value": True, "timestamp": 7, "step": 3},  # a boolean
            {"key": "m", "value": 0.5, "timestamp": 2**63, "step": 3},  # out of int64
        ],
    )
    def test_unusual_points_take_the_full_lane(self, metric: dict[str, Any]) -> None:
        body = json.dumps({"run_id": "r" * 32, "metrics": [metric]}).encode()
        assert plain_log_batch(body) is None

    def test_both_lanes_store_the_same_points(self, client: TestClient) -> None:
        fast, full = (new_run(client)["info"]["run_id"] for _ in range(2))
        points = [{"key": "m", "value": i / 4, "timestamp": 100 + i, "step": i} for i in range(50)]
        post(client, "runs/log-batch", {"run_id": fast, "metrics": points})
        # The same points as protobuf's JSON printer may write them: int64 as strings.
        as_strings = [
            {**p, "timestamp": str(p["timestamp"]), "step": str(p["step"])} for p in points
        ]
        post(client, "runs/log-batch", {"run_id": full, "metrics": as_strings})
        assert self.history(client, fast) == self.history(client, full) == points

    def test_special_values_through_the_full_lane(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        values = ["NaN", "Infinity", "-Infinity", 1]
        metrics = [
            {"key": "m", "value": v, "timestamp": 1, "step": i} for i, v in enumerate(values)
        ]
        post(client, "runs/log-batch", {"run_id": run_id, "metrics": metrics})
        assert [p["value"] for p in self.history(client, run_id)] == [
            "NaN",
            "Infinity",
            "-Infinity",
            1.0,
        ]

    @pytest.mark.parametrize(
        ("metric", "words"),
        [
            ({"key": "bad key!", "value": 0.5, "timestamp": 1, "step": 0}, "bad key!"),
            ({"key": "m", "value": True, "timestamp": 1, "step": 0}, "boolean"),
            ({"key": "m", "value": 0.5, "timestamp": 2**63, "step": 0}, "timestamp"),
            ({"key": "", "value": 0.5, "timestamp": 1, "step": 0}, "empty"),
        ],
    )
    def test_bad_points_are_refused_and_nothing_is_written(
        self, client: TestClient, metric: dict[str, Any], words: str
    ) -> None:
        run_id = new_run(client)["info"]["run_id"]
        good = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1, 4)]
        body = post(client, "runs/log-batch", {"run_id": run_id, "metrics": [*good, metric]}, 400)
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert words in body["message"]
        assert self.history(client, run_id) == []

    def test_plain_points_for_an_unknown_run(self, client: TestClient) -> None:
        metrics = [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}]
        body = post(client, "runs/log-batch", {"run_id": "f" * 32, "metrics": metrics}, 404)
        assert body["error_code"] == "RESOURCE_DOES_NOT_EXIST"


class TestSearch:
    def test_filter_order_and_pages(self, client: TestClient) -> None:
        exp = post(client, "experiments/create", {"name": "runs-search"})["experiment_id"]
        for i in range(5):
            run_id = new_run(client, exp, run_name=f"r{i}")["info"]["run_id"]
            post(
                client,
                "runs/log-metric",
                {"run_id": run_id, "key": "acc", "value": i / 10, "timestamp": 1},
            )
        seen: list[str] = []
        body: dict[str, Any] = {
            "experiment_ids": [exp],
            "filter": "metrics.acc >= 0.1",
            "order_by": ["metrics.acc DESC"],
            "max_results": 2,
        }
        while True:
            page = post(client, "runs/search", body)
            seen += [r["info"]["run_name"] for r in page["runs"]]
            if "next_page_token" not in page:
                break
            body["page_token"] = page["next_page_token"]
        assert seen == ["r4", "r3", "r2", "r1"]

    def test_deleted_runs_by_view_type(self, client: TestClient) -> None:
        exp = post(client, "experiments/create", {"name": "views"})["experiment_id"]
        kept = new_run(client, exp)["info"]["run_id"]
        binned = new_run(client, exp)["info"]["run_id"]
        post(client, "runs/delete", {"run_id": binned})
        active = post(client, "runs/search", {"experiment_ids": [exp]})["runs"]
        deleted = post(
            client, "runs/search", {"experiment_ids": [exp], "run_view_type": "DELETED_ONLY"}
        )["runs"]
        assert [r["info"]["run_id"] for r in active] == [kept]
        assert [r["info"]["run_id"] for r in deleted] == [binned]

    def test_empty_result_has_empty_list(self, client: TestClient) -> None:
        assert post(client, "runs/search", {"experiment_ids": ["0"]}) == {"runs": []}


class TestMetricHistory:
    def test_history_in_step_order_with_pages(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        post(
            client,
            "runs/log-batch",
            {
                "run_id": run_id,
                "metrics": [
                    {"key": "loss", "value": 1 / (i + 1), "timestamp": 100 + i, "step": i}
                    for i in reversed(range(7))
                ],
            },
        )
        points: list[dict[str, Any]] = []
        params: dict[str, Any] = {"run_id": run_id, "metric_key": "loss", "max_results": 3}
        while True:
            body = client.get(f"{MLFLOW}/metrics/get-history", params=params).json()
            points += body["metrics"]
            if "next_page_token" not in body:
                break
            params["page_token"] = body["next_page_token"]
        assert [p["step"] for p in points] == list(range(7))
        assert points[0] == {"key": "loss", "value": 1.0, "timestamp": 100, "step": 0}

    def test_history_without_max_results_is_whole(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        for step in range(3):
            post(
                client,
                "runs/log-metric",
                {"run_id": run_id, "key": "m", "value": step, "timestamp": 1, "step": step},
            )
        body = client.get(
            f"{MLFLOW}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}
        ).json()
        assert len(body["metrics"]) == 3
        assert "next_page_token" not in body

    @pytest.mark.parametrize(
        ("params", "status"),
        [
            pytest.param({"run_id": "f" * 32, "metric_key": "m"}, 404, id="unknown-run"),
            pytest.param({"metric_key": "m"}, 400, id="no-run-id"),
            pytest.param({"run_id": "abc"}, 400, id="no-metric-key"),
            pytest.param(
                {"run_id": "abc", "metric_key": "m", "max_results": 0}, 400, id="zero-max-results"
            ),
            pytest.param(
                {"run_id": "abc", "metric_key": "m", "page_token": "junk"},
                400,
                id="junk-page-token",
            ),
        ],
    )
    def test_bad_requests(self, client: TestClient, params: dict[str, Any], status: int) -> None:
        new_run(client)
        response = client.get(f"{MLFLOW}/metrics/get-history", params=params)
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error_code", "message", "error_class"}


class TestLoggedModels:
    def test_search_finds_none(self, client: TestClient) -> None:
        body = post(
            client, "logged-models/search", {"experiment_ids": ["0"], "filter": "name = 'x'"}
        )
        assert body == {"models": []}

    def test_search_checks_experiment_ids(self, client: TestClient) -> None:
        body = post(client, "logged-models/search", {"experiment_ids": ["zero"]}, status=400)
        assert "experiment_ids[0]" in body["message"]
