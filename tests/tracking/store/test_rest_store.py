"""The REST store: its HTTP seam (retries, errors, JSON) and the conformance suite over HTTP.

* ``TestRequests``, ``TestRetries``, ``TestErrorMapping`` drive
  :class:`~tracking.store.rest.RestTrackingStore` through ``httpx.MockTransport``:
  what goes on the wire and how every answer is read.
* ``TestLoopback`` uses real sockets: a tiny HTTP server that fails twice,
  a dead port, a server that wants a token.
* ``TestRestStoreInProcess`` runs the whole store conformance suite (and the
  search suite) against the server app in a uvicorn thread, with a fresh
  SQLite database per test.
* ``TestRestStoreServerProcess`` runs a subset against a real
  ``trackflow server`` process shared by the module (see its docstring).
"""

from __future__ import annotations

import http.server
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tracking.client import TrackingClient
from tracking.entities import LifecycleStage, Metric, Param, RunStatus, RunTag, ViewType
from tracking.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidParameterError,
    InvalidStateError,
    NotFoundError,
    RequestLimitExceededError,
    RunNotFoundError,
    SearchSyntaxError,
    StoreError,
    StoreUnavailableError,
    TrackingError,
    UnauthenticatedError,
)
from tracking.settings import reset_settings
from tracking.store.registry import clear_store_cache, get_store
from tracking.store.rest import RestTrackingStore
from tracking.store.rest_http import dumps
from tracking.testing.live_server import serving
from tracking.testing.store import (
    LoggingSuite,
    RunLifecycleSuite,
    StoreConformance,
    ValidationSuite,
)
from tracking.testing.store.models import LoggedModelSuite, ModelRegistrySuite
from tracking.testing.store.search import SearchSuite

BASE = "http://tracking.test:5000"
RUN_ID = "a" * 32

Handler = Callable[[httpx.Request], httpx.Response]


def _json(payload: Any, status: int = 200, **headers: str) -> httpx.Response:
    body = json.dumps(payload, allow_nan=True).encode()
    return httpx.Response(
        status, content=body, headers={"Content-Type": "application/json", **headers}
    )


def _error(status: int, error_class: str, message: str, code: str = "") -> httpx.Response:
    return _json(
        {"error_code": code or "X", "message": message, "error_class": error_class}, status
    )


def _run_json(run_id: str = RUN_ID, **info: Any) -> dict[str, Any]:
    return {
        "info": {
            "run_id": run_id,
            "run_uuid": run_id,
            "experiment_id": "0",
            "run_name": "r",
            "user_id": "u",
            "status": "RUNNING",
            "start_time": 1,
            "artifact_uri": f"mlflow-artifacts:/0/{run_id}/artifacts",
            "lifecycle_stage": "active",
            **info,
        },
        "data": {"metrics": [], "params": [], "tags": []},
    }


