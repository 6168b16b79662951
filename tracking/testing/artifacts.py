"""The conformance suite every artifact repository passes.

Mix :class:`ArtifactRepositorySuite` into a test class and give it a fixture
``artifact_repo_factory``: a callable taking a run id and returning a
repository at a fresh, empty root (fresh per test; two calls in one test must
give two different roots). Optionally override ``artifact_backing_files``, a
callable listing every file of the backing store around the roots, so the
path-escape tests can prove nothing was written outside the root either::

    class TestMemoryRepository(ArtifactRepositorySuite):
        @pytest.fixture
        def artifact_repo_factory(self) -> ArtifactRepoFactory:
            base = f"memory://tests/{uuid.uuid4().hex}"
            return lambda run_id: FsspecArtifactRepository(
                f"{base}/1/{run_id}/artifacts", run_id
            )

The suite uses only the :class:`~tracking.artifacts.ArtifactRepository`
interface and pytest's ``tmp_path`` for local sources and downloads. It also
defines the fixtures ``repo`` (a repository for a random run id) and ``tree``
(a local tree with nested, empty, binary and unicode files), which backend
tests may use for their own extra cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tracking.artifacts.base import ArtifactRepository
from tracking.artifacts.paths import join_uri
from tracking.entities import FileInfo
from tracking.errors import ArtifactNotFoundError, InvalidParameterError

__all__ = ["ESCAPING_PATHS", "ArtifactRepoFactory", "ArtifactRepositorySuite"]

#: What ``artifact_repo_factory`` returns: run id -> repository at a fresh root.
ArtifactRepoFactory = Callable[[str], ArtifactRepository]

#: Paths every repository refuses, by test id.
ESCAPING_PATHS: dict[str, str] = {
    "absolute": "/etc/passwd",
    "absolute-tmp": "/tmp/trackflow-escape.txt",
    "double-slash": "//server/share/x.txt",
    "windows-drive-backslash": "C:\\x.txt",
    "windows-drive-slash": "C:/x.txt",
    "windows-drive-relative": "C:x.txt",
    "unc": "\\\\server\\share\\x.txt",
    "dotdot": "../x.txt",
    "dotdot-only": "..",
    "dotdot-deep": "a/../../x.txt",
    "dotdot-inside": "a/../b.txt",
    "dotdot-trailing": "a/..",
    "backslash": "a\\b.txt",
    "backslash-dotdot": "..\\x.txt",
    "nul": "a\x00b.txt",
    "url-s3": "s3://bucket/x.txt",
    "url-file": "file:///etc/passwd",
    "url-inside": "a/s3://bucket/x.txt",
    "tilde": "~/x.txt",
    "tilde-user": "~root/x.txt",
}

_ESCAPES = pytest.mark.parametrize(
    "bad_path", list(ESCAPING_PATHS.values()), ids=list(ESCAPING_PATHS)
)
_BINARY = bytes(range(256)) * 4 + b"\x00\xff\r\n\x1a"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _local_tree(root: Path) -> dict[str, bytes]:
    """Relative POSIX path -> content of every file under ``root``."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def all_artifacts(repo: ArtifactRepository, path: str = "") -> list[FileInfo]:
    """Every file under ``path``, found by walking ``list_artifacts``."""
    found: list[FileInfo] = []
    for info in repo.list_artifacts(path):
        if info.is_dir:
            found.extend(all_artifacts(repo, info.path))
        else:
            found.append(info)
    return found


