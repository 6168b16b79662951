"""FsspecArtifactRepository on local disk (plain path, file:// URL) and memory://."""

from __future__ import annotations

import errno
import importlib.util
import io
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.implementations.local import LocalFileSystem
from rich.console import Console

from tracking.artifacts import (
    ArtifactRepository,
    FsspecArtifactRepository,
    artifact_repository_for,
    join_uri,
    normalize_artifact_path,
    register_artifact_scheme,
    resolve_artifact_root,
    uri_scheme,
)
from tracking.artifacts import registry as registry_module
from tracking.entities import FileInfo
from tracking.errors import ArtifactNotFoundError, InvalidParameterError, StoreError
from tracking.testing.artifacts import ArtifactRepoFactory, ArtifactRepositorySuite

# --------------------------------------------------------------------------
# The conformance suite on three roots
# --------------------------------------------------------------------------


def _disk_snapshot(root: Path) -> Callable[[], Any]:
    """Every path and size under ``root``, and whether the absolute-path escape landed."""

    def snapshot() -> tuple[frozenset[tuple[str, int]], bool]:
        entries = frozenset(
            (path.relative_to(root).as_posix(), path.stat().st_size if path.is_file() else -1)
            for path in root.rglob("*")
        )
        return entries, Path("/tmp/trackflow-escape.txt").exists()

    return snapshot


class TestLocalPathRepository(ArtifactRepositorySuite):
    """Roots given as plain absolute paths."""

    @pytest.fixture
    def artifact_repo_factory(self, tmp_path: Path) -> ArtifactRepoFactory:
        store = tmp_path / "store"
        return lambda run_id: FsspecArtifactRepository(
            str(store / "1" / run_id / "artifacts"), run_id
        )

    @pytest.fixture
    def artifact_backing_files(self, tmp_path: Path) -> Callable[[], Any]:
        return _disk_snapshot(tmp_path)

    def test_files_land_on_disk_under_the_root(
        self, repo: ArtifactRepository, tmp_path: Path
    ) -> None:
        ref = repo.log_bytes(b"on disk", "a/b.txt")
        expected = tmp_path / "store" / "1" / repo.run_id / "artifacts" / "a" / "b.txt"
        assert expected.read_bytes() == b"on disk"
        assert ref.uri == str(expected)


class TestFileUrlRepository(ArtifactRepositorySuite):
    """Roots given as ``file://`` URLs."""

    @pytest.fixture
    def artifact_repo_factory(self, tmp_path: Path) -> ArtifactRepoFactory:
        store = (tmp_path / "store").as_uri()
        return lambda run_id: FsspecArtifactRepository(f"{store}/1/{run_id}/artifacts", run_id)

    @pytest.fixture
    def artifact_backing_files(self, tmp_path: Path) -> Callable[[], Any]:
        return _disk_snapshot(tmp_path)

    def test_uris_stay_file_urls(self, repo: ArtifactRepository, tmp_path: Path) -> None:
        ref = repo.log_bytes(b"x", "a/b.txt")
        assert ref.uri.startswith("file:///")
        assert ref.uri == f"{(tmp_path / 'store').as_uri()}/1/{repo.run_id}/artifacts/a/b.txt"


@pytest.fixture
def memory_base() -> Iterator[str]:
    """A unique ``memory://`` prefix, removed from the process-wide memory store after."""
    name = f"trackflow-tests-{uuid.uuid4().hex}"
    yield f"memory://{name}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)
    leftovers = [key for key in [*fs.store, *fs.pseudo_dirs] if key.startswith(f"/{name}")]
    assert leftovers == []


