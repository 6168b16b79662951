"""Artifacts kept by a tracking server, reached through its ``mlflow-artifacts`` proxy.

A run whose ``artifact_uri`` is ``mlflow-artifacts:/1/<run_id>/artifacts``
has its files on the server's artifact store; the client reads and writes
them through ``<server>/api/2.0/mlflow-artifacts/artifacts/<path>``:

* ``PUT .../artifacts/<path>`` uploads a file (streamed, sha256 computed on the way),
* ``GET .../artifacts/<path>`` downloads it (streamed),
* ``GET .../artifacts?path=<dir>`` lists a directory as
  ``{"files": [{"path", "is_dir", "file_size"}]}``,
* ``DELETE .../artifacts/<path>`` deletes a file or a directory.

The requests go through the tracking store's
:class:`~tracking.store.rest_http.RestSession`, so they share its connection
pool, bearer token, retries and error mapping. Every path is checked with
:func:`~tracking.artifacts.normalize_artifact_path` before any request is sent.

Example::

    repo = HttpArtifactRepository("mlflow-artifacts:/1/abc/artifacts", "abc", session)
    ref = repo.log_artifact("model.pkl", "models")
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from tracking.artifacts.base import ArtifactRepository
from tracking.artifacts.paths import (
    join_relative,
    join_uri,
    normalize_artifact_path,
    plan_directory_upload,
    plan_file_upload,
    uri_scheme,
)
from tracking.artifacts.progress import (
    PROGRESS_MIN_BYTES,
    PROGRESS_MIN_FILES,
    ProgressPolicy,
    TransferProgress,
)
from tracking.entities import ArtifactRef, FileInfo
from tracking.errors import (
    ArtifactNotFoundError,
    InvalidParameterError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)
from tracking.store.rest_http import RestSession

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ARTIFACTS_API", "SCHEME", "HttpArtifactRepository"]

#: The URI scheme of artifacts served by a tracking server.
SCHEME = "mlflow-artifacts"
#: Where the server's artifact proxy lives.
ARTIFACTS_API = "api/2.0/mlflow-artifacts/artifacts"

_CHUNK_SIZE = 1024 * 1024


def _server_path(artifact_uri: str) -> tuple[str | None, str]:
    """The host named in an ``mlflow-artifacts`` URI (if any) and the path under the proxy."""
    if uri_scheme(artifact_uri) != SCHEME:
        raise InvalidParameterError(
            f"Invalid artifact_uri {artifact_uri!r}: expected an {SCHEME}:/ URI"
        )
    parts = urlsplit(artifact_uri)
    return parts.netloc or None, parts.path.strip("/")


class _ResponseStream(io.RawIOBase):
    """The body of a streamed response as a raw binary file (closing it closes the response)."""

    def __init__(self, response: httpx.Response, where: str) -> None:
        self._response = response
        self._chunks = response.iter_bytes(_CHUNK_SIZE)
        self._pending = b""
        self._where = where

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.HTTPError as exc:
                raise StoreUnavailableError(
                    f"reading {self._where} from the tracking server failed: {exc}"
                ) from exc
        size = min(len(view), len(self._pending))
        view[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


class HttpArtifactRepository(ArtifactRepository):
    """The artifacts of one run, stored behind a tracking server's artifact proxy.

    ``artifact_uri`` is the run's ``mlflow-artifacts:`` root and ``session``
    the tracking store's HTTP session (``store.http``). A URI that names a
    host (``mlflow-artifacts://host:5000/...``) is served by that host, with
    the session's scheme and token. Progress bars work as for
    :class:`~tracking.artifacts.FsspecArtifactRepository`.
    """

    def __init__(
        self,
        artifact_uri: str,
        run_id: str,
        session: RestSession,
        *,
        progress: bool | None = None,
        console: Console | None = None,
        progress_min_files: int = PROGRESS_MIN_FILES,
        progress_min_bytes: int = PROGRESS_MIN_BYTES,
    ) -> None:
        host, root = _server_path(artifact_uri)
        if host is not None and urlsplit(session.base_url).netloc != host:
            scheme = urlsplit(session.base_url).scheme or "http"
            session = RestSession(
                f"{scheme}://{host}",
                token=session.token,
                timeout=session.timeout,
                max_retries=session.max_retries,
                backoff=session.backoff,
            )
        self.artifact_uri = artifact_uri
        self.run_id = run_id
        self.http = session
        self._progress = ProgressPolicy(progress, console, progress_min_files, progress_min_bytes)
        self._root = root
        self._api = session.url(ARTIFACTS_API)

    # -- helpers -----------------------------------------------------------

    def _server(self, rel: str) -> str:
        """The path of ``rel`` under the server's artifact proxy."""
        return join_relative(self._root, rel) if rel else self._root

    def _url(self, rel: str) -> str:
        return f"{self._api}/{quote(self._server(rel), safe='/')}"

    def _uri(self, rel: str) -> str:
        return join_uri(self.artifact_uri, rel)

    def _where(self, rel: str) -> str:
        return f"{rel or '.'!r} under {self.artifact_uri}"

    def _get(self, rel: str) -> httpx.Response:
        """An open, streamed GET of the file ``rel``; the caller closes it.

        A directory is refused with InvalidParameterError, a missing file
        raises :class:`~tracking.errors.ArtifactNotFoundError`.
        """
        try:
            return self.http.request("GET", self._url(rel), stream=True)
        except (NotFoundError, InvalidParameterError) as exc:
            if self._list(rel):
                raise InvalidParameterError(
                    f"Invalid artifact_path {rel!r}: it is a directory; expected a file"
                ) from exc
            raise ArtifactNotFoundError(f"No artifact at {self._where(rel)}") from exc

    def _list(self, rel: str) -> list[FileInfo]:
        try:
            answer = self.http.call("GET", self._api, params={"path": self._server(rel)})
        except NotFoundError:
            return []
        listing = []
        try:
            for entry in answer.get("files") or ():
                name = posixpath.basename(str(entry["path"]).rstrip("/"))
                child = normalize_artifact_path(
                    join_relative(rel, name), field="stored name", allow_root=False
                )
                if entry.get("is_dir"):
                    listing.append(FileInfo(child, True, None))
                else:
                    listing.append(FileInfo(child, False, int(entry.get("file_size") or 0)))
        except (AttributeError, KeyError, TypeError, ValueError, InvalidParameterError) as exc:
            raise StoreError(
                f"the tracking server sent a malformed artifact listing for "
                f"{self._where(rel)}: {exc}"
            ) from exc
        return sorted(listing, key=lambda info: info.path)

    def _walk(self, rel: str) -> Iterator[FileInfo]:
        for info in self._list(rel):
            if info.is_dir:
                yield from self._walk(info.path)
            else:
                yield info

    def _upload(self, source: str, rel: str, bar: TransferProgress) -> ArtifactRef:
        """Stream the local file ``source`` to ``rel``, hashing it on the way."""
        size = os.path.getsize(source)
        state: dict[str, Any] = {}

        def body() -> Iterator[bytes]:
            # Built anew for each attempt: a retry re-reads the file from the start.
            digest = hashlib.sha256()
            state.update(digest=digest, size=0)
            stream = open(source, "rb")  # noqa: SIM115 - closed when the body is done

            def chunks() -> Iterator[bytes]:
                with stream:
                    while chunk := stream.read(_CHUNK_SIZE):
                        digest.update(chunk)
                        state["size"] += len(chunk)
                        bar.advance(len(chunk))
                        yield chunk

            return chunks()

        try:
            open(source, "rb").close()
        except OSError as exc:
            raise InvalidParameterError(f"Cannot read local file {source!r}: {exc}") from exc
        self.http.request(
            "PUT",
            self._url(rel),
            body=body,
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        ).close()
        bar.file_done()
        return ArtifactRef(
            self.run_id, rel, self._uri(rel), state["size"], state["digest"].hexdigest()
        )

    def _download(
        self, rel: str, local: str, bar: TransferProgress, response: httpx.Response | None = None
    ) -> None:
        """Stream the file ``rel`` (or the open ``response`` for it) to ``local``."""
        if response is None:
            response = self._get(rel)
        try:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "wb") as dst:
                for chunk in response.iter_bytes(_CHUNK_SIZE):
                    dst.write(chunk)
                    bar.advance(len(chunk))
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(
                f"downloading {self._where(rel)} from the tracking server failed: {exc}"
            ) from exc
        except OSError as exc:
            raise StoreError(f"Cannot write {local!r} while downloading {rel!r}: {exc}") from exc
        finally:
            response.close()
        bar.file_done()

    # -- writing -----------------------------------------------------------

    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactRef:
        """Upload a local file to ``<artifact_path>/<file name>``, replacing any file there."""
        source = os.fspath(local_path)
        rel = plan_file_upload(source, artifact_path)
        with self._progress.bar("Uploading", rel, 1, os.path.getsize(source)) as bar:
            return self._upload(source, rel, bar)

    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactRef]:
        """Upload every file under ``local_dir`` below ``artifact_path``; refs sorted by path.

        Every name is checked before the first byte is sent; empty
        directories and special files are skipped.
        """
        directory, plan = plan_directory_upload(local_dir, artifact_path)
        total = sum(size for _, _, size in plan)
        with self._progress.bar("Uploading", directory, len(plan), total) as bar:
            return [self._upload(local, rel, bar) for local, rel, _ in plan]

    def log_bytes(self, data: bytes, artifact_file: str) -> ArtifactRef:
        """Upload ``data`` as the file ``artifact_file``, replacing any file there."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidParameterError(
                f"Invalid data of type {type(data).__name__}: expected bytes (encode text first)"
            )
        rel = normalize_artifact_path(artifact_file, field="artifact_file", allow_root=False)
        payload = bytes(data)
        self.http.request(
            "PUT",
            self._url(rel),
            content=payload,
            headers={"Content-Type": "application/octet-stream"},
        ).close()
        digest = hashlib.sha256(payload).hexdigest()
        return ArtifactRef(self.run_id, rel, self._uri(rel), len(payload), digest)

    # -- reading -----------------------------------------------------------

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The direct children of directory ``path`` (the root if None), sorted by path.

        A missing directory, or a file, lists as ``[]``.
        """
        return self._list(normalize_artifact_path(path, field="path"))

    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        """Download a file or directory (``""`` for all) into ``dst_path``; returns its path.

        The relative path is kept under ``dst_path`` (a new temporary
        directory if None). A missing artifact raises
        :class:`~tracking.errors.ArtifactNotFoundError` naming it.
        """
        rel = normalize_artifact_path(artifact_path, field="artifact_path")
        response: httpx.Response | None = None
        files: list[FileInfo] = []
        if rel:
            # A file, most of the time: try it as one, and walk it if it is a directory.
            try:
                response = self.http.request("GET", self._url(rel), stream=True)
            except (NotFoundError, InvalidParameterError) as exc:
                files = list(self._walk(rel))
                if not files:
                    raise ArtifactNotFoundError(f"No artifact at {self._where(rel)}") from exc
        else:
            files = list(self._walk(rel))
        try:
            dst_root = (
                os.path.abspath(dst_path)
                if dst_path is not None
                else tempfile.mkdtemp(prefix="trackflow-artifacts-")
            )
            target = os.path.join(dst_root, *rel.split("/")) if rel else dst_root
        except BaseException:
            if response is not None:
                response.close()
            raise
        if response is not None:
            size = int(response.headers.get("Content-Length") or 0)
            with self._progress.bar("Downloading", rel, 1, size) as bar:
                self._download(rel, target, bar, response)
            return target
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create {target!r} to download {rel!r}: {exc}") from exc
        total = sum(info.file_size or 0 for info in files)
        prefix = f"{rel}/" if rel else ""
        with self._progress.bar("Downloading", rel, len(files), total) as bar:
            for info in files:
                child = info.path[len(prefix) :]
                self._download(info.path, os.path.join(target, *child.split("/")), bar)
        return target

    def open(self, artifact_path: str) -> IO[bytes]:
        """Open the file ``artifact_path`` for reading bytes, streamed from the server."""
        rel = normalize_artifact_path(artifact_path, field="artifact_path", allow_root=False)
        raw = _ResponseStream(self._get(rel), self._where(rel))
        return io.BufferedReader(raw, _CHUNK_SIZE)

    # -- deleting ----------------------------------------------------------

    def delete_artifacts(self, path: str | None = None) -> None:
        """Delete the file or directory ``path``, or every artifact if None.

        Deleting a missing path does nothing.
        """
        rel = normalize_artifact_path(path, field="path")
        try:
            self.http.request("DELETE", self._url(rel)).close()
        except NotFoundError:
            return
