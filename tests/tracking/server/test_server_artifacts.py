"""The mlflow-artifacts proxy (upload, download, list, delete) and ``artifacts/list``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _server_support import MLFLOW, PROXY

from tracking.server import ServerSettings, create_app

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def new_run(client: TestClient, experiment_id: str = "0") -> dict[str, Any]:
    response = client.post(f"{MLFLOW}/runs/create", json={"experiment_id": experiment_id})
    run: dict[str, Any] = response.json()["run"]
    return run


def run_root(run: dict[str, Any]) -> str:
    """The proxy path of a run's artifact root: ``<exp>/<run_id>/artifacts``."""
    uri: str = run["info"]["artifact_uri"]
    assert uri.startswith("mlflow-artifacts:/")
    return uri.removeprefix("mlflow-artifacts:/")


class TestProxy:
    def test_upload_lands_in_the_destination_and_downloads(
        self, client: TestClient, server_settings: ServerSettings
    ) -> None:
        root = run_root(new_run(client))
        response = client.put(f"{PROXY}/{root}/models/model.pkl", content=b"weights")
        assert response.status_code == 200
        assert response.json() == {}
        on_disk = Path(server_settings.artifacts_destination, root, "models", "model.pkl")
        assert on_disk.read_bytes() == b"weights"
        download = client.get(f"{PROXY}/{root}/models/model.pkl")
        assert download.status_code == 200
        assert download.content == b"weights"
        assert "attachment" in download.headers["content-disposition"]

    def test_large_file_streams_both_ways(self, client: TestClient) -> None:
        payload = os.urandom(3 * 1024 * 1024 + 17)
        assert client.put(f"{PROXY}/big/blob.bin", content=payload).status_code == 200
        with client.stream("GET", f"{PROXY}/big/blob.bin") as response:
            digest = hashlib.sha256()
            for chunk in response.iter_bytes():
                digest.update(chunk)
        assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()

    def test_list_gives_names_relative_to_the_directory(self, client: TestClient) -> None:
        client.put(f"{PROXY}/d/a.txt", content=b"12345")
        client.put(f"{PROXY}/d/sub/b.txt", content=b"1")
        listing = client.get(PROXY, params={"path": "d"}).json()
        assert listing == {
            "files": [
                {"path": "a.txt", "is_dir": False, "file_size": 5},
                {"path": "sub", "is_dir": True},
            ]
        }

    def test_list_missing_directory_is_empty(self, client: TestClient) -> None:
        assert client.get(PROXY, params={"path": "nowhere"}).json() == {"files": []}

    def test_delete_file_and_directory(self, client: TestClient) -> None:
        client.put(f"{PROXY}/gone/a.txt", content=b"1")
        client.put(f"{PROXY}/gone/sub/b.txt", content=b"2")
        assert client.delete(f"{PROXY}/gone/a.txt").json() == {}
        assert client.get(PROXY, params={"path": "gone"}).json()["files"] == [
            {"path": "sub", "is_dir": True}
        ]
        assert client.delete(f"{PROXY}/gone").status_code == 200
        assert client.get(PROXY, params={"path": "gone"}).json() == {"files": []}

    def test_missing_file_is_404(self, client: TestClient) -> None:
        response = client.get(f"{PROXY}/no/such/file.txt")
        assert response.status_code == 404
        assert response.json()["error_class"] == "ArtifactNotFoundError"

    def test_directory_download_is_400(self, client: TestClient) -> None:
        client.put(f"{PROXY}/dir/a.txt", content=b"1")
        response = client.get(f"{PROXY}/dir")
        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    def test_empty_upload_makes_an_empty_file(self, client: TestClient) -> None:
        assert client.put(f"{PROXY}/empty.txt", content=b"").status_code == 200
        assert client.get(f"{PROXY}/empty.txt").content == b""


TRAVERSALS = [
    pytest.param("..%2F..%2Fetc%2Fpasswd", id="encoded-dotdot"),
    pytest.param("a/..%2F..%2Fsecret", id="encoded-dotdot-inside"),
    pytest.param("%2Fetc%2Fpasswd", id="absolute"),
    pytest.param("a%5C..%5Cb", id="backslashes"),
    pytest.param("C:%5Cwindows", id="windows-drive"),
    pytest.param("file:%2F%2F%2Fetc%2Fpasswd", id="url"),
    pytest.param("~%2F.ssh%2Fid_rsa", id="home"),
    pytest.param("a%00b", id="nul"),
]


