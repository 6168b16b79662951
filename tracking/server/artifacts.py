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

import posixpath
from urllib.parse import urlsplit

from tracking.artifacts import (
    FsspecArtifactRepository,
    artifact_repository_for,
    normalize_artifact_path,
    resolve_artifact_root,
    uri_scheme,
)
from tracking.entities import FileInfo, Run

__all__ = ["PROXY_ROOT", "ArtifactProxy"]

#: The artifact root the server's store hands to new experiments.
PROXY_ROOT = "mlflow-artifacts:/"
_SCHEME = "mlflow-artifacts"


class ArtifactProxy:
    """The server's artifact store, addressed by paths relative to the destination.

    Example::

        proxy = ArtifactProxy("s3://bucket/trackflow")
        proxy.repository.list_artifacts("1/abc/artifacts")
    """

    def __init__(self, destination: str) -> None:
        self.destination = resolve_artifact_root(destination)
        self.repository = FsspecArtifactRepository(self.destination, run_id="", progress=False)

    @staticmethod
    def proxied_path(artifact_uri: str) -> str | None:
        """The destination-relative path of an ``mlflow-artifacts`` URI (None for others)."""
        if uri_scheme(artifact_uri) != _SCHEME:
            return None
        path = urlsplit(artifact_uri).path
        return normalize_artifact_path(path.strip("/"), field="artifact_uri")

    def list_run_artifacts(self, run: Run, path: str | None) -> list[FileInfo]:
        """The entries directly under ``path`` of a run's artifacts, run-relative.

        Runs under ``mlflow-artifacts:`` are listed from the destination; runs
        whose experiment points elsewhere (an fsspec URL or path set by the
        client) are listed from there, as MLflow's server does.
        """
        rel = normalize_artifact_path(path, field="path")
        root = self.proxied_path(run.info.artifact_uri)
        if root is None:
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
