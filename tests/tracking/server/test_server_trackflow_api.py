"""trackflow's own endpoints: idempotent create, run trees, heartbeats, reaping, sampling,
and the JSON details (NaN and infinities, int64 numbers)."""

from __future__ import annotations

import json
import math
import random
from typing import TYPE_CHECKING, Any

import pytest
from _server_support import MLFLOW, TRACKFLOW

from tracking.server.responses import dumps
from tracking.server.schemas.trackflow import plain_column_batch

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def create(client: TestClient, expect: int = 200, **body: Any) -> dict[str, Any]:
    response = client.post(f"{TRACKFLOW}/runs/create", json={"experiment_id": "0", **body})
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result


def log_points(
    client: TestClient, run_id: str, key: str, points: list[tuple[float, int, int]]
) -> None:
    """Log (value, timestamp, step) points through log-batch, 1000 at a time."""
    for i in range(0, len(points), 1000):
        metrics = [
            {"key": key, "value": v, "timestamp": t, "step": s} for v, t, s in points[i : i + 1000]
        ]
        body = dumps({"run_id": run_id, "metrics": metrics})  # NaN as a bare token
        response = client.post(
            f"{MLFLOW}/runs/log-batch", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text


def sampled(
    client: TestClient, run_id: str, key: str, max_points: int | None = None
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"run_id": run_id, "metric_key": key}
    if max_points is not None:
        params["max_points"] = max_points
    response = client.get(f"{TRACKFLOW}/metrics/get-history-sampled", params=params)
    assert response.status_code == 200, response.text
    metrics: list[dict[str, Any]] = json.loads(response.content)["metrics"]
    return metrics


class TestCreate:
    def test_caller_chosen_id_is_idempotent(self, client: TestClient) -> None:
        first = create(
            client,
            run_id="task-1-try",
            run_name="task",
            start_time=5,
            tags=[{"key": "k", "value": "v"}],
            user_id="airflow",
        )["run"]
        again = create(client, run_id="task-1-try", run_name="task")["run"]
        assert first["info"]["run_id"] == "task-1-try"
        assert again["info"] == first["info"]
        assert first["info"]["user_id"] == "airflow"
        assert first["info"]["start_time"] == 5
        listed = client.post(f"{MLFLOW}/runs/search", json={"experiment_ids": ["0"]}).json()
        assert len(listed["runs"]) == 1

    def test_same_id_in_another_experiment_is_refused(self, client: TestClient) -> None:
        other = client.post(f"{MLFLOW}/experiments/create", json={"name": "other"}).json()
        create(client, run_id="shared")
        body = create(client, expect=400, run_id="shared", experiment_id=other["experiment_id"])
        assert body["error_code"] == "RESOURCE_ALREADY_EXISTS"

    def test_scheduled_status_and_parent(self, client: TestClient) -> None:
        parent = create(client)["run"]["info"]["run_id"]
        child = create(client, status="SCHEDULED", parent_run_id=parent)["run"]
        assert child["info"]["status"] == "SCHEDULED"
        tags = {t["key"]: t["value"] for t in child["data"]["tags"]}
        assert tags["mlflow.parentRunId"] == parent

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            pytest.param({"status": "FINISHED"}, "status", id="terminal-status"),
            pytest.param({"run_id": "has space"}, "run_id", id="bad-run-id"),
            pytest.param({"run_id": "x" * 33}, "run_id", id="long-run-id"),
            pytest.param({"parent_run_id": "f" * 32}, "parent", id="unknown-parent"),
            pytest.param({"experiment_id": None}, "experiment_id", id="no-experiment"),
        ],
    )
    def test_refusals_name_the_field(
        self, client: TestClient, body: dict[str, Any], field: str
    ) -> None:
        response = client.post(f"{TRACKFLOW}/runs/create", json={"experiment_id": "0", **body})
        assert response.status_code in (400, 404), response.text
        assert field in response.json()["message"]


class TestTree:
    def test_children_and_subtree(self, client: TestClient) -> None:
        root = create(client)["run"]["info"]["run_id"]
        kids = [
            create(client, parent_run_id=root, start_time=i)["run"]["info"]["run_id"]
            for i in (1, 2)
        ]
        grandkid = create(client, parent_run_id=kids[0])["run"]["info"]["run_id"]
        direct = client.get(f"{TRACKFLOW}/runs/children", params={"run_id": root}).json()
        assert [r["info"]["run_id"] for r in direct["runs"]] == kids
        tree = client.get(
            f"{TRACKFLOW}/runs/children", params={"run_id": root, "recursive": "true"}
        ).json()
        assert [r["info"]["run_id"] for r in tree["runs"]] == [*kids, grandkid]

    def test_children_of_unknown_run_is_404(self, client: TestClient) -> None:
        response = client.get(f"{TRACKFLOW}/runs/children", params={"run_id": "f" * 32})
        assert response.status_code == 404


