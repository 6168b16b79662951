"""The run page (info, note, breadcrumb, orchestrator panel, lineage), its charts, the
compare page and the artifact browser, in a real browser against a real server."""

from __future__ import annotations

import re
from typing import Any

from _server_support import ServerProcess
from _ui_support import AIRFLOW_URL, HISTORY_POINTS, PREFECT_URL, SPIKE, UiStore
from playwright.sync_api import expect

from tracking import TrackingClient


def _run_url(server: ServerProcess, store: UiStore, name: str, experiment: str) -> str:
    return f"{server.url}/experiments/{experiment}/runs/{store.runs[name]}"


def _charts_ready(page: Any) -> None:
    page.locator("#charts").scroll_into_view_if_needed()
    expect(page.locator("#chart-grid")).to_have_attribute("data-ready", "1", timeout=20_000)


class TestRunPage:
    def test_info_params_metrics_tags_breadcrumb(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(_run_url(ui_server, ui_store, "trial-b1", ui_store.sweep_experiment))
        expect(page.locator("h1")).to_contain_text("trial-b1")
        expect(page.locator("#run-status")).to_have_text("FAILED")
        crumbs = page.locator("#breadcrumb a").all_inner_texts()
        assert crumbs == ["Experiments", "ui-sweep", "sweep", "family-b"]
        expect(page.locator("#params")).to_contain_text("optimizer")
        expect(page.locator("#params tr", has_text="lr")).to_contain_text("0.1")
        expect(page.locator("#metrics tr", has_text="loss")).to_contain_text(
            f"step {HISTORY_POINTS - 1}"
        )
        expect(page.locator("#tags")).to_contain_text("family-b")
        page.click("#breadcrumb a:text('family-b')")
        expect(page.locator("h1")).to_contain_text("family-b")
        children = page.locator("#children tr.run td.name a").all_inner_texts()
        assert sorted(children) == ["trial-b0", "trial-b1"]

    def test_the_note_is_editable(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(_run_url(ui_server, ui_store, "family-a", ui_store.sweep_experiment))
        page.fill("#note-form textarea", "Baseline family.\nKeep lr small.")
        page.click("#note-form button")
        expect(page.locator("#toast")).to_have_text("Note saved")
        page.reload()
        expect(page.locator("#note-text")).to_have_text("Baseline family.\nKeep lr small.")
        tags = TrackingClient(ui_server.url).get_run(ui_store.runs["family-a"]).data.tags
        assert tags["mlflow.note.content"] == "Baseline family.\nKeep lr small."

    def test_airflow_panel_links_back_into_airflow(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(_run_url(ui_server, ui_store, "train", ui_store.pipelines_experiment))
        panel = page.locator("#orchestrator")
        expect(panel.locator("h2")).to_have_text("Airflow task instance")
        for text in ("retrain", "scheduled__2026-11-05", "train", "_PythonDecoratedOperator"):
            expect(panel).to_contain_text(text)
        expect(panel.locator("dd").nth(3)).to_have_text("2")  # the try number
        expect(page.locator("#orchestrator-link")).to_have_attribute("href", AIRFLOW_URL)

    def test_prefect_panel_links_back_into_prefect(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(_run_url(ui_server, ui_store, "task_run", ui_store.pipelines_experiment))
        panel = page.locator("#orchestrator")
        expect(panel.locator("h2")).to_have_text("Prefect task run")
        expect(panel).to_contain_text("score-0")
        expect(panel).to_contain_text("nightly")
        expect(page.locator("#orchestrator-link")).to_have_attribute(
            "href", PREFECT_URL + "/task-run/77aa"
        )
        page.goto(_run_url(ui_server, ui_store, "artifacts", ui_store.pipelines_experiment))
        expect(page.locator("#orchestrator")).to_have_count(0)

    def test_lineage_links_both_ways(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(_run_url(ui_server, ui_store, "train", ui_store.pipelines_experiment))
        consumed = page.locator("#lineage ul.consumed li")
        expect(consumed).to_have_count(1)
        expect(consumed).to_contain_text("data/train.csv")
        expect(consumed.locator("a")).to_have_text("extract")  # the producer, by name
        consumed.locator("a").first.click()
        page.wait_for_url(f"**/runs/{ui_store.runs['extract']}")
        expect(page.locator("h1")).to_contain_text("extract")
        produced = page.locator("#lineage ul.produced li")
        expect(produced).to_contain_text("data/train.csv")
        expect(produced.locator("a")).to_have_text("train")
        produced.locator("a").click()
        page.wait_for_url(f"**/runs/{ui_store.runs['train']}")


class TestCharts:
    def test_a_chart_per_metric_keeps_the_spike(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(_run_url(ui_server, ui_store, "trial-a0", ui_store.sweep_experiment))
        _charts_ready(page)
        expect(page.locator(".chart canvas")).to_have_count(2)  # acc and loss
        points, peak = page.evaluate(
            "() => { const d = window.__trackflowCharts.plots.loss.data;"
            " return [d[0].length, Math.max(...d[1].filter(v => v !== null))]; }"
        )
        assert points <= 2000 < HISTORY_POINTS  # sampled ...
        assert peak == SPIKE  # ... with the spike kept

    def test_x_axis_smoothing_log_scale_and_hover(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(_run_url(ui_server, ui_store, "trial-a0", ui_store.sweep_experiment))
        _charts_ready(page)
        first_x = "() => window.__trackflowCharts.plots.loss.data[0].slice(0, 3)"
        steps = page.evaluate(first_x)
        assert steps[0] == 0 and steps == sorted(steps)
        page.select_option("#charts .x-axis", "relative")
        assert page.evaluate(first_x) == steps  # seconds since the first point: 1 s per step
        page.select_option("#charts .x-axis", "wall")
        assert page.evaluate(first_x)[0] == 1_700_000_000
        assert page.evaluate("() => window.__trackflowCharts.plots.loss.scales.x.time") is True
        raw = page.evaluate("() => window.__trackflowCharts.plots.loss.data[1][3]")
        page.locator("#charts .smoothing").fill("0.9")
        smoothed = page.evaluate("() => window.__trackflowCharts.plots.loss.data[1][3]")
        assert smoothed != raw
        page.check("#charts .log-scale")
        assert page.evaluate("() => window.__trackflowCharts.plots.loss.scales.y.distr") == 3
        assert "log=1" in page.url and "smooth=0.9" in page.url  # the view is in the URL
        chart = page.locator(".chart[data-metric='loss'] .u-over")
        box = chart.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 2)
        legend = page.locator(".chart[data-metric='loss'] .u-legend .u-series").nth(1)
        expect(legend.locator(".u-value")).not_to_have_text("--")


class TestCompare:
    def test_select_in_the_table_then_compare(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.sweep_experiment}")
        page.locator(f"tr[data-run='{ui_store.runs['sweep']}'] button.toggle").click()
        for family in ("family-a", "family-b"):
            page.locator(f"tr[data-run='{ui_store.runs[family]}'] button.toggle").click()
        for trial in ("trial-a0", "trial-a1", "trial-b0"):
            page.locator(f"tr[data-run='{ui_store.runs[trial]}'] .pick").check()
        expect(page.locator("#compare")).to_have_text("Compare selected (3)")
        page.click("#compare")
        page.wait_for_url(re.compile(r"/compare\?runs="))
        expect(page.locator("h1")).to_have_text("Compare 3 runs")
        expect(page.locator("tr.param[data-key='lr']")).to_have_class(re.compile("differs"))
        expect(page.locator("tr.param[data-key='optimizer']")).to_have_class(re.compile("same"))
        page.check("#only-diff")
        expect(page.locator("tr.param[data-key='optimizer']")).to_be_hidden()
        expect(page.locator("tr.param[data-key='depth']")).to_be_visible()
        expect(page.locator("tr.metric[data-key='loss'] td")).to_have_count(3)
        _charts_ready(page)
        series = page.evaluate("() => window.__trackflowCharts.plots.loss.series.length")
        assert series == 4  # x and one per run, overlaid
        expect(page.locator("#relation-plot")).to_have_attribute("data-drawn", "parallel")
        expect(page.locator("#parallel")).to_be_visible()
        page.select_option("#relation-kind", "scatter")
        page.select_option("#relation-param", "depth")
        page.select_option("#relation-metric", "loss")
        expect(page.locator("#relation-plot")).to_have_attribute("data-drawn", "scatter")
        expect(page.locator("#relation-plot canvas")).to_have_count(1)

    def test_compare_without_runs_says_what_to_do(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        response = page.goto(f"{ui_server.url}/compare")
        assert response.status == 400
        expect(page.locator("#error")).to_contain_text("Select runs")
        page.errors.clear()


class TestArtifacts:
    def _open(self, page: Any, server: ServerProcess, store: UiStore, path: str = "") -> None:
        url = _run_url(server, store, "artifacts", store.pipelines_experiment) + "/artifacts"
        page.goto(url + (f"?path={path}" if path else ""))

    def test_browse_directories_and_preview_text_and_json(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        self._open(page, ui_server, ui_store)
        names = page.locator("#files li a").all_inner_texts()
        assert names[:2] == ["plots/", "tables/"] and "notes.txt" in names
        page.click("#files a:text('notes.txt')")
        expect(page.locator("pre.text-preview")).to_have_text(
            "hello from a text artifact\nsecond line\n"
        )
        page.click("#files a:text('config.json')")
        expect(page.locator("pre.text-preview")).to_contain_text('"nested": true')
        expect(page.locator("pre.text-preview")).to_contain_text('\n  "b": [')  # pretty-printed

    def test_csv_and_tsv_as_tables(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        self._open(page, ui_server, ui_store)
        page.click("#files a:text('tables/')")
        page.click("#files a:text('scores.csv')")
        table = page.locator("table.csv-preview")
        expect(table.locator("thead th")).to_have_text(["name", "score"])
        expect(table.locator("tbody tr")).to_have_count(2)
        page.click("#files a:text('scores.tsv')")
        expect(page.locator("table.csv-preview tbody td").first).to_have_text("gamma")
        page.click("#files a:text('↑ ..')")
        expect(page.locator("#files")).to_contain_text("notes.txt")

    def test_images_and_sandboxed_html(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        self._open(page, ui_server, ui_store, "plots/gradient.png")
        image = page.locator("img.image-preview")
        expect(image).to_be_visible()
        assert page.evaluate("() => document.querySelector('img.image-preview').naturalWidth") == 4
        self._open(page, ui_server, ui_store, "report.html")
        frame = page.locator("iframe.html-preview")
        expect(frame).to_have_attribute("sandbox", "")
        expect(page.frame_locator("iframe.html-preview").locator("#heading")).to_have_text("Report")
        assert page.title() != "escaped"  # the artifact's script did not run ...
        blocked = [e for e in page.errors if "Blocked script execution" in e]
        assert blocked, page.errors  # ... because the browser refused it
        page.errors[:] = [e for e in page.errors if e not in blocked]
        raw = page.request.get(ui_server.url + frame.get_attribute("src"))
        assert "sandbox" in raw.headers["content-security-policy"]

    def test_size_limit_and_download(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        self._open(page, ui_server, ui_store, "big.log")
        expect(page.locator("#too-large")).to_contain_text("Too large to preview")
        expect(page.locator("pre.text-preview")).to_have_count(0)
        with page.expect_download() as info:
            page.click("#download")
        download = info.value
        assert download.suggested_filename == "big.log"
        with open(download.path(), "rb") as handle:
            assert len(handle.read()) == (1 << 20) + 10
        self._open(page, ui_server, ui_store, "model.bin")
        expect(page.locator("#preview")).to_contain_text("No preview for this kind of file")

    def test_a_missing_artifact_says_so(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        self._open(page, ui_server, ui_store, "nope.txt")
        expect(page.locator("pre.error")).to_contain_text("No artifact 'nope.txt'")
        page.errors.clear()
