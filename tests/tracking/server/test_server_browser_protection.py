"""Host header checks (DNS rebinding), CORS and the security headers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from _server_support import MLFLOW

from tracking.server import ServerSettings, create_app
from tracking.server.middleware import HostMatcher

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(server_settings: ServerSettings) -> Iterator[MakeClient]:
    from fastapi.testclient import TestClient

    opened: list[TestClient] = []

    def make(**updates: object) -> TestClient:
        settings = ServerSettings(**{**server_settings.model_dump(), **updates})
        client = TestClient(create_app(settings), base_url="http://localhost")
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


SEARCH = f"{MLFLOW}/experiments/search?max_results=1"


class TestHostMatcher:
    @pytest.mark.parametrize(
        ("host", "allowed"),
        [
            pytest.param("localhost:5000", True, id="localhost"),
            pytest.param("127.0.0.1:5000", True, id="loopback"),
            pytest.param("[::1]:5000", True, id="ipv6-loopback"),
            pytest.param("10.1.2.3", True, id="private-10"),
            pytest.param("192.168.0.7:80", True, id="private-192"),
            pytest.param("172.20.0.1", True, id="private-172"),
            pytest.param("8.8.8.8", False, id="public-address"),
            pytest.param("evil.example:5000", False, id="rebinding-name"),
            pytest.param("localhost.evil.example", False, id="lookalike"),
            pytest.param("", False, id="missing"),
        ],
    )
    def test_defaults(self, host: str, allowed: bool) -> None:
        from tracking.server.settings import DEFAULT_ALLOWED_HOSTS

        assert HostMatcher(DEFAULT_ALLOWED_HOSTS).allows(host) is allowed

    def test_wildcards_and_any(self) -> None:
        matcher = HostMatcher(["*.example.com", "tracking.internal"])
        assert matcher.allows("a.example.com:443")
        assert not matcher.allows("example.com.evil")
        assert matcher.allows("tracking.internal")
        assert HostMatcher(["*"]).allows("anything.at.all")


class TestHostHeader:
    def test_foreign_host_is_refused_and_nothing_done(self, make_client: MakeClient) -> None:
        client = make_client()
        response = client.post(
            f"{MLFLOW}/experiments/create",
            json={"name": "rebound"},
            headers={"Host": "evil.example:5000"},
        )
        assert response.status_code == 403
        body = response.json()
        assert body["error_code"] == "PERMISSION_DENIED"
        assert "evil.example" in body["message"]
        assert "--allowed-hosts" in body["message"]
        lookup = client.get(
            f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "rebound"}
        )
        assert lookup.status_code == 404

    def test_configured_host_is_served(self, make_client: MakeClient) -> None:
        client = make_client(allowed_hosts="tracking.example.com")
        ok = client.get(SEARCH, headers={"Host": "tracking.example.com:5000"})
        assert ok.status_code == 200
        # Configuring hosts replaces the defaults.
        assert client.get(SEARCH, headers={"Host": "10.0.0.1"}).status_code == 403


class TestSecurityHeaders:
    def test_every_response_carries_them(self, make_client: MakeClient) -> None:
        client = make_client()
        for response in (client.get(SEARCH), client.get("/nope"), client.get("/health")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "SAMEORIGIN"

    def test_frame_options_can_be_changed_or_dropped(self, make_client: MakeClient) -> None:
        deny = make_client(x_frame_options="deny")
        assert deny.get("/health").headers["x-frame-options"] == "DENY"
        none = make_client(x_frame_options="NONE")
        assert "x-frame-options" not in none.get("/health").headers

    def test_bad_frame_option_is_a_clear_error(self) -> None:
        from pydantic import ValidationError

        with pytest.raises(ValidationError, match="SAMEORIGIN, DENY or NONE"):
            ServerSettings(x_frame_options="ALLOW-FROM x")


class TestCors:
    def _preflight(self, client: TestClient, origin: str) -> Any:
        return client.options(
            f"{MLFLOW}/experiments/create",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )

    def test_localhost_origins_allowed_by_default(self, make_client: MakeClient) -> None:
        client = make_client()
        response = self._preflight(client, "http://localhost:3000")
        assert response.status_code == 200
        allowed = response.headers["access-control-allow-origin"]
        assert allowed == "http://localhost:3000"
        simple = client.get(SEARCH, headers={"Origin": "http://127.0.0.1:8080"})
        assert simple.headers["access-control-allow-origin"] == "http://127.0.0.1:8080"

    def test_other_origins_refused_by_default(self, make_client: MakeClient) -> None:
        client = make_client()
        response = self._preflight(client, "https://evil.example")
        assert response.status_code == 400
        simple = client.get(SEARCH, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in simple.headers

    def test_configured_origins_replace_the_defaults(self, make_client: MakeClient) -> None:
        client = make_client(cors_allowed_origins="https://ui.example.com")
        ok = self._preflight(client, "https://ui.example.com")
        assert ok.headers["access-control-allow-origin"] == "https://ui.example.com"
        assert self._preflight(client, "http://localhost:3000").status_code == 400

    def test_preflight_needs_no_token(self, make_client: MakeClient) -> None:
        from pydantic import SecretStr

        client = make_client(auth_token=SecretStr("s3cret"))
        assert self._preflight(client, "http://localhost:3000").status_code == 200
