"""Bearer-token auth: 401 UNAUTHENTICATED without the right token, nothing done; /health open."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from _server_support import MLFLOW, PROXY, TOKEN
from pydantic import SecretStr
from starlette.routing import Mount, Route

from tracking.server import ServerSettings, create_app
from tracking.server.middleware import OPEN_PATHS
from tracking.ui.app import UI_OPEN_PREFIXES

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

GOOD = {"Authorization": f"Bearer {TOKEN}"}


def app_routes() -> list[tuple[str, str]]:
    """``(method, path)`` of every route and mount of the app, parameters filled with ``x``."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServerSettings(
            backend_store_uri=f"sqlite:///{tmp}/routes.db",
            artifacts_destination=f"{tmp}/a",
            auth_token=SecretStr(TOKEN),
        )
        found: set[tuple[str, str]] = set()
        for route in create_app(settings).routes:
            if isinstance(route, Mount):
                found.add(("GET", f"{route.path}/x"))
            elif isinstance(route, Route):
                path = re.sub(r"\{[^}]+\}", "x", route.path)
                found.update((m, path) for m in (route.methods or {"GET"}) - {"HEAD"})
        return sorted(found)


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(UI_OPEN_PREFIXES)


OPEN = [r for r in app_routes() if _open(r[1])]
ROUTES = [r for r in app_routes() if not _open(r[1])]


@pytest.fixture(scope="module")
def swept_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app behind the token for the whole sweep (a missing header is no guess, so the
    sweep is never throttled)."""
    from fastapi.testclient import TestClient

    tmp = tmp_path_factory.mktemp("auth-sweep")
    settings = ServerSettings(
        backend_store_uri=f"sqlite:///{tmp}/server.db",
        artifacts_destination=str(tmp / "artifacts"),
        auth_token=SecretStr(TOKEN),
    )
    with TestClient(
        create_app(settings), base_url="http://localhost", raise_server_exceptions=False
    ) as client:
        yield client


WRONG_HEADERS = [
    pytest.param({}, id="no-header"),
    pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
    pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="token-with-suffix"),
    pytest.param({"Authorization": TOKEN}, id="no-bearer-prefix"),
    pytest.param({"Authorization": f"Basic {TOKEN}"}, id="basic-scheme"),
]


class TestRefused:
    @pytest.mark.parametrize("headers", WRONG_HEADERS)
    def test_write_refused_and_nothing_written(
        self, auth_client: TestClient, headers: dict[str, str]
    ) -> None:
        response = auth_client.post(
            f"{MLFLOW}/experiments/create", json={"name": "secret"}, headers=headers
        )
        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"
        assert response.json()["error_class"] == "UnauthenticatedError"
        assert response.headers["www-authenticate"] == "Bearer"
        found = auth_client.get(
            f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "secret"}, headers=GOOD
        )
        assert found.status_code == 404

    @pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
    def test_every_route_needs_the_token(
        self, swept_app: TestClient, method: str, path: str
    ) -> None:
        """Every route of the app, listed from it (a route added tomorrow is swept too),
        but the few that are open on purpose."""
        response = swept_app.request(method, path, content=b"data")
        assert response.status_code == 401, response.text[:300]
        assert response.json()["error_code"] == "UNAUTHENTICATED"

    def test_an_unknown_endpoint_needs_the_token(self, auth_client: TestClient) -> None:
        response = auth_client.get("/api/2.0/mlflow/no/such/endpoint")
        assert response.status_code == 401

    def test_only_these_routes_are_open(self) -> None:
        assert sorted(OPEN) == [
            ("GET", "/health"),
            ("GET", "/ui/login"),
            ("GET", "/ui/static/x"),
            ("GET", "/ui/vendor/x"),
            ("POST", "/ui/login"),
        ]

    def test_refused_upload_stores_nothing(self, auth_client: TestClient) -> None:
        auth_client.put(f"{PROXY}/0/x/artifacts/a.txt", content=b"data")
        listing = auth_client.get(PROXY, params={"path": "0/x/artifacts"}, headers=GOOD)
        assert listing.json() == {"files": []}


class TestAllowed:
    def test_health_is_open(self, auth_client: TestClient) -> None:
        response = auth_client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    @pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
    def test_docs_need_the_token_too(self, auth_client: TestClient, path: str) -> None:
        assert auth_client.get(path).status_code == 401
        assert auth_client.get(path, headers=GOOD).status_code == 200

    def test_open_docs_switch_opens_them(self, server_settings: ServerSettings) -> None:
        from fastapi.testclient import TestClient

        settings = server_settings.model_copy(
            update={"auth_token": SecretStr(TOKEN), "open_docs": True}
        )
        with TestClient(create_app(settings), base_url="http://localhost") as client:
            assert client.get("/openapi.json").status_code == 200
            assert client.get(f"{MLFLOW}/experiments/search").status_code == 401

    def test_right_token_works(self, auth_client: TestClient) -> None:
        response = auth_client.post(
            f"{MLFLOW}/experiments/create", json={"name": "ok"}, headers=GOOD
        )
        assert response.status_code == 200
        found = auth_client.get(
            f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "ok"}, headers=GOOD
        )
        assert found.status_code == 200


class TestTokenSources:
    def test_token_from_a_file(self, tmp_path: Path) -> None:
        secret = tmp_path / "token"
        secret.write_text(f"  {TOKEN}\n")
        settings = ServerSettings(auth_token_file=secret)
        assert settings.auth_token is not None
        assert settings.auth_token.get_secret_value() == TOKEN

    def test_token_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TRACKFLOW_SERVER_AUTH_TOKEN", TOKEN)
        settings = ServerSettings()
        assert settings.auth_token is not None
        assert settings.auth_token.get_secret_value() == TOKEN

    @pytest.mark.parametrize("content", [None, ""], ids=["missing", "empty"])
    def test_unreadable_token_file_is_a_clear_error(
        self, tmp_path: Path, content: str | None
    ) -> None:
        from pydantic import ValidationError

        secret = tmp_path / "token"
        if content is not None:
            secret.write_text(content)
        with pytest.raises(ValidationError, match="auth_token_file"):
            ServerSettings(auth_token_file=secret)
