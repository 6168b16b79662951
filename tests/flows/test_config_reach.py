"""A flow run's configuration reaches every task run, mapped run and subflow run of it,
in every thread and process its task runner uses; with no configuration at all,
tracking is an error that names the cause, never a ``./trackflow.db``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from _prefect_support import flow_tree
from _server_support import ServerProcess
from reach_flows import configured_flow, pooled_flow, unconfigured_flow

from flows.retrain import retrain_flow
from flows.sweep import sweep_flow
from tracking import RunStatus, StoreNotConfiguredError, TrackingClient

pytestmark = pytest.mark.prefect


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No TRACKFLOW_* variable, and a working directory of the test's own."""
    from tracking.settings import reset_settings

    for name in [n for n in os.environ if n.startswith(("TRACKFLOW_", "MLFLOW_"))]:
        monkeypatch.delenv(name)
    reset_settings()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def _no_local_db(where: Path) -> None:
    assert not list(where.rglob("*.db")), "a local store was written"


class TestFlowLevelConfiguration:
    def test_every_task_subflow_and_mapped_run(
        self, bare: Path, tracking_server: ServerProcess
    ) -> None:
        out = configured_flow(tracking_server.url)([1, 2, 3])
        client = TrackingClient(tracking_server.url)
        parent, runs = flow_tree(client, out["id"])
        assert parent.info.status is RunStatus.FINISHED
        ids = [r["run_id"] for r in (*out["mapped"], *out["submitted"], out["called"])]
        ids += [r["run_id"] for r in out["sub"]]
        by_id = {r.info.run_id: r for r in runs}
        assert set(ids) <= set(by_id), "a task run was tracked elsewhere"
        for run_id in ids:
            run = by_id[run_id]
            assert run.info.status is RunStatus.FINISHED
            assert "x" in run.data.metrics  # its log_metric landed in its own run
        assert "x" not in parent.data.metrics
        (sub,) = [r for r in runs if r.info.run_name == "inner"]
        assert sub.info.parent_run_id == parent.info.run_id
        assert sub.info.experiment_id == parent.info.experiment_id
        _no_local_db(bare)

    def test_a_process_pool(self, bare: Path, tracking_server: ServerProcess) -> None:
        import prefect.task_runners

        if not hasattr(prefect.task_runners, "ProcessPoolTaskRunner"):
            pytest.skip("this Prefect has no ProcessPoolTaskRunner")
        out = pooled_flow(tracking_server.url)([1, 2, 3, 4])
        assert {r["pid"] for r in out["mapped"]} - {os.getpid()}, "no task ran in the pool"
        client = TrackingClient(tracking_server.url)
        _, runs = flow_tree(client, out["id"])
        assert sorted(r.info.run_name for r in runs) == [f"item[{i}]" for i in range(4)]
        assert {r.info.run_id for r in runs} == {r["run_id"] for r in out["mapped"]}
        assert all(r.data.metrics.get("x") for r in runs)
        _no_local_db(bare)

    @pytest.mark.parametrize("which", ["retrain", "sweep"])
    def test_the_reusable_flows_take_a_configuration(
        self, bare: Path, tracking_server: ServerProcess, which: str
    ) -> None:
        uri = tracking_server.url
        client = TrackingClient(uri)
        if which == "retrain":
            flow: Any = retrain_flow(experiment="retrain-reach", tracking_uri=uri)
            out = flow(day="2026-11-03")
            top_run = client.get_run(client.get_run(out["challenger"]).info.parent_run_id or "")
        else:
            flow = sweep_flow(experiment="sweep-reach", tracking_uri=uri)
            out = flow(families={"plain": 0.0}, lrs=[0.5, 1.0])
            family = client.get_run(client.get_run(out["run_id"]).info.parent_run_id or "")
            top_run = client.get_run(family.info.parent_run_id or "")
        parent, runs = flow_tree(client, top_run.data.tags["prefect.flow_run_id"])
        assert parent.info.status is RunStatus.FINISHED
        assert runs and all(r.info.status is RunStatus.FINISHED for r in runs)
        _no_local_db(bare)


class TestNoConfiguration:
    def test_is_an_error_naming_the_cause(self, bare: Path) -> None:
        with pytest.raises(StoreNotConfiguredError, match="TRACKFLOW_TRACKING_URI") as caught:
            unconfigured_flow()
        assert "flow 'unconfigured-flow'" in str(caught.value)
        assert "./trackflow.db" in str(caught.value)
        _no_local_db(bare)
