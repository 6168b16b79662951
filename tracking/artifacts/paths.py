"""Artifact paths and artifact root URIs: validation, normalisation, joining.

Artifact paths are *relative POSIX paths* under a run's artifact root. They are
checked before any I/O, so a refused path never writes, reads or deletes
anything::

    >>> normalize_artifact_path("./plots//loss.png", field="artifact_file")
    'plots/loss.png'
    >>> normalize_artifact_path("../secrets", field="artifact_path")
    Traceback (most recent call last):
    ...
    tracking.errors.InvalidParameterError: Invalid artifact_path '../secrets': ...

Roots are fsspec URLs (``s3://bucket/1/<run_id>/artifacts``,
``memory://...``, ``file:///...``) or plain local paths.
"""

from __future__ import annotations

import os
import posixpath
import re

from tracking.errors import InvalidParameterError

__all__ = [
    "join_relative",
    "join_uri",
    "normalize_artifact_path",
    "plan_directory_upload",
    "plan_file_upload",
    "resolve_artifact_root",
    "uri_scheme",
]

# Two characters at least, so that a Windows drive letter ("C:") is no scheme.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):")
# "C:", "C:\x", "C:/x" and "C:x" are all anchored to a drive.
_DRIVE = re.compile(r"^[A-Za-z]:")
# Something that looks like "scheme:/..." is a URL even without "//".
_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")

_EXPECTED = "expected a relative POSIX path such as 'plots/loss.png'"


def uri_scheme(uri: str) -> str | None:
    """The lower-cased scheme of ``uri`` (``"s3"``, ``"file"``), ``None`` for a plain path.

    A Windows drive letter is not a scheme::

        >>> uri_scheme("S3://bucket/x"), uri_scheme("/tmp/x"), uri_scheme("C:\\\\x")
        ('s3', None, None)
    """
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def _problem_with(value: str) -> str | None:
    """Why ``value`` is not a safe relative artifact path, or ``None`` if it is."""
    if "\x00" in value:
        return "it contains a NUL byte"
    if "\\" in value:
        return "it contains a backslash; separate directories with '/'"
    if value.startswith("/"):
        return "it is an absolute path"
    if _DRIVE.match(value):
        return "it is an absolute Windows path"
    if "://" in value or _URL_LIKE.match(value):
        return "it is a URL, not a path"
    if value.startswith("~"):
        return "it starts with '~' (a home directory)"
    if ".." in value.split("/"):
        return "it contains a '..' segment"
    return None


def normalize_artifact_path(value: str | None, *, field: str, allow_root: bool = True) -> str:
    """Check an artifact path and return its normal form (``""`` for the root).

    ``field`` names the argument in error messages. ``None``, ``""`` and ``"."``
    mean the root, which ``allow_root=False`` refuses (for paths that must
    name a file). ``"."`` segments, repeated and trailing slashes are dropped.

    Raises :class:`~tracking.errors.InvalidParameterError` for absolute paths
    (POSIX, Windows drive or UNC), ``..`` segments, backslashes, NUL bytes,
    URLs and paths starting with ``~``::

        >>> normalize_artifact_path("a//b/./c/", field="path")
        'a/b/c'
    """
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidParameterError(f"Invalid {field} {value!r}: {_EXPECTED}, not a {type(value)}")
    problem = _problem_with(value)
    if problem is not None:
        raise InvalidParameterError(f"Invalid {field} {value!r}: {problem}; {_EXPECTED}")
    normal = "/".join(part for part in value.split("/") if part not in ("", "."))
    if not normal and not allow_root:
        raise InvalidParameterError(f"Invalid {field} {value!r}: it names no file; {_EXPECTED}")
    return normal


def join_uri(base: str, *parts: str) -> str:
    """Join path segments onto an fsspec URL or a local path.

    URLs are joined with ``/`` whatever the platform; plain paths with the
    platform's separator. Leading and trailing slashes of the parts are
    dropped and empty parts skipped. The parts are trusted (run ids, fixed
    names, or paths already checked by :func:`normalize_artifact_path`)::

        >>> join_uri("s3://bucket/mlruns/", "1", "abc", "artifacts")
        's3://bucket/mlruns/1/abc/artifacts'
        >>> join_uri("memory://", "x/y")
        'memory://x/y'
    """
    cleaned = [part.strip("/") for part in parts if part.strip("/")]
    if not cleaned:
        return base
    if uri_scheme(base) is None:
        return os.path.join(base, *cleaned)
    separator = "" if base.endswith(("/", ":")) else "/"
    return base + separator + posixpath.join(*cleaned)


