"""Browser tests of the web UI: Playwright's Python package driving Debian's chromium
against real ``trackflow server`` processes on loopback.

Chromium comes from ``apt-get install chromium`` (``.ci/services.sh`` installs it);
Playwright's own browser download cannot work here. Without it these tests are
skipped locally and fail under ``CI=true`` (the ``browser`` fixture, in
``tests/conftest.py``). Every page a test looks at is
saved as a screenshot in ``.ui-screenshots/`` (or ``TRACKFLOW_UI_SCREENSHOTS``).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _pipeline_support import Pipelines, airflow_dag_runs, big_dag_run, prefect_flow_run
from _server_support import TOKEN, ServerProcess, start_server
from _ui_support import SCREENSHOTS, UiStore, fill


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.ui)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; fails the test on a JavaScript error
    and saves a screenshot of what the page shows at the end."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []  # JavaScript errors, and console errors other than 4xx answers
    tab.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    tab.on(
        "console",
        lambda msg: (
            errors.append(f"console: {msg.text}")
            if msg.type == "error" and "status of 4" not in msg.text
            else None
        ),
    )
    tab.errors = errors
    yield tab
    shot(tab, request.node.name)
    context.close()
    assert not errors, f"the page reported errors: {errors}"


def shot(tab: Any, name: str) -> None:
    """Save what ``tab`` shows as ``<name>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]
    with contextlib.suppress(Exception):
        tab.screenshot(path=str(SCREENSHOTS / f"{safe}.png"), full_page=True)


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server without a token, its store filled by :func:`_ui_support.fill`."""
    with start_server(tmp_path_factory.mktemp("ui-server")) as server:
        yield server


@pytest.fixture(scope="session")
def ui_store(ui_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> UiStore:
    """What the UI server's store holds."""
    return fill(ui_server.url, tmp_path_factory.mktemp("ui-fill"))


@pytest.fixture(scope="session")
def auth_ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server behind ``--auth-token`` :data:`TOKEN`, with one experiment and run."""
    import httpx

    with start_server(tmp_path_factory.mktemp("ui-auth-server"), token=TOKEN) as server:
        api = f"{server.url}/api/2.0/mlflow"
        with httpx.Client(headers=server.headers(), timeout=10) as http:
            eid = http.post(f"{api}/experiments/create", json={"name": "secret-exp"}).json()[
                "experiment_id"
            ]
            http.post(
                f"{api}/runs/create", json={"experiment_id": eid, "run_name": "secret-run"}
            ).raise_for_status()
        yield server


@pytest.fixture(scope="session")
def pipelines(ui_server: ServerProcess) -> Pipelines:
    """Three daily DAG runs of ``retrain``, a DAG run of 200 task instances and a Prefect
    flow run, written by PipelineTracker the way the integrations write them (into the
    server's SQLite store directly: 800 calls take seconds over HTTP)."""
    root = str(ui_server.artifacts)
    found = airflow_dag_runs(ui_server.db_uri, "ui-retrain", artifact_root=root)
    found.big_dag_run = big_dag_run(ui_server.db_uri, "ui-fanout", artifact_root=root)
    found.flow_run, flow_steps = prefect_flow_run(ui_server.db_uri, "ui-nightly", root)
    found.steps.update(flow_steps)
    return found
