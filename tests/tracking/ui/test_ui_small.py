"""Smaller fixes: MLflow hash links in an open tab, the Experiment column, children sorted
with their table, experiment names in artifact breadcrumbs, notes as sanitised markdown,
no "Sign out" before signing in, "1 top-level run"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from _server_support import ServerProcess
from playwright.sync_api import expect

from tracking import TrackingClient
from tracking.entities import Metric


@dataclass
class Small:
    first: str
    second: str
    parent: str
    children: list[str]
    lonely: str


@pytest.fixture(scope="module")
def small(ui_server: ServerProcess) -> Small:
    client = TrackingClient(ui_server.db_uri, str(ui_server.artifacts))
    first = client.create_experiment("ui-small-first")
    second = client.create_experiment("ui-small-second")
    parent = client.create_run(first, run_name="small-parent").info.run_id
    children = []
    for i, score in enumerate((0.5, 0.9, 0.1, 0.7)):
        child = client.create_run(first, run_name=f"child-{i}", parent_run_id=parent)
        children.append(child.info.run_id)
        client.log_batch(child.info.run_id, metrics=[Metric("score", score, 1, 0)])
    lonely = client.create_run(second, run_name="lonely").info.run_id
    client.set_tag(
        lonely,
        "mlflow.note.content",
        "# Findings\n\n**bold** and `code`\n\n<script>window.pwned = 1</script>\n\n"
        "[bad](javascript:alert(1)) [good](https://example.org/)",
    )
    return Small(first, second, parent, children, lonely)


def test_an_mlflow_hash_link_in_an_open_tab(
    page: Any, ui_server: ServerProcess, small: Small
) -> None:
    page.goto(f"{ui_server.url}/experiments/{small.first}")
    expect(page.locator("h1")).to_contain_text("ui-small-first")
    page.evaluate(
        f"() => {{ location.hash = '#/experiments/{small.second}/runs/{small.lonely}'; }}"
    )
    page.wait_for_url(re.compile(rf"/experiments/{small.second}/runs/{small.lonely}$"))
    expect(page.locator("h1")).to_contain_text("lonely")


def test_several_experiments_have_an_experiment_column(
    page: Any, ui_server: ServerProcess, small: Small
) -> None:
    page.goto(f"{ui_server.url}/experiments/{small.first},{small.second}")
    heads = page.locator("#runs thead th").all_inner_texts()
    assert "Experiment" in heads
    column = heads.index("Experiment")
    row = page.locator("#rows tr.run", has_text="lonely")
    expect(row.locator("td").nth(column)).to_have_text("ui-small-second")
    page.locator("#rows tr.run", has_text="small-parent").locator("button.toggle").click()
    child = page.locator("#rows tr.run", has_text="child-2")
    expect(child.locator("td").nth(column)).to_have_text("ui-small-first")


def test_children_sort_with_their_table(page: Any, ui_server: ServerProcess, small: Small) -> None:
    page.goto(f"{ui_server.url}/experiments/{small.first}?sort=metrics.`score` ASC&cols=m:score")
    page.locator("#rows tr.run", has_text="small-parent").locator("button.toggle").click()
    expect(page.locator("#rows tr.run[data-depth='1']")).to_have_count(4)
    names = page.locator("#rows tr.run[data-depth='1'] td.name a").all_inner_texts()
    assert names == ["child-2", "child-0", "child-3", "child-1"]
    page.goto(f"{ui_server.url}/runs/{small.parent}")
    page.locator("#children-table thead th a", has_text="score").click()  # descending first
    names = page.locator("#children-table tbody td.name a").all_inner_texts()
    assert names == ["child-1", "child-3", "child-0", "child-2"]
    page.locator("#children-table thead th a", has_text="score").click()
    names = page.locator("#children-table tbody td.name a").all_inner_texts()
    assert names == ["child-2", "child-0", "child-3", "child-1"]


def test_artifact_breadcrumb_names_the_experiment(
    page: Any, ui_server: ServerProcess, small: Small
) -> None:
    page.goto(f"{ui_server.url}/experiments/{small.second}/runs/{small.lonely}/artifacts")
    expect(page.locator("nav.crumbs a").nth(1)).to_have_text("ui-small-second")


def test_notes_are_sanitised_markdown(page: Any, ui_server: ServerProcess, small: Small) -> None:
    page.goto(f"{ui_server.url}/runs/{small.lonely}")
    note = page.locator("#note-text")
    expect(note.locator("h4")).to_have_text("Findings")  # under the page's own headings
    expect(note.locator("strong")).to_have_text("bold")
    expect(note.locator("code")).to_have_text("code")
    expect(note).to_contain_text("<script>window.pwned = 1</script>")  # shown, not run
    assert note.locator("script").count() == 0
    assert page.evaluate("() => window.pwned") is None
    expect(note.locator("a", has_text="good")).to_have_attribute("href", "https://example.org/")
    assert note.locator("a[href^='javascript']").count() == 0
    page.fill("#note-form textarea", "Now *emphasised*")
    page.click("#note-form button")
    expect(note.locator("em")).to_have_text("emphasised")


def test_one_top_level_run(page: Any, ui_server: ServerProcess, small: Small) -> None:
    page.goto(f"{ui_server.url}/experiments/{small.second}")
    expect(page.locator("#count")).to_have_text("1 top-level run")


def test_the_login_page_offers_no_sign_out(page: Any, auth_ui_server: ServerProcess) -> None:
    page.goto(auth_ui_server.url + "/ui/login")
    expect(page.locator("form.login")).to_be_visible()
    expect(page.locator("#logout")).to_have_count(0)
