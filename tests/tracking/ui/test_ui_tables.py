"""The experiments page and the runs table, in a real browser against a real server."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from _server_support import ServerProcess
from _ui_support import MANY_RUNS, UiStore
from playwright.sync_api import expect

from tracking import TrackingClient


def _names(page: Any, selector: str = "#rows tr.run") -> list[str]:
    return [n.strip() for n in page.locator(f"{selector} td.name a").all_inner_texts()]


class TestExperimentsPage:
    def test_lists_experiments_with_run_counts_and_search(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(ui_server.url + "/")
        row = page.locator(f"tr[data-experiment='{ui_store.many_experiment}']")
        expect(row.locator("td.runs")).to_have_text(str(MANY_RUNS))
        expect(
            page.locator(f"tr[data-experiment='{ui_store.sweep_experiment}'] td.runs")
        ).to_have_text("7")
        page.fill("input[name=q]", "pipe")
        page.click("form.search button")
        expect(page.locator("#experiments tr[data-experiment]")).to_have_count(1)
        expect(page.locator("#experiments")).to_contain_text("ui-pipelines")

    def test_create_rename_delete_and_restore(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(ui_server.url + "/")
        page.fill("#create-experiment input[name=name]", "made-in-the-ui")
        page.click("#create-experiment button")
        page.wait_for_url(re.compile(r"/experiments/\d+$"))
        eid = page.url.rsplit("/", 1)[1]
        expect(page.locator("h1")).to_have_text("made-in-the-ui")
        page.goto(ui_server.url + "/")
        row = page.locator(f"tr[data-experiment='{eid}']")
        page.once("dialog", lambda d: d.accept("renamed-in-the-ui"))
        row.locator("button.rename").click()
        page.wait_for_load_state("load")
        expect(page.locator(f"tr[data-experiment='{eid}'] td a")).to_have_text("renamed-in-the-ui")
        page.once("dialog", lambda d: d.accept())
        page.locator(f"tr[data-experiment='{eid}'] button.delete").click()
        expect(page.locator(f"tr[data-experiment='{eid}']")).to_have_count(0)
        page.goto(ui_server.url + "/?view=deleted")
        deleted = page.locator(f"tr[data-experiment='{eid}']")
        expect(deleted).to_contain_text("deleted")
        deleted.locator("button.restore").click()
        expect(page.locator(f"tr[data-experiment='{eid}']")).to_have_count(0)
        client = TrackingClient(ui_server.url)
        assert client.get_experiment(eid).lifecycle_stage.value == "active"
        assert client.get_experiment(eid).name == "renamed-in-the-ui"

    def test_a_duplicate_name_shows_the_api_message_and_creates_nothing(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(ui_server.url + "/")
        before = page.locator("#experiments tr[data-experiment]").count()
        page.fill("#create-experiment input[name=name]", "ui-sweep")
        page.click("#create-experiment button")
        expect(page.locator("#toast")).to_contain_text("ui-sweep")
        page.errors.clear()  # the refused call logs its 400 in the console
        page.reload()
        expect(page.locator("#experiments tr[data-experiment]")).to_have_count(before)

    def test_runs_of_several_experiments(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(ui_server.url + "/")
        for eid in (ui_store.sweep_experiment, ui_store.pipelines_experiment):
            page.locator(f"tr[data-experiment='{eid}'] .pick").check()
        page.click("#compare-experiments")
        page.wait_for_url(re.compile(r"/experiments/\d+,\d+$"))
        assert set(page.url.rsplit("/", 1)[1].split(",")) == {
            ui_store.sweep_experiment,
            ui_store.pipelines_experiment,
        }
        names = _names(page)
        assert "sweep" in names and "nightly-flow" in names


class TestRunTree:
    def test_top_level_runs_with_counts_expand_level_by_level(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.sweep_experiment}")
        assert _names(page) == ["sweep"]
        expect(page.locator("#count")).to_have_text("1 top-level run")
        sweep = page.locator(f"tr[data-run='{ui_store.runs['sweep']}']")
        expect(sweep.locator(".kids")).to_have_text("2")
        sweep.locator("button.toggle").click()
        expect(page.locator("tr.run[data-depth='1']")).to_have_count(2)
        family_b = page.locator(f"tr[data-run='{ui_store.runs['family-b']}']")
        expect(family_b.locator(".kids")).to_have_text("2 · 1 failed")
        family_b.locator("button.toggle").click()
        grandchildren = page.locator("tr.run[data-depth='2']")
        expect(grandchildren).to_have_count(2)
        expect(page.locator(f"tr[data-run='{ui_store.runs['trial-b1']}'] .status")).to_have_text(
            "FAILED"
        )
        # Collapsing the root takes its whole subtree away.
        sweep.locator("button.toggle").click()
        expect(page.locator("tr.run")).to_have_count(1)

    def test_rows_loaded_later_have_the_default_columns_too(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.sweep_experiment}")
        headers = page.locator("#runs thead th").count()
        page.locator(f"tr[data-run='{ui_store.runs['sweep']}'] button.toggle").click()
        family = page.locator(f"tr[data-run='{ui_store.runs['family-a']}']")
        expect(family.locator("td")).to_have_count(headers)
        family.locator("button.toggle").click()
        trial = page.locator(f"tr[data-run='{ui_store.runs['trial-a0']}']")
        expect(trial.locator("td")).to_have_count(headers)
        expect(trial.locator("td.param").first).to_have_text("3")  # depth, the first param

    def test_a_filter_keeps_matching_grandchildren_under_their_parents(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        text = "params.depth = '6' and params.lr = '0.1'"
        page.goto(f"{ui_server.url}/experiments/{ui_store.sweep_experiment}?filter={quote(text)}")
        rows = page.locator("#rows tr.run")
        expect(rows).to_have_count(3)
        assert _names(page) == ["sweep", "family-b", "trial-b1"]
        depths = [rows.nth(i).get_attribute("data-depth") for i in range(3)]
        assert depths == ["0", "1", "2"]
        expect(rows.nth(0)).to_have_class(re.compile("context"))
        expect(rows.nth(2)).not_to_have_class(re.compile("context"))
        expect(page.locator("#count")).to_have_text("1 matching run")

    def test_or_and_parentheses_in_the_filter_box(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.sweep_experiment}")
        page.fill(
            "#filter", "(params.lr = '0.01' or tags.family = 'family-b') and params.depth = '3'"
        )
        page.click("#filter-form button[type=submit]")
        expect(page.locator("#count")).to_have_text("2 matching runs")
        matching = page.locator("#rows tr.run:not(.context) td.name a").all_inner_texts()
        assert sorted(matching) == ["trial-a0", "trial-b0"]

    def test_a_bad_filter_shows_the_parser_message_and_caret(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.sweep_experiment}")
        page.fill("#filter", "metrics.loss > 0.5 and (params.lr = ")
        page.click("#filter-form button[type=submit]")
        error = page.locator("#filter-error")
        expect(error).to_contain_text("invalid search filter at column 36")
        expect(error).to_contain_text("^")
        assert page.locator("#filter").input_value() == "metrics.loss > 0.5 and (params.lr ="
        expect(page.locator("#runs")).to_have_count(0)
        page.errors.clear()  # the page itself answers 400


class TestTableFeatures:
    def test_pipeline_runs_show_their_dag_or_flow_and_task(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.pipelines_experiment}")
        dag = page.locator(f"tr[data-run='{ui_store.runs['dag']}']")
        expect(dag.locator("td.pipe")).to_have_text("retrain")
        dag.locator("button.toggle").click()
        expect(page.locator(f"tr[data-run='{ui_store.runs['train']}'] td.pipe")).to_have_text(
            "retrain \u203a train"
        )
        flow = page.locator(f"tr[data-run='{ui_store.runs['flow']}']")
        flow.locator("button.toggle").click()
        expect(page.locator(f"tr[data-run='{ui_store.runs['task_run']}'] td.pipe")).to_have_text(
            "nightly \u203a score-0"
        )

    def test_sort_by_a_metric_from_its_header(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.many_experiment}")
        page.click("th a[title='sort by metrics.score']")
        page.wait_for_url(re.compile("sort=metrics"))
        assert _names(page)[:3] == ["run-229", "run-228", "run-227"]
        page.click("th a[title='sort by metrics.score']")
        page.wait_for_url(re.compile("ASC"))
        assert _names(page)[:3] == ["run-000", "run-001", "run-002"]
        expect(page.locator("th.sorted.asc")).to_contain_text("score")

    def test_scrolling_fetches_the_next_pages(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.many_experiment}")
        rows = page.locator("#rows tr.run")
        expect(rows).to_have_count(100)
        expect(page.locator("#count")).to_have_text(f"{MANY_RUNS} top-level runs")
        for expected in (200, MANY_RUNS):
            page.locator("#rows tr.more").scroll_into_view_if_needed()
            expect(rows).to_have_count(expected)
        names = _names(page)
        assert names == [f"run-{i:03d}" for i in range(MANY_RUNS - 1, -1, -1)]
        expect(page.locator("#rows tr.more")).to_have_count(0)

    def test_the_document_keeps_a_bounded_number_of_rows(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.many_experiment}")
        # The bound is about 1,000 rows; 150 here shows the same with fewer runs.
        page.evaluate("() => { document.getElementById('rows').dataset.maxRows = '150'; }")
        rows = page.locator("#rows tr.run")
        expect(rows).to_have_count(100)
        for last in ("run-030", "run-000"):
            page.locator("#rows tr.more").scroll_into_view_if_needed()
            expect(rows.last.locator("td.name a")).to_have_text(last)
            expect(rows).to_have_count(150)
        expect(page.locator("#rows tr.more")).to_have_count(0)
        names = _names(page)
        assert names[0] == "run-149" and names[-1] == "run-000"  # the oldest pages went
        expect(page.locator("#dropped")).to_contain_text("back to the top")

    def test_the_column_chooser_fetches_only_the_chosen_keys(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{ui_store.sweep_experiment}")
        page.locator(f"tr[data-run='{ui_store.runs['sweep']}'] button.toggle").click()
        expect(page.locator("thead th.param")).to_have_count(5)  # the first five keys
        page.click("#columns summary")
        for box in page.locator("#columns input[type=checkbox]").all():
            box.uncheck()
        page.check("#columns input[value='t:family']")
        page.check("#columns input[value='p:lr']")
        page.click("#columns button[type=submit]")
        page.wait_for_url(re.compile("cols="))
        headers = page.locator("thead th").all_inner_texts()
        assert "family" in [h.strip() for h in headers] and "lr" in [h.strip() for h in headers]
        assert "seed" not in [h.strip() for h in headers]
        sweep = page.locator(f"tr[data-run='{ui_store.runs['sweep']}']")
        sweep.locator("button.toggle").click()
        page.locator(f"tr[data-run='{ui_store.runs['family-a']}'] button.toggle").click()
        trial = page.locator(f"tr[data-run='{ui_store.runs['trial-a0']}']")
        expect(trial.locator("td.tag")).to_have_text("family-a")
        expect(trial.locator("td.param")).to_have_text("0.01")
        expect(trial.locator("td.metric")).to_have_count(0)  # metrics were not chosen

    def test_the_url_is_shareable(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        url = (
            f"{ui_server.url}/experiments/{ui_store.many_experiment}"
            f"?filter={quote('metrics.score < 3')}&sort={quote('metrics.`score` ASC')}&cols=m:score"
        )
        page.goto(url)
        assert _names(page) == ["run-000", "run-001", "run-002"]
        expect(page.locator("#rows tr.run").nth(2).locator("td.metric")).to_have_text("2")
