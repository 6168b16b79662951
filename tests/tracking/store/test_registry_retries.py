"""A registry create whose answer is lost on the way back is retried by the REST store,
and the retry gets what the first attempt made: no "already exists", no second version.

The server is a real ``trackflow server`` process; between it and the client sits a
loopback relay that forwards each create to the server and, the first time, hangs
up instead of passing the answer on (what a dropped connection or a proxy timeout
does to a client).
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _server_support import ServerProcess, start_server

from tracking import TrackingClient
from tracking.errors import AlreadyExistsError

pytestmark = pytest.mark.timeout(300)

#: The calls whose first answer the relay drops.
LOSSY = ("/registered-models/create", "/model-versions/create")


class AnswerLosingRelay:
    """Forwards HTTP/1.1 requests to ``target``; drops the first answer to each path
    ending in one of ``lossy`` after the server has handled the request."""

    def __init__(self, target: str, lossy: tuple[str, ...]) -> None:
        self.target = target
        self.lossy = lossy
        self.dropped: list[str] = []
        self.forwarded: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._http = httpx.Client(base_url=target, timeout=30)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.close()
        self._http.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = reader.read(int(headers.get("content-length", "0")))
                forwarded = {k: v for k, v in headers.items() if k in ("content-type", "accept")}
                answer = self._http.request(method, target, content=body, headers=forwarded)
                path = target.split("?", 1)[0]
                self.forwarded.append(path)
                if path.endswith(self.lossy) and path not in self.dropped:
                    self.dropped.append(path)
                    return  # hang up: the server made the thing, the client never hears
                head = [f"HTTP/1.1 {answer.status_code} {answer.reason_phrase}"]
                head += [f"Content-Type: {answer.headers.get('content-type', 'text/plain')}"]
                head += [f"Content-Length: {len(answer.content)}", "", ""]
                conn.sendall("\r\n".join(head).encode("latin-1") + answer.content)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with start_server(tmp_path / "server") as running:
        yield running


@pytest.fixture
def relay(server: ServerProcess) -> Iterator[AnswerLosingRelay]:
    relay = AnswerLosingRelay(server.url, LOSSY)
    yield relay
    relay.close()


class TestLostAnswers:
    def test_a_retried_create_gets_what_the_first_attempt_made(
        self, relay: AnswerLosingRelay, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TRACKFLOW_RETRY_TIMEOUT", "30")
        direct = TrackingClient(server.url)
        exp = direct.create_experiment("retried")
        run = direct.create_run(exp).info.run_id
        model = direct.create_logged_model(exp, "toy", source_run_id=run)
        direct.finalize_logged_model(model.model_id)

        client = TrackingClient(relay.url)
        created = client.create_registered_model("churn", description="d")
        version = client.create_model_version("churn", model.model_uri, model_id=model.model_id)

        # Each create reached the server twice; the client got one answer, no error.
        assert sorted(relay.dropped) == sorted(f"/api/2.0/mlflow{p}" for p in LOSSY)
        assert relay.forwarded.count("/api/2.0/mlflow/model-versions/create") == 2
        assert (created.name, created.description) == ("churn", "d")
        assert version.version == "1"
        versions = direct.search_model_versions("name = 'churn'")
        assert [v.version for v in versions] == ["1"]  # the retry made no second version
        # A new call is a new request: it still refuses a taken name.
        with pytest.raises(AlreadyExistsError):
            client.create_registered_model("churn")
        assert client.create_model_version("churn", model.model_uri).version == "2"
