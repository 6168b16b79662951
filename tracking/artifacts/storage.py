"""Storage options of artifact roots, and the check that a destination is writable.

A tracking server whose artifacts live in an S3-compatible store that is not
AWS (SeaweedFS, Garage, Ceph ...) needs fsspec options: the endpoint URL, a
region, path-style addressing, perhaps credentials. :func:`s3_options` builds
them, :func:`register_storage_options` makes every
:class:`~tracking.artifacts.FsspecArtifactRepository` under a root use them
(repositories given ``storage_options`` explicitly keep theirs), and
:func:`check_destination` writes, reads back and deletes a small object so
that a server stops at start-up, naming the bucket and the cause, instead of
failing on the first upload. Example::

    options = s3_options(endpoint_url="http://127.0.0.1:8333", path_style=True)
    check_destination("s3://trackflow/artifacts", options)
    register_storage_options("s3://trackflow/artifacts", options)
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tracking.artifacts.paths import uri_scheme
from tracking.errors import InvalidParameterError, StoreError

__all__ = [
    "check_destination",
    "register_storage_options",
    "s3_options",
    "storage_options_for",
]

_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "oss"})
_REGISTERED: dict[str, dict[str, Any]] = {}
_GUARD = threading.Lock()


def s3_options(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    path_style: bool = False,
    base: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """s3fs storage options: ``base`` with the endpoint, region and addressing style set.

    Credentials are not set here: s3fs takes them from ``key``/``secret`` in
    ``base`` (e.g. read from a file), else from botocore's usual chain
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_SHARED_CREDENTIALS_FILE``,
    an instance role ...).
    """
    options: dict[str, Any] = dict(base or {})
    if endpoint_url is not None:
        split = urlsplit(endpoint_url)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise InvalidParameterError(
                f"Invalid artifacts endpoint URL {endpoint_url!r}: expected http(s)://host[:port]"
            )
        options["endpoint_url"] = endpoint_url
    if region is not None:
        client_kwargs = dict(options.get("client_kwargs") or {})
        client_kwargs["region_name"] = region
        options["client_kwargs"] = client_kwargs
    if path_style:
        config_kwargs = dict(options.get("config_kwargs") or {})
        s3_config = dict(config_kwargs.get("s3") or {})
        s3_config["addressing_style"] = "path"
        config_kwargs["s3"] = s3_config
        options["config_kwargs"] = config_kwargs
    return options


def _prefix(root: str) -> str:
    return root.rstrip("/") + "/"


def register_storage_options(root: str, options: Mapping[str, Any]) -> None:
    """Have repositories under ``root`` (a URL) open their filesystem with ``options``."""
    with _GUARD:
        _REGISTERED[_prefix(root)] = dict(options)


def storage_options_for(uri: str) -> dict[str, Any]:
    """The options registered for the longest root that ``uri`` is under (``{}`` if none)."""
    key = _prefix(uri)
    with _GUARD:
        found = [root for root in _REGISTERED if key.startswith(root)]
        return dict(_REGISTERED[max(found, key=len)]) if found else {}


def _describe(uri: str, options: Mapping[str, Any]) -> str:
    scheme = uri_scheme(uri)
    if scheme in _OBJECT_STORES:
        bucket = urlsplit(uri).netloc
        endpoint = options.get("endpoint_url")
        where = f" at {endpoint}" if endpoint else ""
        return f"bucket {bucket!r}{where} (artifacts destination {uri})"
    return f"artifacts destination {uri}"


def _cause(exc: BaseException, object_store: bool) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, FileNotFoundError) and object_store:
        return f"the bucket does not exist; create it first ({text})"
    if isinstance(exc, PermissionError):
        return f"access denied; check the credentials and the bucket's policy ({text})"
    return f"{type(exc).__name__}: {text}"


def check_destination(uri: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Write, read back and delete a small object under ``uri``; StoreError if that fails.

    A local destination is created if missing (as the first upload would);
    on an object store nothing but the probe object is written, so a missing
    bucket is reported, never created.
    """
    from fsspec.core import url_to_fs

    options = dict(storage_options or {})
    object_store = uri_scheme(uri) in _OBJECT_STORES
    what = _describe(uri, options)
    try:
        fs, root = url_to_fs(uri, **options)
        root = str(root).rstrip("/")
        if not object_store:
            fs.makedirs(root, exist_ok=True)
        probe = f"{root}/.trackflow-write-check-{uuid.uuid4().hex}"
        payload = b"trackflow start-up check\n"
        fs.pipe_file(probe, payload)
        try:
            if fs.cat_file(probe) != payload:
                raise OSError("the object read back differs from the one written")
        finally:
            fs.rm_file(probe)
    except ImportError as exc:
        raise StoreError(
            f"cannot use the {what}: a package it needs is not installed "
            f"(pip install 'trackflow[s3]' for s3://): {exc}"
        ) from exc
    except Exception as exc:
        raise StoreError(f"cannot write to the {what}: {_cause(exc, object_store)}") from exc
