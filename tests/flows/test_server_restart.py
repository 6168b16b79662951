"""A tracking-server restart during a tracked flow, against a real ``trackflow server``
stopped and started again on its port: the hooks give up at once (the flow goes on),
while a task's own logging calls wait the restart out within the retry budget."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from _prefect_support import by_name, flow_tree
from _server_support import ServerProcess, start_server
from prefect import unmapped
from prefect.context import FlowRunContext

import tracking
from flows import tracked_flow, tracked_task
from flows._tracking import flow_pipeline
from tracking import RunStatus, TrackingClient
from tracking.errors import StoreUnavailableError
from tracking.pipelines import ATTEMPT_TAG

pytestmark = [pytest.mark.prefect, pytest.mark.slow, pytest.mark.timeout(300)]


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.05)


def _flow_run_id() -> str:
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    return str(ctx.flow_run.id)


class Restarts:
    """A server of the test's own that a thread stops on one marker and starts again,
    on the same port, on another (``down`` appears once it is down, ``up`` once it is
    back)."""

    def __init__(self, workdir: Path, markers: Path) -> None:
        self.workdir = workdir
        self.markers = markers
        self._first: AbstractContextManager[ServerProcess] = start_server(workdir)
        self.server = self._first.__enter__()
        self.port = int(self.server.url.rsplit(":", 1)[1])
        self._again: AbstractContextManager[ServerProcess] | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._stopped = False

    def when(self, stop_on: str, start_on: str, delay: float = 1.0) -> None:
        def operate() -> None:
            try:
                _wait_for(self.markers / stop_on)
                self._first.__exit__(None, None, None)
                self._stopped = True
                (self.markers / "down").touch()
                _wait_for(self.markers / start_on)
                time.sleep(delay)  # the call that meets the outage is under way
                self._again = start_server(self.workdir, port=self.port)
                self.server = self._again.__enter__()
                (self.markers / "up").touch()
            except BaseException as exc:
                self.error = exc

        self._thread = threading.Thread(target=operate, daemon=True)
        self._thread.start()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(timeout=90)
        assert self.error is None, self.error
        assert (self.markers / "up").exists(), "the server was never started again"

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=90)  # never stop a server it is starting
        if self._again is not None:
            self._again.__exit__(None, None, None)
        elif not self._stopped:
            self._first.__exit__(None, None, None)


@pytest.fixture
def restarts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Restarts]:
    from tracking.settings import reset_settings

    markers = tmp_path / "markers"
    markers.mkdir()
    restarting = Restarts(tmp_path / "server", markers)
    monkeypatch.setenv("TRACKFLOW_TRACKING_URI", restarting.server.url)
    monkeypatch.setenv("TRACKFLOW_RETRY_TIMEOUT", "60")
    reset_settings()
    try:
        yield restarting
    finally:
        restarting.close()


# -- a task's own logging call meets the restart ------------------------------------


@tracked_task
def logs_through_a_restart(markers: str) -> str:
    """Starts tracked, then logs while the server is down (the test restarts it)."""
    where = Path(markers)
    (where / "started").touch()
    _wait_for(where / "down")
    (where / "logging").touch()
    tracking.log_metric("logged_while_down", 1.0)
    return "done"


@tracked_flow(experiment="restart-rides")
def rides(markers: str) -> str:
    assert logs_through_a_restart(markers) == "done"
    return _flow_run_id()


def test_a_tasks_logging_call_rides_out_a_server_restart(restarts: Restarts) -> None:
    restarts.when(stop_on="started", start_on="logging")

    flow_run_id = rides(str(restarts.markers))

    restarts.join()
    client = TrackingClient(restarts.server.url)
    parent, runs = flow_tree(client, flow_run_id)
    assert parent.info.status is RunStatus.FINISHED
    task = by_name(runs, parent)["logs_through_a_restart"]
    assert task.info.status is RunStatus.FINISHED
    assert task.data.metrics == {"logged_while_down": 1.0}


# -- a subflow starts while the server is down ---------------------------------------


@tracked_task
def before_the_outage() -> str:
    return "before"


@tracked_task
def waits_for_the_server(markers: str) -> str:
    """The subflow's first task: starts with the server down, ends with it back."""
    where = Path(markers)
    (where / "subflow-task-started").touch()
    _wait_for(where / "up")
    return "waited"