def resolve_artifact_root(root: str) -> str:
    """An absolute form of an artifact root: local paths made absolute, URLs untouched.

    ``~`` is expanded in local paths; the result has no ``file:`` prefix::

        >>> resolve_artifact_root("s3://bucket/artifacts")
        's3://bucket/artifacts'
        >>> resolve_artifact_root("./trackflow-artifacts")  # doctest: +SKIP
        '/home/me/project/trackflow-artifacts'
    """
    if not isinstance(root, str) or not root.strip():
        raise InvalidParameterError(
            f"Invalid artifact root {root!r}: expected an fsspec URL or a local path"
        )
    if uri_scheme(root) is not None:
        return root
    return os.path.abspath(os.path.expanduser(root))


def join_relative(directory: str, name: str) -> str:
    """``directory/name`` for relative artifact paths ("" is the root)."""
    return f"{directory}/{name}" if directory else name


def plan_file_upload(local_path: str | os.PathLike[str], artifact_path: str | None) -> str:
    """Where ``log_artifact`` puts a file: ``<artifact_path>/<file name>``, checked.

    A missing source, or a directory, raises InvalidParameterError naming it.
    """
    source = os.fspath(local_path)
    if not os.path.isfile(source):
        what = "is a directory (use log_artifacts)" if os.path.isdir(source) else "does not exist"
        raise InvalidParameterError(
            f"Invalid local_path {source!r}: it {what}; expected an existing file"
        )
    directory = normalize_artifact_path(artifact_path, field="artifact_path")
    name = normalize_artifact_path(
        os.path.basename(source), field="local_path file name", allow_root=False
    )
    return join_relative(directory, name)


def plan_directory_upload(
    local_dir: str | os.PathLike[str], artifact_path: str | None
) -> tuple[str, list[tuple[str, str, int]]]:
    """What ``log_artifacts`` uploads: ``(directory, [(local file, artifact path, size)])``.

    Every name is checked before anything is written; the plan is sorted by
    artifact path. Symbolic links are followed, to files and directories alike,
    so a linked directory is uploaded like any other; a link back into a
    directory already being walked (a loop) raises InvalidParameterError
    naming it. Empty directories are not kept (object stores have none) and
    special files (sockets, FIFOs, broken links) are skipped.
    """
    source = os.fspath(local_dir)
    if not os.path.isdir(source):
        what = "is a file (use log_artifact)" if os.path.exists(source) else "does not exist"
        raise InvalidParameterError(
            f"Invalid local_dir {source!r}: it {what}; expected an existing directory"
        )
    directory = normalize_artifact_path(artifact_path, field="artifact_path")
    plan: list[tuple[str, str, int]] = []
    for dirpath, dirnames, filenames in os.walk(source, followlinks=True):
        dirnames.sort()
        for name in dirnames:
            linked = os.path.join(dirpath, name)
            if os.path.islink(linked) and _is_loop(linked):
                raise InvalidParameterError(
                    f"Invalid local_dir {source!r}: the symbolic link {linked!r} points back "
                    "into a directory that contains it, so the tree has no end"
                )
        for filename in filenames:
            local = os.path.join(dirpath, filename)
            if not os.path.isfile(local):
                continue
            relative = os.path.relpath(local, source).split(os.sep)
            rel = normalize_artifact_path(
                "/".join(relative), field="file name in local_dir", allow_root=False
            )
            plan.append((local, join_relative(directory, rel), os.path.getsize(local)))
    plan.sort(key=lambda item: item[1])
    return directory, plan


def _is_loop(link: str) -> bool:
    """Whether the directory ``link`` points to contains the link itself."""
    target = os.path.realpath(link)
    here = os.path.realpath(os.path.dirname(link))
    return here == target or here.startswith(target.rstrip(os.sep) + os.sep)
