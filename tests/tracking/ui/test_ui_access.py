"""MLflow's URL scheme, auth with a session cookie and CSRF, the offline API docs, and the
page a server shows when the UI's assets are missing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from _server_support import TOKEN, ServerProcess
from _ui_support import UiStore
from fastapi.testclient import TestClient
from playwright.sync_api import expect

from tracking import links
from tracking.server.settings import ServerSettings
from tracking.ui import vendoring


class TestMlflowUrls:
    """Every link the mlflow client ("View run at ...") and the integrations print."""

    def test_run_link(self, page: Any, ui_server: ServerProcess, ui_store: UiStore) -> None:
        rid = ui_store.runs["trial-a1"]
        page.goto(links.run_url(ui_server.url, ui_store.sweep_experiment, rid))
        page.wait_for_url(f"**/experiments/{ui_store.sweep_experiment}/runs/{rid}")
        expect(page.locator("h1")).to_contain_text("trial-a1")

    def test_experiment_link(self, page: Any, ui_server: ServerProcess, ui_store: UiStore) -> None:
        page.goto(links.experiment_url(ui_server.url, ui_store.pipelines_experiment))
        page.wait_for_url(f"**/experiments/{ui_store.pipelines_experiment}")
        expect(page.locator("h1")).to_have_text("ui-pipelines")

    def test_mlflow_compare_link(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        a, b = ui_store.runs["trial-a0"], ui_store.runs["trial-b0"]
        page.goto(f'{ui_server.url}/#/compare-runs?runs=["{a}","{b}"]&experiments=["1"]')
        page.wait_for_url(re.compile(r"/compare\?runs="))
        expect(page.locator("h1")).to_have_text("Compare 2 runs")

    def test_a_run_by_id_alone(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        page.goto(f"{ui_server.url}/runs/{ui_store.runs['extract']}")
        page.wait_for_url(f"**/experiments/{ui_store.pipelines_experiment}/runs/*")
        expect(page.locator("h1")).to_contain_text("extract")

    def test_a_run_under_the_wrong_experiment(
        self, page: Any, ui_server: ServerProcess, ui_store: UiStore
    ) -> None:
        response = page.goto(
            f"{ui_server.url}/experiments/{ui_store.many_experiment}/runs/{ui_store.runs['sweep']}"
        )
        assert response.status == 404
        expect(page.locator("#error")).to_contain_text(
            f"is in experiment {ui_store.sweep_experiment}"
        )
        page.errors.clear()


def _sign_in(page: Any, token: str) -> None:
    page.fill("#token", token)
    page.click("form.login button")


class TestAuth:
    def test_nothing_renders_without_the_token(
        self, page: Any, auth_ui_server: ServerProcess
    ) -> None:
        response = page.goto(auth_ui_server.url + "/")
        page.wait_for_url("**/ui/login?next=%2F")
        assert "secret-exp" not in page.content()
        assert response.status == 200
        api = httpx.get(
            f"{auth_ui_server.url}/ajax-api/2.0/mlflow/experiments/search?max_results=5"
        )
        assert api.status_code == 401 and api.json()["error_code"] == "UNAUTHENTICATED"
        fragment = httpx.get(f"{auth_ui_server.url}/ui/rows?experiments=1")
        assert fragment.status_code == 401

    def test_wrong_then_right_token_and_the_session_cookie(
        self, page: Any, auth_ui_server: ServerProcess
    ) -> None:
        page.goto(auth_ui_server.url + "/")
        _sign_in(page, "not-the-token")
        expect(page.locator("#login-error")).to_have_text("wrong token")
        assert page.context.cookies() == []
        page.errors.clear()  # the refused sign-in answers 401
        _sign_in(page, TOKEN)
        page.wait_for_url(auth_ui_server.url + "/")
        expect(page.locator("#experiments")).to_contain_text("secret-exp")
        (cookie,) = page.context.cookies()
        port = auth_ui_server.url.rsplit(":", 1)[1]
        assert re.fullmatch(rf"trackflow_session_{port}_[0-9a-f]{{8}}", cookie["name"])
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert TOKEN not in cookie["value"]
        page.click("#experiments a:text('secret-exp')")
        expect(page.locator("#rows tr.run")).to_have_count(1)

    def test_a_linked_run_opens_after_signing_in(
        self, page: Any, auth_ui_server: ServerProcess
    ) -> None:
        runs = httpx.post(
            f"{auth_ui_server.url}/api/2.0/mlflow/runs/search",
            json={"experiment_ids": ["1"]},
            headers=auth_ui_server.headers(),
        ).json()["runs"]
        rid = runs[0]["info"]["run_id"]
        page.goto(links.run_url(auth_ui_server.url, "1", rid))
        page.wait_for_url(re.compile(r"/ui/login"))
        _sign_in(page, TOKEN)
        page.wait_for_url(f"**/experiments/1/runs/{rid}")
        expect(page.locator("h1")).to_contain_text("secret-run")

    def test_writes_need_the_csrf_token(self, page: Any, auth_ui_server: ServerProcess) -> None:
        page.goto(auth_ui_server.url + "/ui/login")
        _sign_in(page, TOKEN)
        page.wait_for_url(auth_ui_server.url + "/")
        api = f"{auth_ui_server.url}/ajax-api/2.0/mlflow/experiments/create"
        refused = page.request.post(api, data={"name": "forged"})
        assert refused.status == 403
        assert "CSRF" in refused.json()["message"]
        csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
        assert csrf
        wrong = page.request.post(api, data={"name": "forged"}, headers={"X-CSRF-Token": "0" * 64})
        assert wrong.status == 403
        search = httpx.post(
            f"{auth_ui_server.url}/api/2.0/mlflow/experiments/search",
            json={"filter": "name = 'forged'"},
            headers=auth_ui_server.headers(),
        )
        assert search.json().get("experiments", []) == []  # nothing was written
        page.fill("#create-experiment input[name=name]", "made-with-a-session")
        page.click("#create-experiment button")
        page.wait_for_url(re.compile(r"/experiments/\d+$"))
        expect(page.locator("h1")).to_have_text("made-with-a-session")

    def test_a_forged_cookie_and_signing_out(
        self, page: Any, auth_ui_server: ServerProcess
    ) -> None:
        host, port = auth_ui_server.url.split("//")[1].split(":")
        forged = [
            {"name": name, "value": "1.abc.def", "domain": host, "path": "/"}
            for name in ("trackflow_session", f"trackflow_session_{port}_00000000")
        ]
        page.context.add_cookies(forged)
        page.goto(auth_ui_server.url + "/")
        page.wait_for_url(re.compile(r"/ui/login"))
        _sign_in(page, TOKEN)
        page.wait_for_url(auth_ui_server.url + "/")
        page.click("#logout")
        page.wait_for_url(re.compile(r"/ui/login"))
        page.goto(auth_ui_server.url + "/")
        page.wait_for_url(re.compile(r"/ui/login"))


class TestOffline:
    """No request leaves the server's origin: the UI, /docs and /redoc work offline."""

    @pytest.mark.parametrize("path", ["/docs", "/redoc"], ids=["swagger", "redoc"])
    def test_api_docs(self, page: Any, ui_server: ServerProcess, path: str) -> None:
        outside: list[str] = []

        def route(r: Any) -> None:
            if r.request.url.startswith(ui_server.url) or r.request.url.startswith("data:"):
                r.continue_()
            else:
                outside.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(ui_server.url + path)
        if path == "/docs":
            expect(page.locator(".swagger-ui .opblock").first).to_be_visible(timeout=20_000)
        else:
            expect(page.locator("h1", has_text="trackflow tracking server")).to_be_visible(
                timeout=20_000
            )
            # Redoc's own logo comes from its CDN: the page's CSP refuses it.
            for _ in range(50):
                refused = [e for e in page.errors if "cdn.redoc.ly" in e]
                if refused:
                    break
                page.wait_for_timeout(100)
            assert refused and all("Content Security Policy" in e for e in refused)
            page.errors[:] = [e for e in page.errors if e not in refused]
        assert outside == []

    def test_ui_pages(self, page: Any, ui_server: ServerProcess, ui_store: UiStore) -> None:
        outside: list[str] = []
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if not r.url.startswith((ui_server.url, "data:", "blob:"))
                else None
            ),
        )
        for path in (
            "/",
            f"/experiments/{ui_store.sweep_experiment}",
            f"/experiments/{ui_store.sweep_experiment}/runs/{ui_store.runs['trial-a0']}",
        ):
            page.goto(ui_server.url + path)
            page.wait_for_load_state("networkidle")
        assert outside == []


