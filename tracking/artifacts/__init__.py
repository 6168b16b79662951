"""Artifact storage: one repository per run root, chosen by URI scheme.

Example::

    from tracking.artifacts import artifact_repository_for

    repo = artifact_repository_for(run.info.artifact_uri, run.info.run_id)
    ref = repo.log_artifact("model.pkl", "models")
    repo.list_artifacts("models")  # [FileInfo(path='models/model.pkl', ...)]

fsspec and rich are imported only when a repository is built or a progress
bar shown, so importing this package stays cheap.
"""

from __future__ import annotations

from tracking.artifacts.base import ArtifactRepository
from tracking.artifacts.fsspec_repo import FsspecArtifactRepository
from tracking.artifacts.paths import (
    join_uri,
    normalize_artifact_path,
    resolve_artifact_root,
    uri_scheme,
)
from tracking.artifacts.registry import (
    ArtifactRepositoryFactory,
    artifact_repository_for,
    register_artifact_scheme,
)
from tracking.artifacts.storage import (
    check_destination,
    register_storage_options,
    s3_options,
    storage_options_for,
)

__all__ = [
    "ArtifactRepository",
    "ArtifactRepositoryFactory",
    "FsspecArtifactRepository",
    "artifact_repository_for",
    "check_destination",
    "join_uri",
    "normalize_artifact_path",
    "register_artifact_scheme",
    "register_storage_options",
    "resolve_artifact_root",
    "s3_options",
    "storage_options_for",
    "uri_scheme",
]
