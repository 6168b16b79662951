"""Artifact locations confined to the server's roots; symbolic links never leave them."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _server_support import MLFLOW, PROXY

from tracking.server import ServerSettings
from tracking.store.sql.store import SqlTrackingStore

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def _create(client: TestClient, name: str, location: str | None) -> Any:
    body: dict[str, Any] = {"name": name}
    if location is not None:
        body["artifact_location"] = location
    return client.post(f"{MLFLOW}/experiments/create", json=body)


class TestArtifactLocationAtCreation:
    @pytest.mark.parametrize(
        "location",
        [
            pytest.param("/etc", id="absolute-path"),
            pytest.param("file:///etc", id="file-url"),
            pytest.param("~/", id="home"),
            pytest.param("s3://someone-elses-bucket/x", id="other-url"),
            pytest.param("mlflow-artifacts:/../../etc", id="proxy-traversal"),
        ],
    )
    def test_outside_location_is_refused_and_nothing_is_created(
        self, client: TestClient, location: str
    ) -> None:
        response = _create(client, "escape", location)
        assert response.status_code == 400
        body = response.json()
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "artifact" in body["message"]
        lookup = client.get(
            f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "escape"}
        )
        assert lookup.status_code == 404

    def test_sibling_with_a_common_prefix_is_refused(
        self, client: TestClient, server_settings: ServerSettings
    ) -> None:
        # /tmp/x/artifacts-evil starts with /tmp/x/artifacts but is not under it.
        sibling = f"{server_settings.artifacts_destination}-evil"
        assert _create(client, "sibling", sibling).status_code == 400

    def test_location_under_the_destination_is_accepted(
        self, client: TestClient, server_settings: ServerSettings
    ) -> None:
        inside = os.path.join(server_settings.artifacts_destination, "team-a")
        assert _create(client, "inside", inside).status_code == 200
        assert _create(client, "proxied", "mlflow-artifacts:/team-b").status_code == 200
        assert _create(client, "default", None).status_code == 200

    def test_symlink_under_the_destination_pointing_out_is_refused(
        self, client: TestClient, server_settings: ServerSettings, tmp_path: Path
    ) -> None:
        destination = Path(server_settings.artifacts_destination)
        destination.mkdir(parents=True, exist_ok=True)
        (destination / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
        assert _create(client, "linked", str(destination / "link" / "x")).status_code == 400


class TestStoredOutsideLocationIsNeverRead:
    def test_listing_a_run_of_an_experiment_outside_the_roots_is_refused(
        self, client: TestClient, server_settings: ServerSettings, tmp_path: Path
    ) -> None:
        secret_dir = tmp_path / "server-secrets"
        (secret_dir / "r" / "artifacts").mkdir(parents=True)
        (secret_dir / "r" / "artifacts" / "id_rsa").write_text("secret")
        # An experiment written into the database by something other than this server.
        store = SqlTrackingStore(server_settings.backend_store_uri)
        try:
            exp_id = store.create_experiment("legacy", str(secret_dir), [])
        finally:
            store.close()
        run = client.post(f"{MLFLOW}/runs/create", json={"experiment_id": exp_id}).json()["run"]
        response = client.get(f"{MLFLOW}/artifacts/list", params={"run_id": run["info"]["run_id"]})
        assert response.status_code == 400
        assert "id_rsa" not in response.text


class TestSymlinksInTheArtifactRoot:
    @pytest.fixture
    def planted(self, server_settings: ServerSettings, tmp_path: Path) -> Path:
        """``<destination>/exp/link`` -> a directory outside holding ``secret.txt``."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_text("secret")
        exp = Path(server_settings.artifacts_destination) / "exp"
        exp.mkdir(parents=True)
        (exp / "real.txt").write_text("ok")
        (exp / "link").symlink_to(outside, target_is_directory=True)
        (exp / "file-link.txt").symlink_to(outside / "secret.txt")
        return outside

    def test_read_through_a_link_is_refused(self, client: TestClient, planted: Path) -> None:
        for path in ("exp/link/secret.txt", "exp/file-link.txt"):
            response = client.get(f"{PROXY}/{path}")
            assert response.status_code == 400, path
            assert "symbolic link" in response.json()["message"]
            assert "secret" not in response.text.replace("secret.txt", "")

    def test_listing_leaves_links_out_and_cannot_enter_them(
        self, client: TestClient, planted: Path
    ) -> None:
        listing = client.get(PROXY, params={"path": "exp"}).json()
        assert [f["path"] for f in listing["files"]] == ["real.txt"]
        assert client.get(PROXY, params={"path": "exp/link"}).status_code == 400

    def test_write_through_a_link_creates_nothing_outside(
        self, client: TestClient, planted: Path
    ) -> None:
        response = client.put(f"{PROXY}/exp/link/new.txt", content=b"planted")
        assert response.status_code == 400
        assert not (planted / "new.txt").exists()
        overwrite = client.put(f"{PROXY}/exp/file-link.txt", content=b"overwritten")
        assert overwrite.status_code == 400
        assert (planted / "secret.txt").read_text() == "secret"

    def test_delete_through_a_link_is_refused(self, client: TestClient, planted: Path) -> None:
        assert client.delete(f"{PROXY}/exp/link/secret.txt").status_code == 400
        assert (planted / "secret.txt").exists()


