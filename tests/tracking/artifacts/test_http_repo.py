"""The HTTP artifact repository against a real tracking server (the app in a uvicorn thread).

``TestHttpRepository`` runs the artifact repository conformance suite through
the server's ``mlflow-artifacts`` proxy, each repository at a fresh root, and
checks that nothing lands outside the server's artifact destination.
``TestThroughTheClient`` covers how ``TrackingClient`` picks the repository.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import tracking
from tracking import fluent
from tracking.artifacts.http_repo import HttpArtifactRepository
from tracking.client import TrackingClient
from tracking.entities import FileInfo
from tracking.errors import (
    ArtifactNotFoundError,
    InvalidParameterError,
    StoreUnavailableError,
    UnauthenticatedError,
)
from tracking.settings import reset_settings
from tracking.store.registry import clear_store_cache
from tracking.store.rest_http import RestSession
from tracking.testing.artifacts import ArtifactRepoFactory, ArtifactRepositorySuite
from tracking.testing.live_server import serving


@dataclass
class Server:
    """A tracking server app served by uvicorn in a thread."""

    url: str
    destination: Path
    db_uri: str


def _serve(tmp: Path, token: str | None = None) -> Iterator[Server]:
    from tracking.server import ServerSettings, create_app

    db_uri = f"sqlite:///{tmp / 'server.db'}"
    destination = tmp / "destination"
    settings = ServerSettings(
        backend_store_uri=db_uri, artifacts_destination=str(destination), auth_token=token
    )
    with serving(create_app(settings)) as url:
        yield Server(url, destination, db_uri)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A tracking server shared by the module (every repository gets a root of its own)."""
    yield from _serve(tmp_path_factory.mktemp("artifact-server"))


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A tracking server that wants the bearer token ``s3cret``."""
    yield from _serve(tmp_path_factory.mktemp("auth-server"), token="s3cret")


@pytest.fixture(scope="module")
def session(server: Server) -> Iterator[RestSession]:
    http = RestSession(server.url, max_retries=2)
    yield http
    http.close()


class TestHttpRepository(ArtifactRepositorySuite):
    @pytest.fixture
    def artifact_repo_factory(self, session: RestSession) -> ArtifactRepoFactory:
        base = uuid.uuid4().hex
        return lambda run_id: HttpArtifactRepository(
            f"mlflow-artifacts:/{base}/{run_id}/artifacts", run_id, session
        )

    @pytest.fixture
    def artifact_backing_files(self, server: Server) -> Callable[[], Any]:
        """Every file under the server's artifact destination."""

        def snapshot() -> dict[str, bytes]:
            root = server.destination
            return {
                p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.is_file()
            }

        return snapshot

    def test_files_land_in_the_destination(
        self, repo: HttpArtifactRepository, server: Server, tmp_path: Path
    ) -> None:
        source = tmp_path / "model.bin"
        source.write_bytes(b"\x00weights" * 1000)
        ref = repo.log_artifact(source, "models")
        stored = server.destination / repo._root / "models" / "model.bin"
        assert stored.read_bytes() == source.read_bytes()
        assert ref.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
        assert ref.uri == f"{repo.artifact_uri}/models/model.bin"

    def test_upload_is_streamed_with_its_length(self, server: Server, tmp_path: Path) -> None:
        class Spy(httpx.HTTPTransport):
            seen: list[httpx.Request] = []

            def handle_request(self, request: httpx.Request) -> httpx.Response:
                self.seen.append(request)
                return super().handle_request(request)

        session = RestSession(server.url, transport=Spy())
        repo = HttpArtifactRepository(f"mlflow-artifacts:/{uuid.uuid4().hex}", "r", session)
        data = b"x" * 3_000_000
        (tmp_path / "big.bin").write_bytes(data)
        ref = repo.log_artifact(tmp_path / "big.bin")
        assert (ref.size, ref.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        put = Spy.seen[0]
        assert put.method == "PUT"
        assert put.headers["Content-Length"] == str(len(data))
        assert not isinstance(put.stream, httpx.ByteStream)  # chunks, not one buffer
        assert repo.read_bytes("big.bin") == data

    def test_host_named_in_the_uri(self, server: Server) -> None:
        host = server.url.removeprefix("http://")
        elsewhere = RestSession("http://127.0.0.1:9", max_retries=0)  # nobody listens there
        repo = HttpArtifactRepository(
            f"mlflow-artifacts://{host}/{uuid.uuid4().hex}/artifacts", "r", elsewhere
        )
        repo.log_bytes(b"hello", "a.txt")
        assert repo.read_bytes("a.txt") == b"hello"
        assert repo.list_artifacts() == [FileInfo("a.txt", False, 5)]

    def test_only_mlflow_artifacts_uris(self, session: RestSession) -> None:
        with pytest.raises(InvalidParameterError, match="mlflow-artifacts"):
            HttpArtifactRepository("s3://bucket/x", "r", session)

    def test_unreachable_server(self) -> None:
        dead = RestSession("http://127.0.0.1:9", max_retries=1, backoff=0.01)
        repo = HttpArtifactRepository("mlflow-artifacts:/x", "r", dead)
        with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1:9"):
            repo.log_bytes(b"x", "a.txt")
        with pytest.raises(StoreUnavailableError):
            repo.list_artifacts()


class TestThroughTheClient:
    @pytest.fixture(autouse=True)
    def _fresh(self) -> Iterator[None]:
        clear_store_cache()
        yield
        clear_store_cache()

    def test_run_artifacts_go_through_the_server(self, server: Server, tmp_path: Path) -> None:
        client = TrackingClient(server.url)
        run = client.create_run("0")
        run_id = run.info.run_id
        assert run.info.artifact_uri == f"mlflow-artifacts:/0/{run_id}/artifacts"
        (tmp_path / "notes.txt").write_text("hello")
        ref = client.log_artifact(run_id, tmp_path / "notes.txt", "docs")
        assert ref.path == "docs/notes.txt" and ref.size == 5
        client.log_dict(run_id, {"lr": 0.1}, "config.json")
        assert client.list_artifacts(run_id) == [
            FileInfo("config.json", False, len('{\n  "lr": 0.1\n}')),
            FileInfo("docs", True, None),
        ]
        stored = server.destination / "0" / run_id / "artifacts" / "docs" / "notes.txt"
        assert stored.read_text() == "hello"
        local = client.download_artifacts(run_id, "docs", str(tmp_path / "dst"))
        assert (Path(local) / "notes.txt").read_text() == "hello"
        with pytest.raises(ArtifactNotFoundError, match=r"missing\.txt"):
            client.download_artifacts(run_id, "missing.txt", str(tmp_path / "dst"))

    def test_fluent_artifacts(self, server: Server) -> None:
        fluent._reset_for_tests()
        tracking.set_tracking_uri(server.url)
        try:
            with tracking.start_run() as run:
                ref = tracking.log_text("ü", "t/u.txt")
                assert tracking.get_artifact_uri("t") == f"{run.info.artifact_uri}/t"
            assert ref.uri == f"{run.info.artifact_uri}/t/u.txt"
            client = TrackingClient(server.url)
            assert client.list_artifacts(run.info.run_id, "t") == [FileInfo("t/u.txt", False, 2)]
        finally:
            fluent._reset_for_tests()

    def test_a_non_http_tracking_uri_is_refused(self, server: Server, tmp_path: Path) -> None:
        run_id = TrackingClient(server.url).create_run("0").info.run_id
        # The same database, opened directly: the run's artifacts are behind the server.
        direct = TrackingClient(server.db_uri)
        (tmp_path / "f.txt").write_text("x")
        with pytest.raises(InvalidParameterError, match="set the tracking URI to the server"):
            direct.log_artifact(run_id, tmp_path / "f.txt")
        with pytest.raises(InvalidParameterError, match="served by a tracking server"):
            direct.list_artifacts(run_id)

    def test_the_token_is_sent(self, auth_server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TRACKFLOW_TRACKING_TOKEN", "s3cret")
        reset_settings()
        client = TrackingClient(auth_server.url)
        run_id = client.create_run("0").info.run_id
        client.log_text(run_id, "secret", "s.txt")
        assert client.list_artifacts(run_id) == [FileInfo("s.txt", False, 6)]
        unauthenticated = RestSession(auth_server.url)
        repo = HttpArtifactRepository(
            f"mlflow-artifacts:/0/{run_id}/artifacts", run_id, unauthenticated
        )
        with pytest.raises(UnauthenticatedError, match="TRACKFLOW_TRACKING_TOKEN"):
            repo.read_bytes("s.txt")
