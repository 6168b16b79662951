"""Reflected XSS: every UI route, listed from the app (so a route added tomorrow is swept
too), gets script payloads in each of its path and query parameters in turn, sent to a
real server process. No HTML answer may carry a payload unescaped, anything else must not
be HTML (and is sent with ``nosniff``), and every HTML answer forbids inline script."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from _server_support import TOKEN, ServerProcess, start_server
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from tracking import TrackingClient
from tracking.entities import RunStatus
from tracking.pipelines import PipelineRun, PipelineTracker, Step
from tracking.server import ServerSettings, create_app
from tracking.settings import reset_settings

PAYLOADS = [
    pytest.param("<script>alert(document.domain)</script>", id="script-tag"),
    pytest.param('"><img src=x onerror=alert(1)>', id="attribute-break"),
    pytest.param("'><svg onload=alert(1)>", id="single-quote-break"),
]
#: Not the UI: the APIs answer JSON, whatever they echo.
_API = ("/api/", "/ajax-api/", "/openapi.json", "/health")
TEMPLATES = Path(__file__).resolve().parents[3] / "tracking" / "ui" / "templates"


@dataclass(frozen=True)
class UiRoute:
    """A UI route as the app declares it: its path template, methods and parameters."""

    path: str
    methods: tuple[str, ...]
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]


def ui_routes() -> list[UiRoute]:
    """Every route of the app that is not the API (pages, fragments, login, docs, files)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServerSettings(
            backend_store_uri=f"sqlite:///{tmp}/routes.db", artifacts_destination=f"{tmp}/a"
        )
        app = create_app(settings)
        found = []
        for route in app.routes:
            if isinstance(route, Mount):
                found.append(UiRoute(route.path + "/{file}", ("GET",), ("file",), ()))
                continue
            if not isinstance(route, Route) or route.path.startswith(_API):
                continue
            query: tuple[str, ...] = ()
            if isinstance(route, APIRoute):
                query = tuple(p.name for p in route.dependant.query_params)
            methods = tuple(sorted((route.methods or {"GET"}) - {"HEAD"}))
            found.append(UiRoute(route.path, methods, tuple(route.param_convertors), query))
        return found


ROUTES = ui_routes()


@pytest.fixture(scope="module", params=["open", "token"])
def swept_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server without a token, and one with (swept with the bearer header, so the pages
    render rather than redirect, and the login form is shown)."""
    token = TOKEN if request.param == "token" else None
    with start_server(tmp_path_factory.mktemp("ui-sweep"), token=token) as server:
        yield server


@pytest.fixture(scope="module")
def valid(swept_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real value for each parameter name, so a payload in one parameter reaches the code
    behind the others (the run page, the preview of a real file, a real count)."""
    with pytest.MonkeyPatch.context() as env:
        if swept_server.token:
            env.setenv("TRACKFLOW_TRACKING_TOKEN", swept_server.token)
        reset_settings()
        try:
            return _fill(swept_server.url)
        finally:
            reset_settings()