class TestHeartbeatAndReaping:
    def test_stale_runs_are_reaped_fresh_ones_kept(self, client: TestClient) -> None:
        stale = create(client, start_time=1)["run"]["info"]["run_id"]
        fresh = create(client, start_time=1)["run"]["info"]["run_id"]
        assert (
            client.post(
                f"{TRACKFLOW}/runs/heartbeat", json={"run_ids": [stale], "timestamp": 2}
            ).json()
            == {}
        )
        assert client.post(f"{TRACKFLOW}/runs/heartbeat", json={"run_ids": [fresh]}).json() == {}
        reaped = client.post(f"{TRACKFLOW}/runs/reap-stale", json={"older_than_ms": 60_000}).json()
        assert reaped == {"run_ids": [stale]}
        run = client.get(f"{MLFLOW}/runs/get", params={"run_id": stale}).json()["run"]
        assert run["info"]["status"] == "FAILED"
        tags = {t["key"] for t in run["data"]["tags"]}
        assert "trackflow.failureReason" in tags

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            pytest.param("runs/heartbeat", {"run_ids": ["ok", "not ok"]}, id="bad-run-id"),
            pytest.param("runs/heartbeat", {"run_ids": "abc"}, id="ids-not-a-list"),
            pytest.param("runs/reap-stale", {"older_than_ms": 0}, id="zero-age"),
            pytest.param("runs/reap-stale", {}, id="no-age"),
        ],
    )
    def test_bad_bodies(self, client: TestClient, path: str, body: dict[str, Any]) -> None:
        response = client.post(f"{TRACKFLOW}/{path}", json=body)
        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def history(client: TestClient, run_id: str, key: str = "m") -> list[dict[str, Any]]:
    params = {"run_id": run_id, "metric_key": key}
    response = client.get(f"{MLFLOW}/metrics/get-history", params=params)
    assert response.status_code == 200, response.text
    metrics: list[dict[str, Any]] = response.json()["metrics"]
    return metrics