class TestMemoryRepository(ArtifactRepositorySuite):
    """Roots on fsspec's in-memory filesystem (the stand-in for object stores)."""

    @pytest.fixture
    def artifact_repo_factory(self, memory_base: str) -> ArtifactRepoFactory:
        return lambda run_id: FsspecArtifactRepository(
            f"{memory_base}/1/{run_id}/artifacts", run_id
        )

    @pytest.fixture
    def artifact_backing_files(self) -> Callable[[], Any]:
        fs = fsspec.filesystem("memory")
        return lambda: (frozenset(fs.store), frozenset(fs.pseudo_dirs))

    def test_uris_are_memory_urls(self, repo: ArtifactRepository, memory_base: str) -> None:
        ref = repo.log_bytes(b"x", "a/b.txt")
        assert ref.uri == f"{memory_base}/1/{repo.run_id}/artifacts/a/b.txt"
        assert fsspec.filesystem("memory").cat_file(ref.uri) == b"x"


# --------------------------------------------------------------------------
# Progress bars
# --------------------------------------------------------------------------


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=120, color_system=None), buffer


def _many_files(root: Path, count: int) -> Path:
    for i in range(count):
        path = root / f"d{i % 3}" / f"f{i:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * i)
    return root


class TestProgress:
    """A bar shows for large transfers when forced, or in auto mode on a terminal."""

    def _repo(
        self, tmp_path: Path, progress: bool | None, **kwargs: Any
    ) -> tuple[FsspecArtifactRepository, io.StringIO]:
        console, buffer = _console()
        repo = FsspecArtifactRepository(
            str(tmp_path / "root"), "run", progress=progress, console=console, **kwargs
        )
        return repo, buffer

    def test_large_upload_and_download_show_a_bar_when_forced(self, tmp_path: Path) -> None:
        repo, buffer = self._repo(tmp_path, progress=True)
        repo.log_artifacts(_many_files(tmp_path / "src", 120), "many")
        uploaded = buffer.getvalue()
        assert "Uploading 120 files (many)" in uploaded
        assert "120/120 files" in uploaded
        repo.download_artifacts("many", str(tmp_path / "dst"))
        downloaded = buffer.getvalue()[len(uploaded) :]
        assert "Downloading 120 files (many)" in downloaded
        assert "120/120 files" in downloaded

    def test_no_bar_when_disabled(self, tmp_path: Path) -> None:
        repo, buffer = self._repo(tmp_path, progress=False)
        repo.log_artifacts(_many_files(tmp_path / "src", 120))
        repo.download_artifacts("", str(tmp_path / "dst"))
        assert buffer.getvalue() == ""

    def test_no_bar_for_small_transfers_even_when_forced(self, tmp_path: Path) -> None:
        repo, buffer = self._repo(tmp_path, progress=True)
        repo.log_artifacts(_many_files(tmp_path / "src", 5))
        repo.download_artifacts("", str(tmp_path / "dst"))
        assert buffer.getvalue() == ""

    def test_byte_threshold_shows_a_bar_for_one_big_file(self, tmp_path: Path) -> None:
        repo, buffer = self._repo(tmp_path, progress=True, progress_min_bytes=1000)
        source = tmp_path / "big.bin"
        source.write_bytes(b"\0" * 5000)
        repo.log_artifact(source)
        assert "Uploading 1 file (big.bin)" in buffer.getvalue()

    def test_auto_mode_follows_stderr_being_a_terminal(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        class FakeTerminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        repo, buffer = self._repo(tmp_path, progress=None, progress_min_files=2)
        source = _many_files(tmp_path / "src", 3)
        repo.log_artifacts(source, "piped")
        assert buffer.getvalue() == ""  # pytest's captured stderr is no terminal
        monkeypatch.setattr("sys.stderr", FakeTerminal())
        repo.log_artifacts(source, "tty")
        assert "Uploading 3 files (tty)" in buffer.getvalue()


# --------------------------------------------------------------------------
# Error translation
# --------------------------------------------------------------------------


class _ReadOnlyFileSystem(LocalFileSystem):  # type: ignore[misc]
    """A local filesystem that refuses every write, as a read-only mount would."""

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if "r" not in mode:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return super().open(path, mode, **kwargs)


class _DiskFullWriter:
    """A file whose second write fails with ENOSPC."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.inner.write(data))

    def __enter__(self) -> _DiskFullWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.inner.close()


class _DiskFullFileSystem(LocalFileSystem):  # type: ignore[misc]
    """A local filesystem that runs out of space after the first written chunk."""

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        inner = super().open(path, mode, **kwargs)
        return _DiskFullWriter(inner) if "w" in mode else inner


class TestErrorTranslation:
    """fsspec and OS errors reach callers as TrackingErrors, chained to the original."""

    def test_permission_error_becomes_store_error(self, tmp_path: Path) -> None:
        repo = FsspecArtifactRepository(str(tmp_path / "root"), "run", fs=_ReadOnlyFileSystem())
        with pytest.raises(StoreError, match=r"Permission denied.*'a/b.txt'") as caught:
            repo.log_bytes(b"x", "a/b.txt")
        assert isinstance(caught.value.__cause__, PermissionError)
        source = tmp_path / "f.txt"
        source.write_bytes(b"x")
        with pytest.raises(StoreError, match="Permission denied") as caught:
            repo.log_artifact(source)
        assert isinstance(caught.value.__cause__, PermissionError)
        assert not (tmp_path / "root" / "f.txt").exists()

    @pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() == 0,
        reason="root ignores file modes, so chmod cannot make a directory read-only here; "
        "test_permission_error_becomes_store_error covers the translation",
    )
    def test_read_only_directory_on_disk(self, tmp_path: Path) -> None:
        root = tmp_path / "root"
        root.mkdir()
        root.chmod(0o500)
        try:
            repo = FsspecArtifactRepository(str(root), "run")
            with pytest.raises(StoreError, match="Permission denied") as caught:
                repo.log_bytes(b"x", "a.txt")
            assert isinstance(caught.value.__cause__, PermissionError)
        finally:
            root.chmod(0o700)

    def test_root_below_a_regular_file(self, tmp_path: Path) -> None:
        blocker = tmp_path / "blocker"
        blocker.write_bytes(b"")
        repo = FsspecArtifactRepository(str(blocker / "artifacts"), "run")
        with pytest.raises(StoreError, match=r"Cannot write 'a.txt'") as caught:
            repo.log_bytes(b"x", "a.txt")
        assert isinstance(caught.value.__cause__, OSError)
        assert not isinstance(caught.value, ArtifactNotFoundError)

    def test_failed_upload_leaves_no_truncated_file(self, tmp_path: Path) -> None:
        repo = FsspecArtifactRepository(str(tmp_path / "root"), "run", fs=_DiskFullFileSystem())
        source = tmp_path / "big.bin"
        source.write_bytes(b"\1" * (3 * 1024 * 1024))
        with pytest.raises(StoreError, match="No space left") as caught:
            repo.log_artifact(source, "models")
        assert caught.value.__cause__ is not None
        assert caught.value.__cause__.errno == errno.ENOSPC  # type: ignore[attr-defined]
        assert not (tmp_path / "root" / "models" / "big.bin").exists()

    def test_missing_file_becomes_artifact_not_found(self, tmp_path: Path) -> None:
        repo = FsspecArtifactRepository(str(tmp_path / "root"), "run")
        with pytest.raises(ArtifactNotFoundError, match=re.escape("'nope/x.bin'")) as caught:
            repo.read_bytes("nope/x.bin")
        assert isinstance(caught.value.__cause__, FileNotFoundError)
        assert caught.value.http_status == 404

    def test_download_onto_a_regular_file(self, tmp_path: Path) -> None:
        repo = FsspecArtifactRepository(str(tmp_path / "root"), "run")
        repo.log_bytes(b"x", "d/a.txt")
        blocker = tmp_path / "dst"
        blocker.write_bytes(b"")
        with pytest.raises(StoreError, match="Cannot download"):
            repo.download_artifacts("d", str(blocker))

    def test_unknown_scheme(self) -> None:
        with pytest.raises(InvalidParameterError, match="nosuchproto://bucket/x"):
            FsspecArtifactRepository("nosuchproto://bucket/x", "run")

    @pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
    def test_scheme_whose_package_is_missing(self) -> None:
        with pytest.raises(StoreError, match="not installed") as caught:
            FsspecArtifactRepository("gs://bucket/x", "run")
        assert isinstance(caught.value.__cause__, ImportError)


# --------------------------------------------------------------------------
# Paths, URIs and the registry
# --------------------------------------------------------------------------


class TestNormalizeArtifactPath:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, ""),
            ("", ""),
            (".", ""),
            ("./a/b", "a/b"),
            ("a//b", "a/b"),
            ("a/b/", "a/b"),
            ("a/./b/.", "a/b"),
            ("a..b/c...", "a..b/c..."),
            ("x~/~y", "x~/~y"),
            ("run:1.txt", "run:1.txt"),
            ("données/模型.txt", "données/模型.txt"),
        ],
        ids=repr,
    )
    def test_normal_forms(self, value: str | None, expected: str) -> None:
        assert normalize_artifact_path(value, field="path") == expected

    def test_message_names_field_value_and_expectation(self) -> None:
        with pytest.raises(InvalidParameterError) as caught:
            normalize_artifact_path("../../etc/passwd", field="artifact_path")
        assert str(caught.value) == (
            "Invalid artifact_path '../../etc/passwd': it contains a '..' segment; "
            "expected a relative POSIX path such as 'plots/loss.png'"
        )

    def test_root_refused_when_a_file_is_needed(self) -> None:
        with pytest.raises(InvalidParameterError, match="names no file"):
            normalize_artifact_path("./", field="artifact_file", allow_root=False)

    def test_non_string_refused(self) -> None:
        with pytest.raises(InvalidParameterError, match="expected a relative POSIX path"):
            normalize_artifact_path(42, field="path")  # type: ignore[arg-type]


class TestJoinUri:
    @pytest.mark.parametrize(
        ("base", "parts", "expected"),
        [
            ("s3://bucket/root", ("1", "abc", "artifacts"), "s3://bucket/root/1/abc/artifacts"),
            ("s3://bucket/root/", ("1",), "s3://bucket/root/1"),
            ("s3://bucket", ("/1/", "/x"), "s3://bucket/1/x"),
            ("memory://", ("x/y",), "memory://x/y"),
            ("file:///tmp/a", ("b", "c.txt"), "file:///tmp/a/b/c.txt"),
            ("mlflow-artifacts:/1", ("r", "artifacts"), "mlflow-artifacts:/1/r/artifacts"),
            ("s3://bucket/root", (), "s3://bucket/root"),
            ("s3://bucket/root", ("", "/"), "s3://bucket/root"),
            ("/srv/artifacts", ("1", "abc"), os.path.join("/srv/artifacts", "1", "abc")),
            ("relative/dir", ("x",), os.path.join("relative/dir", "x")),
        ],
        ids=[
            "s3",
            "s3-trailing-slash",
            "slashy-parts",
            "memory-empty-path",
            "file-url",
            "scheme-without-slashes",
            "no-parts",
            "empty-parts",
            "local",
            "local-relative",
        ],
    )
    def test_join(self, base: str, parts: tuple[str, ...], expected: str) -> None:
        assert join_uri(base, *parts) == expected


class TestResolveArtifactRoot:
    def test_relative_path_becomes_absolute(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        assert resolve_artifact_root("./trackflow-artifacts") == str(
            tmp_path / "trackflow-artifacts"
        )
        assert resolve_artifact_root("a/../b") == str(tmp_path / "b")

    def test_home_is_expanded(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HOME", str(tmp_path))
        assert resolve_artifact_root("~/artifacts") == str(tmp_path / "artifacts")

    @pytest.mark.parametrize(
        "uri",
        ["s3://bucket/a/../b", "file:///tmp/x", "memory://x", "mlflow-artifacts:/1/r"],
        ids=["s3", "file", "memory", "mlflow-artifacts"],
    )
    def test_urls_are_left_alone(self, uri: str) -> None:
        assert resolve_artifact_root(uri) == uri

    @pytest.mark.parametrize("root", ["", "   "], ids=["empty", "blank"])
    def test_empty_root_refused(self, root: str) -> None:
        with pytest.raises(InvalidParameterError, match="artifact root"):
            resolve_artifact_root(root)

    def test_repository_uses_the_absolute_root(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        repo = FsspecArtifactRepository("rel/root", "run")
        assert repo.artifact_uri == str(tmp_path / "rel" / "root")
        assert repo.log_bytes(b"x", "f").uri == str(tmp_path / "rel" / "root" / "f")


class TestUriScheme:
    @pytest.mark.parametrize(
        ("uri", "expected"),
        [
            ("s3://b/x", "s3"),
            ("S3://b/x", "s3"),
            ("mlflow-artifacts:/x", "mlflow-artifacts"),
            ("simplecache::s3://b", "simplecache"),
            ("/tmp/x", None),
            ("relative/x", None),
            ("C:\\x", None),
            ("C:/x", None),
        ],
        ids=repr,
    )
    def test_scheme(self, uri: str, expected: str | None) -> None:
        assert uri_scheme(uri) == expected


class TestRegistry:
    @pytest.fixture(autouse=True)
    def _isolated_registry(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(registry_module, "_FACTORIES", dict(registry_module._FACTORIES))

    @pytest.mark.parametrize(
        "uri_of",
        [
            lambda tmp: str(tmp / "a"),
            lambda tmp: (tmp / "a").as_uri(),
            lambda tmp: f"memory://trackflow-registry-{uuid.uuid4().hex}/a",
        ],
        ids=["path", "file-url", "memory"],
    )
    def test_fsspec_by_default(self, tmp_path: Path, uri_of: Callable[[Path], str]) -> None:
        uri = uri_of(tmp_path)
        repo = artifact_repository_for(uri, "run")
        assert isinstance(repo, FsspecArtifactRepository)
        assert (repo.artifact_uri, repo.run_id) == (uri, "run")

    def test_registered_scheme_wins(self, memory_base: str) -> None:
        calls: list[tuple[str, str]] = []

        def factory(uri: str, run_id: str) -> ArtifactRepository:
            calls.append((uri, run_id))
            return FsspecArtifactRepository(f"{memory_base}/proxied", run_id)

        register_artifact_scheme("Trackflow-Test:", factory)
        repo = artifact_repository_for("TRACKFLOW-TEST://host/1/r/artifacts", "r")
        assert calls == [("TRACKFLOW-TEST://host/1/r/artifacts", "r")]
        repo.log_bytes(b"x", "f.txt")
        assert repo.list_artifacts() == [FileInfo("f.txt", False, 1)]
        assert isinstance(artifact_repository_for(f"{memory_base}/other", "r"), type(repo))
        assert calls == [("TRACKFLOW-TEST://host/1/r/artifacts", "r")]

    def test_registering_again_replaces(self, memory_base: str) -> None:
        def replaced(uri: str, run_id: str) -> ArtifactRepository:
            raise AssertionError("the replaced factory was called")

        register_artifact_scheme("dup", replaced)
        register_artifact_scheme(
            "dup", lambda uri, run_id: FsspecArtifactRepository(f"{memory_base}/d", run_id)
        )
        assert isinstance(artifact_repository_for("dup://x", "r"), FsspecArtifactRepository)

    @pytest.mark.parametrize("scheme", ["", "1abc", "has space", "a", "s3/x"], ids=repr)
    def test_invalid_scheme_refused(self, scheme: str) -> None:
        with pytest.raises(InvalidParameterError, match="Invalid scheme"):
            register_artifact_scheme(scheme, FsspecArtifactRepository)

    def test_unknown_scheme_is_refused_by_fsspec(self) -> None:
        with pytest.raises(InvalidParameterError, match="fsspec cannot open"):
            artifact_repository_for("nosuchproto://x/y", "r")


class TestSymbolicLinks:
    """Links under a local root never lead out of it; linked local directories upload."""

    @pytest.fixture
    def repo(self, tmp_path: Path) -> FsspecArtifactRepository:
        root = tmp_path / "root"
        outside = tmp_path / "outside"
        root.mkdir()
        outside.mkdir()
        (outside / "secret.txt").write_text("secret")
        (root / "mine.txt").write_text("mine")
        (root / "dir-link").symlink_to(outside, target_is_directory=True)
        (root / "file-link.txt").symlink_to(outside / "secret.txt")
        (root / "inner-link.txt").symlink_to(root / "mine.txt")
        return FsspecArtifactRepository(str(root), "r")

    def test_reads_through_links_out_of_the_root_are_refused(
        self, repo: FsspecArtifactRepository, tmp_path: Path
    ) -> None:
        for path in ("dir-link/secret.txt", "file-link.txt"):
            with pytest.raises(InvalidParameterError, match="symbolic link"):
                repo.read_bytes(path)
        with pytest.raises(InvalidParameterError, match="symbolic link"):
            repo.download_artifacts("dir-link", str(tmp_path / "dst"))

    def test_a_link_that_stays_inside_is_read(self, repo: FsspecArtifactRepository) -> None:
        assert repo.read_bytes("inner-link.txt") == b"mine"

    def test_listing_leaves_links_out(self, repo: FsspecArtifactRepository) -> None:
        assert [f.path for f in repo.list_artifacts()] == ["mine.txt"]

    def test_downloading_the_root_skips_what_links_lead_to(
        self, repo: FsspecArtifactRepository, tmp_path: Path
    ) -> None:
        local = Path(repo.download_artifacts("", str(tmp_path / "all")))
        assert not (local / "dir-link" / "secret.txt").exists()
        assert not (local / "file-link.txt").exists()
        assert (local / "mine.txt").read_text() == "mine"

    def test_writes_through_links_are_refused(
        self, repo: FsspecArtifactRepository, tmp_path: Path
    ) -> None:
        with pytest.raises(InvalidParameterError, match="symbolic link"):
            repo.log_bytes(b"planted", "dir-link/new.txt")
        with pytest.raises(InvalidParameterError, match="symbolic link"):
            repo.log_bytes(b"overwritten", "file-link.txt")
        assert not (tmp_path / "outside" / "new.txt").exists()
        assert (tmp_path / "outside" / "secret.txt").read_text() == "secret"

    def test_log_artifacts_copies_a_linked_directory(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        shared = tmp_path / "shared"
        data.mkdir()
        shared.mkdir()
        (shared / "labels.csv").write_text("a,b\n")
        (data / "train.csv").write_text("x\n")
        (data / "labels").symlink_to(shared, target_is_directory=True)
        repo = FsspecArtifactRepository(str(tmp_path / "root"), "r")
        refs = repo.log_artifacts(str(data), "data")
        assert [r.path for r in refs] == ["data/labels/labels.csv", "data/train.csv"]
        assert repo.read_bytes("data/labels/labels.csv") == b"a,b\n"

    def test_log_artifacts_refuses_a_link_loop(self, tmp_path: Path) -> None:
        data = tmp_path / "data"
        (data / "sub").mkdir(parents=True)
        (data / "sub" / "f.txt").write_text("x")
        (data / "sub" / "back").symlink_to(data, target_is_directory=True)
        repo = FsspecArtifactRepository(str(tmp_path / "root"), "r")
        with pytest.raises(InvalidParameterError, match="points back"):
            repo.log_artifacts(str(data))
        assert repo.list_artifacts() == []
