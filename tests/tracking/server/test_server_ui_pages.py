"""Bounded UI pages on a real server: the column cap, pages built off the event loop
(``/health`` answers meanwhile), a run's tags and params in pages, previews that fall back
to download-only with the reason, and run trees of any depth."""

from __future__ import annotations

import inspect
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _server_support import ServerProcess, start_server
from fastapi.routing import APIRoute

from tracking import TrackingClient
from tracking.entities import Param, RunTag
from tracking.server import ServerSettings, create_app
from tracking.store.sql.browse import CELL_CHARS
from tracking.ui.run_page import KV_PAGE
from tracking.ui.runs import MAX_COLUMNS

DEEP = 200
#: More page requests at once than the threadpool has threads (40).
FLOOD = 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with start_server(tmp_path_factory.mktemp("ui-pages")) as found:
        yield found


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> TrackingClient:
    return TrackingClient(server.url)


def _cols(n: int) -> str:
    return "&".join(f"cols=p:k{i:04d}" for i in range(n))


@pytest.fixture(scope="module")
def wide(client: TrackingClient) -> str:
    """Three runs of 100 params of 300 characters."""
    eid = client.create_experiment("wide")
    for r in range(3):
        rid = client.create_run(eid, run_name=f"wide-{r}").info.run_id
        client.log_batch(rid, params=[Param(f"k{i:04d}", "v" * 300) for i in range(100)])
    return eid


@pytest.fixture(scope="module")
def crowded(client: TrackingClient) -> tuple[str, str]:
    """A run of 250 params and 250 tags."""
    eid = client.create_experiment("crowded")
    rid = client.create_run(eid, run_name="crowded").info.run_id
    for start in range(0, 250, 100):
        client.log_batch(
            rid,
            params=[Param(f"p{i:03d}", f"pv{i}") for i in range(start, min(start + 100, 250))],
            tags=[RunTag(f"t{i:03d}", f"tv{i}") for i in range(start, min(start + 100, 250))],
        )
    return eid, rid


@pytest.fixture(scope="module")
def awkward(client: TrackingClient) -> tuple[str, str]:
    """A CSV with a 200 kB field, JSON arrays and objects nested 100,000 and 50,000 deep."""
    eid = client.create_experiment("awkward")
    rid = client.create_run(eid, run_name="awkward").info.run_id
    client.log_text(rid, "a,b\n" + "x" * 200_000 + ",1\n", "wide-field.csv")
    client.log_text(rid, "[" * 100_000 + "]" * 100_000, "deep.json")
    client.log_text(rid, '{"a": ' * 50_000 + "1" + "}" * 50_000, "deep-object.json")
    return eid, rid


@pytest.fixture(scope="module")
def chain(client: TrackingClient) -> tuple[str, list[str]]:
    """A run :data:`DEEP` levels down (each the only child of the one above), tagged."""
    eid = client.create_experiment("deep")
    ids: list[str] = []
    for level in range(DEEP):
        run = client.create_run(
            eid, run_name=f"level-{level}", parent_run_id=ids[-1] if ids else None
        )
        ids.append(run.info.run_id)
    client.set_tag(ids[-1], "mark", "deepest")
    return eid, ids


@pytest.fixture(scope="module")
def heavy_experiment(client: TrackingClient) -> str:
    """100 runs of 100 params of 6,000 characters: at the cap, the largest table page."""
    eid = client.create_experiment("heavy")
    for r in range(100):
        rid = client.create_run(eid, run_name=f"heavy-{r}").info.run_id
        client.log_batch(rid, params=[Param(f"k{i:04d}", "w" * 6000) for i in range(100)])
    return eid


class TestColumnCap:
    @pytest.mark.parametrize("where", ["page", "rows"])
    def test_too_many_columns_are_refused_naming_the_limit(
        self, server: ServerProcess, wide: str, where: str
    ) -> None:
        url = (
            f"{server.url}/experiments/{wide}?{_cols(2000)}"
            if where == "page"
            else f"{server.url}/ui/rows?experiments={wide}&{_cols(2000)}"
        )
        response = httpx.get(url, timeout=120)
        assert response.status_code == 400
        assert f"at most {MAX_COLUMNS} columns" in response.text
        assert "2000" in response.text
        assert len(response.content) < 200_000, len(response.content)

    def test_up_to_the_limit_is_served(self, server: ServerProcess, wide: str) -> None:
        response = httpx.get(f"{server.url}/experiments/{wide}?{_cols(MAX_COLUMNS)}", timeout=60)
        assert response.status_code == 200
        assert response.text.count('<td class="param"') == 3 * MAX_COLUMNS

    def test_long_values_are_cut_in_the_table(self, server: ServerProcess, wide: str) -> None:
        response = httpx.get(f"{server.url}/experiments/{wide}?cols=p:k0000", timeout=60)
        assert "v" * (CELL_CHARS + 1) not in response.text
        assert re.search(rf'<td class="param" title="[^"]*">v{{{CELL_CHARS}}}…</td>', response.text)


