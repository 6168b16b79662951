"""Artifacts: ``artifacts/list`` of the tracking API and the ``mlflow-artifacts`` proxy.

The proxy's paths are relative to the artifacts destination
(``1/<run_id>/artifacts/model.pkl``). Every path goes through
:func:`~tracking.artifacts.normalize_artifact_path` first, so traversal
(``..``, absolute paths, URLs, backslashes) is refused with 400 before any
I/O. Uploads are streamed to a temporary file, then copied to the
destination; downloads are streamed from it.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response, StreamingResponse

from tracking.artifacts import normalize_artifact_path
from tracking.errors import InvalidParameterError
from tracking.server.render import file_info_json
from tracking.server.responses import MlflowJSONResponse, empty_response
from tracking.server.routes.common import ERRORS
from tracking.server.schemas.mlflow import ListArtifactsResponse, ProxyListResponse, RunRef
from tracking.server.state import ServerState, StateDep

__all__ = [
    "attachment_header",
    "guess_mime_type",
    "proxy_router",
    "root_router",
    "router",
    "stream_chunks",
]

router = APIRouter(prefix="/artifacts", tags=["artifacts"], responses=ERRORS)
proxy_router = APIRouter(prefix="/artifacts", tags=["artifact proxy"], responses=ERRORS)
#: MLflow's download endpoints at the server's root (what MLflow's web UI fetches).
root_router = APIRouter(tags=["artifacts"], responses=ERRORS)

_CHUNK = 1024 * 1024

#: Extensions (and extension-less names) MLflow's server sends as ``text/plain``.
_TEXT_EXTENSIONS = frozenset(
    [
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "ipynb",
        "MLmodel",
        "MLproject",
    ]
)


def guess_mime_type(name: str) -> str:
    """The ``Content-Type`` MLflow's server gives a download named ``name``: ``text/plain``
    (no charset) for text files, ``MLmodel`` and ``MLproject``, else by extension."""
    extension = posixpath.splitext(name)[1].lstrip(".") or name
    if extension in _TEXT_EXTENSIONS:
        return "text/plain"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _path(value: str | None, field: str, *, allow_root: bool = True) -> str:
    """:func:`normalize_artifact_path` with MLflow's "Invalid path" leading the message."""
    try:
        return normalize_artifact_path(value, field=field, allow_root=allow_root)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"Invalid path: {exc}") from None


class _ListQuery(RunRef):
    """``artifacts/list`` query parameters."""

    path: str | None = Field(None, description="Directory under the run's artifact root.")
    page_token: str | None = Field(None, description="Accepted and ignored: one page.")


@router.get("/list", response_model=ListArtifactsResponse)
async def list_artifacts(query: Annotated[_ListQuery, Query()], state: StateDep) -> Response:
    """The files and directories directly under ``path`` of a run's artifacts."""
    path = _path(query.path, "path") or None
    run = await state.run(state.client.get_run, query.resolved_run_id())
    files = await state.run(state.proxy.list_run_artifacts, run, path)
    return MlflowJSONResponse(
        {"root_uri": run.info.artifact_uri, "files": [file_info_json(f) for f in files]}
    )


# -- the proxy -------------------------------------------------------------------


@proxy_router.get("", response_model=ProxyListResponse)
async def proxy_list(
    state: StateDep,
    path: Annotated[str | None, Query(description="Directory under the destination.")] = None,
) -> Response:
    """The entries of a directory of the artifacts destination, by name."""
    rel = _path(path, "path")
    infos = await state.run(state.proxy.repository.list_artifacts, rel or None)
    return MlflowJSONResponse(
        {"files": [file_info_json(i, posixpath.basename(i.path)) for i in infos]}
    )


def attachment_header(name: str) -> str:
    """``Content-Disposition`` for a download: an ASCII ``filename`` (anything else,
    quotes and control characters become ``_``) and the exact name as RFC 6266's
    ``filename*``, so any file name makes a valid latin-1 header."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def stream_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    """A download's body: ``stream`` in 1 MiB chunks, closed at the end."""
    try:
        while chunk := stream.read(_CHUNK):
            yield chunk
    finally:
        stream.close()


