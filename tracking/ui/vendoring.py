"""The web UI's third-party JavaScript and CSS, fetched from the npm registry at build time.

Nothing third-party is committed: :data:`PACKAGES` pins each package by version
and by the registry's sha512 ``dist.integrity``; :func:`fetch` downloads the
tarballs, verifies them and unpacks only the files the UI serves into
``tracking/ui/vendor/`` (git-ignored, shipped inside the wheel). The build hook
(``tracking/ui/build_hook.py``) calls it, so ``uv run`` on a fresh clone has the assets;
to rebuild them by hand::

    uv run python -m tracking.ui.vendoring

This module uses only the standard library: the build hook loads it by path.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PACKAGES", "VENDOR_DIR", "NpmPackage", "fetch", "missing"]

#: Where the unpacked files go (inside the package, so the wheel carries them).
VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
_REGISTRY = os.environ.get("TRACKFLOW_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")


@dataclass(frozen=True)
class NpmPackage:
    """One registry package: ``files`` maps a path inside its tarball to a file name in
    :data:`VENDOR_DIR`."""

    name: str
    version: str
    integrity: str
    files: dict[str, str]

    @property
    def tarball_url(self) -> str:
        return f"{_REGISTRY}/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


PACKAGES: tuple[NpmPackage, ...] = (
    # htmx's `latest` on npm is 4.x; the UI is written and tested against 2.x.
    NpmPackage(
        "htmx.org",
        "2.0.8",
        "sha512-fm297iru0iWsNJlBrjvtN7V9zjaxd+69Oqjh4F/Vq9Wwi2kFisLcrLCiv5oBX0KLfOX/zG8AUo9ROMU5XUB44Q==",
        {"package/dist/htmx.min.js": "htmx.min.js"},
    ),
    NpmPackage(
        "uplot",
        "1.6.32",
        "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
        {
            "package/dist/uPlot.iife.min.js": "uPlot.iife.min.js",
            "package/dist/uPlot.min.css": "uPlot.min.css",
        },
    ),
    # /docs and /redoc, served offline.
    NpmPackage(
        "swagger-ui-dist",
        "5.35.0",
        "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==",
        {
            "package/swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "package/swagger-ui.css": "swagger-ui.css",
        },
    ),
    NpmPackage(
        "redoc",
        "2.5.2",
        "sha512-sTJfItvRkcDTojB6wdLN4M+Ua6mlZwElV21Tf8Mn7IbQF/1Os6GvgQpZyLWPGZZHbhy7GC1Or1hTMHfz1vKh5A==",
        {"package/bundles/redoc.standalone.js": "redoc.standalone.js"},
    ),
)

_STAMP = ".versions.json"


def _stamp() -> dict[str, str]:
    return {p.name: f"{p.version} {p.integrity}" for p in PACKAGES}


def missing(directory: Path = VENDOR_DIR) -> list[str]:
    """The vendored files that are absent or stale in ``directory`` (empty: all there)."""
    try:
        stamp = json.loads((directory / _STAMP).read_text())
    except (OSError, ValueError):
        stamp = {}
    absent = []
    for package in PACKAGES:
        for target in package.files.values():
            if (
                stamp.get(package.name) != f"{package.version} {package.integrity}"
                or not (directory / target).is_file()
            ):
                absent.append(target)
    return absent


def _verified(package: NpmPackage, data: bytes) -> bytes:
    algorithm, _, expected = package.integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if digest != expected:
        raise RuntimeError(
            f"{package.name}@{package.version}: the tarball's {algorithm} is {digest}, "
            f"expected {expected} (pinned in tracking/ui/vendoring.py)"
        )
    return data


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        data: bytes = response.read()
        return data


def fetch(directory: Path = VENDOR_DIR, *, force: bool = False) -> list[str]:
    """Download, verify and unpack what is missing; the file names written."""
    if not force and not missing(directory):
        return []
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for package in PACKAGES:
        data = _verified(package, _download(package.tarball_url))
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member, target in package.files.items():
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise RuntimeError(f"{package.name}@{package.version} has no {member}")
                (directory / target).write_bytes(extracted.read())
                written.append(target)
    (directory / _STAMP).write_text(json.dumps(_stamp(), indent=2) + "\n")
    return written


if __name__ == "__main__":
    names = fetch(force=True)
    print(f"wrote {len(names)} files to {VENDOR_DIR}: {', '.join(names)}")
