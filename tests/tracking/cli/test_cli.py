"""The ``trackflow`` command: runs, experiments, gc, db current and the idempotent demo."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import tracking
from tracking import TrackingClient, fluent
from tracking.cli import cli
from tracking.store.registry import clear_store_cache


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory whose ./trackflow.db is the store every command uses."""
    monkeypatch.chdir(tmp_path)
    fluent._reset_for_tests()
    yield tmp_path
    fluent._reset_for_tests()
    clear_store_cache()


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def client(workdir: Path) -> TrackingClient:
    return TrackingClient(f"sqlite:///{workdir}/trackflow.db", str(workdir / "artifacts"))


class TestRuns:
    def test_list_describe_delete_restore(self, client: TrackingClient) -> None:
        exp = client.create_experiment("cli")
        first = client.create_run(exp, run_name="first").info.run_id
        client.log_param(first, "lr", "0.1")
        second = client.create_run(exp, run_name="second").info.run_id
        listed = json.loads(invoke("runs", "list", "--experiment-id", exp, "--json").output)
        assert {r["run_id"] for r in listed} == {first, second}
        table = invoke("runs", "list", "--experiment-id", exp).output
        assert "first" in table and "second" in table
        described = json.loads(invoke("runs", "describe", first).output)
        assert described["params"] == {"lr": "0.1"}
        assert described["run_name"] == "first"
        assert "deleted run" in invoke("runs", "delete", second).output
        active = json.loads(invoke("runs", "list", "--experiment-id", exp, "--json").output)
        assert [r["run_id"] for r in active] == [first]
        invoke("runs", "restore", second)
        assert client.get_run(second).info.lifecycle_stage.value == "active"

    def test_unknown_run_is_a_clear_error(self, workdir: Path) -> None:
        result = CliRunner().invoke(cli, ["runs", "describe", "0" * 32])
        assert result.exit_code != 0
        assert "not found" in str(result.exception)


class TestExperiments:
    def test_create_list_rename_delete_restore(self, client: TrackingClient) -> None:
        out = invoke("experiments", "create", "churn").output
        exp_id = out.strip().rsplit(" ", 1)[-1]
        assert client.get_experiment(exp_id).name == "churn"
        invoke("experiments", "rename", exp_id, "churn-v2")
        listed = json.loads(invoke("experiments", "list", "--json").output)
        assert {"churn-v2", "Default"} == {e["name"] for e in listed}
        invoke("experiments", "delete", exp_id)
        deleted = json.loads(
            invoke("experiments", "list", "--view", "deleted_only", "--json").output
        )
        assert [e["name"] for e in deleted] == ["churn-v2"]
        invoke("experiments", "restore", exp_id)
        assert client.get_experiment(exp_id).lifecycle_stage.value == "active"

    def test_unknown_experiment_is_a_clear_error(self, workdir: Path) -> None:
        result = CliRunner().invoke(cli, ["experiments", "delete", "99"])
        assert result.exit_code != 0
        assert "99" in str(result.exception)


