"""The pipeline view (timeline and lineage graph of a DAG run or flow run) and a pipeline's
history page, in a real browser, on runs written by PipelineTracker as the Airflow and
Prefect integrations write them."""

from __future__ import annotations

import re
from typing import Any

from _pipeline_support import Pipelines
from _server_support import ServerProcess
from _ui_support import SCREENSHOTS
from playwright.sync_api import expect

from tracking import TrackingClient
from tracking.pipelines import PipelineRun, PipelineTracker


def _open(page: Any, server: ServerProcess, run_id: str) -> None:
    page.goto(f"{server.url}/runs/{run_id}")
    expect(page.locator("#pipeline")).to_be_visible()


class TestDagRun:
    def test_timeline_shows_attempts_and_mapped_groups(
        self, page: Any, ui_server: ServerProcess, pipelines: Pipelines
    ) -> None:
        _open(page, ui_server, pipelines.dag_runs[-1])
        timeline = page.locator("#timeline")
        train = timeline.locator(".tl-row[data-step='train']")
        expect(train).to_have_attribute("data-attempts", "2")
        bars = train.locator("a.tl-bar")
        expect(bars).to_have_count(2)
        expect(bars.nth(0)).to_have_class("tl-bar failed earlier")
        expect(bars.nth(1)).to_have_class("tl-bar finished")
        assert "attempt 1 of 2" in bars.nth(0).get_attribute("title")
        assert "OOM" not in (bars.nth(1).get_attribute("title") or "")
        # The second try starts after the first ended: bars side by side, not stacked.
        first, second = bars.nth(0).bounding_box(), bars.nth(1).bounding_box()
        assert second["x"] >= first["x"] + first["width"] - 1
        group = timeline.locator("details.tl-group[data-step='score']")
        expect(group.locator("summary")).to_contain_text("\u00d73")
        expect(group.locator(".tl-row.inner")).to_have_count(3)
        expect(group.locator(".tl-row.inner a.tl-bar.failed")).to_have_count(1)
        order = timeline.locator(":scope > .tl-row:not(.tl-axis), :scope > details").evaluate_all(
            "els => els.map(e => e.dataset.step)"
        )
        assert order == ["extract", "train", "score", "evaluate"]

    def test_graph_has_lineage_edges_and_links_to_runs(
        self, page: Any, ui_server: ServerProcess, pipelines: Pipelines
    ) -> None:
        _open(page, ui_server, pipelines.dag_runs[-1])
        graph = page.locator("#pipeline-graph")
        edges = graph.locator("g.edge").evaluate_all(
            "els => els.map(e => `${e.dataset.from}>${e.dataset.to}`)"
        )
        assert sorted(edges) == ["extract>train", "score>evaluate", "train>score"]
        expect(graph.locator("g.edge[data-from='extract'] text")).to_have_text("data/train.csv")
        expect(graph.locator("g.node[data-step='score'] a.instance")).to_have_count(3)
        expect(graph.locator("g.node[data-step='score']")).to_have_class("node failed")
        # Columns follow the lineage: extract, train, score, evaluate left to right.
        xs = [
            graph.locator(f"g.node[data-step='{k}'] rect").first.bounding_box()["x"]
            for k in ("extract", "train", "score", "evaluate")
        ]
        assert xs == sorted(xs) and len(set(xs)) == 4
        graph.locator("g.node[data-step='train'] a").click()
        expect(page.locator("h1")).to_contain_text("train")
        expect(page.locator("#orchestrator")).to_contain_text("Airflow task instance")
        assert page.url.endswith(pipelines.steps["train"])

    def test_two_hundred_task_instances_stay_readable(
        self, page: Any, ui_server: ServerProcess, pipelines: Pipelines
    ) -> None:
        _open(page, ui_server, pipelines.big_dag_run)
        expect(page.locator("#pipeline h2")).to_have_text("Pipeline: 200 steps")
        group = page.locator("details.tl-group[data-step='work']")
        expect(group).not_to_have_attribute("open", "")  # 198 instances: collapsed
        expect(group.locator("summary")).to_contain_text("\u00d7198")
        expect(group.locator("summary .tl-bar")).to_have_count(198)
        graph = page.locator("#pipeline-graph")
        expect(graph.locator("g.node")).to_have_count(3)
        expect(graph.locator("g.node[data-step='work'] a.instance")).to_have_count(198)
        expect(graph.locator("g.node[data-step='work'] rect.sq.failed")).to_have_count(3)
        expect(graph.locator("g.edge")).to_have_count(2)
        box = graph.bounding_box()
        assert box["height"] < 400 and box["width"] < 1000, box
        page.locator("#pipeline").screenshot(path=str(SCREENSHOTS / "pipeline_200_instances.png"))
        # Closed, its 198 rows are not in the page yet: opening it brings them.
        expect(group.locator(".tl-row.inner")).to_have_count(0)
        group.locator("summary").click()
        expect(group.locator(".tl-row.inner")).to_have_count(198)
        expect(group.locator(".tl-row.inner a.tl-bar.failed")).to_have_count(3)
        expect(group.locator(".tl-row.inner").nth(197)).to_be_visible()