class TestNoServerPathsInMessages:
    def test_missing_artifact_message_names_no_absolute_path(
        self, client: TestClient, server_settings: ServerSettings
    ) -> None:
        response = client.get(f"{PROXY}/nope/missing.txt")
        assert response.status_code == 404
        message = response.json()["message"]
        assert "nope/missing.txt" in message
        assert server_settings.artifacts_destination not in message
        assert str(Path(server_settings.artifacts_destination).parent) not in message


#: Up 1 to 6 levels (the run's artifact root is 4 below the test's directory), inside a
#: path, URL-encoded, absolute, and as a file URL.
TRAVERSALS = [
    *("../" * n + "outside/secret.txt" for n in range(1, 7)),
    "a/" + "../" * 6 + "outside/secret.txt",
    "..%2F" * 5 + "outside%2Fsecret.txt",
    "{outside}/secret.txt",
    "file://{outside}/secret.txt",
]


def _traversal_routes() -> list[Any]:
    """Every route of the app with a path or query parameter, listed from the app (a
    route added tomorrow is swept too)."""
    import tempfile

    from fastapi.routing import APIRoute

    from tracking.server import create_app

    with tempfile.TemporaryDirectory() as tmp:
        settings = ServerSettings(
            backend_store_uri=f"sqlite:///{tmp}/r.db", artifacts_destination=f"{tmp}/a"
        )
        routes = [
            r
            for r in create_app(settings).routes
            if isinstance(r, APIRoute) and (r.param_convertors or r.dependant.query_params)
        ]
    return [
        pytest.param(r, id=f"{sorted(r.methods)[0]} {r.path}")
        for r in sorted(routes, key=lambda r: (r.path, sorted(r.methods)))
    ]


class TestTraversalSweep:
    """Traversal payloads in every path and query parameter of every route: no answer
    carries a file from outside the artifact root, nothing is written outside it."""

    @pytest.fixture
    def outside(self, client: TestClient, tmp_path: Path) -> Path:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret.txt").write_text("TOPSECRET-outside-the-root")
        return outside

    @pytest.mark.parametrize("route", _traversal_routes())
    def test_no_route_reads_or_writes_outside_the_root(
        self, client: TestClient, outside: Path, route: Any
    ) -> None:
        import re

        exp = client.post(f"{MLFLOW}/experiments/create", json={"name": "sweep"}).json()
        run = client.post(
            f"{MLFLOW}/runs/create", json={"experiment_id": exp["experiment_id"]}
        ).json()["run"]["info"]
        valid = {"experiment_id": exp["experiment_id"], "run_id": run["run_id"], "ids": "1"}
        before = sorted(p.name for p in outside.parent.iterdir())
        names = [*route.param_convertors, *(q.name for q in route.dependant.query_params)]
        for payload, poisoned in itertools.product(TRAVERSALS, names):
            value = payload.format(outside=outside)
            path = route.path
            for name in route.param_convertors:
                filled = value if name == poisoned else valid.get(name, "x")
                path = re.sub(r"\{" + name + r"(:[a-z]+)?\}", lambda _m, v=filled: v, path)
            query = {
                q.name: value if q.name == poisoned else valid.get(q.name, "x")
                for q in route.dependant.query_params
            }
            for method in sorted(route.methods - {"HEAD"}):
                response = client.request(method, path, params=query, content=b"planted")
                what = f"{method} {path} with {poisoned}={value!r}"
                assert "TOPSECRET" not in response.text, what
        assert sorted(p.name for p in outside.parent.iterdir()) == before
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
