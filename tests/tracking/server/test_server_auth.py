"""Bearer-token auth: 401 UNAUTHENTICATED without the right token, nothing done; /health open."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from _server_support import MLFLOW, PROXY, TOKEN, TRACKFLOW

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

GOOD = {"Authorization": f"Bearer {TOKEN}"}

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

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            pytest.param("GET", f"{MLFLOW}/experiments/search", id="mlflow-read"),
            pytest.param("GET", "/ajax-api/2.0/mlflow/experiments/search", id="ajax"),
            pytest.param("GET", f"{TRACKFLOW}/runs/children?run_id=x", id="trackflow"),
            pytest.param("GET", f"{PROXY}?path=", id="proxy-list"),
            pytest.param("PUT", f"{PROXY}/0/x/artifacts/a.txt", id="proxy-upload"),
            pytest.param("GET", "/api/2.0/mlflow/no/such/endpoint", id="unknown-endpoint"),
        ],
    )
    def test_every_api_needs_the_token(
        self, auth_client: TestClient, method: str, path: str
    ) -> None:
        response = auth_client.request(method, path, content=b"data")
        assert response.status_code == 401
        assert response.json()["error_code"] == "UNAUTHENTICATED"

    def test_refused_upload_stores_nothing(self, auth_client: TestClient) -> None:
        auth_client.put(f"{PROXY}/0/x/artifacts/a.txt", content=b"data")
        listing = auth_client.get(PROXY, params={"path": "0/x/artifacts"}, headers=GOOD)
        assert listing.json() == {"files": []}


class TestAllowed:
    def test_health_is_open(self, auth_client: TestClient) -> None:
        response = auth_client.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    def test_openapi_schema_is_open(self, auth_client: TestClient) -> None:
        assert auth_client.get("/openapi.json").status_code == 200

    def test_right_token_works(self, auth_client: TestClient) -> None:
        response = auth_client.post(
            f"{MLFLOW}/experiments/create", json={"name": "ok"}, headers=GOOD
        )
        assert response.status_code == 200
        found = auth_client.get(
            f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "ok"}, headers=GOOD
        )
        assert found.status_code == 200
