"""Pick the artifact repository for a root URI by its scheme.

Every scheme goes to :class:`~tracking.artifacts.FsspecArtifactRepository`
unless a factory was registered for it, as the tracking server's artifact
proxy will be for ``mlflow-artifacts:``::

    register_artifact_scheme("mlflow-artifacts", ProxyArtifactRepository)
    repo = artifact_repository_for("mlflow-artifacts:/1/abc/artifacts", "abc")
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tracking.artifacts.base import ArtifactRepository
from tracking.artifacts.paths import uri_scheme
from tracking.errors import InvalidParameterError

__all__ = [
    "ArtifactRepositoryFactory",
    "artifact_repository_for",
    "register_artifact_scheme",
]

#: Builds a repository from ``(artifact_uri, run_id)``; a repository class fits.
ArtifactRepositoryFactory = Callable[[str, str], ArtifactRepository]

_SCHEME_NAME = re.compile(r"^[a-z][a-z0-9+.\-]+$")
_FACTORIES: dict[str, ArtifactRepositoryFactory] = {}


def register_artifact_scheme(scheme: str, factory: ArtifactRepositoryFactory) -> None:
    """Use ``factory`` for artifact URIs of ``scheme`` (case-insensitive; replaces any).

    ``scheme`` may be given with its colon (``"mlflow-artifacts:"``).
    """
    name = scheme.lower().removesuffix("://").removesuffix(":")
    if not _SCHEME_NAME.match(name):
        raise InvalidParameterError(
            f"Invalid scheme {scheme!r}: expected a URL scheme such as 'mlflow-artifacts'"
        )
    _FACTORIES[name] = factory


def _fsspec_factory(artifact_uri: str, run_id: str) -> ArtifactRepository:
    from tracking.artifacts.fsspec_repo import FsspecArtifactRepository

    return FsspecArtifactRepository(artifact_uri, run_id)


def artifact_repository_for(uri: str, run_id: str) -> ArtifactRepository:
    """The repository for the artifacts of ``run_id`` under the root ``uri``.

    Registered schemes use their factory; anything else (plain paths
    included) goes to fsspec, which raises
    :class:`~tracking.errors.InvalidParameterError` for schemes it does not know.
    """
    factory = _FACTORIES.get(uri_scheme(uri) or "file", _fsspec_factory)
    return factory(uri, run_id)
