"""The compare page and charts of a sweep: the better of each metric by its direction,
single-value metrics as bars, one colour per run, constant params dropped, wide tables
that scroll with their first column in place, children's params, one legend."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from _server_support import ServerProcess
from playwright.sync_api import expect

from tracking import TrackingClient
from tracking.entities import Metric, Param

RUNS = 8


@dataclass
class Sweep:
    experiment_id: str
    parent: str
    runs: list[str]

    def compare(self, server: ServerProcess, extra: str = "") -> str:
        return f"{server.url}/compare?runs={','.join(self.runs)}{extra}"


@pytest.fixture(scope="module")
def sweep(ui_server: ServerProcess) -> Sweep:
    client = TrackingClient(ui_server.db_uri, str(ui_server.artifacts))
    eid = client.create_experiment("ui-compare-sweep")
    # MLflow's tags: val_metric's name says nothing; the experiment says lower is better.
    client.set_experiment_tag(eid, "mlflow.experiment.primaryMetric.name", "val_metric")
    client.set_experiment_tag(eid, "mlflow.experiment.primaryMetric.greaterIsBetter", "false")
    parent = client.create_run(eid, run_name="sweep-parent").info.run_id
    runs = []
    for i in range(RUNS):
        rid = client.create_run(
            eid, run_name=f"trial-with-a-long-name-{i}", parent_run_id=parent
        ).info.run_id
        runs.append(rid)
        params = [Param("lr", str(0.001 * (i + 1))), Param("epochs", str(10 + 5 * (i % 3)))]
        params += [Param("optimizer", "adam")]
        params += [Param("data_path", f"/datasets/imagenet/shards/train-{i:05d}-of-00128.tfrecord")]
        params += [Param(f"extra_param_{k}", f"value-{k}-{i}") for k in range(12)]
        loss = [1.0 / (1 + s * (i + 1) * 0.1) for s in range(20)]
        metrics = [Metric("loss", v, 1_700_000_000_000 + s, s) for s, v in enumerate(loss)]
        metrics += [Metric("best_acc", 0.80 + i * 0.01, 1_700_000_000_000, 0)]
        metrics += [Metric("val_metric", 5.0 - i * 0.3, 1_700_000_000_000, 0)]
        metrics += [Metric("acc", 0.5 + i * 0.02, 1_700_000_000_000 + 7, 7)]
        client.log_batch(rid, metrics=metrics, params=params)
        client.set_terminated(rid, "FINISHED")
    return Sweep(eid, parent, runs)


def _best(page: Any, key: str) -> int:
    cells = page.locator(f"#compare-params tr.metric[data-key='{key}'] td")
    classes = cells.evaluate_all("els => els.map(e => e.className)")
    assert sum("best" in c for c in classes) == 1, classes
    return next(i for i, c in enumerate(classes) if "best" in c)


class TestDirection:
    def test_loss_best_at_its_minimum_and_the_user_can_flip_it(
        self, page: Any, ui_server: ServerProcess, sweep: Sweep
    ) -> None:
        page.goto(sweep.compare(ui_server))
        # loss falls fastest for the last run: its latest loss is the lowest.
        assert _best(page, "loss") == RUNS - 1
        assert _best(page, "acc") == RUNS - 1
        assert _best(page, "val_metric") == RUNS - 1  # the experiment's tag: lower
        row = page.locator("#compare-params tr.metric[data-key='loss']")
        expect(row.locator("a.dir")).to_have_text("↓ lower is better")
        row.locator("a.dir").click()
        expect(page).to_have_url(re.compile(r"dir=loss%3Amax"))
        assert _best(page, "loss") == 0
        page.locator("#compare-params tr.metric[data-key='acc'] a.dir").click()
        assert _best(page, "acc") == 0 and _best(page, "loss") == 0  # both remembered
        page.reload()
        assert _best(page, "acc") == 0 and _best(page, "loss") == 0

    def test_a_bad_direction_is_named(
        self, page: Any, ui_server: ServerProcess, sweep: Sweep
    ) -> None:
        response = page.goto(sweep.compare(ui_server, "&dir=loss:up"))
        assert response.status == 400
        expect(page.locator("#error")).to_contain_text("expected <metric>:max or <metric>:min")


class TestCharts:
    def test_single_values_are_bars_and_runs_keep_their_colour(
        self, page: Any, ui_server: ServerProcess, sweep: Sweep
    ) -> None:
        page.goto(sweep.compare(ui_server))
        expect(page.locator("#chart-grid")).to_have_attribute("data-ready", "1", timeout=20_000)
        bars = page.locator(".chart[data-metric='best_acc']")
        expect(bars).to_have_attribute("data-kind", "bars")
        expect(bars.locator(".bar-fill")).to_have_count(RUNS)
        expect(page.locator(".chart[data-metric='loss']")).to_have_attribute("data-kind", "line")
        legend = page.locator("#chart-legend > span")
        expect(legend).to_have_count(RUNS)  # one legend for the page, not one per chart
        colours = legend.locator(".run-swatch").evaluate_all(
            "els => els.map(e => getComputedStyle(e).backgroundColor)"
        )
        heads = page.locator("#compare-params thead .run-swatch").evaluate_all(
            "els => els.map(e => getComputedStyle(e).backgroundColor)"
        )
        fills = bars.locator(".bar-fill").evaluate_all(
            "els => els.map(e => getComputedStyle(e).backgroundColor)"
        )
        assert colours == heads == fills and len(set(colours)) == RUNS
        strokes = page.evaluate(
            "() => window.__trackflowCharts.plots.loss.series.slice(1).map(s => s._stroke)"
        )
        assert len(strokes) == RUNS
        page.locator("#charts .smoothing").fill("0.8")
        series = page.evaluate("() => window.__trackflowCharts.plots.loss.series.length")
        assert series == 1 + 2 * RUNS  # each run's smoothed line and its raw line, faint

    def test_constant_params_dropped_and_one_series_per_run(
        self, page: Any, ui_server: ServerProcess, sweep: Sweep
    ) -> None:
        page.goto(sweep.compare(ui_server))
        plot = page.locator("#relation-plot")
        expect(plot).to_have_attribute("data-drawn", "parallel")
        axes = plot.get_attribute("data-axes")
        assert "optimizer" not in axes and '"lr"' in axes and '"epochs"' in axes
        by_run = json.loads(plot.get_attribute("data-colours"))
        assert len(set(by_run)) == RUNS
        page.select_option("#relation-metric", "val_metric")  # lower is better
        page.select_option("#relation-colour", "metric")
        scale = json.loads(plot.get_attribute("data-colours"))
        # The last run has the lowest val_metric: the best, green; the first the worst, red.
        assert scale[-1] == "#1fad1f" and scale[0] == "#ad1f1f", scale
        page.select_option("#relation-kind", "scatter")
        page.select_option("#relation-param", "epochs")
        expect(plot).to_have_attribute("data-drawn", "scatter")
        assert page.locator("#relation-param option", has_text="optimizer").count() == 0
        labels = plot.locator(".u-legend .u-series .u-label").all_inner_texts()
        assert labels[1:] == [f"trial-with-a-long-name-{i}" for i in range(RUNS)]
        ticks = json.loads(plot.get_attribute("data-xticks"))
        assert ticks and all(re.fullmatch(r"\d+", t) for t in ticks), ticks  # integer epochs


class TestTables:
    def test_wide_compare_table_scrolls_with_its_first_column(
        self, page: Any, ui_server: ServerProcess, sweep: Sweep
    ) -> None:
        page.goto(sweep.compare(ui_server))
        wrap = page.locator(".table-wrap").first
        width = wrap.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert width[0] > width[1], width  # wider than the page: it scrolls sideways
        first = page.locator("#compare-params tr.param[data-key='lr'] th")
        before = first.bounding_box()["x"]
        wrap.evaluate("e => { e.scrollLeft = 600; }")
        assert abs(first.bounding_box()["x"] - before) < 1
        assert wrap.evaluate("e => e.scrollLeft") > 0

    def test_children_table_shows_params_and_the_metrics_card_spaces_the_step(
        self, page: Any, ui_server: ServerProcess, sweep: Sweep
    ) -> None:
        page.goto(f"{ui_server.url}/runs/{sweep.parent}")
        head = page.locator("#children-table thead th").all_inner_texts()
        assert "epochs" in head and "loss" in head, head
        row = page.locator("#children-table tr.run", has_text="trial-with-a-long-name-2")
        column = head.index("epochs")
        expect(row.locator("td").nth(column)).to_have_text("20")
        page.goto(f"{ui_server.url}/runs/{sweep.runs[0]}")
        acc = page.locator("#metrics tr", has_text="acc").first
        expect(acc.locator("td.step")).to_have_text("(step 7)")
        assert re.search(r"0\.5\s+\(step 7\)", acc.inner_text()), acc.inner_text()