class Recorder:
    """A MockTransport handler that answers from a script and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer) and not isinstance(answer, httpx.Response):
            return answer(request)
        return answer

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def _store(
    recorder: Recorder, *, token: str | None = None, max_retries: int = 3
) -> tuple[RestTrackingStore, list[float]]:
    sleeps: list[float] = []
    store = RestTrackingStore(
        BASE, token=token, max_retries=max_retries, transport=httpx.MockTransport(recorder)
    )
    store.http._sleep = sleeps.append  # no waiting in unit tests
    return store, sleeps


class TestRequests:
    """What the store puts on the wire, and how it reads the answers."""

    def test_log_batch_body_and_url(self) -> None:
        recorder = Recorder(_json({}))
        store, _ = _store(recorder)
        store.log_batch(
            RUN_ID,
            metrics=[Metric("loss", 0.5, 1000, 3)],
            params=[Param("lr", "0.1")],
            tags=[RunTag("t", "v")],
        )
        request = recorder.requests[0]
        assert (request.method, str(request.url)) == (
            "POST",
            f"{BASE}/api/2.0/trackflow/runs/log-batch",
        )
        assert request.headers["Content-Type"] == "application/json"
        assert recorder.body() == {
            "run_id": RUN_ID,
            "metrics": {"key": ["loss"], "value": [0.5], "timestamp": [1000], "step": [3]},
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "t", "value": "v"}],
        }

    def test_nan_and_infinities_go_as_bare_tokens(self) -> None:
        recorder = Recorder(_json({}))
        store, _ = _store(recorder)
        store.log_batch(
            RUN_ID,
            metrics=[
                Metric("m", math.nan, 1, 0),
                Metric("m", math.inf, 2, 0),
                Metric("m", -math.inf, 3, 0),
            ],
        )
        raw = recorder.requests[0].content
        assert b'"value":[NaN,Infinity,-Infinity]' in raw

    def test_metrics_alone_send_no_params_or_tags(self) -> None:
        recorder = Recorder(_json({}))
        store, _ = _store(recorder)
        store.log_batch(RUN_ID, metrics=[Metric("a", 1.0, 5, 0), Metric("b", 2.0, 6, 1)])
        assert recorder.body() == {
            "run_id": RUN_ID,
            "metrics": {
                "key": ["a", "b"],
                "value": [1.0, 2.0],
                "timestamp": [5, 6],
                "step": [0, 1],
            },
        }

    @pytest.mark.parametrize(
        ("value", "check"),
        [
            ("NaN", math.isnan),
            ("Infinity", math.isinf),
            ("-Infinity", lambda v: v < 0),
            ("1.5", lambda v: v == 1.5),
        ],
        ids=["nan", "inf", "-inf", "plain"],
    )
    def test_special_values_are_read_as_tokens_or_strings(
        self, value: str, check: Callable[[float], bool]
    ) -> None:
        raw = (
            f'{{"metrics": [{{"key": "m", "value": {value}, "timestamp": "7", "step": "2"}},'
            f' {{"key": "m", "value": "{value}", "timestamp": 8, "step": 3}}]}}'
        )
        recorder = Recorder(httpx.Response(200, content=raw.encode()))
        store, _ = _store(recorder)
        points = store.get_metric_history(RUN_ID, "m", max_results=10)
        assert [(p.timestamp, p.step) for p in points] == [(7, 2), (8, 3)]
        assert all(check(p.value) for p in points)

    def test_create_run_chooses_the_run_id(self) -> None:
        recorder = Recorder(lambda r: _json({"run": _run_json(json.loads(r.content)["run_id"])}))
        store, _ = _store(recorder)
        run = store.create_run("0", "me", 5, [RunTag("a", "1")], None)
        body = recorder.body()
        assert str(recorder.requests[0].url) == f"{BASE}/api/2.0/trackflow/runs/create"
        assert len(body["run_id"]) == 32 and int(body["run_id"], 16) >= 0
        assert run.info.run_id == body["run_id"]
        assert body == {
            "experiment_id": "0",
            "run_id": body["run_id"],
            "user_id": "me",
            "start_time": 5,
            "tags": [{"key": "a", "value": "1"}],
            "status": "RUNNING",
        }
        store.create_run("0", "me", 5, [], None)
        assert recorder.body()["run_id"] != body["run_id"]

    def test_retried_create_resends_the_same_run_id(self) -> None:
        recorder = Recorder(
            httpx.ReadTimeout("lost"),
            _error(503, "StoreUnavailableError", "busy"),
            lambda r: _json({"run": _run_json(json.loads(r.content)["run_id"])}),
        )
        store, _ = _store(recorder)
        run = store.create_run("0", "me", 5, [], "named", parent_run_id="p" * 32)
        bodies = [json.loads(r.content) for r in recorder.requests]
        assert len(bodies) == 3
        assert bodies[0] == bodies[1] == bodies[2]
        assert bodies[0]["run_name"] == "named" and bodies[0]["parent_run_id"] == "p" * 32
        assert run.info.run_id == bodies[0]["run_id"]

    def test_run_json_is_mapped_to_entities(self) -> None:
        payload = _run_json(status="FINISHED", end_time="99", lifecycle_stage="deleted")
        payload["data"] = {
            "metrics": [{"key": "auc", "value": 0.9, "timestamp": 1, "step": 2}],
            "params": [{"key": "lr", "value": "0.1"}],
            "tags": [{"key": "mlflow.parentRunId", "value": "b" * 32}],
        }
        recorder = Recorder(_json({"run": payload}))
        store, _ = _store(recorder)
        run = store.get_run(RUN_ID)
        assert str(recorder.requests[0].url) == f"{BASE}/api/2.0/mlflow/runs/get?run_id={RUN_ID}"
        assert run.info.status is RunStatus.FINISHED
        assert run.info.lifecycle_stage is LifecycleStage.DELETED
        assert run.info.end_time == 99
        assert run.info.parent_run_id == "b" * 32  # MLflow keeps it in a tag
        assert run.data.metrics == {"auc": 0.9}
        assert run.data.params == {"lr": "0.1"}
        with pytest.raises(TypeError):
            run.data.params["x"] = "y"  # type: ignore[index]

    def test_search_runs_body_and_token(self) -> None:
        compact = {
            "info": _run_json()["info"],
            "params": {"lr": "0.1"},
            "tags": {"mlflow.parentRunId": "p" * 32},
            "metrics": {"acc": [0.5, 7, 3], "loss": [math.nan, 8, 4]},
        }
        raw = dumps({"runs": [compact], "next_page_token": "tok"})
        recorder = Recorder(
            httpx.Response(200, content=raw, headers={"content-type": "application/json"})
        )
        store, _ = _store(recorder)
        page = store.search_runs(["1", "2"], "metrics.a > 1", ViewType.ALL, 10, ["name"], "p1")
        assert recorder.requests[0].url.path == "/api/2.0/trackflow/runs/search"
        assert recorder.body() == {
            "experiment_ids": ["1", "2"],
            "filter": "metrics.a > 1",
            "run_view_type": "ALL",
            "max_results": 10,
            "order_by": ["name"],
            "page_token": "p1",
        }
        (run,) = page
        assert run.info.run_id == RUN_ID and page.token == "tok"
        assert run.info.parent_run_id == "p" * 32
        assert dict(run.data.params) == {"lr": "0.1"}
        assert run.data.latest["acc"] == Metric("acc", 0.5, 7, 3)
        assert run.data.metrics["acc"] == 0.5 and math.isnan(run.data.metrics["loss"])

    def test_malformed_compact_search_answer(self) -> None:
        recorder = Recorder(_json({"runs": [{"info": _run_json()["info"], "metrics": 5}]}))
        store, _ = _store(recorder)
        with pytest.raises(StoreError, match="runs"):
            store.search_runs(["0"])

    def test_older_server_without_lean_endpoints_gets_mlflows(self) -> None:
        missing = {"error_code": "ENDPOINT_NOT_FOUND", "message": "Not Found"}
        recorder = Recorder(
            _json(missing, 404),
            _json({}),
            _json({}),
            _json({"runs": [_run_json()]}),
        )
        store, _ = _store(recorder)
        store.log_batch(RUN_ID, metrics=[Metric("loss", 0.5, 1000, 3)])
        store.log_batch(RUN_ID, params=[Param("lr", "0.1")])
        assert [r.info.run_id for r in store.search_runs(["0"])] == [RUN_ID]
        paths = [r.url.path for r in recorder.requests]
        assert paths == [
            "/api/2.0/trackflow/runs/log-batch",
            "/api/2.0/mlflow/runs/log-batch",
            "/api/2.0/mlflow/runs/log-batch",
            "/api/2.0/mlflow/runs/search",
        ]
        assert recorder.body(1) == {
            "run_id": RUN_ID,
            "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1000, "step": 3}],
        }
        assert recorder.body(2)["params"] == [{"key": "lr", "value": "0.1"}]

    def test_unknown_run_on_a_lean_endpoint_is_not_a_missing_endpoint(self) -> None:
        gone = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": f"Run {RUN_ID!r} not found"}
        recorder = Recorder(_json(gone, 404), _json({}))
        store, _ = _store(recorder)
        with pytest.raises(NotFoundError, match="not found"):
            store.log_batch(RUN_ID, metrics=[Metric("loss", 0.5, 1000, 3)])
        store.log_batch(RUN_ID, metrics=[Metric("loss", 0.5, 1000, 3)])
        assert [r.url.path for r in recorder.requests] == ["/api/2.0/trackflow/runs/log-batch"] * 2

    def test_history_without_max_results_follows_pages(self) -> None:
        def page(request: httpx.Request) -> httpx.Response:
            token = request.url.params.get("page_token")
            start = int(token or 0)
            points = [
                {"key": "m", "value": i, "timestamp": i, "step": i}
                for i in range(start, min(start + 2, 5))
            ]
            nxt = str(start + 2) if start + 2 < 5 else None
            return _json({"metrics": points, "next_page_token": nxt})

        recorder = Recorder(page)
        store, _ = _store(recorder)
        assert [m.step for m in store.get_metric_history(RUN_ID, "m")] == [0, 1, 2, 3, 4]
        assert len(recorder.requests) == 3
        assert "max_results" not in recorder.requests[0].url.params

    def test_trackflow_endpoints(self) -> None:
        recorder = Recorder(
            _json({"runs": [_run_json("c" * 32)]}), _json({}), _json({"run_ids": ["d" * 32]})
        )
        store, _ = _store(recorder)
        assert [r.info.run_id for r in store.get_children(RUN_ID, recursive=True)] == ["c" * 32]
        store.heartbeat([RUN_ID], 123)
        assert store.reap_stale_runs(600_000, 0, "ignored") == ["d" * 32]
        children, beat, reap = recorder.requests
        assert children.url.path == "/api/2.0/trackflow/runs/children"
        assert dict(children.url.params) == {"run_id": RUN_ID, "recursive": "true"}
        assert json.loads(beat.content) == {"run_ids": [RUN_ID], "timestamp": 123}
        assert json.loads(reap.content) == {"older_than_ms": 600_000}

    def test_malformed_answer_is_a_store_error(self) -> None:
        store, _ = _store(Recorder(_json({"something": "else"})))
        with pytest.raises(StoreError, match="malformed"):
            store.get_run(RUN_ID)

    def test_non_json_answer_is_a_store_error(self) -> None:
        store, _ = _store(Recorder(httpx.Response(200, content=b"<html>hello</html>")))
        with pytest.raises(StoreError, match="not JSON"):
            store.get_experiment("1")

    def test_bearer_token_from_the_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TRACKFLOW_TRACKING_TOKEN", "s3cret")
        reset_settings()
        recorder = Recorder(_json({"experiment": {"experiment_id": "1", "name": "e"}}))
        store = RestTrackingStore(BASE, transport=httpx.MockTransport(recorder))
        store.get_experiment("1")
        assert recorder.requests[0].headers["Authorization"] == "Bearer s3cret"

    def test_no_authorization_header_without_a_token(self) -> None:
        recorder = Recorder(_json({"experiment": {"experiment_id": "1", "name": "e"}}))
        store, _ = _store(recorder)
        store.get_experiment("1")
        assert "Authorization" not in recorder.requests[0].headers

    def test_one_pooled_client_per_process(self) -> None:
        recorder = Recorder(_json({}))
        store, _ = _store(recorder)
        first = store.http.client
        store.delete_run(RUN_ID)
        assert store.http.client is first
        store.http._pid = -1  # as in a child after os.fork
        assert store.http.client is not first
        store.delete_run(RUN_ID)
        assert len(recorder.requests) == 2

    @pytest.mark.parametrize("scheme", ["http", "https"])
    def test_registry_opens_a_rest_store(self, scheme: str) -> None:
        clear_store_cache()
        try:
            store = get_store(f"{scheme}://127.0.0.1:1/prefix/")
            assert isinstance(store, RestTrackingStore)
            assert store.http.base_url == f"{scheme}://127.0.0.1:1/prefix"
        finally:
            clear_store_cache()


class TestRetries:
    """Connection errors, timeouts, 429 and 502-504 are retried with backoff; nothing else."""

    @pytest.mark.parametrize("status", [429, 502, 503, 504])
    def test_busy_twice_then_ok(self, status: int) -> None:
        recorder = Recorder(_json({}, status), _json({}, status), _json({}))
        store, sleeps = _store(recorder)
        store.log_batch(RUN_ID, metrics=[Metric("m", 1.0, 1, 0)])
        assert len(recorder.requests) == 3
        assert len(sleeps) == 2
        # Exponential with jitter: half the step at least, the full step at most.
        assert 0.125 <= sleeps[0] <= 0.25 and 0.25 <= sleeps[1] <= 0.5

    @pytest.mark.parametrize(
        "exc",
        [
            httpx.ConnectError("refused"),
            httpx.ReadTimeout("slow"),
            httpx.RemoteProtocolError("closed"),
        ],
        ids=["connect", "read-timeout", "disconnect"],
    )
    def test_transport_errors_are_retried(self, exc: Exception) -> None:
        recorder = Recorder(exc, _json({}))
        store, sleeps = _store(recorder)
        store.set_tag(RUN_ID, RunTag("k", "v"))
        assert len(recorder.requests) == 2 and len(sleeps) == 1

    def test_retry_after_is_honoured(self) -> None:
        recorder = Recorder(_json({}, 503, **{"Retry-After": "2"}), _json({}))
        store, sleeps = _store(recorder)
        store.delete_run(RUN_ID)
        assert sleeps == [2.0]

    def test_retry_after_is_capped(self) -> None:
        recorder = Recorder(_json({}, 429, **{"Retry-After": "86400"}), _json({}))
        store, sleeps = _store(recorder)
        store.delete_run(RUN_ID)
        assert sleeps == [60.0]

    def test_unreachable_after_the_last_retry(self) -> None:
        recorder = Recorder(httpx.ConnectError("connection refused"))
        store, sleeps = _store(recorder, max_retries=4)
        with pytest.raises(StoreUnavailableError, match=r"tracking\.test:5000") as caught:
            store.get_run(RUN_ID)
        assert len(recorder.requests) == 5 and len(sleeps) == 4
        assert "failed 5 times" in str(caught.value)
        assert isinstance(caught.value.__cause__, httpx.ConnectError)

    def test_still_busy_after_the_last_retry(self) -> None:
        recorder = Recorder(_error(429, "RequestLimitExceededError", "slow down"))
        store, _ = _store(recorder, max_retries=2)
        with pytest.raises(RequestLimitExceededError, match="slow down"):
            store.delete_run(RUN_ID)
        assert len(recorder.requests) == 3

    def test_a_proxy_error_page_after_the_last_retry(self) -> None:
        recorder = Recorder(httpx.Response(502, content=b"<h1>Bad Gateway</h1>"))
        store, _ = _store(recorder, max_retries=1)
        with pytest.raises(StoreError, match=r"502.*Bad Gateway"):
            store.delete_run(RUN_ID)

    @pytest.mark.parametrize("status", [400, 404, 500])
    def test_other_failures_are_not_retried(self, status: int) -> None:
        recorder = Recorder(_error(status, "TrackingError", "no"))
        store, sleeps = _store(recorder)
        with pytest.raises(TrackingError):
            store.delete_run(RUN_ID)
        assert len(recorder.requests) == 1 and sleeps == []

    def test_no_retries(self) -> None:
        recorder = Recorder(_json({}, 503))
        store, _ = _store(recorder, max_retries=0)
        with pytest.raises(StoreUnavailableError):
            store.delete_run(RUN_ID)
        assert len(recorder.requests) == 1


class TestErrorMapping:
    """The server's error JSON becomes the very class the store raised there."""

    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (404, RunNotFoundError),
            (404, ExperimentNotFoundError),
            (400, AlreadyExistsError),
            (400, InvalidStateError),
            (400, SearchSyntaxError),
            (400, InvalidParameterError),
            (500, StoreError),
            (503, StoreUnavailableError),
            (404, NotFoundError),
        ],
        ids=lambda v: v.__name__ if isinstance(v, type) else str(v),
    )
    def test_error_class_by_name(self, status: int, cls: type[TrackingError]) -> None:
        store, _ = _store(
            Recorder(_error(status, cls.__name__, "the server's words")), max_retries=0
        )
        with pytest.raises(cls, match="the server's words") as caught:
            store.get_run(RUN_ID)
        assert type(caught.value) is cls

    @pytest.mark.parametrize(
        ("code", "cls"),
        [
            ("RESOURCE_ALREADY_EXISTS", AlreadyExistsError),
            ("RESOURCE_DOES_NOT_EXIST", NotFoundError),
            ("INVALID_PARAMETER_VALUE", InvalidParameterError),
            ("INVALID_STATE", InvalidStateError),
        ],
    )
    def test_error_code_when_the_class_is_unknown(
        self, code: str, cls: type[TrackingError]
    ) -> None:
        for error_class in ("SomethingNew", "TrackingClient", "__class__", None):
            payload = {"error_code": code, "message": "m", "error_class": error_class}
            store, _ = _store(Recorder(_json(payload, 400)))
            with pytest.raises(cls) as caught:
                store.get_run(RUN_ID)
            assert type(caught.value) is cls

    def test_unauthenticated_without_a_token(self) -> None:
        recorder = Recorder(
            _error(401, "UnauthenticatedError", "missing header", "UNAUTHENTICATED")
        )
        store, _ = _store(recorder)
        with pytest.raises(UnauthenticatedError, match="set TRACKFLOW_TRACKING_TOKEN"):
            store.get_run(RUN_ID)
        assert len(recorder.requests) == 1

    def test_unauthenticated_with_a_wrong_token(self) -> None:
        store, _ = _store(Recorder(httpx.Response(401)), token="nope")
        with pytest.raises(UnauthenticatedError, match="TRACKFLOW_TRACKING_TOKEN was refused"):
            store.get_run(RUN_ID)

    def test_unknown_endpoint_is_not_a_missing_object(self) -> None:
        payload = {
            "error_code": "ENDPOINT_NOT_FOUND",
            "message": "No API endpoint",
            "error_class": "NotFoundError",
        }
        store, _ = _store(Recorder(_json(payload, 404)))
        with pytest.raises(StoreError, match="trackflow server") as caught:
            store.get_experiment_by_name("x")
        assert not isinstance(caught.value, NotFoundError)

    def test_missing_experiment_by_name_is_none(self) -> None:
        store, _ = _store(
            Recorder(_error(404, "ExperimentNotFoundError", "no", "RESOURCE_DOES_NOT_EXIST"))
        )
        assert store.get_experiment_by_name("x") is None

    def test_fastapi_validation_detail(self) -> None:
        payload = {"detail": [{"loc": ["query", "run_id"], "msg": "Field required"}]}
        store, _ = _store(Recorder(_json(payload, 422)))
        with pytest.raises(InvalidParameterError, match=r"query\.run_id: Field required"):
            store.get_run(RUN_ID)

    def test_a_bare_404_page(self) -> None:
        store, _ = _store(Recorder(httpx.Response(404, content=b"Not Found")))
        with pytest.raises(StoreError, match="trackflow server"):
            store.get_run(RUN_ID)

    def test_invalid_url_is_a_store_error(self) -> None:
        store = RestTrackingStore("http://", max_retries=0)
        with pytest.raises(TrackingError):
            store.get_run(RUN_ID)