@proxy_router.get(
    "/{artifact_path:path}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def proxy_download(artifact_path: str, state: StateDep) -> Response:
    """Download a file, streamed."""
    rel = _path(artifact_path, "artifact_path", allow_root=False)
    stream = await state.run(state.proxy.repository.open, rel)
    name = posixpath.basename(rel)
    # X-Content-Type-Options: nosniff comes with every response (HostCheckMiddleware).
    # The type goes in as a header: as media_type, Starlette would add a charset.
    headers = {
        "Content-Disposition": attachment_header(name),
        "Content-Type": guess_mime_type(name),
    }
    return StreamingResponse(stream_chunks(stream), headers=headers)


def _store_upload(state: ServerState, local: str, directory: str) -> None:
    state.proxy.repository.log_artifact(local, directory or None)


@proxy_router.put(
    "/{artifact_path:path}",
    response_model=dict[str, str],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def proxy_upload(artifact_path: str, request: Request, state: StateDep) -> Response:
    """Upload a file: the body is its content, streamed to the destination."""
    rel = _path(artifact_path, "artifact_path", allow_root=False)
    directory, name = posixpath.split(rel)
    scratch = tempfile.mkdtemp(prefix="trackflow-upload-")
    try:
        local = os.path.join(scratch, name)
        with open(local, "wb") as out:
            async for chunk in request.stream():
                if chunk:
                    out.write(chunk)
        await state.run(_store_upload, state, local, directory)
    finally:
        await state.run(shutil.rmtree, scratch, True)
    return empty_response()


@proxy_router.delete("/{artifact_path:path}", response_model=dict[str, str])
async def proxy_delete(artifact_path: str, state: StateDep) -> Response:
    """Delete a file or a directory tree (a missing path is no error)."""
    rel = _path(artifact_path, "artifact_path", allow_root=False)
    await state.run(state.proxy.repository.delete_artifacts, rel)
    return empty_response()


# -- MLflow's root download endpoints ------------------------------------------------


def _download(stream: IO[bytes], path: str) -> Response:
    name = posixpath.basename(path)
    headers = {
        "Content-Disposition": attachment_header(name),
        "Content-Type": guess_mime_type(name),
    }
    return StreamingResponse(stream_chunks(stream), headers=headers)


class _GetArtifactQuery(RunRef):
    """``get-artifact`` query parameters."""

    path: str = Field(description="The file, relative to the run's artifact root.")


@root_router.get(
    "/get-artifact",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_artifact(query: Annotated[_GetArtifactQuery, Query()], state: StateDep) -> Response:
    """A file of a run's artifacts (MLflow's ``/get-artifact``)."""
    path = _path(query.path, "path", allow_root=False)
    run = await state.run(state.client.get_run, query.resolved_run_id())
    stream = await state.run(state.proxy.open_run_artifact, run, path)
    return _download(stream, path)


class _VersionArtifactQuery(BaseModel):
    """``model-versions/get-artifact`` query parameters."""

    name: str
    version: str
    path: str


def _open_version_file(state: ServerState, name: str, version: str, path: str) -> IO[bytes]:
    uri = state.client.get_model_version_download_uri(name, version)
    root = state.proxy.proxied_path(uri)
    if root is None:
        state.proxy.confine(uri, field=f"download URI of {name} version {version}")
        from tracking.artifacts import artifact_repository_for

        return artifact_repository_for(uri, "").open(path)
    return state.proxy.repository.open(posixpath.join(root, path))


@root_router.get(
    "/model-versions/get-artifact",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_model_version_artifact(
    query: Annotated[_VersionArtifactQuery, Query()], state: StateDep
) -> Response:
    """A file of a registered model version (MLflow's ``/model-versions/get-artifact``)."""
    path = _path(query.path, "path", allow_root=False)
    stream = await state.run(_open_version_file, state, query.name, query.version, path)
    return _download(stream, path)
