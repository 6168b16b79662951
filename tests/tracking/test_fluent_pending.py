"""An orchestrator's run that is not made yet (``fluent.attach_pending_run``): a step
that started while the store was away. Its code's fluent calls make it when they first
need it, once for every thread and task of the step, and log there only: never into a
run further out (its flow's) nor the one ``TRACKFLOW_RUN_ID`` names. On a real SQLite
store."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import tracking
from tracking import fluent
from tracking.client import TrackingClient
from tracking.entities import Run, RunStatus
from tracking.errors import StoreUnavailableError


@pytest.fixture
def client(fluent_uri: str) -> TrackingClient:
    return TrackingClient(fluent_uri)


class Maker:
    """A step's run as its start would have made it, counting how often it is asked;
    it raises StoreUnavailableError for the first ``away`` calls (the store is down)."""

    def __init__(self, client: TrackingClient, name: str, away: int = 0, parent: str = "") -> None:
        self.client = client
        self.name = name
        self.run_id = tracking.run_id_for("pending-test", name)
        self.away = away
        self.parent = parent or None
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Run:
        with self._lock:
            self.calls += 1
            if self.calls <= self.away:
                raise StoreUnavailableError("cannot reach the tracking server (test)")
        return self.client.create_run(
            "0", run_name=self.name, run_id=self.run_id, parent_run_id=self.parent
        )


def _points(client: TrackingClient, run_id: str, key: str = "loss") -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


class TestMadeWhenFirstNeeded:
    def test_the_first_log_call_makes_it_and_logs_there_not_into_the_outer_run(
        self, client: TrackingClient
    ) -> None:
        flow = client.create_run("0", run_name="flow")
        outer = fluent.attach_run(flow.info.run_id, client, run=flow)
        maker = Maker(client, "task", parent=flow.info.run_id)
        pending = fluent.attach_pending_run(maker.run_id, maker, client)
        assert maker.calls == 0  # nothing asked of the store yet
        for step in range(3):
            tracking.log_metric("loss", 1.0 / (step + 1), step=step)
        active = tracking.active_run()
        assert active is not None and active.info.run_id == maker.run_id
        assert active.attached
        assert maker.calls == 1
        assert fluent.detach_run(pending) is True
        assert tracking.active_run() is outer
        fluent.detach_run(outer)
        assert _points(client, maker.run_id) == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
        assert _points(client, flow.info.run_id) == []
        made = client.get_run(maker.run_id)
        assert made.info.parent_run_id == flow.info.run_id
        assert made.info.status is RunStatus.RUNNING  # the orchestrator ends it, not us

    def test_while_the_store_is_away_the_call_raises_and_nothing_goes_elsewhere(
        self, client: TrackingClient
    ) -> None:
        flow = client.create_run("0", run_name="flow")
        outer = fluent.attach_run(flow.info.run_id, client, run=flow)
        maker = Maker(client, "task", away=2)
        pending = fluent.attach_pending_run(maker.run_id, maker, client)
        for _ in range(2):
            with pytest.raises(StoreUnavailableError):
                tracking.log_metric("loss", 9.0, step=0)
        tracking.log_metric("loss", 1.0, step=0)  # the store is back
        assert maker.calls == 3
        fluent.detach_run(pending)
        fluent.detach_run(outer)
        assert _points(client, maker.run_id) == [(0, 1.0)]
        assert client.get_run(flow.info.run_id).data.metrics == {}

    def test_one_never_needed_is_never_made(self, client: TrackingClient) -> None:
        maker = Maker(client, "quiet")
        pending = fluent.attach_pending_run(maker.run_id, maker, client)
        assert fluent.detach_run(pending) is True
        assert tracking.active_run() is None
        assert maker.calls == 0

    def test_end_run_takes_it_off_without_making_it(self, client: TrackingClient) -> None:
        maker = Maker(client, "ended")
        fluent.attach_pending_run(maker.run_id, maker, client)
        tracking.end_run()
        assert tracking.active_run() is None
        assert maker.calls == 0

    def test_a_nested_run_goes_under_the_made_run(self, client: TrackingClient) -> None:
        maker = Maker(client, "parent")
        pending = fluent.attach_pending_run(maker.run_id, maker, client)
        with tracking.start_run(run_name="child", nested=True) as child:
            tracking.log_param("where", "child")
        fluent.detach_run(pending)
        stored = client.get_run(child.info.run_id)
        assert stored.info.parent_run_id == maker.run_id
        assert stored.info.status is RunStatus.FINISHED
        assert client.get_run(maker.run_id).info.status is RunStatus.RUNNING

    def test_start_run_inside_the_step_returns_the_steps_run(self, client: TrackingClient) -> None:
        maker = Maker(client, "step")
        pending = fluent.attach_pending_run(maker.run_id, maker, client)
        with tracking.start_run() as run:
            tracking.log_metric("loss", 0.5)
        assert run.info.run_id == maker.run_id
        assert tracking.active_run() is not None  # leaving the block ends nothing
        fluent.detach_run(pending)
        assert _points(client, maker.run_id) == [(0, 0.5)]
        assert client.get_run(maker.run_id).info.status is RunStatus.RUNNING

    def test_the_environment_does_not_override_it(
        self, client: TrackingClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``TRACKFLOW_RUN_ID`` is process-wide (another step's thread may have set it):
        a context with a step's run of its own logs there."""
        other = client.create_run("0", run_name="another step's")
        monkeypatch.setenv("TRACKFLOW_RUN_ID", other.info.run_id)
        maker = Maker(client, "mine")
        pending = fluent.attach_pending_run(maker.run_id, maker, client)
        tracking.log_metric("loss", 2.0)
        with tracking.start_run() as run:
            assert run.info.run_id == maker.run_id
        fluent.detach_run(pending)
        assert _points(client, maker.run_id) == [(0, 2.0)]
        assert client.get_run(other.info.run_id).data.metrics == {}


