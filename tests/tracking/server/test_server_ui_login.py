"""Guessing the token: after a few wrong tokens a client is locked out for a while (429,
logged), on the login form and on the API alike, while the right token still works from
another client. And the session cookie is named for its server instance."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _server_support import MLFLOW, TOKEN, ServerProcess, start_server
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tracking.server import ServerSettings, create_app
from tracking.ui.auth import (
    ATTEMPT_WINDOW_SECONDS,
    LOCKOUT_SECONDS,
    LOGIN_ATTEMPTS,
    TokenThrottle,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: the lock-outs below must not reach other tests' clients."""
    with start_server(tmp_path_factory.mktemp("guarded"), token=TOKEN) as server:
        yield server


def _from(address: str, server: ServerProcess) -> httpx.Client:
    """A client whose connections leave from ``address`` (any 127.x.y.z is loopback)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, timeout=30)


def _login(http: httpx.Client, token: str) -> httpx.Response:
    return http.post("/ui/login", data={"token": token, "next": "/"})


class TestLoginLockout:
    def test_wrong_tokens_lock_the_client_out_and_the_right_token_works_elsewhere(
        self, guarded: ServerProcess
    ) -> None:
        with _from("127.0.0.2", guarded) as attacker, _from("127.0.0.3", guarded) as user:
            answers = [_login(attacker, f"guess-{i}").status_code for i in range(20)]
            print(f"answers to 20 wrong tokens from one client: {answers}")
            assert answers[:LOGIN_ATTEMPTS] == [401] * LOGIN_ATTEMPTS
            assert set(answers[LOGIN_ATTEMPTS:]) == {429}
            locked = _login(attacker, TOKEN)
            assert locked.status_code == 429, "a locked client is not told whether it guessed"
            assert int(locked.headers["retry-after"]) > 0
            assert "Too many wrong tokens" in locked.text
            signed_in = _login(user, TOKEN)
            assert signed_in.status_code == 303
            assert any(c.startswith("trackflow_session_") for c in user.cookies)
        log = guarded.log.read_text()
        assert re.search(r"locked out 127\.0\.0\.2 .*after 5 wrong tokens", log), log[-2000:]

    def test_wrong_bearer_tokens_lock_the_client_out_of_the_api(
        self, guarded: ServerProcess
    ) -> None:
        search = f"{MLFLOW}/experiments/search?max_results=1"
        with _from("127.0.0.4", guarded) as attacker, _from("127.0.0.5", guarded) as user:
            answers = [
                attacker.get(search, headers={"Authorization": f"Bearer guess-{i}"}).status_code
                for i in range(LOGIN_ATTEMPTS + 3)
            ]
            assert answers[:LOGIN_ATTEMPTS] == [401] * LOGIN_ATTEMPTS
            assert set(answers[LOGIN_ATTEMPTS:]) == {429}
            refused = attacker.get(search, headers={"Authorization": f"Bearer {TOKEN}"})
            assert refused.status_code == 429
            assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
            ok = user.get(search, headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200

    def test_a_missing_header_is_no_guess(self, guarded: ServerProcess) -> None:
        with _from("127.0.0.6", guarded) as browser:
            for _ in range(LOGIN_ATTEMPTS * 3):
                assert browser.get(f"{MLFLOW}/experiments/search").status_code == 401
            assert _login(browser, TOKEN).status_code == 303


class TestSessionCookieName:
    def test_the_name_carries_the_port_and_a_mark_of_the_token(
        self, guarded: ServerProcess, tmp_path: Path
    ) -> None:
        port = guarded.url.rsplit(":", 1)[1]
        with _from("127.0.0.7", guarded) as http:
            _login(http, TOKEN)
            (name,) = http.cookies.keys()
        assert re.fullmatch(rf"trackflow_session_{port}_[0-9a-f]{{8}}", name), name
        with start_server(tmp_path / "other", token=TOKEN) as other:
            other_port = other.url.rsplit(":", 1)[1]
            with _from("127.0.0.7", other) as http:
                _login(http, TOKEN)
                (other_name,) = http.cookies.keys()
                assert other_name == name.replace(port, other_port)
                # The first server's cookie, sent to the second by its name, is not a session.
                http.cookies.clear()
                http.cookies.set(name, "1.a.b")
                assert http.get("/", headers={"Accept": "text/html"}).status_code == 303

    def test_over_https_the_name_has_the_host_prefix(self, tmp_path: Path) -> None:
        settings = ServerSettings(
            backend_store_uri=f"sqlite:///{tmp_path}/x.db",
            artifacts_destination=str(tmp_path / "a"),
            auth_token=SecretStr(TOKEN),
        )
        with TestClient(create_app(settings), base_url="https://localhost") as client:
            response = client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
            cookie = response.headers["set-cookie"]
            assert re.match(r"__Host-trackflow_session_443_[0-9a-f]{8}=", cookie), cookie
            assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
            assert client.get("/", headers={"Accept": "text/html"}).status_code == 200


class TestTokenThrottle:
    """The lock-out's arithmetic, on an explicit clock (no waiting)."""

    def _fail(self, throttle: TokenThrottle, client: str, now: float, times: int) -> None:
        for _ in range(times):
            throttle.failed(client, "test", now=now)

    def test_a_lock_out_ends_and_the_next_one_lasts_twice_as_long(self) -> None:
        throttle = TokenThrottle()
        self._fail(throttle, "a", 0.0, LOGIN_ATTEMPTS)
        assert throttle.retry_after("a", now=1.0) == LOCKOUT_SECONDS - 1
        assert throttle.retry_after("a", now=LOCKOUT_SECONDS + 0.1) == 0
        self._fail(throttle, "a", 100.0, LOGIN_ATTEMPTS)
        assert throttle.retry_after("a", now=100.0) == 2 * LOCKOUT_SECONDS

    def test_wrong_tokens_spread_out_do_not_add_up(self) -> None:
        throttle = TokenThrottle()
        for i in range(3 * LOGIN_ATTEMPTS):
            throttle.failed("slow", "test", now=i * ATTEMPT_WINDOW_SECONDS)
        assert throttle.retry_after("slow", now=3 * LOGIN_ATTEMPTS * ATTEMPT_WINDOW_SECONDS) == 0

    def test_the_right_token_clears_the_count(self) -> None:
        throttle = TokenThrottle()
        self._fail(throttle, "typo", 0.0, LOGIN_ATTEMPTS - 1)
        throttle.succeeded("typo")
        self._fail(throttle, "typo", 1.0, LOGIN_ATTEMPTS - 1)
        assert throttle.retry_after("typo", now=2.0) == 0

    def test_clients_are_counted_apart(self) -> None:
        throttle = TokenThrottle()
        self._fail(throttle, "10.0.0.1", 0.0, LOGIN_ATTEMPTS)
        assert throttle.retry_after("10.0.0.1", now=1.0) > 0
        assert throttle.retry_after("10.0.0.2", now=1.0) == 0
