"""The fluent API on a real SQLite store: runs, nesting, experiments, logging, isolation."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import tracking
from tracking import errors, fluent
from tracking.client import TrackingClient
from tracking.entities import LifecycleStage, Run, RunStatus
from tracking.settings import reset_settings


@pytest.fixture
def uri(fluent_uri: str) -> str:
    """The fluent API pointed at a fresh SQLite file, with fresh fluent state."""
    return fluent_uri


@pytest.fixture
def client(uri: str) -> TrackingClient:
    return TrackingClient(uri)


def _depth_chain(depth: int) -> list[tracking.ActiveRun]:
    runs = [tracking.start_run(run_name="level-0")]
    for level in range(1, depth + 1):
        runs.append(tracking.start_run(run_name=f"level-{level}", nested=True))
    return runs


class TestPublicApi:
    def test_all_is_sorted_and_resolves(self) -> None:
        assert tracking.__all__ == sorted(tracking.__all__, key=lambda n: (not n[0].isupper(), n))
        for name in tracking.__all__:
            assert getattr(tracking, name) is not None, name

    def test_every_error_class_is_exported(self) -> None:
        classes = [n for n in errors.__all__ if isinstance(getattr(errors, n), type)]
        assert classes
        assert set(classes) <= set(tracking.__all__)

    def test_mlflow_names_are_exported(self) -> None:
        names = {
            "set_tracking_uri",
            "get_tracking_uri",
            "set_experiment",
            "start_run",
            "active_run",
            "last_active_run",
            "end_run",
            "log_param",
            "log_params",
            "log_metric",
            "log_metrics",
            "set_tag",
            "set_tags",
            "delete_tag",
            "log_artifact",
            "log_artifacts",
            "log_text",
            "log_dict",
            "get_run",
            "search_runs",
            "get_artifact_uri",
            "TrackingClient",
            "run_id_for",
        }
        assert names <= set(tracking.__all__)

    def test_import_is_light(self) -> None:
        code = (
            "import sys, json, tracking\n"
            "heavy = ('sqlalchemy', 'alembic', 'fastapi', 'uvicorn', 'airflow', 'prefect',"
            " 'fsspec', 'pandas')\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert json.loads(out.stdout) == []

    def test_import_changes_no_process_state(self) -> None:
        code = (
            "import signal, sys, threading\n"
            "hook, term = sys.excepthook, signal.getsignal(signal.SIGTERM)\n"
            "import tracking\n"
            "assert sys.excepthook is hook and signal.getsignal(signal.SIGTERM) is term\n"
            "assert threading.active_count() == 1\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class TestStartRun:
    def test_returns_an_active_run_that_is_a_run(self, client: TrackingClient) -> None:
        run = tracking.start_run(
            run_name="baseline", tags={"team": "ml", "n": 3}, description="first try"
        )
        assert isinstance(run, tracking.ActiveRun)
        assert isinstance(run, Run)
        assert run.info.run_name == "baseline"
        assert run.info.status is RunStatus.RUNNING
        assert run.info.experiment_id == "0"
        assert run.data.tags["team"] == "ml"
        stored = client.get_run(run.info.run_id)
        assert stored.info.status is RunStatus.RUNNING
        assert stored.data.tags["n"] == "3"
        assert stored.data.tags["mlflow.note.content"] == "first try"
        assert stored.data.tags["mlflow.source.type"] == "LOCAL"
        assert "mlflow.user" in stored.data.tags
        assert tracking.active_run() is run

    def test_with_block_ends_finished(self, client: TrackingClient) -> None:
        with tracking.start_run() as run:
            assert tracking.active_run() is run
        assert tracking.active_run() is None
        info = client.get_run(run.info.run_id).info
        assert info.status is RunStatus.FINISHED
        assert info.end_time is not None
        assert info.end_time >= (info.start_time or 0)

    @pytest.mark.parametrize(
        ("exc", "status"),
        [
            pytest.param(RuntimeError("boom"), RunStatus.FAILED, id="exception-failed"),
            pytest.param(KeyboardInterrupt(), RunStatus.KILLED, id="keyboard-interrupt-killed"),
            pytest.param(SystemExit(0), RunStatus.FINISHED, id="exit-0-finished"),
            pytest.param(SystemExit(None), RunStatus.FINISHED, id="exit-none-finished"),
            pytest.param(SystemExit(2), RunStatus.FAILED, id="exit-2-failed"),
        ],
    )
    def test_with_block_status_on_exceptions(
        self, client: TrackingClient, exc: BaseException, status: RunStatus
    ) -> None:
        with pytest.raises(type(exc)), tracking.start_run() as run:
            raise exc
        assert client.get_run(run.info.run_id).info.status is status
        assert tracking.active_run() is None

    def test_second_top_level_run_is_refused(self, client: TrackingClient) -> None:
        with tracking.start_run() as run:
            with pytest.raises(errors.InvalidStateError, match="nested=True") as caught:
                tracking.start_run()
            assert run.info.run_id in str(caught.value)
            assert "already active" in str(caught.value)
            assert tracking.active_run() is run
        assert len(tracking.search_runs()) == 1

    def test_end_run_without_active_run_is_a_noop(self, uri: str) -> None:
        tracking.end_run()
        tracking.end_run("KILLED")
        assert tracking.active_run() is None

    def test_end_run_with_status(self, client: TrackingClient) -> None:
        run = tracking.start_run()
        tracking.end_run(status="killed")
        assert client.get_run(run.info.run_id).info.status is RunStatus.KILLED
        assert tracking.active_run() is None

    @pytest.mark.parametrize("status", ["RUNNING", "SCHEDULED", "bogus"])
    def test_end_run_refuses_non_final_status(self, uri: str, status: str) -> None:
        run = tracking.start_run()
        with pytest.raises(errors.InvalidParameterError):
            tracking.end_run(status)
        assert tracking.active_run() is run
        tracking.end_run()

    def test_last_active_run(self, client: TrackingClient) -> None:
        assert tracking.last_active_run() is None
        with tracking.start_run() as run:
            assert tracking.last_active_run() is run
            tracking.log_param("p", 1)
        last = tracking.last_active_run()
        assert last is not None
        assert last.info.run_id == run.info.run_id
        assert last.info.status is RunStatus.FINISHED
        assert last.data.params == {"p": "1"}

    def test_unknown_experiment_id(self, uri: str) -> None:
        with pytest.raises(errors.ExperimentNotFoundError):
            tracking.start_run(experiment_id="12345")
        assert tracking.active_run() is None

    def test_ended_run_is_no_longer_heartbeat_candidate(self, uri: str) -> None:
        from tracking import _run_registry

        with tracking.start_run():
            assert len(_run_registry.snapshot()) == 1
        assert _run_registry.snapshot() == []


class TestNesting:
    @pytest.mark.parametrize("depth", [1, 2, 5], ids=lambda d: f"depth-{d}")
    def test_chain_of_nested_runs(self, client: TrackingClient, depth: int) -> None:
        runs = _depth_chain(depth)
        assert tracking.active_run() is runs[-1]
        for parent, child in itertools.pairwise(runs):
            assert child.info.parent_run_id == parent.info.run_id
            stored = client.get_run(child.info.run_id)
            assert stored.info.parent_run_id == parent.info.run_id
            assert stored.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert runs[0].info.parent_run_id is None
        subtree = client.get_subtree(runs[0].info.run_id)
        assert [r.info.run_id for r in subtree] == [r.info.run_id for r in runs[1:]]
        for run in reversed(runs):
            assert tracking.active_run() is run
            tracking.end_run()
        assert tracking.active_run() is None
        assert {client.get_run(r.info.run_id).info.status for r in runs} == {RunStatus.FINISHED}

    def test_with_blocks_restore_the_outer_run(self, uri: str) -> None:
        with tracking.start_run() as outer:
            with tracking.start_run(nested=True) as inner:
                assert tracking.active_run() is inner
            assert tracking.active_run() is outer
        assert tracking.active_run() is None

    def test_leaving_outer_block_ends_open_children(self, client: TrackingClient) -> None:
        started: list[tracking.ActiveRun] = []

        def fail_with_open_children() -> None:
            with tracking.start_run() as outer:
                started.extend(
                    [outer, tracking.start_run(nested=True), tracking.start_run(nested=True)]
                )
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            fail_with_open_children()
        assert tracking.active_run() is None
        assert len(started) == 3
        for run in started:
            assert client.get_run(run.info.run_id).info.status is RunStatus.FAILED

    def test_explicit_parent_run_id(self, client: TrackingClient) -> None:
        parent = client.create_run("0", run_name="from-another-process")
        with tracking.start_run(parent_run_id=parent.info.run_id) as child:
            assert child.info.parent_run_id == parent.info.run_id
            with tracking.start_run(nested=True) as grandchild:
                assert grandchild.info.parent_run_id == child.info.run_id
        assert [r.info.run_id for r in client.get_subtree(parent.info.run_id)] == [
            child.info.run_id,
            grandchild.info.run_id,
        ]

    def test_parent_run_id_must_match_the_active_run(self, client: TrackingClient) -> None:
        other = client.create_run("0")
        with tracking.start_run() as run:
            with pytest.raises(errors.InvalidStateError, match=other.info.run_id):
                tracking.start_run(nested=True, parent_run_id=other.info.run_id)
            with tracking.start_run(nested=True, parent_run_id=run.info.run_id) as child:
                assert child.info.parent_run_id == run.info.run_id

    def test_unknown_parent(self, uri: str) -> None:
        with pytest.raises(errors.RunNotFoundError):
            tracking.start_run(parent_run_id="f" * 32)
        assert tracking.active_run() is None

    def test_nested_without_active_run_is_top_level(self, uri: str) -> None:
        with tracking.start_run(nested=True) as run:
            assert run.info.parent_run_id is None


class TestExperiments:
    def test_set_experiment_creates_then_finds(self, client: TrackingClient) -> None:
        created = tracking.set_experiment("churn")
        assert created.name == "churn"
        assert client.get_experiment_by_name("churn") is not None
        found = tracking.set_experiment(experiment_name="churn")
        assert found.experiment_id == created.experiment_id
        with tracking.start_run() as run:
            assert run.info.experiment_id == created.experiment_id

    def test_set_experiment_by_id(self, client: TrackingClient) -> None:
        exp_id = client.create_experiment("by-id")
        assert tracking.set_experiment(experiment_id=exp_id).name == "by-id"
        with tracking.start_run() as run:
            assert run.info.experiment_id == exp_id

    @pytest.mark.parametrize(
        "kwargs", [{}, {"experiment_name": "a", "experiment_id": "0"}], ids=["neither", "both"]
    )
    def test_set_experiment_needs_exactly_one(self, uri: str, kwargs: dict[str, Any]) -> None:
        with pytest.raises(errors.InvalidParameterError, match="exactly one"):
            tracking.set_experiment(**kwargs)

    @pytest.mark.parametrize("by", ["name", "id"])
    def test_deleted_experiment_is_refused(self, client: TrackingClient, by: str) -> None:
        exp_id = client.create_experiment("gone")
        client.delete_experiment(exp_id)
        kwargs = {"experiment_name": "gone"} if by == "name" else {"experiment_id": exp_id}
        with pytest.raises(errors.InvalidStateError, match="deleted"):
            tracking.set_experiment(**kwargs)

    def test_unknown_experiment_id(self, uri: str) -> None:
        with pytest.raises(errors.ExperimentNotFoundError):
            tracking.set_experiment(experiment_id="999")

    def test_lost_creation_race_fetches_the_winner(
        self, client: TrackingClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        real = TrackingClient.get_experiment_by_name
        calls: list[str] = []

        def first_lookup_misses(self: TrackingClient, name: str) -> Any:
            calls.append(name)
            if len(calls) == 1:
                client.create_experiment(name)  # another process wins the race
                return None
            return real(self, name)

        monkeypatch.setattr(TrackingClient, "get_experiment_by_name", first_lookup_misses)
        experiment = tracking.set_experiment("raced")
        assert experiment.name == "raced"
        assert len(calls) == 2

    def test_default_experiment(self, uri: str) -> None:
        with tracking.start_run() as run:
            assert run.info.experiment_id == "0"

    def test_experiment_name_from_environment(
        self, client: TrackingClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TRACKFLOW_EXPERIMENT_NAME", "from-env")
        reset_settings()
        with tracking.start_run() as run:
            pass
        experiment = client.get_experiment_by_name("from-env")
        assert experiment is not None
        assert run.info.experiment_id == experiment.experiment_id
        tracking.set_experiment("explicit")
        with tracking.start_run() as run:
            assert run.info.experiment_id != experiment.experiment_id

    def test_experiment_resolved_once(
        self, client: TrackingClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TRACKFLOW_EXPERIMENT_NAME", "cached")
        reset_settings()
        lookups: list[str] = []
        real = TrackingClient.get_experiment_by_name

        def counting(self: TrackingClient, name: str) -> Any:
            lookups.append(name)
            return real(self, name)

        monkeypatch.setattr(TrackingClient, "get_experiment_by_name", counting)
        for _ in range(3):
            with tracking.start_run():
                pass
        assert lookups == ["cached"]

    def test_explicit_experiment_id_wins(self, client: TrackingClient) -> None:
        tracking.set_experiment("current")
        other = client.create_experiment("other")
        with tracking.start_run(experiment_id=other) as run:
            assert run.info.experiment_id == other

    def test_name_is_resolved_again_in_a_new_store(self, uri: str, tmp_path: Path) -> None:
        first = tracking.set_experiment("moving")
        second_uri = f"sqlite:///{tmp_path / 'second.db'}"
        TrackingClient(second_uri).create_experiment("padding")  # ids differ between stores
        tracking.set_tracking_uri(second_uri)
        assert tracking.get_tracking_uri() == second_uri
        with tracking.start_run() as run:
            pass
        second = TrackingClient(second_uri).get_experiment_by_name("moving")
        assert second is not None
        assert run.info.experiment_id == second.experiment_id != first.experiment_id


class TestTrackingUri:
    def test_from_environment(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        fluent._reset_for_tests()
        env_uri = f"sqlite:///{tmp_path / 'env.db'}"
        monkeypatch.setenv("TRACKFLOW_TRACKING_URI", env_uri)
        reset_settings()
        try:
            assert tracking.get_tracking_uri() == env_uri
            tracking.set_tracking_uri(tmp_path / "ignored")
            assert tracking.get_tracking_uri() == str(tmp_path / "ignored")
        finally:
            fluent._reset_for_tests()

    def test_active_run_keeps_its_store(self, client: TrackingClient, tmp_path: Path) -> None:
        with tracking.start_run() as run:
            tracking.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
            tracking.log_param("p", "v")
            with tracking.start_run(nested=True) as child:
                tracking.log_param("q", "w")
        assert client.get_run(run.info.run_id).data.params == {"p": "v"}
        assert client.get_run(child.info.run_id).info.parent_run_id == run.info.run_id


class TestResume:
    def test_resume_an_ended_run(self, client: TrackingClient) -> None:
        with tracking.start_run(run_name="first") as run:
            tracking.log_param("p", 1)
        with tracking.start_run(
            run_id=run.info.run_id, run_name="second", tags={"resumed": True}
        ) as resumed:
            assert resumed.info.run_id == run.info.run_id
            assert resumed.info.status is RunStatus.RUNNING
            assert resumed.data.params == {"p": "1"}
            assert resumed.data.tags["resumed"] == "True"
            stored = client.get_run(run.info.run_id)
            assert stored.info.status is RunStatus.RUNNING
            assert stored.info.run_name == "second"
            tracking.log_metric("m", 2.0)
        stored = client.get_run(run.info.run_id)
        assert stored.info.status is RunStatus.FINISHED
        assert stored.data.metrics == {"m": 2.0}

    def test_run_id_for_is_idempotent(self, client: TrackingClient) -> None:
        exp = tracking.set_experiment("pipeline")
        run_id = tracking.run_id_for("dag", "2026-11-26", "train")
        with tracking.start_run(run_id=run_id, run_name="train") as first:
            tracking.log_param("attempt", 1)
        assert first.info.run_id == run_id
        assert first.info.experiment_id == exp.experiment_id
        with tracking.start_run(run_id=run_id, experiment_id=exp.experiment_id) as second:
            tracking.log_metric("retried", 1.0)
        assert second.info.run_id == run_id
        runs = tracking.search_runs()
        assert [r.info.run_id for r in runs] == [run_id]
        assert runs[0].data.params == {"attempt": "1"}
        assert runs[0].data.metrics == {"retried": 1.0}
        assert runs[0].info.status is RunStatus.FINISHED

    def test_resume_finds_the_run_in_any_experiment(self, client: TrackingClient) -> None:
        other = client.create_experiment("other")
        created = client.create_run(other)
        tracking.set_experiment("current")
        with tracking.start_run(run_id=created.info.run_id) as run:
            assert run.info.experiment_id == other

    def test_resume_in_the_wrong_experiment(self, client: TrackingClient) -> None:
        other = client.create_experiment("other")
        created = client.create_run(other)
        with pytest.raises(errors.InvalidParameterError, match="belongs to experiment"):
            tracking.start_run(run_id=created.info.run_id, experiment_id="0")
        assert tracking.active_run() is None

    def test_new_run_with_id_and_parent(self, client: TrackingClient) -> None:
        parent = client.create_run("0")
        run_id = tracking.run_id_for("child")
        with tracking.start_run(run_id=run_id, parent_run_id=parent.info.run_id) as run:
            assert run.info.parent_run_id == parent.info.run_id

    def test_resuming_an_active_run_is_refused(self, uri: str) -> None:
        with tracking.start_run() as run:
            with pytest.raises(errors.InvalidStateError, match="already active"):
                tracking.start_run(run_id=run.info.run_id, nested=True)
            assert tracking.active_run() is run

    def test_resuming_a_deleted_run_is_refused(self, client: TrackingClient) -> None:
        run = client.create_run("0")
        client.delete_run(run.info.run_id)
        with pytest.raises(errors.InvalidStateError):
            tracking.start_run(run_id=run.info.run_id)
        assert tracking.active_run() is None


class TestLogging:
    def test_values_land_on_the_active_run(self, client: TrackingClient) -> None:
        with tracking.start_run() as run:
            assert tracking.log_param("lr", 0.1) == 0.1
            tracking.log_params({"depth": 6, "loss": "l2"})
            tracking.log_metric("auc", 0.5, step=1, timestamp=1_000)
            tracking.log_metric("auc", 0.7, step=2)
            tracking.log_metrics({"f1": 0.4, "acc": 0.8}, step=3)
            tracking.set_tag("stage", "dev")
            tracking.set_tags({"owner": "me", "doomed": 1})
            tracking.delete_tag("doomed")
        stored = client.get_run(run.info.run_id)
        assert stored.data.params == {"lr": "0.1", "depth": "6", "loss": "l2"}
        assert stored.data.metrics == {"auc": 0.7, "f1": 0.4, "acc": 0.8}
        assert stored.data.tags["stage"] == "dev"
        assert stored.data.tags["owner"] == "me"
        assert "doomed" not in stored.data.tags
        history = client.get_metric_history(run.info.run_id, "auc")
        assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.7)]
        assert history[0].timestamp == 1_000
        assert [m.step for m in client.get_metric_history(run.info.run_id, "f1")] == [3]

    def test_logging_goes_to_the_innermost_run(self, client: TrackingClient) -> None:
        with tracking.start_run() as outer:
            tracking.log_param("where", "outer")
            with tracking.start_run(nested=True) as inner:
                tracking.log_param("where", "inner")
        assert client.get_run(outer.info.run_id).data.params == {"where": "outer"}
        assert client.get_run(inner.info.run_id).data.params == {"where": "inner"}

    def test_batches_go_through_one_log_batch(
        self, uri: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        calls: list[tuple[int, int, int]] = []
        real = TrackingClient.log_batch

        def counting(
            self: TrackingClient, run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()
        ) -> None:
            calls.append((len(metrics), len(params), len(tags)))
            real(self, run_id, metrics, params, tags)

        monkeypatch.setattr(TrackingClient, "log_batch", counting)
        with tracking.start_run():
            tracking.log_params({"a": 1, "b": 2})
            tracking.log_metrics({"m": 1.0, "n": 2.0, "o": 3.0})
            tracking.set_tags({"t": "x"})
        assert calls == [(0, 2, 0), (3, 0, 0), (0, 0, 1)]

    def test_large_inputs_are_split_into_batches(self, client: TrackingClient) -> None:
        params = {f"p{i}": i for i in range(250)}
        with tracking.start_run() as run:
            tracking.log_params(params)
            tracking.log_metrics({f"m{i}": float(i) for i in range(1500)})
        stored = client.get_run(run.info.run_id)
        assert len(stored.data.params) == 250
        assert len(stored.data.metrics) == 1500

    def test_param_cannot_change(self, uri: str) -> None:
        with tracking.start_run():
            tracking.log_param("p", 1)
            with pytest.raises(errors.InvalidParameterError, match="Changing param values"):
                tracking.log_param("p", 2)

    @pytest.mark.parametrize(
        "log",
        [
            pytest.param(lambda: tracking.log_param("p", 1), id="log_param"),
            pytest.param(lambda: tracking.log_params({"p": 1}), id="log_params"),
            pytest.param(lambda: tracking.log_metric("m", 1.0), id="log_metric"),
            pytest.param(lambda: tracking.log_metrics({"m": 1.0}), id="log_metrics"),
            pytest.param(lambda: tracking.set_tag("t", 1), id="set_tag"),
            pytest.param(lambda: tracking.set_tags({"t": 1}), id="set_tags"),
            pytest.param(lambda: tracking.get_artifact_uri(), id="get_artifact_uri"),
        ],
    )
    def test_logging_without_active_run_starts_one(self, client: TrackingClient, log: Any) -> None:
        # MLflow does the same: the run stays active until end_run() or exit.
        assert tracking.active_run() is None
        log()
        run = tracking.active_run()
        assert run is not None
        assert client.get_run(run.info.run_id).info.status is RunStatus.RUNNING
        tracking.end_run()
        assert client.get_run(run.info.run_id).info.status is RunStatus.FINISHED


class TestSearchAndGet:
    def test_search_runs_defaults_to_current_experiment(self, client: TrackingClient) -> None:
        with tracking.start_run():
            pass
        tracking.set_experiment("search")
        for i in range(3):
            with tracking.start_run(run_name=f"r{i}"):
                tracking.log_metric("score", float(i))
        runs = tracking.search_runs()
        assert isinstance(runs, list)
        assert len(runs) == 3
        assert all(isinstance(r, Run) for r in runs)
        best = tracking.search_runs(
            filter_string="metrics.score >= 1", order_by=["metrics.score DESC"]
        )
        assert [r.info.run_name for r in best] == ["r2", "r1"]
        assert len(tracking.search_runs(max_results=2)) == 2
        assert len(tracking.search_runs(experiment_ids=["0"])) == 1
        assert len(tracking.search_runs(experiment_ids="0")) == 1

    def test_search_deleted_runs(self, client: TrackingClient) -> None:
        with tracking.start_run() as run:
            pass
        client.delete_run(run.info.run_id)
        assert tracking.search_runs() == []
        deleted = tracking.search_runs(run_view_type=tracking.ViewType.DELETED_ONLY)
        assert [r.info.lifecycle_stage for r in deleted] == [LifecycleStage.DELETED]

    def test_get_run(self, uri: str) -> None:
        with tracking.start_run() as run:
            tracking.log_param("p", "v")
        assert tracking.get_run(run.info.run_id).data.params == {"p": "v"}
        with pytest.raises(errors.RunNotFoundError):
            tracking.get_run("0" * 32)


class TestIsolation:
    def test_threads_have_their_own_runs(self, client: TrackingClient) -> None:
        barrier = threading.Barrier(2, timeout=30)
        seen: dict[str, tuple[str, str | None]] = {}
        failures: list[BaseException] = []

        def work(name: str) -> None:
            try:
                assert tracking.active_run() is None
                with tracking.start_run(run_name=name) as run:
                    barrier.wait()  # both runs are active at once
                    tracking.log_param("thread", name)
                    active = tracking.active_run()
                    seen[name] = (run.info.run_id, active.info.run_id if active else None)
                    barrier.wait()
            except BaseException as exc:
                failures.append(exc)

        with tracking.start_run() as main_run:
            threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert tracking.active_run() is main_run
        assert not failures
        assert seen["a"][0] == seen["a"][1] != seen["b"][0] == seen["b"][1]
        for name, (run_id, _) in seen.items():
            stored = client.get_run(run_id)
            assert stored.data.params == {"thread": name}
            assert stored.info.parent_run_id is None
            assert stored.info.status is RunStatus.FINISHED

    def test_thread_nests_explicitly_under_main_run(self, client: TrackingClient) -> None:
        children: list[str] = []
        with tracking.start_run() as parent:

            def work() -> None:
                with tracking.start_run(parent_run_id=parent.info.run_id) as child:
                    children.append(child.info.run_id)

            thread = threading.Thread(target=work)
            thread.start()
            thread.join(30)
        assert [r.info.run_id for r in client.get_children(parent.info.run_id)] == children

    def test_asyncio_tasks_have_their_own_runs(self, client: TrackingClient) -> None:
        async def task(name: str) -> tuple[str, str | None]:
            with tracking.start_run(run_name=name) as run:
                await asyncio.sleep(0.01)  # the other task runs meanwhile
                tracking.log_param("task", name)
                await asyncio.sleep(0.01)
                active = tracking.active_run()
                return run.info.run_id, active.info.run_id if active else None

        async def main() -> list[tuple[str, str | None]]:
            return list(await asyncio.gather(task("a"), task("b")))

        (a_id, a_seen), (b_id, b_seen) = asyncio.run(main())
        assert a_id == a_seen
        assert b_id == b_seen
        assert a_id != b_id
        assert client.get_run(a_id).data.params == {"task": "a"}
        assert client.get_run(b_id).data.params == {"task": "b"}
        assert tracking.active_run() is None

    def test_task_sees_runs_active_when_created(self, client: TrackingClient) -> None:
        async def child_task() -> tuple[str | None, str]:
            active = tracking.active_run()
            with tracking.start_run(nested=True) as child:
                return (active.info.run_id if active else None), child.info.run_id

        async def main() -> tuple[str, str | None, str]:
            with tracking.start_run() as parent:
                seen, child_id = await asyncio.create_task(child_task())
                assert tracking.active_run() is parent
                return parent.info.run_id, seen, child_id

        parent_id, seen, child_id = asyncio.run(main())
        assert seen == parent_id
        assert client.get_run(child_id).info.parent_run_id == parent_id
        assert client.get_run(child_id).info.status is RunStatus.FINISHED


class TestArtifacts:
    def test_get_artifact_uri(self, uri: str) -> None:
        with tracking.start_run() as run:
            root = tracking.get_artifact_uri()
            assert root == run.info.artifact_uri
            assert run.info.run_id in root
            model = tracking.get_artifact_uri("models/model.pkl")
            assert model.startswith(root)
            assert model.replace("\\", "/").endswith("/models/model.pkl")
            with pytest.raises(errors.InvalidParameterError):
                tracking.get_artifact_uri("../escape")

    def test_log_artifacts_on_the_active_run(self, client: TrackingClient, tmp_path: Path) -> None:
        pytest.importorskip("tracking.artifacts")
        source = tmp_path / "report.txt"
        source.write_text("hello")
        folder = tmp_path / "plots"
        folder.mkdir()
        (folder / "loss.png").write_bytes(b"png")
        with tracking.start_run() as run:
            ref = tracking.log_artifact(source, "reports")
            refs = tracking.log_artifacts(folder, "plots")
            text_ref = tracking.log_text("some text", "notes/readme.md")
            dict_ref = tracking.log_dict({"a": 1}, "config.json")
        assert ref.run_id == run.info.run_id
        assert ref.path == "reports/report.txt"
        assert [r.path for r in refs] == ["plots/loss.png"]
        assert text_ref.path == "notes/readme.md"
        assert dict_ref.path == "config.json"
        listed = {f.path for f in client.list_artifacts(run.info.run_id)}
        assert listed == {"reports", "plots", "notes", "config.json"}
        downloaded = client.download_artifacts(run.info.run_id, "config.json", str(tmp_path / "dl"))
        assert json.loads(Path(downloaded).read_text()) == {"a": 1}