class ArtifactRepositorySuite:
    """Behaviour shared by every :class:`~tracking.artifacts.ArtifactRepository`.

    Needs the fixture ``artifact_repo_factory`` (see the module docstring).
    """

    @pytest.fixture
    def artifact_backing_files(self) -> Callable[[], Any]:
        """Override: a snapshot of the backing store around the roots (default: none)."""
        return lambda: None

    @pytest.fixture
    def repo(self, artifact_repo_factory: ArtifactRepoFactory) -> ArtifactRepository:
        """A repository at a fresh root for a random run id."""
        return artifact_repo_factory(uuid.uuid4().hex)

    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        """A local directory tree with nested, empty, binary and unicode files."""
        root = tmp_path / "tree"
        _write(root / "README.md", b"# model\n")
        _write(root / "data" / "train.csv", b"a,b\n1,2\n")
        _write(root / "data" / "empty.bin", b"")
        _write(root / "data" / "deep" / "er" / "blob.bin", _BINARY)
        _write(root / "données" / "modèle ü.txt", "ünïcödé\n".encode())
        return root

    # -- log_artifact -------------------------------------------------------

    def test_log_artifact_round_trip(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        source = _write(tmp_path / "src" / "model.txt", b"weights\n")
        ref = repo.log_artifact(source)
        assert ref.run_id == repo.run_id
        assert ref.path == "model.txt"
        assert ref.uri == join_uri(repo.artifact_uri, "model.txt")
        assert (ref.size, ref.sha256) == (8, _sha256(b"weights\n"))
        assert repo.list_artifacts() == [FileInfo("model.txt", False, 8)]
        assert repo.read_bytes("model.txt") == b"weights\n"
        local = repo.download_artifacts("model.txt", str(tmp_path / "dst"))
        assert local == str(tmp_path / "dst" / "model.txt")
        assert Path(local).read_bytes() == b"weights\n"

    def test_log_artifact_under_nested_artifact_path(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        source = _write(tmp_path / "f.txt", b"x")
        ref = repo.log_artifact(str(source), "models/best")
        assert ref.path == "models/best/f.txt"
        assert repo.list_artifacts() == [FileInfo("models", True, None)]
        assert repo.list_artifacts("models") == [FileInfo("models/best", True, None)]
        assert repo.list_artifacts("models/best") == [FileInfo("models/best/f.txt", False, 1)]

    @pytest.mark.parametrize(
        ("artifact_path", "expected"),
        [
            ("./a/b", "a/b/f.txt"),
            ("a//b/", "a/b/f.txt"),
            ("a/./b", "a/b/f.txt"),
            (".", "f.txt"),
            ("", "f.txt"),
        ],
        ids=["dot-prefix", "double-and-trailing-slash", "dot-inside", "dot", "empty"],
    )
    def test_log_artifact_normalises_artifact_path(
        self, repo: ArtifactRepository, tmp_path: Path, artifact_path: str, expected: str
    ) -> None:
        ref = repo.log_artifact(_write(tmp_path / "f.txt", b"x"), artifact_path)
        assert ref.path == expected
        assert repo.read_bytes(expected) == b"x"

    def test_log_artifact_binary_content_larger_than_a_chunk(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        data = os.urandom(2_500_000) + _BINARY
        ref = repo.log_artifact(_write(tmp_path / "blob.bin", data), "bin")
        assert (ref.size, ref.sha256) == (len(data), _sha256(data))
        assert repo.list_artifacts("bin") == [FileInfo("bin/blob.bin", False, len(data))]
        downloaded = repo.download_artifacts("bin/blob.bin", str(tmp_path / "dst"))
        assert Path(downloaded).read_bytes() == data

    def test_log_empty_file(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        ref = repo.log_artifact(_write(tmp_path / "empty.txt", b""))
        assert (ref.size, ref.sha256) == (0, _EMPTY_SHA256)
        assert repo.list_artifacts() == [FileInfo("empty.txt", False, 0)]
        assert repo.read_bytes("empty.txt") == b""

    def test_log_artifact_unicode_name(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        source = _write(tmp_path / "模型 ü.txt", "ü".encode())
        ref = repo.log_artifact(source, "résultats")
        assert ref.path == "résultats/模型 ü.txt"
        assert repo.list_artifacts("résultats") == [FileInfo("résultats/模型 ü.txt", False, 2)]
        local = repo.download_artifacts("résultats/模型 ü.txt", str(tmp_path / "dst"))
        assert Path(local).read_bytes() == "ü".encode()

    def test_log_artifact_missing_source_is_refused(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        missing = tmp_path / "nope.txt"
        with pytest.raises(InvalidParameterError, match=re.escape("nope.txt")):
            repo.log_artifact(missing)
        assert repo.list_artifacts() == []

    def test_log_artifact_refuses_a_directory(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        with pytest.raises(InvalidParameterError, match="directory"):
            repo.log_artifact(tmp_path)

    def test_log_artifact_overwrites(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        repo.log_artifact(_write(tmp_path / "a" / "f.txt", b"first version"), "d")
        ref = repo.log_artifact(_write(tmp_path / "b" / "f.txt", b"second"), "d")
        assert (ref.size, ref.sha256) == (6, _sha256(b"second"))
        assert repo.list_artifacts("d") == [FileInfo("d/f.txt", False, 6)]
        assert repo.read_bytes("d/f.txt") == b"second"

    # -- log_artifacts ------------------------------------------------------

    def test_log_artifacts_uploads_the_tree(
        self, repo: ArtifactRepository, tree: Path, tmp_path: Path
    ) -> None:
        refs = repo.log_artifacts(tree)
        expected = _local_tree(tree)
        assert [ref.path for ref in refs] == sorted(expected)
        for ref in refs:
            assert ref.run_id == repo.run_id
            assert ref.uri == join_uri(repo.artifact_uri, ref.path)
            assert ref.size == len(expected[ref.path])
            assert ref.sha256 == _sha256(expected[ref.path])
        assert repo.list_artifacts() == [
            FileInfo("README.md", False, 8),
            FileInfo("data", True, None),
            FileInfo("données", True, None),
        ]
        assert repo.list_artifacts("data") == [
            FileInfo("data/deep", True, None),
            FileInfo("data/empty.bin", False, 0),
            FileInfo("data/train.csv", False, 8),
        ]
        assert repo.list_artifacts("data/deep/er") == [
            FileInfo("data/deep/er/blob.bin", False, len(_BINARY))
        ]
        local = repo.download_artifacts("", str(tmp_path / "dst"))
        assert _local_tree(Path(local)) == expected

    def test_log_artifacts_under_artifact_path(
        self, repo: ArtifactRepository, tree: Path, tmp_path: Path
    ) -> None:
        refs = repo.log_artifacts(str(tree), "run/outputs")
        assert {ref.path for ref in refs} == {f"run/outputs/{p}" for p in _local_tree(tree)}
        assert repo.list_artifacts("run") == [FileInfo("run/outputs", True, None)]
        local = repo.download_artifacts("run/outputs", str(tmp_path / "dst"))
        assert local == str(tmp_path / "dst" / "run" / "outputs")
        assert _local_tree(Path(local)) == _local_tree(tree)

    def test_log_artifacts_many_files(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        source = tmp_path / "many"
        for i in range(250):
            _write(source / f"shard-{i % 5}" / f"part-{i:04d}.txt", f"{i}\n".encode())
        refs = repo.log_artifacts(source, "parts")
        assert len(refs) == 250
        assert [info.path for info in repo.list_artifacts("parts")] == [
            f"parts/shard-{i}" for i in range(5)
        ]
        assert len(repo.list_artifacts("parts/shard-3")) == 50
        local = repo.download_artifacts("parts", str(tmp_path / "dst"))
        assert _local_tree(Path(local)) == _local_tree(source)

    def test_log_artifacts_empty_directory_logs_nothing(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        (tmp_path / "empty").mkdir()
        assert repo.log_artifacts(tmp_path / "empty") == []
        assert repo.list_artifacts() == []

    def test_log_artifacts_missing_dir_is_refused(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        with pytest.raises(InvalidParameterError, match="nowhere"):
            repo.log_artifacts(tmp_path / "nowhere")

    def test_log_artifacts_refuses_a_file(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        with pytest.raises(InvalidParameterError, match="log_artifact"):
            repo.log_artifacts(_write(tmp_path / "f.txt", b"x"))

    # -- log_bytes ----------------------------------------------------------

    def test_log_bytes(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        data = json.dumps({"lr": 0.1, "name": "ü"}).encode()
        ref = repo.log_bytes(data, "config/params.json")
        assert ref.run_id == repo.run_id
        assert ref.path == "config/params.json"
        assert ref.uri == join_uri(repo.artifact_uri, "config/params.json")
        assert (ref.size, ref.sha256) == (len(data), _sha256(data))
        assert json.loads(repo.read_bytes("config/params.json")) == {"lr": 0.1, "name": "ü"}
        assert repo.list_artifacts("config") == [FileInfo("config/params.json", False, len(data))]

    def test_log_bytes_empty_and_binary(self, repo: ArtifactRepository) -> None:
        assert repo.log_bytes(b"", "empty").sha256 == _EMPTY_SHA256
        assert repo.log_bytes(_BINARY, "bin").size == len(_BINARY)
        assert repo.read_bytes("empty") == b""
        assert repo.read_bytes("bin") == _BINARY

    def test_log_bytes_overwrites(self, repo: ArtifactRepository) -> None:
        repo.log_bytes(b"a much longer first version", "notes.txt")
        repo.log_bytes(b"v2", "notes.txt")
        assert repo.read_bytes("notes.txt") == b"v2"
        assert repo.list_artifacts() == [FileInfo("notes.txt", False, 2)]

    @pytest.mark.parametrize("name", ["", ".", "./", "./."], ids=repr)
    def test_log_bytes_needs_a_file_name(self, repo: ArtifactRepository, name: str) -> None:
        with pytest.raises(InvalidParameterError, match="artifact_file"):
            repo.log_bytes(b"x", name)
        assert all_artifacts(repo) == []

    def test_names_with_glob_characters(self, repo: ArtifactRepository) -> None:
        for name in ("model[1].bin", "model1.bin", "x*.txt", "what?.txt", "d[0]/in.txt"):
            repo.log_bytes(name.encode(), name)
        assert [info.path for info in repo.list_artifacts()] == sorted(
            ["d[0]", "model1.bin", "model[1].bin", "what?.txt", "x*.txt"]
        )
        assert repo.read_bytes("model[1].bin") == b"model[1].bin"
        repo.delete_artifacts("model[1].bin")
        repo.delete_artifacts("d[0]")
        repo.delete_artifacts("x*.txt")
        assert [info.path for info in all_artifacts(repo)] == ["model1.bin", "what?.txt"]

    # -- list_artifacts -----------------------------------------------------

    def test_list_empty_root(self, repo: ArtifactRepository) -> None:
        assert repo.list_artifacts() == []
        assert repo.list_artifacts("") == []

    def test_list_missing_directory(self, repo: ArtifactRepository) -> None:
        repo.log_bytes(b"x", "a/b.txt")
        assert repo.list_artifacts("nope") == []
        assert repo.list_artifacts("a/nope/deeper") == []

    def test_list_a_file_path(self, repo: ArtifactRepository) -> None:
        repo.log_bytes(b"x", "a/b.txt")
        assert repo.list_artifacts("a/b.txt") == []

    def test_list_is_sorted_with_dirs_and_sizes(self, repo: ArtifactRepository) -> None:
        for name, data in [("z.txt", b"zz"), ("a/x", b"1"), ("m.bin", b"123"), ("b/c/d", b"")]:
            repo.log_bytes(data, name)
        assert repo.list_artifacts() == [
            FileInfo("a", True, None),
            FileInfo("b", True, None),
            FileInfo("m.bin", False, 3),
            FileInfo("z.txt", False, 2),
        ]
        assert repo.list_artifacts("b") == [FileInfo("b/c", True, None)]

    @pytest.mark.parametrize(
        "path",
        ["a/b", "./a/b", "a//b", "a/b/", "a/./b"],
        ids=["plain", "dot", "double", "trail", "dot-inside"],
    )
    def test_list_normalises_path(self, repo: ArtifactRepository, path: str) -> None:
        repo.log_bytes(b"x", "a/b/c.txt")
        assert repo.list_artifacts(path) == [FileInfo("a/b/c.txt", False, 1)]

    def test_runs_do_not_share_roots(self, artifact_repo_factory: ArtifactRepoFactory) -> None:
        first, second = artifact_repo_factory("run-a"), artifact_repo_factory("run-b")
        first.log_bytes(b"a", "only-a.txt")
        assert second.list_artifacts() == []
        assert second.log_bytes(b"b", "only-b.txt").run_id == "run-b"
        assert first.list_artifacts() == [FileInfo("only-a.txt", False, 1)]

    # -- download_artifacts, open, read_bytes -------------------------------

    def test_download_missing_path(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        repo.log_bytes(b"x", "a/b.txt")
        dst = tmp_path / "dst"
        for missing in ("nope.txt", "a/nope.txt", "nope/deeper"):
            with pytest.raises(ArtifactNotFoundError, match=re.escape(missing)):
                repo.download_artifacts(missing, str(dst))
        assert not dst.exists() or not any(dst.iterdir())

    def test_download_file_to_a_fresh_temp_dir(self, repo: ArtifactRepository) -> None:
        repo.log_bytes(b"content", "dir/file.txt")
        first = Path(repo.download_artifacts("dir/file.txt"))
        second = Path(repo.download_artifacts("dir/file.txt"))
        assert first != second
        assert first.read_bytes() == second.read_bytes() == b"content"
        assert first.parts[-2:] == ("dir", "file.txt")

    def test_download_directory_keeps_structure(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        repo.log_bytes(b"1", "out/a.txt")
        repo.log_bytes(b"2", "out/sub/b.txt")
        repo.log_bytes(b"3", "other.txt")
        local = repo.download_artifacts("out", str(tmp_path / "dst"))
        assert local == str(tmp_path / "dst" / "out")
        assert _local_tree(Path(local)) == {"a.txt": b"1", "sub/b.txt": b"2"}

    def test_download_into_existing_dir_with_normalised_path(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        repo.log_bytes(b"1", "out/a.txt")
        dst = tmp_path / "existing"
        dst.mkdir()
        local = repo.download_artifacts("./out//a.txt", str(dst))
        assert local == str(dst / "out" / "a.txt")

    def test_download_root_of_empty_repo(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        local = repo.download_artifacts("", str(tmp_path / "dst"))
        assert Path(local).is_dir()
        assert list(Path(local).iterdir()) == []

    def test_read_missing_file(self, repo: ArtifactRepository) -> None:
        with pytest.raises(ArtifactNotFoundError, match=re.escape("nope.txt")):
            repo.read_bytes("nope.txt")
        with pytest.raises(ArtifactNotFoundError, match=re.escape("nope.txt")):
            repo.open("nope.txt")

    def test_read_a_directory_is_refused(self, repo: ArtifactRepository) -> None:
        repo.log_bytes(b"x", "d/f.txt")
        with pytest.raises(InvalidParameterError, match="directory"):
            repo.read_bytes("d")

    def test_open_streams_content(self, repo: ArtifactRepository) -> None:
        repo.log_bytes(b"0123456789", "digits.txt")
        with repo.open("digits.txt") as stream:
            assert stream.read(4) == b"0123"
            assert stream.read() == b"456789"

    # -- delete_artifacts ---------------------------------------------------

    def test_delete_file_and_directory(self, repo: ArtifactRepository) -> None:
        for name in ("keep.txt", "drop.txt", "d/a.txt", "d/e/b.txt", "dd/c.txt"):
            repo.log_bytes(b"x", name)
        repo.delete_artifacts("drop.txt")
        repo.delete_artifacts("d")
        assert [info.path for info in all_artifacts(repo)] == ["dd/c.txt", "keep.txt"]
        with pytest.raises(ArtifactNotFoundError):
            repo.read_bytes("d/a.txt")

    def test_delete_everything(self, repo: ArtifactRepository) -> None:
        repo.log_bytes(b"x", "a/b/c.txt")
        repo.log_bytes(b"y", "top.txt")
        repo.delete_artifacts()
        assert repo.list_artifacts() == []
        repo.log_bytes(b"z", "again.txt")
        assert repo.list_artifacts() == [FileInfo("again.txt", False, 1)]

    def test_delete_missing_is_a_no_op(self, repo: ArtifactRepository) -> None:
        repo.log_bytes(b"x", "a.txt")
        repo.delete_artifacts("nope")
        repo.delete_artifacts("nope/deeper.txt")
        assert repo.list_artifacts() == [FileInfo("a.txt", False, 1)]
        repo.delete_artifacts()
        repo.delete_artifacts()
        assert repo.list_artifacts() == []

    # -- path safety --------------------------------------------------------

    @_ESCAPES
    def test_log_bytes_refuses_escaping_path(
        self,
        repo: ArtifactRepository,
        artifact_backing_files: Callable[[], Any],
        bad_path: str,
    ) -> None:
        before = artifact_backing_files()
        with pytest.raises(InvalidParameterError) as caught:
            repo.log_bytes(b"pwned", bad_path)
        assert "artifact_file" in str(caught.value)
        assert repr(bad_path) in str(caught.value)
        assert "relative" in str(caught.value)
        assert all_artifacts(repo) == []
        assert artifact_backing_files() == before

    @_ESCAPES
    def test_log_artifact_refuses_escaping_path(
        self,
        repo: ArtifactRepository,
        artifact_backing_files: Callable[[], Any],
        tmp_path: Path,
        bad_path: str,
    ) -> None:
        source = _write(tmp_path / "src" / "f.txt", b"pwned")
        before = artifact_backing_files()
        with pytest.raises(InvalidParameterError, match="artifact_path") as caught:
            repo.log_artifact(source, bad_path)
        assert repr(bad_path) in str(caught.value)
        assert all_artifacts(repo) == []
        assert artifact_backing_files() == before

    @_ESCAPES
    def test_log_artifacts_refuses_escaping_path(
        self,
        repo: ArtifactRepository,
        artifact_backing_files: Callable[[], Any],
        tree: Path,
        bad_path: str,
    ) -> None:
        before = artifact_backing_files()
        with pytest.raises(InvalidParameterError, match="artifact_path") as caught:
            repo.log_artifacts(tree, bad_path)
        assert repr(bad_path) in str(caught.value)
        assert all_artifacts(repo) == []
        assert artifact_backing_files() == before

    @_ESCAPES
    def test_reads_refuse_escaping_path(
        self, repo: ArtifactRepository, tmp_path: Path, bad_path: str
    ) -> None:
        calls: dict[str, Callable[[], object]] = {
            "path": lambda: repo.list_artifacts(bad_path),
            "artifact_path": lambda: repo.download_artifacts(bad_path, str(tmp_path / "dst")),
        }
        for field, call in calls.items():
            with pytest.raises(InvalidParameterError, match=field) as caught:
                call()
            assert repr(bad_path) in str(caught.value)
        with pytest.raises(InvalidParameterError, match="artifact_path"):
            repo.read_bytes(bad_path)
        with pytest.raises(InvalidParameterError, match="artifact_path"):
            repo.open(bad_path)
        assert not (tmp_path / "dst").exists()

    @_ESCAPES
    def test_delete_refuses_escaping_path(
        self,
        repo: ArtifactRepository,
        artifact_backing_files: Callable[[], Any],
        bad_path: str,
    ) -> None:
        repo.log_bytes(b"keep", "keep.txt")
        before = artifact_backing_files()
        with pytest.raises(InvalidParameterError, match="path") as caught:
            repo.delete_artifacts(bad_path)
        assert repr(bad_path) in str(caught.value)
        assert repo.list_artifacts() == [FileInfo("keep.txt", False, 4)]
        assert artifact_backing_files() == before

    @pytest.mark.skipif(os.sep == "\\", reason="Windows file names cannot hold a backslash")
    def test_log_artifacts_checks_every_name_before_writing(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        source = tmp_path / "src"
        _write(source / "a-good.txt", b"x")
        _write(source / "z\\bad.txt", b"x")
        with pytest.raises(InvalidParameterError, match="backslash"):
            repo.log_artifacts(source)
        assert all_artifacts(repo) == []