def _fill(url: str) -> dict[str, str]:
    client = TrackingClient(url)
    eid = client.create_experiment("swept")
    parent = client.create_run(eid, run_name="parent").info.run_id
    rid = client.create_run(eid, run_name="swept-run", parent_run_id=parent).info.run_id
    client.log_text(rid, "a,b\n1,2\n", "table.csv")
    # A pipeline run with a step, for the pipeline view and the pipeline's history.
    tracker = PipelineTracker(client, "swept")
    pipeline = PipelineRun("airflow", "retrain", "manual__1")
    tracker.pipeline_started(pipeline, tags={"airflow.dag_id": "retrain"}, experiment_id=eid)
    step = Step(pipeline, "train")
    tracker.step_running(step, tags={"airflow.task_id": "train"})
    client.log_metric(step.run_id, "acc", 0.9)
    tracker.step_ended(step, RunStatus.FINISHED)
    # A logged model with a file, registered: the model and registry pages.
    model = client.create_logged_model(eid, "swept-model", source_run_id=rid)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "table.csv").write_text("a,b\n1,2\n")
        client.log_model_artifacts(model.model_id, tmp)
    client.create_registered_model("swept-model")
    client.create_model_version("swept-model", model.model_uri)
    return {
        "ids": eid,
        "experiment_id": eid,
        "experiments": eid,
        "run_id": rid,
        "runs": f"{parent},{rid}",
        "parent": parent,
        "path": "table.csv",
        "file": "app.css",
        "rest": "x",
        "next": "/",
        "cols": "m:loss",
        "view": "active",
        "depth": "0",
        "kind": "tags",
        "download": "false",
        "q": "swept",
        "experiment": eid,
        "orchestrator": "airflow",
        "pipeline_id": "retrain",
        "step": "train",
        "metric": "acc",
        "sort": "metrics.`acc` DESC",
        "dir": "acc:max",
        "model_id": model.model_id,
        "name": "swept-model",
    }


def _url(route: UiRoute, values: dict[str, str]) -> str:
    path = route.path
    for name in route.path_params:
        path = re.sub(r"\{" + name + r"(:[a-z]+)?\}", quote(values[name], safe=""), path)
    return path


def _check(response: httpx.Response, payload: str, what: str) -> None:
    kind = response.headers.get("content-type", "")
    if "html" in kind:
        assert payload not in response.text, f"{what}: the payload came back unescaped"
        policy = response.headers.get("content-security-policy", "")
        script = re.search(r"script-src ([^;]*)", policy)
        assert script, f"{what}: an HTML answer without script-src in its CSP: {policy!r}"
        assert "'unsafe-inline'" not in script.group(1), f"{what}: {policy!r}"
    else:
        assert response.headers.get("x-content-type-options") == "nosniff", what
        assert "html" not in kind and "xml" not in kind, f"{what}: {kind}"


def test_the_sweep_covers_the_ui() -> None:
    paths = {r.path for r in ROUTES}
    for expected in ("/", "/experiments/{ids}", "/ui/count", "/ui/rows", "/ui/login"):
        assert expected in paths, paths
    assert all(not r.path.startswith(_API) for r in ROUTES)


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.methods[0]} {r.path}" for r in ROUTES])
def test_no_parameter_is_echoed_unescaped(
    swept_server: ServerProcess, valid: dict[str, str], route: UiRoute, payload: str
) -> None:
    names = route.path_params + route.query_params
    with httpx.Client(
        base_url=swept_server.url, headers=swept_server.headers(), timeout=30
    ) as http:
        for method in route.methods:
            for poisoned in (*names, "unknown"):
                values = {**valid, poisoned: payload}
                query = {n: values.get(n, "x") for n in route.query_params}
                if poisoned == "unknown":
                    query["unknown"] = payload
                body = {"next": payload, "token": payload} if method == "POST" else None
                response = http.request(
                    method,
                    _url(route, values),
                    params=query,
                    data=body,
                    headers={"Accept": "text/html"},
                )
                _check(response, payload, f"{method} {route.path} with {poisoned}={payload!r}")


class TestPolicy:
    def test_every_page_forbids_inline_script(self, swept_server: ServerProcess) -> None:
        for path in ("/", "/ui/count?experiments=x", "/docs", "/redoc", "/experiments/999"):
            response = httpx.get(swept_server.url + path, headers=swept_server.headers())
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy, (path, policy)
            assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]

    def test_the_api_gets_no_page_policy(self, swept_server: ServerProcess) -> None:
        response = httpx.get(swept_server.url + "/api/2.0/mlflow/experiments/search")
        assert "content-security-policy" not in response.headers

    @pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
    def test_templates_hold_no_inline_script_or_handler(self, template: Path) -> None:
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>"
        assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
        assert "javascript:" not in text