@tracked_task
def after_the_outage() -> str:
    return "after"


@tracked_flow
def started_while_down(markers: str) -> str:
    waits_for_the_server(markers)
    after_the_outage()
    tracking.log_metric("subflow_metric", 1.0)  # the subflow's own run, not its parent's
    return _flow_run_id()


@tracked_flow(experiment="restart-subflow")
def parent_of_a_missed_start(markers: str) -> tuple[str, str]:
    before_the_outage()
    (Path(markers) / "stop").touch()
    _wait_for(Path(markers) / "down")
    return _flow_run_id(), started_while_down(markers)


def test_a_subflow_started_while_the_server_is_down_is_tracked_under_its_parent(
    restarts: Restarts,
) -> None:
    restarts.when(stop_on="stop", start_on="subflow-task-started", delay=0.5)

    flow_run_id, subflow_run_id = parent_of_a_missed_start(str(restarts.markers))

    restarts.join()
    client = TrackingClient(restarts.server.url)
    parent, runs = flow_tree(client, flow_run_id)
    assert parent.info.status is RunStatus.FINISHED
    children = by_name(runs, parent)
    assert set(children) == {"before_the_outage", "started-while-down"}, children
    subflow = children["started-while-down"]
    # Made when the server was back, as the subflow's start would have made it.
    assert subflow.info.run_id == flow_pipeline(subflow_run_id).run_id
    assert subflow.info.experiment_id == parent.info.experiment_id
    assert subflow.info.status is RunStatus.FINISHED
    assert subflow.data.tags["prefect.flow_name"] == "started-while-down"
    assert subflow.data.tags["prefect.flow_run_id"] == subflow_run_id
    assert subflow.data.tags["prefect.parent_flow_run_id"] == flow_run_id
    assert subflow.data.metrics == {"subflow_metric": 1.0}
    assert parent.data.metrics == {}
    tasks = by_name(runs, subflow)
    assert {name: run.info.status for name, run in tasks.items()} == {
        "waits_for_the_server": RunStatus.FINISHED,
        "after_the_outage": RunStatus.FINISHED,
    }
    assert children["before_the_outage"].info.status is RunStatus.FINISHED
    # Nothing made up on the way: the parent flow run's run is the only top-level one.
    everything = client.search_runs([parent.info.experiment_id])
    assert [r.info.run_name for r in everything if r.info.parent_run_id is None] == [
        parent.info.run_name
    ]
    assert len(everything) == 1 + len(runs)


# -- mapped task runs start while the server is down ------------------------------------

MAPPED = 3
CURVE_STEPS = 4


@tracked_task(log_params=True)
def curve(index: int, markers: str) -> str:
    """A mapped task run that starts with the server down and logs its own loss curve
    (the server is started again once the first of them has started)."""
    where = Path(markers)
    (where / f"mapped-{index}").touch()
    for step in range(CURVE_STEPS):
        tracking.log_metric("loss", index + step / 10, step=step)
    active = tracking.active_run()
    assert active is not None
    return active.info.run_id


@tracked_flow(experiment="restart-mapped")
def maps_through_a_restart(markers: str) -> tuple[str, list[str], str | None]:
    (Path(markers) / "stop").touch()
    _wait_for(Path(markers) / "down")
    futures = curve.map(list(range(MAPPED)), markers=unmapped(markers))
    logged_to = [future.result() for future in futures]
    # What the flow's subprocesses would join, once its task runs (threads) have left.
    return _flow_run_id(), logged_to, os.environ.get("TRACKFLOW_RUN_ID")