class TestOffTheEventLoop:
    def test_every_ui_page_is_built_in_a_worker_thread(self) -> None:
        """FastAPI runs a plain ``def`` endpoint in its threadpool, an ``async def`` one on
        the event loop, where a slow page would stall every other request. Listed from the
        app: a page added tomorrow is checked too."""
        on_loop = [
            r.path
            for r in _app_routes()
            if isinstance(r, APIRoute)
            and not r.path.startswith(("/api/", "/ajax-api/", "/health"))
            # MLflow's download endpoints outside /api: no pages, their I/O is off the loop.
            and r.path not in ("/get-artifact", "/model-versions/get-artifact")
            and inspect.iscoroutinefunction(r.endpoint)
        ]
        assert on_loop == []

    @pytest.mark.parametrize("pages", [1, 4], ids=["one-page", "four-pages"])
    def test_health_and_the_api_answer_while_heavy_pages_are_built(
        self, server: ServerProcess, heavy_experiment: str, pages: int
    ) -> None:
        eid = heavy_experiment
        heavy = [
            f"{server.url}/experiments/{eid}?{_cols(2000)}",  # over the cap
            *[f"{server.url}/experiments/{eid}?{_cols(MAX_COLUMNS)}"] * pages,  # at the cap
        ]
        durations: list[float] = []
        sizes: list[int] = []

        def fetch(url: str) -> None:
            start = time.monotonic()
            response = httpx.get(url, timeout=300)
            durations.append(time.monotonic() - start)
            sizes.append(len(response.content))

        threads = [threading.Thread(target=fetch, args=(u,)) for u in heavy]
        health: list[float] = []
        api: list[float] = []
        with httpx.Client(base_url=server.url, timeout=60) as http:
            http.get("/health")
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                start = time.monotonic()
                assert http.get("/health").status_code == 200
                health.append(time.monotonic() - start)
                start = time.monotonic()
                http.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": eid})
                api.append(time.monotonic() - start)
        for t in threads:
            t.join()
        print(
            f"\n{len(heavy)} heavy pages at once (one of 2,000 columns, {pages} at the cap) in "
            f"{max(durations):.2f} s, sizes {sizes}; meanwhile /health answered {len(health)} "
            f"times, {_ms(health)}; experiments/get {_ms(api)}"
        )
        assert len(health) >= 3
        # Generous: a page built on the event loop held /health for seconds.
        assert max(health) < 1.0
        assert max(api) < 1.0
        assert max(sizes) < 5_000_000


