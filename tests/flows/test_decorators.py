"""``tracked_flow`` / ``tracked_task`` under a real Prefect server: the run tree of flows,
subflows, tasks and mapped tasks, states, tags, params, metrics, lineage, artifacts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from _prefect_support import by_name, flow_tree
from prefect.context import FlowRunContext

import tracking
from flows import tracked_flow, tracked_task
from tracking import ArtifactRef, RunStatus, TrackingClient

pytestmark = pytest.mark.prefect


def _flow_run_id() -> str:
    ctx = FlowRunContext.get()
    assert ctx is not None and ctx.flow_run is not None
    return str(ctx.flow_run.id)


@tracked_task(log_params=True)
def square(x: int, scale: int = 1) -> int:
    tracking.log_metric("sq", x * x * scale)
    return x * x * scale


@tracked_task
def produce(text: str) -> ArtifactRef:
    path = Path(tempfile.mkdtemp()) / "data.txt"
    path.write_text(text)
    return tracking.log_artifact(path, "data")


@tracked_task
def consume(ref: ArtifactRef) -> int:
    return len(Path(tracking.use_artifact(ref)).read_text())


@tracked_flow(log_params=True)
def family(name: str, xs: list[int]) -> int:
    tracking.log_metric("size", len(xs))
    return sum(f.result() for f in square.map(xs))


@tracked_flow(experiment="prefect-tree", log_params=True)
def parent_flow(families: dict[str, list[int]]) -> dict[str, Any]:
    totals = {name: family(name, xs) for name, xs in families.items()}
    length = consume(produce("hello"))
    tracking.log_metric("families", len(families))
    return {"id": _flow_run_id(), "totals": totals, "length": length}


@tracked_flow(experiment="elsewhere")
def elsewhere_sub() -> None:
    tracking.log_metric("m", 1)


@tracked_flow
def elsewhere_parent() -> str:
    elsewhere_sub()
    return _flow_run_id()


class TestTree:
    @pytest.fixture
    def result(self, store: TrackingClient) -> tuple[dict[str, Any], Any, list[Any]]:
        out = parent_flow({"linear": [1, 2], "tree": [3, 4, 5]})
        parent, runs = flow_tree(store, out["id"])
        return out, parent, runs

    def test_three_levels(self, result: Any, store: TrackingClient) -> None:
        out, parent, runs = result
        assert out["totals"] == {"linear": 5, "tree": 50}
        assert parent.info.status is RunStatus.FINISHED
        assert store.get_experiment(parent.info.experiment_id).name == "prefect-tree"
        top = by_name(runs, parent)
        children = [r for r in runs if r.info.parent_run_id == parent.info.run_id]
        families = {r.data.params["name"]: r for r in children if "name" in r.data.params}
        assert set(families) == {"linear", "tree"}
        assert set(top) == {"family", "produce", "consume"}
        for name, size in (("linear", 2), ("tree", 3)):
            run = families[name]
            assert run.info.status is RunStatus.FINISHED
            assert run.data.metrics == {"size": size}
            trials = by_name(runs, run)
            assert sorted(trials) == [f"square[{i}]" for i in range(size)]
            assert all(r.info.status is RunStatus.FINISHED for r in trials.values())
            assert [trials[f"square[{i}]"].data.tags["prefect.map_index"] for i in range(size)] == [
                str(i) for i in range(size)
            ]

    def test_metrics_params_and_tags(self, result: Any) -> None:
        out, parent, runs = result
        assert parent.data.metrics == {"families": 2.0}
        assert parent.data.params["families.linear"] == "[1, 2]"
        assert parent.data.tags["prefect.flow_name"] == "parent-flow"
        assert parent.data.tags["prefect.flow_run_id"] == out["id"]
        assert parent.data.tags["prefect.url"].endswith(f"/flow-runs/flow-run/{out['id']}")
        squares = sorted(
            (r for r in runs if r.info.run_name.startswith("square[")),
            key=lambda r: r.data.metrics["sq"],
        )
        assert [r.data.metrics["sq"] for r in squares] == [1, 4, 9, 16, 25]
        assert [r.data.params["x"] for r in squares] == ["1", "2", "3", "4", "5"]
        assert {r.data.params["scale"] for r in squares} == {"1"}
        assert squares[0].data.tags["prefect.run_count"] == "1"
        assert (
            squares[0]
            .data.tags["prefect.url"]
            .endswith(f"/runs/task-run/{squares[0].data.tags['prefect.task_run_id']}")
        )

    def test_subflows_join_their_parents_experiment_and_are_named_after_their_flow(
        self, result: Any, store: TrackingClient
    ) -> None:
        _, parent, runs = result
        subflows = [r for r in runs if "prefect.parent_flow_run_id" in r.data.tags]
        assert len(subflows) == 2
        for run in subflows:
            assert run.info.run_name == "family"
            assert run.data.tags["prefect.flow_name"] == "family"
            assert run.data.tags["prefect.flow_run_name"] not in ("", "family")
            assert run.info.experiment_id == parent.info.experiment_id
        assert store.get_experiment_by_name("family") is None

    def test_a_subflow_with_its_own_experiment(self, embedded: TrackingClient) -> None:
        out = elsewhere_parent()
        parent, runs = flow_tree(embedded, out)
        (sub,) = runs
        assert embedded.get_experiment(sub.info.experiment_id).name == "elsewhere"
        assert sub.info.parent_run_id == parent.info.run_id
        assert embedded.get_experiment_by_name("elsewhere-sub") is None

    def test_lineage(self, result: Any, store: TrackingClient) -> None:
        _, parent, runs = result
        top = by_name(runs, parent)
        consumed = store.get_lineage(top["consume"].info.run_id).consumed
        assert [(e.producer_run_id, e.artifact_path) for e in consumed] == [
            (top["produce"].info.run_id, "data/data.txt")
        ]


class TestWhereTheRunsWent:
    """One ``trackflow: run ... at ...`` line per flow run, in the flow run's log."""

    @pytest.fixture
    def heard(self) -> Any:
        import logging

        lines: list[str] = []
        handler = logging.Handler(logging.INFO)
        handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
        logger = logging.getLogger("prefect.flow_runs")
        level = logger.level
        logger.setLevel(logging.INFO)  # Prefect's default; this suite runs it at WARNING
        logger.addHandler(handler)
        yield lines
        logger.removeHandler(handler)
        logger.setLevel(level)

    def test_the_ui_page_of_a_served_run(self, served: TrackingClient, heard: list[str]) -> None:
        @tracked_flow(name="announced")
        def announced() -> str:
            active = tracking.active_run()
            assert active is not None
            return active.info.run_id

        run_id = announced()
        run = served.get_run(run_id)
        ours = [line for line in heard if line.startswith("trackflow: run ")]
        url = f"/experiments/{run.info.experiment_id}/runs/{run_id}"
        assert len(ours) == 1 and url in ours[0], heard

    def test_the_store_of_an_embedded_run(
        self, embedded: TrackingClient, heard: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from tracking.settings import reset_settings

        monkeypatch.delenv("TRACKFLOW_UI_BASE_URL")  # no web UI to link to
        reset_settings()

        @tracked_flow(name="announced")
        def announced() -> str:
            active = tracking.active_run()
            assert active is not None
            return active.info.run_id

        run_id = announced()
        (line,) = [line for line in heard if line.startswith("trackflow: run ")]
        assert line.startswith(f"trackflow: run {run_id} at sqlite:///")
        assert f"trackflow runs tree {run_id}" in line