class TestGc:
    def test_dry_run_then_removal_with_artifacts(
        self, client: TrackingClient, tmp_path: Path
    ) -> None:
        exp = client.create_experiment("gc")
        keep = client.create_run(exp).info.run_id
        gone = client.create_run(exp).info.run_id
        client.log_metric(gone, "m", 1.0)
        ref = client.log_text(gone, "bye", "note.txt")
        client.delete_run(gone)
        dry = json.loads(invoke("gc", "--dry-run", "--json").output)
        assert dry["runs"] == [gone]
        assert client.get_run(gone).info.run_id == gone
        assert Path(ref.uri).exists()
        done = json.loads(invoke("gc", "--json").output)
        assert done["runs"] == [gone]
        with pytest.raises(tracking.RunNotFoundError):
            client.get_run(gone)
        assert not Path(ref.uri).exists()
        assert client.get_run(keep).info.run_id == keep

    def test_older_than_keeps_recent_deletions(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.delete_run(run_id)
        assert json.loads(invoke("gc", "--older-than", "1d", "--json").output)["runs"] == []
        assert client.get_run(run_id).info.run_id == run_id

    def test_deleted_experiment_goes_with_its_runs(self, client: TrackingClient) -> None:
        exp = client.create_experiment("gone")
        run_id = client.create_run(exp).info.run_id
        client.delete_experiment(exp)
        done = json.loads(invoke("gc", "--json").output)
        assert done == {
            "dry_run": False,
            "runs": [run_id],
            "experiments": [exp],
            "artifacts_left": [],
        }
        assert client.get_experiment_by_name("gone") is None

    def test_bad_duration_is_a_usage_error(self, workdir: Path) -> None:
        result = CliRunner().invoke(cli, ["gc", "--older-than", "soon"])
        assert result.exit_code == 2
        assert "expected a duration" in result.output


class TestDbCurrent:
    def test_reports_current_and_missing(self, workdir: Path) -> None:
        empty = f"sqlite:///{workdir}/empty.db"
        result = CliRunner().invoke(cli, ["db", "current", "--backend-store-uri", empty])
        assert result.exit_code == 1
        assert "no trackflow schema yet" in result.output
        invoke("db", "upgrade", "--backend-store-uri", empty)
        assert "(current)" in invoke("db", "current", "--backend-store-uri", empty).output


class TestDemo:
    def test_second_demo_logs_nothing_again(self, workdir: Path) -> None:
        first = invoke("demo", "--trials", "3", "--epochs", "2")
        assert "best trial" in first.output
        second = invoke("demo", "--trials", "3", "--epochs", "2")
        assert "already in 'demo-sweep'" in second.output
        client = TrackingClient(f"sqlite:///{workdir}/trackflow.db")
        exp = client.get_experiment_by_name("demo-sweep")
        assert exp is not None
        runs = client.search_runs([exp.experiment_id])
        assert len(runs) == 4  # the sweep and its three trials, once
        trial = next(r for r in runs if r.info.run_name == "trial-0")
        assert len(client.get_metric_history(trial.info.run_id, "acc")) == 2


class TestRunsIssue21:
    """``runs tree``, a missing experiment, short ids, whole ids in narrow terminals."""

    def _pipeline(self, client: TrackingClient) -> tuple[str, dict[str, str]]:
        from tracking.entities import RunStatus
        from tracking.pipelines import PipelineRun, PipelineTracker, Step

        tracker = PipelineTracker(client, "cli-pipelines")
        pipeline = PipelineRun("airflow", "retrain", "scheduled__2026-11-05")
        tracker.pipeline_started(pipeline, run_name="retrain 2026-11-05")
        ids = {}
        for task in ("extract", "train"):
            tries = 2 if task == "train" else 1
            for attempt in range(1, tries + 1):
                step = Step(pipeline, task, attempt=attempt)
                tracker.step_running(step, tags={"airflow.task_id": task})
                tracker.step_ended(
                    step,
                    RunStatus.FAILED if attempt < tries else RunStatus.FINISHED,
                    retrying=attempt < tries,
                )
            ids[task] = step.run_id
        tracker.pipeline_ended(pipeline, RunStatus.FINISHED)
        return pipeline.run_id, ids

    def test_tree_shows_states_durations_tries_and_whole_ids(self, client: TrackingClient) -> None:
        root, ids = self._pipeline(client)
        result = CliRunner(env={"COLUMNS": "60"}).invoke(cli, ["runs", "tree", root[:8]])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0].startswith("retrain 2026-11-05  FINISHED")
        assert any("extract  FINISHED" in line for line in lines[1:])
        train = next(line for line in result.output.split("\n") if "train  FINISHED" in line)
        assert "2 tries" in train
        assert ids["train"] in result.output.replace("\n", "")
        as_json = json.loads(invoke("runs", "tree", root, "--json").output)
        assert as_json[0]["run_name"] == "retrain 2026-11-05"
        assert {r["run_id"] for r in as_json} == {root, *ids.values()}

    def test_missing_experiment_is_an_error(self, workdir: Path) -> None:
        result = CliRunner().invoke(cli, ["runs", "list", "--experiment-id", "99"])
        assert result.exit_code == 1
        assert "No experiment with id '99'" in str(result.exception)

    def test_missing_experiment_exits_1_from_the_console_script(self, workdir: Path) -> None:
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-m", "tracking.cli", "runs", "list", "--experiment-id", "99"],
            capture_output=True,
            text=True,
            cwd=workdir,
        )
        assert done.returncode == 1
        assert "Error: No experiment with id '99' exists" in done.stderr
        assert done.stdout == ""

    def test_describe_takes_a_unique_prefix(self, client: TrackingClient) -> None:
        exp = client.create_experiment("prefix")
        run = client.create_run(exp, run_name="short").info.run_id
        described = json.loads(invoke("runs", "describe", run[:8]).output)
        assert described["run_id"] == run
        missing = CliRunner().invoke(cli, ["runs", "describe", "ffff0000"])
        assert missing.exit_code != 0 and "No run id starts with 'ffff0000'" in str(
            missing.exception
        )
        short = CliRunner().invoke(cli, ["runs", "describe", run[:3]])
        assert "too short" in str(short.exception)

    def test_an_ambiguous_prefix_names_the_runs(self, client: TrackingClient) -> None:
        exp = client.create_experiment("ambiguous")
        a = client.create_run(exp, run_id="abcd" + "0" * 28).info.run_id
        b = client.create_run(exp, run_id="abcd" + "1" * 28).info.run_id
        result = CliRunner().invoke(cli, ["runs", "describe", "abcd"])
        assert "ambiguous" in str(result.exception)
        assert a in str(result.exception) and b in str(result.exception)

    def test_list_never_cuts_ids_in_a_narrow_terminal(self, client: TrackingClient) -> None:
        exp = client.create_experiment("narrow")
        parent = client.create_run(exp, run_name="a-parent-with-a-long-name").info.run_id
        child = client.create_run(exp, run_name="child", parent_run_id=parent).info.run_id
        result = CliRunner(env={"COLUMNS": "80"}).invoke(
            cli, ["runs", "list", "--experiment-id", exp]
        )
        assert result.exit_code == 0
        line = next(x for x in result.output.splitlines() if child in x)
        assert parent in line  # the child's row names its parent whole
        assert "…" not in result.output