def test_mapped_task_runs_started_while_the_server_is_down_log_into_their_own_runs(
    restarts: Restarts,
) -> None:
    restarts.when(stop_on="stop", start_on="mapped-0", delay=1.0)

    flow_run_id, logged_to, env_after = maps_through_a_restart(str(restarts.markers))

    restarts.join()
    client = TrackingClient(restarts.server.url)
    parent, runs = flow_tree(client, flow_run_id)
    assert parent.info.status is RunStatus.FINISHED
    children = by_name(runs, parent)
    assert set(children) == {f"curve[{i}]" for i in range(MAPPED)}, children
    for index in range(MAPPED):
        run = children[f"curve[{index}]"]
        # Made once the server was back, as the task run's start would have made it.
        assert run.info.status is RunStatus.FINISHED
        assert run.data.tags["prefect.map_index"] == str(index)
        assert run.data.tags["prefect.flow_run_id"] == flow_run_id
        assert run.data.tags[ATTEMPT_TAG] == "1"
        assert run.data.params == {"index": str(index), "markers": str(restarts.markers)}
        history = client.get_metric_history(run.info.run_id, "loss")
        assert [(m.step, m.value) for m in history] == [
            (step, index + step / 10) for step in range(CURVE_STEPS)
        ], run.info.run_name
    # The task's code saw its own run active, and nothing went to the flow's run.
    assert sorted(logged_to) == sorted(r.info.run_id for r in children.values())
    assert parent.data.metrics == {}
    assert client.get_metric_history(parent.info.run_id, "loss") == []
    everything = client.search_runs([parent.info.experiment_id])
    assert len(everything) == 1 + len(runs)
    assert env_after == parent.info.run_id


# -- task runs that end before the server is back ------------------------------------


@tracked_task(log_params=True)
def quiet(index: int) -> int:
    """Logs nothing: its run is made by its end, or the flow run's end."""
    return index * 2


@tracked_task
def gives_up(markers: str) -> str:
    """Logs while the server stays down longer than the retry budget."""
    try:
        tracking.log_metric("loss", 1.0)
    except StoreUnavailableError:
        return "gave up"
    return "logged"


@tracked_flow(experiment="restart-ends-first")
def ends_before_the_server_is_back(markers: str) -> tuple[str, list[int], str]:
    where = Path(markers)
    (where / "stop").touch()
    _wait_for(where / "down")
    doubled = [future.result() for future in quiet.map(list(range(2)))]
    outcome = gives_up(markers)
    (where / "tasks-ended").touch()
    _wait_for(where / "up")
    tracking.log_metric("flow_metric", 2.0)
    return _flow_run_id(), doubled, outcome


def test_task_runs_that_end_while_the_server_is_down_are_made_by_the_flow_runs_end(
    restarts: Restarts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their ends give up at once (the tasks succeed, with a warning), and are made, as
    their starts would have made them, when the flow run ends with the server back. A
    logging call that outlasts the retry budget raises in the task's code, and nothing
    of it goes to another run."""
    from tracking.settings import reset_settings

    monkeypatch.setenv("TRACKFLOW_RETRY_TIMEOUT", "1")
    reset_settings()
    restarts.when(stop_on="stop", start_on="tasks-ended", delay=0.5)

    flow_run_id, doubled, outcome = ends_before_the_server_is_back(str(restarts.markers))

    restarts.join()
    assert doubled == [0, 2]
    assert outcome == "gave up"
    client = TrackingClient(restarts.server.url)
    parent, runs = flow_tree(client, flow_run_id)
    assert parent.info.status is RunStatus.FINISHED
    assert parent.data.metrics == {"flow_metric": 2.0}
    children = by_name(runs, parent)
    assert set(children) == {"quiet[0]", "quiet[1]", "gives_up"}, children
    for name, run in children.items():
        assert run.info.status is RunStatus.FINISHED, name
        assert run.data.metrics == {}, name
        assert run.data.tags["prefect.flow_run_id"] == flow_run_id, name
    assert children["quiet[1]"].data.params == {"index": "1"}
    assert children["quiet[1]"].data.tags["prefect.map_index"] == "1"
    everything = client.search_runs([parent.info.experiment_id])
    assert len(everything) == 1 + len(runs)