class TestConcurrency:
    def test_threads_with_the_steps_context_make_it_once(self, client: TrackingClient) -> None:
        """Threads the step starts with its context (``copy_context().run``, as
        ``asyncio.to_thread`` does) all log into the one run, made once."""
        maker = Maker(client, "threaded")
        pending = fluent.attach_pending_run(maker.run_id, maker, client)
        barrier = threading.Barrier(4, timeout=30)
        failures: list[BaseException] = []

        def work(index: int) -> None:
            try:
                barrier.wait()  # all of them ask at once
                tracking.log_metric("loss", float(index), step=index)
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(work, i))
            for i in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not failures
        assert maker.calls == 1
        assert fluent.detach_run(pending) is True
        assert sorted(_points(client, maker.run_id)) == [(i, float(i)) for i in range(4)]

    def test_steps_in_parallel_threads_each_log_into_their_own(
        self, client: TrackingClient
    ) -> None:
        """Mapped task runs in a thread pool, each started while the store was away,
        each with the flow's run below its own (a copy of the flow's context)."""
        flow = client.create_run("0", run_name="flow")
        outer = fluent.attach_run(flow.info.run_id, client, run=flow)
        barrier = threading.Barrier(3, timeout=30)
        makers = [Maker(client, f"task[{i}]", parent=flow.info.run_id) for i in range(3)]
        failures: list[BaseException] = []

        def step(maker: Maker, index: int) -> None:
            try:
                pending = fluent.attach_pending_run(maker.run_id, maker, client)
                barrier.wait()  # every step attached before any logs
                for point in range(3):
                    tracking.log_metric("loss", index + point / 10, step=point)
                    barrier.wait()  # interleaved
                fluent.detach_run(pending)
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(step, m, i))
            for i, m in enumerate(makers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        fluent.detach_run(outer)
        assert not failures
        for index, maker in enumerate(makers):
            assert _points(client, maker.run_id) == [(p, index + p / 10) for p in range(3)]
        assert client.get_run(flow.info.run_id).data.metrics == {}

    def test_asyncio_tasks_in_one_thread_each_log_into_their_own(
        self, client: TrackingClient
    ) -> None:
        makers = [Maker(client, f"async[{i}]") for i in range(2)]

        async def step(maker: Maker, value: float) -> str:
            pending = fluent.attach_pending_run(maker.run_id, maker, client)
            try:
                for point in range(3):
                    tracking.log_metric("loss", value + point, step=point)
                    await asyncio.sleep(0.01)  # the other step logs meanwhile
                active = tracking.active_run()
                assert active is not None
                return active.info.run_id
            finally:
                fluent.detach_run(pending)

        async def main() -> list[str]:
            return list(await asyncio.gather(step(makers[0], 0.0), step(makers[1], 10.0)))

        seen = asyncio.run(main())
        assert seen == [m.run_id for m in makers]
        assert _points(client, makers[0].run_id) == [(p, float(p)) for p in range(3)]
        assert _points(client, makers[1].run_id) == [(p, 10.0 + p) for p in range(3)]
        assert tracking.active_run() is None


class TestStepEnvironment:
    """``TRACKFLOW_RUN_ID`` for the processes a step starts, with steps side by side in
    threads entering and leaving it in any order."""

    @pytest.fixture(autouse=True)
    def _clean(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("TRACKFLOW_RUN_ID", "MLFLOW_RUN_ID", "MLFLOW_TRACKING_URI"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("TRACKFLOW_TRACKING_URI", "sqlite:///before.db")

    @pytest.mark.parametrize(
        "order", [("flow", "a", "b"), ("b", "a", "flow"), ("a", "flow", "b")], ids=str
    )
    def test_the_newest_open_step_holds_it_and_the_last_to_leave_restores_it(
        self, order: tuple[str, str, str]
    ) -> None:
        import os

        from tracking.connection import StoreConfig, enter_step_env, leave_step_env

        config = StoreConfig("http://127.0.0.1:1")
        saved = {name: enter_step_env(f"run-{name}", config) for name in ("flow", "a", "b")}
        assert os.environ["TRACKFLOW_RUN_ID"] == "run-b"
        open_ = ["flow", "a", "b"]
        for name in order:
            leave_step_env(saved[name])
            open_.remove(name)
            if open_:
                assert os.environ["TRACKFLOW_RUN_ID"] == f"run-{open_[-1]}", (name, open_)
                assert os.environ["MLFLOW_RUN_ID"] == f"run-{open_[-1]}"
        assert "TRACKFLOW_RUN_ID" not in os.environ
        assert "MLFLOW_RUN_ID" not in os.environ
        assert "MLFLOW_TRACKING_URI" not in os.environ
        assert os.environ["TRACKFLOW_TRACKING_URI"] == "sqlite:///before.db"
        leave_step_env(saved["a"])  # twice: nothing more
        assert os.environ["TRACKFLOW_TRACKING_URI"] == "sqlite:///before.db"