# -- real sockets -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, body) of the server's script."""

    server: _ScriptedServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        status, body = (
            self.server.script.pop(0) if len(self.server.script) > 1 else (self.server.script[0])
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ScriptedServer(http.server.ThreadingHTTPServer):
    script: list[tuple[int, Any]]
    seen: list[tuple[str, str, dict[str, str]]]


@pytest.fixture
def scripted() -> Iterator[_ScriptedServer]:
    server = _ScriptedServer(("127.0.0.1", 0), _Scripted)
    server.script, server.seen = [(200, {})], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class TestLoopback:
    """Retries and errors over real sockets, through TrackingClient."""

    @pytest.fixture(autouse=True)
    def _fresh(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        monkeypatch.setenv("TRACKFLOW_HTTP_MAX_RETRIES", "3")
        reset_settings()
        clear_store_cache()
        yield
        clear_store_cache()

    def test_503_twice_then_success(self, scripted: _ScriptedServer) -> None:
        busy = {
            "error_code": "TEMPORARILY_UNAVAILABLE",
            "message": "restarting",
            "error_class": "StoreUnavailableError",
        }
        scripted.script = [(503, busy), (503, busy), (200, {})]
        port = scripted.server_address[1]
        client = TrackingClient(f"http://127.0.0.1:{port}")
        client.log_metric(RUN_ID, "m", 1.0, step=1)
        assert [(m, p) for m, p, _ in scripted.seen] == [
            ("POST", "/api/2.0/mlflow/runs/log-metric")
        ] * 3

    def test_dead_port(self) -> None:
        port = _free_port()
        client = TrackingClient(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}") as caught:
            client.get_run(RUN_ID)
        # 4 attempts with 0.25 s, 0.5 s and 1 s steps (jittered) between them.
        assert time.monotonic() - started < 5
        assert "failed 4 times" in str(caught.value)

    def test_token_required(
        self, scripted: _ScriptedServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        scripted.script = [
            (
                401,
                {
                    "error_code": "UNAUTHENTICATED",
                    "message": "missing header",
                    "error_class": "UnauthenticatedError",
                },
            )
        ]
        port = scripted.server_address[1]
        with pytest.raises(UnauthenticatedError, match="TRACKFLOW_TRACKING_TOKEN"):
            TrackingClient(f"http://127.0.0.1:{port}").get_run(RUN_ID)
        monkeypatch.setenv("TRACKFLOW_TRACKING_TOKEN", "tok")
        reset_settings()
        clear_store_cache()
        scripted.script = [(200, {"run": _run_json()})]
        assert TrackingClient(f"http://127.0.0.1:{port}").get_run(RUN_ID).info.run_id == RUN_ID
        assert scripted.seen[-1][2]["Authorization"] == "Bearer tok"


# -- the real server ----------------------------------------------------------------


class SwappableApp:
    """An ASGI app that forwards to whichever app it holds now (one server, a fresh app per test).

    It answers uvicorn's lifespan messages itself: the apps it holds are
    closed by the fixture that built them.
    """

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def live_app() -> Iterator[tuple[str, SwappableApp]]:
    """A uvicorn server thread on a free loopback port, serving a :class:`SwappableApp`."""
    holder = SwappableApp()
    with serving(holder, lifespan="on") as url:
        yield url, holder


@pytest.fixture
def server_url(live_app: tuple[str, SwappableApp], tmp_path: Path) -> Iterator[str]:
    """The server app on a fresh SQLite database and artifact directory, for one test."""
    from tracking.server import ServerSettings, create_app

    url, holder = live_app
    settings = ServerSettings(
        backend_store_uri=f"sqlite:///{tmp_path / 'server.db'}",
        artifacts_destination=str(tmp_path / "server-artifacts"),
        # The conformance suite gives one experiment a memory:// location of its own.
        allowed_artifact_roots="memory://bucket",
    )
    app = create_app(settings)
    holder.app = app
    yield url
    holder.app = None
    app.state.trackflow.store.close()


class TestRestStoreInProcess(StoreConformance, SearchSuite, LoggedModelSuite, ModelRegistrySuite):
    """Every conformance and search case, over HTTP, against the server app."""

    @pytest.fixture
    def client(self, server_url: str) -> Iterator[TrackingClient]:
        clear_store_cache()
        client = TrackingClient(server_url)
        assert isinstance(client.store, RestTrackingStore)
        yield client
        clear_store_cache()

    def test_sampled_history(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_batch(run_id, metrics=[Metric("m", float(i % 7), i, i) for i in range(1000)])
        client.log_metric(run_id, "m", 100.0, timestamp=5000, step=500)  # a spike
        sampled = client.get_metric_history_sampled(run_id, "m", max_points=50)
        assert 2 <= len(sampled) <= 50
        assert max(p.value for p in sampled) == 100.0
        assert [p.step for p in sampled] == sorted(p.step for p in sampled)
        assert len(client.get_metric_history_sampled(run_id, "m", max_points=5000)) == 1001
        with pytest.raises(InvalidParameterError, match="max_points"):
            client.get_metric_history_sampled(run_id, "m", max_points=1)
        with pytest.raises(RunNotFoundError):
            client.get_metric_history_sampled("e" * 32, "m")

    def test_health(self, client: TrackingClient) -> None:
        assert isinstance(client.store, RestTrackingStore)
        assert client.store.health() == {"status": "ok"}

    def test_created_run_ids_are_chosen_by_the_client(self, client: TrackingClient) -> None:
        store = client.store
        assert isinstance(store, RestTrackingStore)
        run = client.create_run("0")
        assert len(run.info.run_id) == 32
        # What a retry of that very request sends gets the same run, not a second one.
        again = store.create_run("0", "u", 1, [], None, run_id=run.info.run_id)
        assert again.info == run.info
        assert len(client.search_runs(["0"])) == 1


def _trackflow_command() -> list[str]:
    script = Path(sys.executable).with_name("trackflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tracking.cli"]


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``trackflow server`` process with its own SQLite file, shared by the module."""
    workdir = tmp_path_factory.mktemp("trackflow-server")
    port = _free_port()
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            *_trackflow_command(),
            "server",
            "--backend-store-uri",
            f"sqlite:///{workdir / 'server.db'}",
            "--artifacts-destination",
            str(workdir / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("TRACKFLOW_")},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (workdir / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "trackflow server did not come up"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(15)
        log.close()


class TestRestStoreServerProcess(RunLifecycleSuite, LoggingSuite, ValidationSuite):
    """A subset against a real ``trackflow server`` process, one per module.

    The cases share the server's database, so only the suites whose cases
    tolerate each other's runs are here: run lifecycle, logging and
    validation. Experiments (which count and name experiments), nesting
    (whose reaping sees every stale run) and search (which counts runs) run
    in-process above, each on a fresh database.
    """

    @pytest.fixture
    def client(self, server_process: str) -> Iterator[TrackingClient]:
        clear_store_cache()
        yield TrackingClient(server_process)
        clear_store_cache()

    def test_many_threads_share_one_client(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        errors: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                for step in range(50):
                    client.log_metric(run_id, f"w{worker}", float(step), step=step)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert all(len(client.get_metric_history(run_id, f"w{i}")) == 50 for i in range(8))
