"""The artifact proxy: ``mlflow-artifacts:/<path>`` is ``<artifacts_destination>/<path>``.

As with ``mlflow server --serve-artifacts``, experiments get the artifact
location ``mlflow-artifacts:/<experiment_id>`` and runs
``mlflow-artifacts:/<experiment_id>/<run_id>/artifacts``; clients upload and
download through ``/api/2.0/mlflow-artifacts/artifacts/<path>`` and the server
reads and writes ``<artifacts_destination>/<path>`` with
:class:`~tracking.artifacts.FsspecArtifactRepository`, whose path checks
refuse traversal before any I/O.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable
from typing import IO
from urllib.parse import urlsplit

from tracking.artifacts import (
    FsspecArtifactRepository,
    artifact_repository_for,
    normalize_artifact_path,
    resolve_artifact_root,
    uri_scheme,
)
from tracking.entities import FileInfo, Run
from tracking.errors import InvalidParameterError

__all__ = ["PROXY_ROOT", "ArtifactProxy"]

#: The artifact root the server's store hands to new experiments.
PROXY_ROOT = "mlflow-artifacts:/"
_SCHEME = "mlflow-artifacts"


_LOCAL_SCHEMES = frozenset({None, "file", "local"})


def _comparable(location: str) -> tuple[str, str] | None:
    """``(scheme, normal path)`` of an artifact location, or None if it cannot be
    compared safely (a ``..`` segment, a NUL byte)."""
    scheme = uri_scheme(location)
    if "\x00" in location:
        return None
    if scheme in _LOCAL_SCHEMES:
        path = urlsplit(location).path if scheme is not None else location
        path = os.path.expanduser(path)
        if not os.path.isabs(path):
            path = os.path.abspath(path)
        # The real path: a symbolic link must not carry a location out of a root.
        return "file", os.path.realpath(path)
    split = urlsplit(location)
    if ".." in split.path.split("/"):
        return None
    path = posixpath.normpath("/" + split.path.lstrip("/")) if split.path else "/"
    return str(scheme), f"{split.netloc}{path}".rstrip("/")


def _within(location: tuple[str, str], root: tuple[str, str]) -> bool:
    if location[0] != root[0]:
        return False
    inner, outer = location[1], root[1]
    if location[0] == "file":
        return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)
    return inner == outer or inner.startswith(outer + "/")


class ArtifactProxy:
    """The server's artifact store, addressed by paths relative to the destination.

    ``allowed_roots`` are further locations (fsspec URLs or local paths) that
    clients may give experiments as ``artifact_location``; the destination and
    ``mlflow-artifacts:`` URIs are always allowed, anything else is refused
    (:meth:`confine`), so no client can make the server read or list files
    outside them.

    Example::

        proxy = ArtifactProxy("s3://bucket/trackflow")
        proxy.repository.list_artifacts("1/abc/artifacts")
    """

    def __init__(self, destination: str, allowed_roots: Iterable[str] = ()) -> None:
        self.destination = resolve_artifact_root(destination)
        self.repository = FsspecArtifactRepository(
            self.destination, run_id="", progress=False, display_root=PROXY_ROOT
        )
        self.allowed_roots = (self.destination, *(resolve_artifact_root(r) for r in allowed_roots))
        self._roots = [c for c in map(_comparable, self.allowed_roots) if c is not None]

    def confine(self, location: str, field: str = "artifact_location") -> str:
        """``location`` if the server may use it, else InvalidParameterError (400).

        Allowed: ``mlflow-artifacts:`` URIs (served from the destination), and
        locations inside the destination or one of the allowed roots, with
        symbolic links resolved.
        """
        if uri_scheme(location) == _SCHEME:
            self.proxied_path(location)
            return location
        comparable = _comparable(location)
        if comparable is not None and any(_within(comparable, root) for root in self._roots):
            return location
        raise InvalidParameterError(
            f"Invalid {field} {location!r}: this server keeps artifacts only under its "
            "artifacts destination or the roots it was started with "
            "(--allowed-artifact-roots); leave it empty to use mlflow-artifacts:/, or give "
            "a location under an allowed root"
        )

    @staticmethod
    def proxied_path(artifact_uri: str) -> str | None:
        """The destination-relative path of an ``mlflow-artifacts`` URI (None for others)."""
        if uri_scheme(artifact_uri) != _SCHEME:
            return None
        path = urlsplit(artifact_uri).path
        return normalize_artifact_path(path.strip("/"), field="artifact_uri")

    def open_run_artifact(self, run: Run, path: str) -> IO[bytes]:
        """A file of a run's artifacts for reading (the caller closes it), under the same
        rules as :meth:`list_run_artifacts`."""
        rel = normalize_artifact_path(path, field="path", allow_root=False)
        root = self.proxied_path(run.info.artifact_uri)
        if root is None:
            self.confine(run.info.artifact_uri, field=f"artifact_uri of run {run.info.run_id}")
            repository = artifact_repository_for(run.info.artifact_uri, run.info.run_id)
            return repository.open(rel)
        return self.repository.open(posixpath.join(root, rel))

    def list_run_artifacts(self, run: Run, path: str | None) -> list[FileInfo]:
        """The entries directly under ``path`` of a run's artifacts, run-relative.

        Runs under ``mlflow-artifacts:`` are listed from the destination; runs
        whose experiment points elsewhere (an fsspec URL or path set by the
        client) are listed from there, as MLflow's server does.
        """
        rel = normalize_artifact_path(path, field="path")
        root = self.proxied_path(run.info.artifact_uri)
        if root is None:
            self.confine(run.info.artifact_uri, field=f"artifact_uri of run {run.info.run_id}")
            listed = artifact_repository_for(run.info.artifact_uri, run.info.run_id)
            return listed.list_artifacts(rel or None)
        where = posixpath.join(root, rel) if rel else root
        return [
            FileInfo(
                posixpath.join(rel, posixpath.basename(info.path))
                if rel
                else posixpath.basename(info.path),
                info.is_dir,
                info.file_size,
            )
            for info in self.repository.list_artifacts(where)
        ]
