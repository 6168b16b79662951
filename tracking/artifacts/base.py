"""The interface every artifact repository implements.

A repository stores the artifacts of one run under one root URI (the run's
``artifact_uri``). Paths given to it are relative POSIX paths under that root
(see :func:`tracking.artifacts.normalize_artifact_path`); paths it returns are
relative to the root too, as in MLflow (``"plots/loss.png"``).

:class:`~tracking.artifacts.FsspecArtifactRepository` covers every fsspec
filesystem; a repository talking to a tracking server's artifact proxy
implements the same methods, and both pass
:class:`tracking.testing.artifacts.ArtifactRepositorySuite`.
"""

from __future__ import annotations

import abc
import os
from typing import IO

from tracking.entities import ArtifactRef, FileInfo

__all__ = ["ArtifactRepository"]


class ArtifactRepository(abc.ABC):
    """Reads and writes the artifacts of one run.

    Errors: a bad path raises :class:`~tracking.errors.InvalidParameterError`
    before any I/O, a missing artifact
    :class:`~tracking.errors.ArtifactNotFoundError`, and a failing backend
    :class:`~tracking.errors.StoreError`.
    """

    #: The root every artifact path is relative to (the run's ``artifact_uri``).
    artifact_uri: str
    #: The run whose artifacts these are (copied into every :class:`ArtifactRef`).
    run_id: str

    @abc.abstractmethod
    def log_artifact(
        self, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactRef:
        """Copy a local file to ``<artifact_path>/<file name>`` and describe the copy."""

    @abc.abstractmethod
    def log_artifacts(
        self, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactRef]:
        """Copy the files of a local directory tree under ``artifact_path``, sorted by path."""

    @abc.abstractmethod
    def log_bytes(self, data: bytes, artifact_file: str) -> ArtifactRef:
        """Write ``data`` to the file ``artifact_file``, replacing any file there."""

    @abc.abstractmethod
    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """The direct children of directory ``path`` sorted by path; ``[]`` if it is missing."""

    @abc.abstractmethod
    def download_artifacts(self, artifact_path: str, dst_path: str | None = None) -> str:
        """Download a file or directory into ``dst_path`` (a new temporary directory if None).

        The relative path is kept under ``dst_path``; the local path of the
        downloaded file or directory is returned.
        """

    @abc.abstractmethod
    def open(self, artifact_path: str) -> IO[bytes]:
        """Open the file ``artifact_path`` for reading bytes (use it as a context manager)."""

    def read_bytes(self, artifact_path: str) -> bytes:
        """The whole content of the file ``artifact_path`` (for small files)."""
        with self.open(artifact_path) as stream:
            return stream.read()

    @abc.abstractmethod
    def delete_artifacts(self, path: str | None = None) -> None:
        """Delete the file or directory ``path`` (everything if None); missing paths are fine."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.artifact_uri!r}, run_id={self.run_id!r})"