class TestFlowRun:
    def test_prefect_flow_run(
        self, page: Any, ui_server: ServerProcess, pipelines: Pipelines
    ) -> None:
        _open(page, ui_server, pipelines.flow_run)
        group = page.locator("details.tl-group[data-step='featurize']")
        expect(group.locator(".tl-row.inner")).to_have_count(2)
        retried = group.locator(".tl-row.inner[data-step='featurize[1]']")
        expect(retried).to_have_attribute("data-attempts", "2")
        expect(retried.locator("a.tl-bar.failed.earlier")).to_have_count(1)
        edges = page.locator("#pipeline-graph g.edge").evaluate_all(
            "els => els.map(e => `${e.dataset.from}>${e.dataset.to}`)"
        )
        assert sorted(edges) == ["featurize>fit", "load>featurize"]
        page.locator("#timeline .tl-row[data-step='fit'] a.tl-label").click()
        expect(page.locator("#orchestrator")).to_contain_text("Prefect task run")

    def test_a_pipeline_run_before_its_first_step(
        self, page: Any, ui_server: ServerProcess, pipelines: Pipelines
    ) -> None:
        client = TrackingClient(ui_server.db_uri, str(ui_server.artifacts))
        tracker = PipelineTracker(client, "ui-idle")
        pipeline = PipelineRun("airflow", "idle", "manual__waiting")
        run = tracker.pipeline_started(pipeline, tags={"airflow.dag_id": "idle"})
        _open(page, ui_server, run.info.run_id)
        expect(page.locator("#no-steps")).to_have_text("No step has started yet.")
        expect(page.locator("#history-link")).to_be_visible()

    def test_a_sweep_parent_has_no_pipeline_view(
        self, page: Any, ui_server: ServerProcess, pipelines: Pipelines
    ) -> None:
        client = TrackingClient(ui_server.db_uri, str(ui_server.artifacts))
        eid = client.create_experiment("ui-sweep-parent-only")
        parent = client.create_run(eid, run_name="sweep-parent")
        client.create_run(eid, run_name="trial", parent_run_id=parent.info.run_id)
        page.goto(f"{ui_server.url}/runs/{parent.info.run_id}")
        expect(page.locator("#children")).to_be_visible()
        expect(page.locator("#pipeline")).to_have_count(0)


class TestHistory:
    def test_history_chart_and_table_with_champion_changes(
        self, page: Any, ui_server: ServerProcess, pipelines: Pipelines
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{pipelines.experiment_id}")
        page.locator("#pipelines a.pipeline-link", has_text="retrain").click()
        expect(page.locator("h1")).to_contain_text("retrain")
        # The default: the last step that logged metrics, its first metric.
        expect(page.locator("#history-step")).to_have_value("evaluate")
        expect(page.locator("#history-metric")).to_have_value("holdout_accuracy")
        chart = page.locator("#history-chart")
        expect(chart.locator("circle.point")).to_have_count(3)
        expect(chart.locator("g.champion-change")).to_have_count(2)
        titles = chart.locator("circle.point title").all_text_contents()
        assert [t.split("= ")[1].split(" ")[0] for t in titles] == ["0.82", "0.79", "0.88"]
        rows = page.locator("#history-table tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_contain_text("2026-11-03")  # newest first
        expect(rows.nth(0)).to_contain_text("FINISHED")
        expect(rows.nth(0)).to_contain_text("0.88")
        expect(rows.nth(0)).to_contain_text("(1 failed)")
        expect(rows.nth(0).locator(".champion-mark")).to_contain_text("train")
        expect(rows.nth(1).locator(".champion-mark")).to_have_count(0)
        page.select_option("#history-metric", "holdout_loss")
        expect(page).to_have_url(re.compile(r"metric=holdout_loss"))
        titles = page.locator("#history-chart circle.point title").all_text_contents()
        assert [t.split("= ")[1].split(" ")[0] for t in titles] == ["0.18", "0.21", "0.12"]

    def test_linked_from_each_pipeline_run_and_bad_step_is_named(
        self, page: Any, ui_server: ServerProcess, pipelines: Pipelines
    ) -> None:
        _open(page, ui_server, pipelines.dag_runs[0])
        page.click("#history-link")
        expect(page.locator("#history-table tbody tr")).to_have_count(3)
        page.goto(page.url.split("?")[0] + "?step=nonesuch")
        expect(page.locator("#history-error")).to_contain_text("No step 'nonesuch'")
        expect(page.locator("#history-error")).to_contain_text("extract, train, score, evaluate")
        response = page.goto(
            f"{ui_server.url}/experiments/{pipelines.experiment_id}/pipelines/airflow/nope"
        )
        assert response.status == 404
        expect(page.locator("#error")).to_contain_text("No runs of airflow pipeline 'nope'")
