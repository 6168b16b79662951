"""An artifact repository on any fsspec filesystem: local disk, memory, S3, GCS ...

The filesystem is chosen from the root URI's scheme by fsspec; plain paths are
local. fsspec and OS errors are translated here, at the boundary:
``FileNotFoundError`` becomes :class:`~tracking.errors.ArtifactNotFoundError`,
any other ``OSError`` (``PermissionError`` included) a
:class:`~tracking.errors.StoreError`, each chained to the original.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

from tracking.artifacts.base import ArtifactRepository
from tracking.artifacts.paths import (
    join_relative,
    join_uri,
    normalize_artifact_path,
    plan_directory_upload,
    plan_file_upload,
    resolve_artifact_root,
)
from tracking.artifacts.progress import (
    PROGRESS_MIN_BYTES,
    PROGRESS_MIN_FILES,
    ProgressPolicy,
    TransferProgress,
)
from tracking.artifacts.storage import storage_options_for
from tracking.entities import ArtifactRef, FileInfo
from tracking.errors import ArtifactNotFoundError, InvalidParameterError, StoreError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["FsspecArtifactRepository"]

_CHUNK_SIZE = 1024 * 1024
_GLOB_CHARACTERS = frozenset("*?[")


class FsspecArtifactRepository(ArtifactRepository):
    """The artifacts of one run, stored on the fsspec filesystem of ``artifact_uri``.

    ``artifact_uri`` is the run's artifact root: an fsspec URL
    (``s3://bucket/1/<run_id>/artifacts``, ``memory://...``, ``file:///...``)
    or a local path (made absolute). ``storage_options`` go to the filesystem
    (credentials, endpoint ...); ``fs`` replaces the filesystem fsspec would
    pick, for tests and for callers that already hold one. Without either, the
    options registered for a root above ``artifact_uri`` are used
    (:func:`~tracking.artifacts.storage.register_storage_options`).

    Transfers of at least ``progress_min_files`` files or
    ``progress_min_bytes`` bytes show a ``rich`` progress bar on ``console``
    (stderr by default) when ``progress`` is True, or when it is None and
    stderr is a terminal.

    ``display_root`` is how error messages name the root (default: the root
    itself); the tracking server passes ``mlflow-artifacts:/`` so that its
    answers never reveal where on its disk the artifacts live.

    On a local filesystem every path is resolved with its symbolic links
    before any I/O, and one that leads out of the root is refused
    (:class:`~tracking.errors.InvalidParameterError`): a link planted under the
    root can neither be read or listed through, nor written through. Listings
    leave symbolic links out.

    Example::

        repo = FsspecArtifactRepository("s3://bucket/1/abc/artifacts", "abc")
        ref = repo.log_artifact("model.pkl", "models")
        ref.path, ref.size, ref.sha256  # ('models/model.pkl', 1234, '9f86d0...')
    """

    def __init__(
        self,
        artifact_uri: str,
        run_id: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        fs: Any = None,
        progress: bool | None = None,
        console: Console | None = None,
        progress_min_files: int = PROGRESS_MIN_FILES,
        progress_min_bytes: int = PROGRESS_MIN_BYTES,
        display_root: str | None = None,
    ) -> None:
        self.artifact_uri = resolve_artifact_root(artifact_uri)
        self._display_root = display_root or self.artifact_uri
        self.run_id = run_id
        self._progress = ProgressPolicy(progress, console, progress_min_files, progress_min_bytes)
        if fs is None:
            if storage_options is None:
                storage_options = storage_options_for(self.artifact_uri)
            fs, root = self._filesystem_for(self.artifact_uri, storage_options)
        else:
            root = fs._strip_protocol(self.artifact_uri)
        self.fs: Any = fs
        self._root: str = root.rstrip("/") or root
        protocol = getattr(fs, "protocol", ())
        protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        #: Whether paths are on this machine's disk, where symbolic links exist.
        self._local = "file" in protocols or "local" in protocols

    @staticmethod
    def _filesystem_for(uri: str, storage_options: Mapping[str, Any]) -> tuple[Any, str]:
        # Imported here: fsspec costs ~0.1 s and `import tracking` must stay light.
        from fsspec.core import url_to_fs

        try:
            fs, root = url_to_fs(uri, **storage_options)
        except ImportError as exc:
            raise StoreError(
                f"The filesystem for artifact_uri {uri!r} needs a package that is not "
                f"installed: {exc}"
            ) from exc
        except ValueError as exc:
            raise InvalidParameterError(
                f"Invalid artifact_uri {uri!r}: fsspec cannot open it ({exc})"
            ) from exc
        return fs, str(root)

    # -- helpers -----------------------------------------------------------

    def _full(self, rel: str) -> str:
        """The filesystem path of the relative artifact path ``rel``, confined to the root."""
        if not rel:
            return self._root
        full = f"{self._root.rstrip('/')}/{rel}"
        if self._local and not self._inside(full):
            raise InvalidParameterError(
                f"Invalid artifact path {rel!r}: it leads out of the artifact root "
                f"{self._display_root} through a symbolic link"
            )
        return full

    def _inside(self, full: str) -> bool:
        """Whether the local path ``full``, links resolved, stays under the root."""
        root = os.path.realpath(self._root)
        real = os.path.realpath(full)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def _uri(self, rel: str) -> str:
        return join_uri(self.artifact_uri, rel)

    @contextlib.contextmanager
    def _translating(self, action: str, rel: str) -> Iterator[None]:
        """Turn OS and fsspec errors raised while doing ``action`` on ``rel`` into ours."""
        where = f"{rel or '.'!r} under {self._display_root}"
        try:
            yield
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(f"No artifact at {where}") from exc
        except PermissionError as exc:
            raise StoreError(f"Permission denied: cannot {action} {where} ({exc})") from exc
        except OSError as exc:
            raise StoreError(f"Cannot {action} {where}: {exc}") from exc

    def _open_for_writing(self, full: str) -> Any:
        """Open ``full`` for writing, creating its parent directory only if needed.

        Object stores have no directories, and making one can mean creating a
        bucket (which s3fs tries when it cannot see the bucket), so parents
        are made only after the filesystem says they are missing.
        """
        try:
            return self.fs.open(full, "wb")
        except FileNotFoundError:
            self.fs.makedirs(posixpath.dirname(full), exist_ok=True)
            return self.fs.open(full, "wb")

    def _fresh(self, full: str) -> str:
        """``full``, with any listing the filesystem cached for it dropped.

        s3fs and other object-store filesystems cache listings without expiry
        in a process-wide instance; another process may have written since.
        """
        self.fs.invalidate_cache(full)
        return full

    def _upload(self, source: str, rel: str, bar: TransferProgress) -> ArtifactRef:
        """Stream the local file ``source`` to ``rel``, hashing it on the way."""
        full = self._full(rel)
        digest = hashlib.sha256()
        size = 0
        try:
            src = open(source, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise InvalidParameterError(f"Cannot read local file {source!r}: {exc}") from exc
        with src, self._translating("write", rel):
            try:
                with self._open_for_writing(full) as dst:
                    while chunk := src.read(_CHUNK_SIZE):
                        digest.update(chunk)
                        dst.write(chunk)
                        size += len(chunk)
                        bar.advance(len(chunk))
            except BaseException:
                # Leave no truncated file behind.
                with contextlib.suppress(Exception):
                    self.fs.rm_file(full)
                raise
        bar.file_done()
        return ArtifactRef(self.run_id, rel, self._uri(rel), size, digest.hexdigest())

    def _download(self, full: str, local: str, rel: str, bar: TransferProgress) -> None:
        with self._translating("download", rel):
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with self.fs.open(full, "rb") as src, open(local, "wb") as dst:
                while chunk := src.read(_CHUNK_SIZE):
                    dst.write(chunk)
                    bar.advance(len(chunk))
        bar.file_done()

    # -- writing -----------------------------------------------------------

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactRef:
        """Copy a local file to ``<artifact_path>/<file name>``, replacing any file there.

        A missing source, or a directory, raises
        :class:`~tracking.errors.InvalidParameterError` naming it.
        """
        source = os.fspath(local_path)
        rel = plan_file_upload(source, artifact_path)
        with self._progress.bar("Uploading", rel, 1, os.path.getsize(source)) as bar:
            return self._upload(source, rel, bar)

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactRef]:
        """Copy every file under ``local_dir`` below ``artifact_path``; refs sorted by path.

        Every name is checked before the first byte is written. Empty
        directories are not kept (object stores have none) and special files
        (sockets, FIFOs, broken links) are skipped.
        """
        directory, plan = plan_directory_upload(local_dir, artifact_path)
        total = sum(size for _, _, size in plan)
        with self._progress.bar("Uploading", directory, len(plan), total) as bar:
            return [self._upload(local, rel, bar) for local, rel, _ in plan]

    def log_bytes(self, data: bytes, artifact_file: str) -> ArtifactRef:
        """Write ``data`` to ``artifact_file``, replacing any file there."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidParameterError(
                f"Invalid data of type {type(data).__name__}: expected bytes (encode text first)"
            )
        rel = normalize_artifact_path(artifact_file, field="artifact_file", allow_root=False)
        payload = bytes(data)
        full = self._full(rel)
        with self._translating("write", rel), self._open_for_writing(full) as dst:
            dst.write(payload)
        digest = hashlib.sha256(payload).hexdigest()
        return ArtifactRef(self.run_id, rel, self._uri(rel), len(payload), digest)

    # -- reading -----------------------------------------------------------

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The direct children of directory ``path`` (the root if None), sorted by path.

        Paths are relative to the root (``"dir/file.txt"``); directories have
        ``is_dir=True`` and ``file_size=None``. A missing directory, or a
        file, lists as ``[]``, as in MLflow.
        """
        rel = normalize_artifact_path(path, field="path")
        full = self._fresh(self._full(rel))
        with self._translating("list", rel):
            if not self.fs.isdir(full):
                return []
            entries = self.fs.ls(full, detail=True)
        base = full.rstrip("/")
        listing = []
        for entry in entries:
            name = str(entry["name"]).rstrip("/")
            if not name or name == base or entry.get("islink"):
                continue
            child = join_relative(rel, posixpath.basename(name))
            if entry["type"] == "directory":
                listing.append(FileInfo(child, True, None))
            else:
                listing.append(FileInfo(child, False, int(entry.get("size") or 0)))
        return sorted(listing, key=lambda info: info.path)

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        """Download a file or directory (``""`` for all) into ``dst_path`` and return its path.

        The relative path is kept: ``download_artifacts("a/b.txt", "/tmp/x")``
        returns ``"/tmp/x/a/b.txt"``. ``dst_path`` is created if needed; None
        means a new temporary directory. A missing artifact raises
        :class:`~tracking.errors.ArtifactNotFoundError` naming it.
        """
        rel = normalize_artifact_path(artifact_path, field="artifact_path")
        full = self._fresh(self._full(rel))
        with self._translating("download", rel):
            # The root of a run with no artifacts yet downloads as an empty directory.
            info = self.fs.info(full) if rel else {"type": "directory"}
            is_dir = info["type"] == "directory"
            files: dict[str, Any] = (
                self.fs.find(full, detail=True) if is_dir and self.fs.isdir(full) else {}
            )
        dst_root = (
            os.path.abspath(dst_path)
            if dst_path is not None
            else tempfile.mkdtemp(prefix="trackflow-artifacts-")
        )
        target = os.path.join(dst_root, *rel.split("/")) if rel else dst_root
        if not is_dir:
            with self._progress.bar("Downloading", rel, 1, int(info.get("size") or 0)) as bar:
                self._download(full, target, rel, bar)
            return target
        plan = self._download_plan(full, target, files)
        with self._translating("download", rel):
            os.makedirs(target, exist_ok=True)
        total = sum(size for _, _, _, size in plan)
        with self._progress.bar("Downloading", rel, len(plan), total) as bar:
            for remote, local, child, _ in plan:
                self._download(remote, local, join_relative(rel, child), bar)
        return target

    def _download_plan(
        self, full: str, target: str, files: Mapping[str, Any]
    ) -> list[tuple[str, str, str, int]]:
        """(remote path, local path, path relative to ``full``, size) of each file."""
        prefix = full.rstrip("/") + "/"
        plan = []
        for name, info in sorted(files.items()):
            if info.get("type") == "directory" or not name.startswith(prefix):
                continue
            if self._local and not self._inside(name):
                continue  # reached through a symbolic link that leaves the root
            child = name[len(prefix) :]
            try:
                child = normalize_artifact_path(child, field="stored name", allow_root=False)
            except InvalidParameterError as exc:
                # Only a store written by something else can hold such a name.
                raise StoreError(
                    f"Refusing to download {name!r} from {self._display_root}: {exc}"
                ) from exc
            local = os.path.join(target, *child.split("/"))
            plan.append((name, local, child, int(info.get("size") or 0)))
        return plan

    def open(self, artifact_path: str) -> IO[bytes]:
        """Open the file ``artifact_path`` for reading bytes.

        Errors raised while reading the returned stream come from the
        filesystem untranslated; :meth:`read_bytes` translates them.
        """
        rel = normalize_artifact_path(artifact_path, field="artifact_path", allow_root=False)
        full = self._fresh(self._full(rel))
        with self._translating("open", rel):
            if self.fs.isdir(full):
                raise InvalidParameterError(
                    f"Invalid artifact_path {artifact_path!r}: it is a directory; expected a file"
                )
            return cast(IO[bytes], self.fs.open(full, "rb"))

    def read_bytes(self, artifact_path: str) -> bytes:
        """The whole content of the file ``artifact_path`` (for small files)."""
        rel = normalize_artifact_path(artifact_path, field="artifact_path", allow_root=False)
        with self.open(rel) as stream, self._translating("read", rel):
            return stream.read()

    # -- deleting ----------------------------------------------------------

    def delete_artifacts(self, path: str | None = None) -> None:
        """Delete the file or directory ``path``, or every artifact if None.

        Deleting a missing path does nothing, so purging a run twice is safe.
        """
        rel = normalize_artifact_path(path, field="path")
        full = self._fresh(self._full(rel))
        with self._translating("delete", rel):
            if not self.fs.exists(full):
                return
            if self.fs.isfile(full):
                self.fs.rm_file(full)
            elif not _GLOB_CHARACTERS.intersection(full):
                self.fs.rm(full, recursive=True)
            else:
                self._delete_literally(full)

    def _delete_literally(self, full: str) -> None:
        """Delete the tree at ``full`` without ``rm``, which would glob ``*?[`` in names."""
        found: dict[str, Any] = self.fs.find(full, withdirs=True, detail=True)
        # Deepest first, so each directory is empty when its turn comes.
        for name in sorted(found, key=lambda name: name.count("/"), reverse=True):
            if found[name].get("type") == "directory":
                # Object stores have no directories to remove; local ones must go.
                with contextlib.suppress(OSError):
                    self.fs.rmdir(name)
            else:
                self.fs.rm_file(name)
        with contextlib.suppress(OSError):
            self.fs.rmdir(full)