class TestTraversal:
    @pytest.mark.parametrize("path", TRAVERSALS)
    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    def test_refused_with_400(
        self,
        client: TestClient,
        server_settings: ServerSettings,
        tmp_path: Path,
        method: str,
        path: str,
    ) -> None:
        outside = tmp_path / "outside.txt"
        outside.write_bytes(b"keep me")
        response = client.request(method, f"{PROXY}/{path}", content=b"evil")
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert body["error_class"] == "InvalidParameterError"
        assert outside.read_bytes() == b"keep me"
        assert not Path(server_settings.artifacts_destination).exists()

    @pytest.mark.parametrize("path", ["../x", "/etc", "a/../../b"])
    def test_list_refuses_traversal(self, client: TestClient, path: str) -> None:
        response = client.get(PROXY, params={"path": path})
        assert response.status_code == 400
        assert "path" in response.json()["message"]

    def test_run_listing_refuses_traversal(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        response = client.get(
            f"{MLFLOW}/artifacts/list", params={"run_id": run_id, "path": "../.."}
        )
        assert response.status_code == 400


class TestRunListing:
    def test_paths_are_relative_to_the_run_root(self, client: TestClient) -> None:
        run = new_run(client)
        root = run_root(run)
        client.put(f"{PROXY}/{root}/model.pkl", content=b"123")
        client.put(f"{PROXY}/{root}/plots/loss.png", content=b"png")
        run_id = run["info"]["run_id"]
        top = client.get(f"{MLFLOW}/artifacts/list", params={"run_id": run_id}).json()
        assert top == {
            "root_uri": run["info"]["artifact_uri"],
            "files": [
                {"path": "model.pkl", "is_dir": False, "file_size": 3},
                {"path": "plots", "is_dir": True},
            ],
        }
        sub = client.get(
            f"{MLFLOW}/artifacts/list", params={"run_uuid": run_id, "path": "plots"}
        ).json()
        assert sub["files"] == [{"path": "plots/loss.png", "is_dir": False, "file_size": 3}]

    def test_run_without_artifacts_lists_empty(self, client: TestClient) -> None:
        run_id = new_run(client)["info"]["run_id"]
        body = client.get(f"{MLFLOW}/artifacts/list", params={"run_id": run_id}).json()
        assert body["files"] == []

    def test_experiment_under_an_allowed_root_is_listed_from_there(
        self, server_settings: ServerSettings, tmp_path: Path
    ) -> None:
        from fastapi.testclient import TestClient

        elsewhere = tmp_path / "elsewhere"
        settings = server_settings.model_copy(update={"allowed_artifact_roots": (str(elsewhere),)})
        with TestClient(create_app(settings), base_url="http://localhost") as client:
            exp = client.post(
                f"{MLFLOW}/experiments/create",
                json={"name": "own", "artifact_location": str(elsewhere / "own")},
            ).json()
            run = new_run(client, exp["experiment_id"])
            root = Path(run["info"]["artifact_uri"])
            root.mkdir(parents=True)
            (root / "note.txt").write_text("hi")
            body = client.get(
                f"{MLFLOW}/artifacts/list", params={"run_id": run["info"]["run_id"]}
            ).json()
        assert body["files"] == [{"path": "note.txt", "is_dir": False, "file_size": 2}]


class TestUploadLimit:
    def test_configured_limit_refuses_bigger_uploads(self, server_settings: ServerSettings) -> None:
        from fastapi.testclient import TestClient

        settings = ServerSettings(**{**server_settings.model_dump(), "max_artifact_bytes": 100})
        with TestClient(create_app(settings), base_url="http://localhost") as limited:
            assert limited.put(f"{PROXY}/small.bin", content=b"x" * 100).status_code == 200
            response = limited.put(f"{PROXY}/big.bin", content=b"x" * 101)
            assert response.status_code == 413
            assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
            assert "limit of 100 bytes" in response.json()["message"]
            assert limited.get(f"{PROXY}/big.bin").status_code == 404

    def test_uploads_are_limited_by_default(self) -> None:
        from tracking.server.settings import DEFAULT_MAX_ARTIFACT_BYTES

        assert ServerSettings().max_artifact_bytes == DEFAULT_MAX_ARTIFACT_BYTES == 5 * 1024**3

    def test_declared_oversize_upload_is_refused_before_reading(
        self, server_settings: ServerSettings
    ) -> None:
        from fastapi.testclient import TestClient

        settings = server_settings.model_copy(update={"max_artifact_bytes": 1000})
        with TestClient(create_app(settings), base_url="http://localhost") as limited:
            response = limited.put(
                f"{PROXY}/huge.bin", content=b"x" * 10, headers={"Content-Length": "5000"}
            )
        assert response.status_code == 413


class TestDownloadNames:
    @pytest.mark.parametrize(
        ("name", "fallback"),
        [
            pytest.param("plain.txt", "plain.txt", id="ascii"),
            pytest.param("模型 ü.txt", "__ _.txt", id="unicode"),
            pytest.param('quote".txt', "quote_.txt", id="quote"),
            pytest.param("tab%09name.txt", "tab_name.txt", id="control-character"),
        ],
    )
    def test_any_name_downloads_with_rfc6266_header(
        self, client: TestClient, name: str, fallback: str
    ) -> None:
        assert client.put(f"{PROXY}/names/{name}", content=b"x").status_code == 200
        response = client.get(f"{PROXY}/names/{name}")
        assert response.status_code == 200
        assert response.content == b"x"
        header = response.headers["content-disposition"]
        assert header.startswith(f"attachment; filename=\"{fallback}\"; filename*=UTF-8''")