def log_columns(client: TestClient, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
    response = client.post(
        f"{TRACKFLOW}/runs/log-batch",
        content=dumps(body),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer


class TestLogBatchColumns:
    """trackflow's log-batch: points as columns. Metrics alone take the fast lane
    (:func:`plain_column_batch`); with params or tags, or in another shape, the body
    goes through model validation. Both store the same and refuse with a 400."""

    COLUMNS = {"key": ["m", "m"], "value": [0.5, 1.5], "timestamp": [7, 8], "step": [0, 1]}

    def test_metrics_alone_take_the_fast_lane(self) -> None:
        body = dumps({"run_id": "r" * 32, "metrics": self.COLUMNS, "params": [], "extra": 1})
        assert plain_column_batch(body) == ("r" * 32, ["m", "m"], [0.5, 1.5], [7, 8], [0, 1])

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param({"params": [{"key": "p", "value": "1"}]}, id="params"),
            pytest.param({"tags": [{"key": "t", "value": "1"}]}, id="tags"),
            pytest.param({"params": None}, id="params-null"),
            pytest.param({"metrics": {**COLUMNS, "step": 3}}, id="column-not-a-list"),
            pytest.param(
                {"metrics": {"key": ["m"], "value": [1.0], "timestamp": [1]}}, id="no-step"
            ),
            pytest.param({"metrics": [{"key": "m", "value": 1.0}]}, id="mlflow-shape"),
            pytest.param({"run_id": 5}, id="run-id-not-a-string"),
        ],
    )
    def test_other_bodies_take_the_model_lane(self, body: dict[str, Any]) -> None:
        assert (
            plain_column_batch(dumps({"run_id": "r" * 32, "metrics": self.COLUMNS, **body})) is None
        )
        assert plain_column_batch(b"[1, 2]") is None
        assert plain_column_batch(b"{not json") is None

    def test_both_lanes_store_the_same_points(self, client: TestClient) -> None:
        fast, full = (create(client)["run"]["info"]["run_id"] for _ in range(2))
        n = 300
        columns = {
            "key": ["m"] * n,
            "value": [i / 4 for i in range(n - 2)] + [math.nan, 3],
            "timestamp": [100 + i for i in range(n)],
            "step": list(range(n)),
        }
        log_columns(client, {"run_id": fast, "metrics": columns})
        params = [{"key": "p", "value": "1"}]
        log_columns(client, {"run_id": full, "metrics": columns, "params": params})
        points = history(client, fast)
        assert points == history(client, full)
        assert len(points) == n
        assert points[0] == {"key": "m", "value": 0.0, "timestamp": 100, "step": 0}
        assert [p["value"] for p in points[-2:]] == ["NaN", 3.0]
        run = client.get(f"{MLFLOW}/runs/get", params={"run_id": full}).json()["run"]
        assert run["data"]["params"] == params

    @pytest.mark.parametrize(
        ("metrics", "words"),
        [
            pytest.param({"value": [1.0]}, "equally long", id="unequal"),
            pytest.param({"key": ["m", "a,b"]}, "a,b", id="bad-key"),
            pytest.param({"value": [1.0, "NaN"]}, "number", id="string-value"),
            pytest.param({"value": [1.0, True]}, "number", id="bool-value"),
            pytest.param({"timestamp": [1, "2"]}, "timestamp", id="string-timestamp"),
            pytest.param({"step": [0, 2**63]}, "64-bit", id="step-overflow"),
            pytest.param({"step": [0, 1.5]}, "step", id="float-step"),
        ],
    )
    @pytest.mark.parametrize("lane", ["fast", "model"])
    def test_bad_columns_are_refused_and_nothing_is_written(
        self, client: TestClient, metrics: dict[str, Any], words: str, lane: str
    ) -> None:
        run_id = create(client)["run"]["info"]["run_id"]
        body: dict[str, Any] = {"run_id": run_id, "metrics": {**self.COLUMNS, **metrics}}
        if lane == "model":
            body["tags"] = [{"key": "t", "value": "v"}]
            words = {"64-bit": "less than or equal", "number": "number"}.get(words, words)
        answer = log_columns(client, body, 400)
        assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
        assert words in answer["message"]
        assert history(client, run_id) == []
        run = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).json()["run"]
        assert "t" not in {t["key"] for t in run["data"]["tags"]}

    @pytest.mark.parametrize("extra", [{}, {"tags": [{"key": "t", "value": "v"}]}])
    def test_unknown_run_is_404(self, client: TestClient, extra: dict[str, Any]) -> None:
        answer = log_columns(client, {"run_id": "f" * 32, "metrics": self.COLUMNS, **extra}, 404)
        assert answer["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_more_than_1000_points_are_refused(self, client: TestClient) -> None:
        run_id = create(client)["run"]["info"]["run_id"]
        n = 1001
        columns = {
            "key": ["m"] * n,
            "value": [1.0] * n,
            "timestamp": [1] * n,
            "step": list(range(n)),
        }
        answer = log_columns(client, {"run_id": run_id, "metrics": columns}, 400)
        assert "1000" in answer["message"]
        assert history(client, run_id) == []


class TestCompactSearch:
    """trackflow's runs/search: MLflow's body, the same runs, the compact run shape."""

    def test_same_runs_as_mlflow_search_in_the_compact_shape(self, client: TestClient) -> None:
        for i in range(5):
            run_id = create(client, start_time=i, tags=[{"key": "t", "value": str(i)}])["run"][
                "info"
            ]["run_id"]
            body = {
                "run_id": run_id,
                "metrics": {
                    "key": ["acc", "acc", "loss"],
                    "value": [i / 10, i / 5, math.nan if i == 2 else 1.0],
                    "timestamp": [5, 6, 7],
                    "step": [0, 1, 0],
                },
                "params": [{"key": "opt", "value": "adam" if i % 2 else "sgd"}],
            }
            log_columns(client, body)
        query = {
            "experiment_ids": ["0"],
            "filter": "params.opt = 'sgd'",
            "order_by": ["metrics.acc DESC"],
            "max_results": 2,
        }
        compact = client.post(f"{TRACKFLOW}/runs/search", json=query)
        assert compact.status_code == 200, compact.text
        mlflow = client.post(f"{MLFLOW}/runs/search", json=query).json()
        page = json.loads(compact.content)  # NaN arrives as the bare token
        assert page["next_page_token"] == mlflow["next_page_token"]
        assert [r["info"] for r in page["runs"]] == [r["info"] for r in mlflow["runs"]]
        first = page["runs"][0]
        assert first["params"] == {"opt": "sgd"}
        assert first["tags"]["t"] == "4"
        assert first["metrics"] == {"acc": [0.8, 6, 1], "loss": [1.0, 7, 0]}
        assert math.isnan(page["runs"][1]["metrics"]["loss"][0])
        rest = client.post(
            f"{TRACKFLOW}/runs/search", json={**query, "page_token": page["next_page_token"]}
        )
        (last,) = json.loads(rest.content)["runs"]
        assert last["metrics"]["acc"] == [0.0, 6, 1]
        assert "next_page_token" not in json.loads(rest.content)

    @pytest.mark.parametrize(
        ("query", "words"),
        [
            pytest.param({"filter": "metrics.acc >"}, "filter", id="bad-filter"),
            pytest.param({"max_results": 0}, "max_results", id="zero-results"),
            pytest.param({"experiment_ids": "0"}, "experiment_ids", id="ids-not-a-list"),
        ],
    )
    def test_bad_queries(self, client: TestClient, query: dict[str, Any], words: str) -> None:
        response = client.post(f"{TRACKFLOW}/runs/search", json={"experiment_ids": ["0"], **query})
        assert response.status_code == 400, response.text
        assert words in response.json()["message"].lower()


class TestSampledHistory:
    def test_long_series_keeps_extremes_within_max_points(self, client: TestClient) -> None:
        run_id = create(client)["run"]["info"]["run_id"]
        rng = random.Random(3)
        points = [
            (math.sin(i / 300) + rng.uniform(-0.01, 0.01), 1000 + i, i) for i in range(20_000)
        ]
        points[4321] = (25.0, 1000 + 4321, 4321)
        points[15000] = (-30.0, 1000 + 15000, 15000)
        log_points(client, run_id, "loss", points)
        got = sampled(client, run_id, "loss", max_points=200)
        assert 150 <= len(got) <= 200
        steps = [p["step"] for p in got]
        assert steps == sorted(steps)
        assert {"key": "loss", "value": 25.0, "timestamp": 5321, "step": 4321} in got
        assert {"key": "loss", "value": -30.0, "timestamp": 16000, "step": 15000} in got
        # every point is a real one
        real = {(s, t, v) for v, t, s in points}
        assert all((p["step"], p["timestamp"], p["value"]) in real for p in got)

    def test_shape_survives(self, client: TestClient) -> None:
        run_id = create(client)["run"]["info"]["run_id"]
        points = [(float(i % 1000), i, i) for i in range(10_000)]  # a saw tooth
        log_points(client, run_id, "saw", points)
        got = sampled(client, run_id, "saw", max_points=100)
        values = [p["value"] for p in got]
        assert values.count(999.0) == 10  # every tooth's top kept
        assert values.count(0.0) == 10  # and every tooth's bottom

    def test_short_series_comes_back_whole(self, client: TestClient) -> None:
        run_id = create(client)["run"]["info"]["run_id"]
        log_points(client, run_id, "m", [(float(i), i, i) for i in range(50)])
        got = sampled(client, run_id, "m")
        assert [p["step"] for p in got] == list(range(50))

    def test_all_points_on_one_step_are_bucketed_by_time(self, client: TestClient) -> None:
        run_id = create(client)["run"]["info"]["run_id"]
        points = [(float(i % 7), 10_000 + i, 0) for i in range(3000)]
        points[2000] = (99.0, 12_000, 0)
        log_points(client, run_id, "flat", points)
        got = sampled(client, run_id, "flat", max_points=50)
        assert len(got) <= 50
        assert {"key": "flat", "value": 99.0, "timestamp": 12_000, "step": 0} in got
        assert len({p["timestamp"] for p in got}) == len(got)

    def test_nan_and_infinities_come_back_as_mlflow_strings(self, client: TestClient) -> None:
        run_id = create(client)["run"]["info"]["run_id"]
        log_points(
            client,
            run_id,
            "odd",
            [(math.nan, 1, 0), (math.inf, 2, 1), (-math.inf, 3, 2), (1.0, 4, 3)],
        )
        response = client.get(
            f"{TRACKFLOW}/metrics/get-history-sampled",
            params={"run_id": run_id, "metric_key": "odd"},
        )
        values = [p["value"] for p in response.json()["metrics"]]
        assert values == ["NaN", "Infinity", "-Infinity", 1.0]

    def test_unknown_metric_is_empty_unknown_run_404(self, client: TestClient) -> None:
        run_id = create(client)["run"]["info"]["run_id"]
        assert sampled(client, run_id, "never") == []
        response = client.get(
            f"{TRACKFLOW}/metrics/get-history-sampled",
            params={"run_id": "f" * 32, "metric_key": "m"},
        )
        assert response.status_code == 404

    @pytest.mark.parametrize("max_points", [0, 1, 100_001, "many"])
    def test_bad_max_points(self, client: TestClient, max_points: Any) -> None:
        response = client.get(
            f"{TRACKFLOW}/metrics/get-history-sampled",
            params={"run_id": "abc", "metric_key": "m", "max_points": max_points},
        )
        assert response.status_code == 400
        assert "max_points" in response.json()["message"]


class TestSampledBulk:
    """``metrics/get-history-sampled-bulk``: one metric of many runs (the UI's charts)."""

    def _bulk(self, client: TestClient, expect: int = 200, **params: Any) -> Any:
        response = client.get(f"{TRACKFLOW}/metrics/get-history-sampled-bulk", params=params)
        assert response.status_code == expect, response.text
        return response.json()

    def test_the_same_points_as_one_run_at_a_time_in_columns(self, client: TestClient) -> None:
        runs = [create(client)["run"]["info"]["run_id"] for _ in range(3)]
        for n, run_id in enumerate(runs):
            log_points(client, run_id, "loss", [(1.0 / (i + 1 + n), i, i) for i in range(3000)])
        got = self._bulk(client, run_id=runs[::-1], metric_key="loss", max_points=200)
        assert [s["run_id"] for s in got["series"]] == runs[::-1]
        for series in got["series"]:
            one = sampled(client, series["run_id"], "loss", max_points=200)
            assert series["steps"] == [p["step"] for p in one]
            assert series["timestamps"] == [p["timestamp"] for p in one]
            assert series["values"] == [p["value"] for p in one]
            assert 0 < len(series["steps"]) <= 200

    def test_missing_metric_nan_and_unknown_run(self, client: TestClient) -> None:
        a, b = (create(client)["run"]["info"]["run_id"] for _ in range(2))
        log_points(client, a, "odd", [(math.nan, 1, 0), (math.inf, 2, 1), (2.0, 3, 2)])
        got = self._bulk(client, run_id=[a, b], metric_key="odd")
        assert got["series"][0]["values"] == ["NaN", "Infinity", 2.0]
        assert got["series"][1] == {"run_id": b, "steps": [], "timestamps": [], "values": []}
        missing = self._bulk(client, 404, run_id=[a, "f" * 32], metric_key="odd")
        assert "f" * 32 in missing["message"]

    def test_at_most_100_runs(self, client: TestClient) -> None:
        refused = self._bulk(client, 400, run_id=[f"{i:032x}" for i in range(101)], metric_key="m")
        assert "at most 100 runs" in refused["message"]


class TestJson:
    @pytest.mark.parametrize(
        ("sent", "rendered"),
        [
            pytest.param('"NaN"', "NaN", id="nan-string"),
            pytest.param("NaN", "NaN", id="nan-token"),
            pytest.param('"Infinity"', "Infinity", id="inf-string"),
            pytest.param("-Infinity", "-Infinity", id="neg-inf-token"),
            pytest.param("1e999", "Infinity", id="overflowing-literal"),
            pytest.param("-0.0", -0.0, id="negative-zero"),
        ],
    )
    def test_special_values_round_trip(self, client: TestClient, sent: str, rendered: Any) -> None:
        """Bare tokens and strings are read; MLflow's quoted strings are written (its
        protobuf parser refuses a bare NaN)."""
        run_id = create(client)["run"]["info"]["run_id"]
        body = f'{{"run_id": "{run_id}", "key": "m", "value": {sent}, "timestamp": 1}}'
        response = client.post(
            f"{MLFLOW}/runs/log-metric", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 200, response.text
        history = client.get(
            f"{MLFLOW}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}
        ).json()
        run = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).json()["run"]
        assert history["metrics"][0]["value"] == rendered
        assert run["data"]["metrics"][0]["value"] == rendered
        assert str(float(rendered)) == str(float(sent.strip('"')))

    def test_int64_are_json_numbers(self, client: TestClient) -> None:
        big = 2**62
        run_id = create(client, start_time=big)["run"]["info"]["run_id"]
        client.post(
            f"{MLFLOW}/runs/log-metric",
            json={"run_id": run_id, "key": "m", "value": 1, "timestamp": big, "step": -big},
        )
        raw = client.get(f"{MLFLOW}/runs/get", params={"run_id": run_id}).text
        assert f'"start_time":{big}' in raw
        assert f'"timestamp":{big},"step":{-big}' in raw
