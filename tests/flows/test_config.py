"""The TrackflowConfig block, bad input, and a tracking server that goes down mid-flow."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _prefect_support import flow_tree
from _server_support import start_server
from prefect.context import FlowRunContext

import tracking
from flows import TrackflowConfig, tracked_flow, tracked_task
from tracking import InvalidParameterError, RunStatus, TrackingClient

pytestmark = pytest.mark.prefect
_ids: list[str] = []


def _remember() -> None:
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    _ids.append(str(ctx.flow_run.id))


@tracked_flow(config="tf-test-block")
def configured_flow() -> None:
    _remember()
    tracking.log_metric("m", 1.0)


@tracked_flow(config="no-such-block")
def misconfigured_flow() -> None:
    raise AssertionError("never runs")


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


@tracked_task
def before() -> None:
    """Tracked normally."""


@tracked_task
def during(markers: str) -> None:
    """Starts tracked, ends while the server is down."""
    (Path(markers) / "during-started").touch()
    _wait_for(Path(markers) / "server-down")


@tracked_task
def outage(markers: str) -> None:
    """Starts while the server is down, ends once it is back."""
    (Path(markers) / "outage-started").touch()
    _wait_for(Path(markers) / "server-up")


@tracked_flow
def outage_flow(markers: str) -> None:
    _remember()
    before()
    during(markers)
    outage(markers)


class TestBlock:
    def test_a_saved_block(self, tracking_server: Any, embedded: TrackingClient) -> None:
        TrackflowConfig(
            tracking_uri=tracking_server.url, ui_base_url="https://ui.test", experiment="blocky"
        ).save("tf-test-block", overwrite=True)
        configured_flow()
        client = TrackingClient(tracking_server.url)
        parent, _ = flow_tree(client, _ids[-1])
        assert parent.info.status is RunStatus.FINISHED
        assert client.get_experiment(parent.info.experiment_id).name == "blocky"
        assert parent.data.metrics == {"m": 1.0}
        # Not in the environment's store.
        assert embedded.get_experiment_by_name("blocky") is None

    def test_an_unknown_block(self, embedded: TrackingClient) -> None:
        with pytest.raises(InvalidParameterError, match="no trackflow block named 'no-such-block'"):
            misconfigured_flow()

    def test_an_experiment_name_not_allowed(self) -> None:
        with pytest.raises(InvalidParameterError, match="experiment name"):
            tracked_flow(experiment="x" * 300)(lambda: None)


def test_server_down_during_a_flow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tracking.settings import reset_settings

    markers = tmp_path / "markers"
    markers.mkdir()
    workdir = tmp_path / "server"
    first = start_server(workdir)
    server = first.__enter__()
    port = int(server.url.rsplit(":", 1)[1])
    monkeypatch.setenv("TRACKFLOW_TRACKING_URI", server.url)
    reset_settings()
    second: list[Any] = []

    def operate() -> None:
        _wait_for(markers / "during-started")
        first.__exit__(None, None, None)
        (markers / "server-down").touch()
        _wait_for(markers / "outage-started")
        time.sleep(0.3)
        again = start_server(workdir, port=port)
        second.append((again, again.__enter__()))
        (markers / "server-up").touch()

    operator = threading.Thread(target=operate, daemon=True)
    operator.start()
    try:
        with caplog.at_level(logging.WARNING, logger="flows"):
            outage_flow(str(markers))
        operator.join(timeout=60)
        client = TrackingClient(second[0][1].url)
        parent, runs = flow_tree(client, _ids[-1])
        assert parent.info.status is RunStatus.FINISHED
        assert {r.info.run_name: r.info.status for r in runs} == {
            "before": RunStatus.FINISHED,
            "during": RunStatus.FINISHED,
            "outage": RunStatus.FINISHED,
        }
        warnings = [r.getMessage() for r in caplog.records if r.name == "flows"]
        assert len([w for w in warnings if "task during" in w]) == 1, warnings
        assert len([w for w in warnings if "task outage" in w]) == 1, warnings
    finally:
        (second[0][0] if second else first).__exit__(None, None, None)


class TestRegistration:
    def test_the_block_type_is_registered_for_the_ui(self) -> None:
        import asyncio

        from prefect.client.orchestration import get_client

        async def read() -> Any:
            async with get_client() as client:
                return await client.read_block_type_by_slug("trackflow")

        block_type = asyncio.run(read())
        assert block_type.name == "trackflow"

    def test_importing_tracking_never_imports_prefect(self) -> None:
        import subprocess
        import sys

        code = "import sys, tracking, tracking.pipelines, flows; print('prefect' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "False", out.stderr
