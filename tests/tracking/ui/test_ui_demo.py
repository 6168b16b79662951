"""The README's main command (``trackflow server --demo``), then what a newcomer does at
http://127.0.0.1:PORT/: experiments, the run tree, a run page with charts, compare,
artifacts. And ``trackflow ui``, the same server under the name ``mlflow ui`` users know."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _server_support import ServerProcess, start_server
from playwright.sync_api import expect


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with start_server(tmp_path_factory.mktemp("demo"), extra=("--demo",)) as server:
        yield server


def test_a_newcomer_browses_the_demo_sweep(page: Any, demo_server: ServerProcess) -> None:
    page.goto(demo_server.url + "/")
    page.click("#experiments a:text('demo-sweep')")
    expect(page.locator("#rows tr.run")).to_have_count(1)
    page.locator("#rows tr.run button.toggle").click()
    trials = page.locator("#rows tr.run[data-depth='1']")
    expect(trials).to_have_count(6)
    for i in range(3):
        trials.nth(i).locator(".pick").check()
    page.click("#compare")
    page.wait_for_url(re.compile(r"/compare\?runs="))
    expect(page.locator("#chart-grid")).to_have_attribute("data-ready", "1")
    assert page.evaluate("() => window.__trackflowCharts.plots.acc.series.length") == 4
    page.click("#compare-params thead a >> nth=0")
    expect(page.locator("h1")).to_contain_text("trial-")
    page.locator("#charts").scroll_into_view_if_needed()
    expect(page.locator("#chart-grid")).to_have_attribute("data-ready", "1")
    expect(page.locator(".chart canvas")).to_have_count(2)  # acc and loss
    page.click("#breadcrumb a:text-is('sweep')")
    page.click("#artifacts-link")
    page.click("#files a:text('results/')")
    page.click("#files a:text('trials.csv')")
    expect(page.locator("table.csv-preview tbody tr")).to_have_count(6)
    page.click("#files a:text('accuracy.svg')")
    expect(page.locator("img.image-preview")).to_be_visible()


def test_trackflow_ui_serves_the_same(tmp_path_factory: pytest.TempPathFactory) -> None:
    with start_server(tmp_path_factory.mktemp("ui-command"), command="ui") as server:
        page = httpx.get(server.url + "/")
        assert page.status_code == 200 and "<title>Experiments" in page.text
        api = httpx.get(f"{server.url}/api/2.0/mlflow/experiments/search?max_results=5")
        assert api.json()["experiments"][0]["name"] == "Default"
