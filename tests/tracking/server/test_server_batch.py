"""``POST /api/2.0/trackflow/batch`` and the client that coalesces concurrent writes
into it (tracking.store.rest_batch): each call answered as its own endpoint would,
fewer requests than calls when threads write at once, one caller's error its own."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tracking import RunStatus, TrackingClient
from tracking.errors import InvalidParameterError, RunNotFoundError
from tracking.store.rest import RestTrackingStore

BATCH = "/api/2.0/trackflow/batch"


def _create_body(experiment_id: str, run_id: str, **extra: Any) -> dict[str, Any]:
    return {"experiment_id": experiment_id, "run_id": run_id, "start_time": 1, **extra}


class TestEndpoint:
    def test_each_call_answered_as_alone(self, client: TestClient) -> None:
        calls = [
            {"call": "runs/create", "body": _create_body("0", "batch-a", run_name="a")},
            {"call": "runs/create", "body": _create_body("0", "batch-b")},
            {"call": "runs/update", "body": {"run_id": "batch-a", "status": "FINISHED"}},
            {
                "call": "runs/log-batch",
                "body": {"run_id": "batch-b", "params": [{"key": "lr", "value": "0.1"}]},
            },
            {"call": "runs/update", "body": {"run_id": "nowhere", "status": "FAILED"}},
            {"call": "runs/create", "body": {"run_id": "no-experiment"}},
            {
                "call": "runs/log-batch",
                "body": {"run_id": "batch-b", "params": [{"key": "lr", "value": "0.2"}]},
            },
        ]
        answer = client.post(BATCH, json={"calls": calls})
        assert answer.status_code == 200, answer.text
        answers = answer.json()["answers"]
        assert [a["status"] for a in answers] == [200, 200, 200, 200, 404, 400, 400]
        assert answers[0]["body"]["run"]["info"]["run_name"] == "a"
        assert answers[2]["body"]["run_info"]["status"] == "FINISHED"
        assert answers[3]["body"] == {}
        assert answers[4]["body"]["error_class"] == "RunNotFoundError"
        assert "nowhere" in answers[4]["body"]["message"]
        assert "experiment_id" in answers[5]["body"]["message"]
        assert answers[6]["body"]["error_code"] == "INVALID_PARAMETER_VALUE"
        # What the calls wrote is there, as if each had been sent alone.
        run_a = client.get("/api/2.0/mlflow/runs/get", params={"run_id": "batch-a"}).json()
        assert run_a["run"]["info"]["status"] == "FINISHED"
        run_b = client.get("/api/2.0/mlflow/runs/get", params={"run_id": "batch-b"}).json()
        assert run_b["run"]["data"]["params"] == [{"key": "lr", "value": "0.1"}]

    def test_a_retried_create_returns_the_run(self, client: TestClient) -> None:
        calls = [{"call": "runs/create", "body": _create_body("0", "twice")}] * 2
        answers = client.post(BATCH, json={"calls": calls}).json()["answers"]
        assert [a["status"] for a in answers] == [200, 200]
        assert answers[0]["body"] == answers[1]["body"]

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            pytest.param({"calls": []}, "calls", id="empty"),
            pytest.param(
                {"calls": [{"call": "runs/delete", "body": {}}]}, "calls[0].call", id="unknown"
            ),
            pytest.param(
                {"calls": [{"call": "runs/update", "body": {"run_id": "x"}}] * 101},
                "calls",
                id="over-100",
            ),
        ],
    )
    def test_bad_batches_write_nothing(
        self, client: TestClient, body: dict[str, Any], words: str
    ) -> None:
        answer = client.post(BATCH, json=body)
        assert answer.status_code == 400
        assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert words in answer.json()["message"]

    def test_metric_points_are_not_batched(self, client: TestClient) -> None:
        client.post(
            BATCH, json={"calls": [{"call": "runs/create", "body": _create_body("0", "m")}]}
        )
        point = {"key": "m", "value": 1.0, "timestamp": 1, "step": 0}
        calls = [{"call": "runs/log-batch", "body": {"run_id": "m", "metrics": [point]}}]
        (answer,) = client.post(BATCH, json={"calls": calls}).json()["answers"]
        assert answer["status"] == 400
        assert "'metrics'" in answer["body"]["message"]
        history = client.get(
            "/api/2.0/mlflow/metrics/get-history", params={"run_id": "m", "metric_key": "m"}
        ).json()
        assert history.get("metrics", []) == []


class _Counting:
    """Counts the requests a store sends, by path (an httpx event hook on its real client)."""

    def __init__(self, store: RestTrackingStore) -> None:
        self.paths: Counter[str] = Counter()
        self._lock = threading.Lock()
        store.http.client.event_hooks["request"].append(self._seen)

    def _seen(self, request: httpx.Request) -> None:
        with self._lock:
            self.paths[request.url.path.rsplit("/api/2.0/", 1)[-1]] += 1


class TestCoalescingClient:
    """Against a real server process."""

    def test_concurrent_writes_share_requests(self, server_url: str) -> None:
        client = TrackingClient(server_url)
        store = client.store
        assert isinstance(store, RestTrackingStore)
        experiment_id = client.create_experiment("coalesced")
        counting = _Counting(store)
        threads, runs = 32, 8
        barrier = threading.Barrier(threads)
        failures: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                barrier.wait()
                for i in range(runs):
                    run = client.create_run(
                        experiment_id, run_name=f"w{worker}-{i}", tags={"worker": str(worker)}
                    )
                    client.log_param(run.info.run_id, "i", str(i))
                    client.log_batch(run.info.run_id, tags=[])  # nothing: no request
                    client.set_terminated(run.info.run_id, RunStatus.FINISHED)
            except BaseException as exc:
                failures.append(exc)

        pool = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(120)
        assert not failures, failures

        found = client.search_runs([experiment_id], max_results=1000)
        assert len(found) == threads * runs
        assert {run.info.status for run in found} == {RunStatus.FINISHED}
        names = {run.info.run_name: run for run in found}
        assert names["w3-5"].data.tags["worker"] == "3"
        assert names["w3-5"].data.params == {"i": "5"}
        # The writes (create, param, end: 3 per run) went in fewer requests.
        writes = threads * runs * 3
        sent = sum(counting.paths.values()) - counting.paths["mlflow/runs/search"]
        assert counting.paths["trackflow/batch"] > 0
        assert sent < writes * 0.8, counting.paths

    def test_each_caller_gets_its_own_error(self, server_url: str) -> None:
        client = TrackingClient(server_url)
        experiment_id = client.create_experiment("coalesced-errors")
        results: dict[int, Any] = {}
        barrier = threading.Barrier(24)

        def work(worker: int) -> None:
            barrier.wait()
            try:
                if worker % 3 == 0:
                    client.set_terminated(f"missing{worker}", RunStatus.FAILED)
                elif worker % 3 == 1:
                    run = client.create_run(experiment_id)
                    client.log_param(run.info.run_id, "p", "1")
                    client.log_param(run.info.run_id, "p", "2")  # immutable: refused
                else:
                    results[worker] = client.create_run(experiment_id).info.run_id
                    return
            except Exception as exc:
                results[worker] = exc

        pool = [threading.Thread(target=work, args=(w,)) for w in range(24)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(60)
        for worker, result in results.items():
            if worker % 3 == 0:
                assert isinstance(result, RunNotFoundError), result
                assert f"missing{worker}" in str(result)
            elif worker % 3 == 1:
                assert isinstance(result, InvalidParameterError), result
            else:
                assert isinstance(result, str), result
                assert client.get_run(result).info.status is RunStatus.RUNNING
        assert len(results) == 24