class TestMissingAssets:
    def test_the_server_says_how_to_rebuild_them(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        from tracking.server.app import create_app

        monkeypatch.setattr(vendoring, "missing", lambda directory=None: ["htmx.min.js"])
        settings = ServerSettings(
            backend_store_uri=f"sqlite:///{tmp_path}/x.db",
            artifacts_destination=str(tmp_path / "a"),
        )
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            for path in ("/", "/experiments/1", "/docs"):
                response = client.get(path)
                assert response.status_code == 503
                assert "uv run python -m tracking.ui.vendoring" in response.text
                assert "htmx.min.js" in response.text
            assert client.get("/health").status_code == 200


class TestVendoring:
    def test_every_package_is_pinned_by_version_and_sha512(self) -> None:
        for package in vendoring.PACKAGES:
            assert re.fullmatch(r"\d+\.\d+\.\d+", package.version), package
            assert package.integrity.startswith("sha512-"), package
        assert vendoring.PACKAGES[0].name == "htmx.org" and vendoring.PACKAGES[
            0
        ].version.startswith("2.")

    def test_a_tampered_tarball_is_refused(self) -> None:
        with pytest.raises(RuntimeError, match=r"htmx.org@2\.\d+\.\d+: the tarball's sha512"):
            vendoring._verified(vendoring.PACKAGES[0], b"not the tarball")

    def test_an_empty_folder_misses_everything(self, tmp_path: Path) -> None:
        wanted = [t for p in vendoring.PACKAGES for t in p.files.values()]
        assert vendoring.missing(tmp_path) == wanted
        assert vendoring.missing() == []  # the build hook fetched them for this environment