def _ms(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    return (
        f"median {ordered[len(ordered) // 2] * 1000:.0f} ms, "
        f"95th percentile {ordered[int(len(ordered) * 0.95)] * 1000:.0f} ms, "
        f"slowest {ordered[-1] * 1000:.0f} ms"
    )


def _app_routes() -> list[Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServerSettings(
            backend_store_uri=f"sqlite:///{tmp}/r.db", artifacts_destination=f"{tmp}/a"
        )
        return list(create_app(settings).routes)


class TestRunValuesInPages:
    def test_the_run_page_shows_the_first_and_offers_the_rest(
        self, server: ServerProcess, crowded: tuple[str, str]
    ) -> None:
        eid, rid = crowded
        text = httpx.get(f"{server.url}/experiments/{eid}/runs/{rid}").text
        assert "Tags (250)" in text and "Params (250)" in text
        shown = re.findall(r"<th>(t\d{3})</th>", text)
        assert shown == [f"t{i:03d}" for i in range(KV_PAGE)]
        assert f"t{KV_PAGE:03d}" not in text
        more = re.findall(r'hx-get="([^"]*/ui/run-values\?[^"]*kind=tags[^"]*)"', text)
        assert len(more) == 1

    def test_the_rest_comes_page_by_page(
        self, server: ServerProcess, crowded: tuple[str, str]
    ) -> None:
        eid, rid = crowded
        text = httpx.get(f"{server.url}/experiments/{eid}/runs/{rid}").text
        (url,) = re.findall(r'hx-get="([^"]*/ui/run-values\?[^"]*kind=params[^"]*)"', text)
        keys: list[str] = re.findall(r"<th>(p\d{3})</th>", text)
        while url:
            fragment = httpx.get(server.url + url.replace("&amp;", "&")).text
            keys += re.findall(r"<th>(p\d{3})</th>", fragment)
            found = re.findall(r'hx-get="([^"]*/ui/run-values\?[^"]*)"', fragment)
            url = found[0] if found else ""
        assert keys == [f"p{i:03d}" for i in range(250)]


class TestPreviewFallback:
    @pytest.mark.parametrize(
        ("path", "reason"),
        [
            pytest.param("wide-field.csv", "field larger than", id="csv-200kB-field"),
            pytest.param("deep.json", "nested too deeply", id="json-100000-deep"),
            pytest.param("deep-object.json", "nested too deeply", id="json-objects-deep"),
        ],
    )
    def test_download_only_with_the_reason(
        self, server: ServerProcess, awkward: tuple[str, str], path: str, reason: str
    ) -> None:
        eid, rid = awkward
        response = httpx.get(
            f"{server.url}/experiments/{eid}/runs/{rid}/artifacts", params={"path": path}
        )
        assert response.status_code == 200, response.text[-500:]
        assert 'id="no-preview"' in response.text
        assert reason in response.text
        assert 'id="download"' in response.text


class TestDeepTrees:
    def test_the_breadcrumb_shows_the_root_an_ellipsis_and_the_parent(
        self, server: ServerProcess, chain: tuple[str, list[str]]
    ) -> None:
        eid, ids = chain
        text = httpx.get(f"{server.url}/experiments/{eid}/runs/{ids[-1]}").text
        (crumbs,) = re.findall(r'<nav class="crumbs" id="breadcrumb">(.*?)</nav>', text, re.S)
        linked = re.findall(r"/runs/([0-9a-f]{32})\"", crumbs)
        assert linked == ids[:-1], "every ancestor, root first, in order"
        hidden = re.search(
            r'<details class="elided" id="crumbs-elided">(.*?)</details>', crumbs, re.S
        )
        assert hidden, crumbs[:500]
        assert ids[0] not in hidden.group(1) and ids[-2] not in hidden.group(1)
        assert f"{DEEP - 1 - 4} more" in hidden.group(1)

    def test_a_deep_match_is_shown_under_all_its_ancestors(
        self, server: ServerProcess, chain: tuple[str, list[str]]
    ) -> None:
        eid, ids = chain
        text = httpx.get(
            f"{server.url}/experiments/{eid}", params={"filter": "tags.mark = 'deepest'"}
        ).text
        rows = re.findall(
            r'<tr class="run( context)?" data-run="([0-9a-f]+)" data-depth="(\d+)"', text
        )
        assert [r[1] for r in rows] == ids
        assert [int(r[2]) for r in rows] == list(range(DEEP))
        assert [bool(r[0]) for r in rows] == [True] * (DEEP - 1) + [False]


class TestPageFlood:
    def test_a_flood_of_pages_leaves_the_api_its_threads(
        self, server: ServerProcess, heavy_experiment: str
    ) -> None:
        """Pages are built in worker threads; sixty of them at once must not take every
        thread the API needs: the UI gets a few at a time and the rest wait, threadless."""
        url = f"{server.url}/experiments/{heavy_experiment}?{_cols(40)}"
        done: list[float] = []

        def fetch() -> None:
            start = time.monotonic()
            assert httpx.get(url, timeout=300).status_code == 200
            done.append(time.monotonic() - start)

        threads = [threading.Thread(target=fetch) for _ in range(FLOOD)]
        api: list[float] = []
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for t in threads:
                t.start()
            time.sleep(0.2)
            while any(t.is_alive() for t in threads):
                start = time.monotonic()
                http.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "0"})
                api.append(time.monotonic() - start)
        for t in threads:
            t.join()
        print(
            f"\n{FLOOD} table pages at once, all served in {max(done):.2f} s; meanwhile "
            f"experiments/get answered {len(api)} times, {_ms(api)}"
        )
        assert len(done) == FLOOD
        assert max(api) < 1.0
