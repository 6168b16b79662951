"""In Chromium: a reflected script runs nowhere (escaped, and the CSP forbids inline
script anyway); a deep run's breadcrumb shows its root, an ellipsis that opens, and its
parent; a run's tags beyond the first page come on demand."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from _server_support import ServerProcess
from _ui_support import UiStore
from playwright.sync_api import expect

from tracking import TrackingClient
from tracking.entities import RunTag
from tracking.ui.run_page import KV_PAGE

SCRIPT = "<script>window.__xss = 1; alert(document.domain)</script>"
IMAGE = '"><img src=x onerror="window.__xss = 2">'


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"/ui/count?experiments={quote(SCRIPT)}", id="count-experiments"),
        pytest.param(f"/ui/count?experiments=1&filter={quote(SCRIPT)}", id="count-filter"),
        pytest.param(f"/ui/count?experiments={quote(IMAGE)}", id="count-attribute"),
        pytest.param(f"/experiments/{quote(IMAGE, safe='')}", id="runs-page"),
        pytest.param(f"/ui/rows?experiments=1&cursor={quote(SCRIPT)}", id="rows-cursor"),
    ],
)
def test_a_reflected_script_executes_nothing(
    page: Any, ui_server: ServerProcess, path: str
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    response = page.goto(ui_server.url + path)
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # an onerror handler would have run by now
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert page.locator("script:not([src]), img").count() == 0
    page.errors.clear()  # the refused request answers 400


def test_a_deep_breadcrumb_opens(page: Any, ui_server: ServerProcess) -> None:
    client = TrackingClient(ui_server.url)
    eid = client.create_experiment("ui-deep-chain")
    ids: list[str] = []
    for level in range(80):
        run = client.create_run(
            eid, run_name=f"level-{level}", parent_run_id=ids[-1] if ids else None
        )
        ids.append(run.info.run_id)
    page.goto(f"{ui_server.url}/experiments/{eid}/runs/{ids[-1]}")
    crumbs = page.locator("#breadcrumb")
    expect(crumbs.locator("a", has_text="level-0")).to_be_visible()
    expect(crumbs.locator("a", has_text="level-78")).to_be_visible()
    hidden = crumbs.locator("#crumbs-elided a", has_text="level-40")
    expect(hidden).to_be_hidden()
    crumbs.locator("#crumbs-elided summary").click()
    expect(hidden).to_be_visible()
    hidden.click()
    page.wait_for_url(f"**/runs/{ids[40]}")


def test_a_crowded_run_shows_more_tags_on_demand(page: Any, ui_server: ServerProcess) -> None:
    client = TrackingClient(ui_server.url)
    eid = client.create_experiment("ui-crowded-run")
    rid = client.create_run(eid, run_name="crowded").info.run_id
    for start in (0, 100):
        tags = [RunTag(f"t{i:03d}", f"v{i}") for i in range(start, start + 100)]
        client.log_batch(rid, tags=tags)
    client.set_tag(rid, "t200", "v200")
    page.goto(f"{ui_server.url}/experiments/{eid}/runs/{rid}")
    rows = page.locator("#tags > table tr:has(th)")
    expect(rows).to_have_count(KV_PAGE)
    page.locator("#tags > table tr.more-values button").click()
    expect(rows).to_have_count(2 * KV_PAGE)
    page.locator("#tags > table tr.more-values button").click()
    expect(rows).to_have_count(201)
    expect(page.locator("#tags > table tr.more-values")).to_have_count(0)
    expect(rows.last).to_contain_text("v200")


def test_a_refused_fragment_is_shown_as_text(
    page: Any, ui_server: ServerProcess, ui_store: UiStore
) -> None:
    page.goto(f"{ui_server.url}/experiments/{ui_store.many_experiment}")
    expect(page.locator("#count")).to_contain_text("top-level runs")
    page.evaluate(
        "(ids) => htmx.ajax('GET', '/ui/count?experiments=' + encodeURIComponent(ids),"
        " {target: '#count'})",
        IMAGE,
    )
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Loading failed: 400 Invalid experiment ids")
    expect(toast).not_to_contain_text("<span")
    assert page.evaluate("window.__xss") is None
    page.errors.clear()  # the refused request answers 400
