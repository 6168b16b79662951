"""Fixtures of the deployment tests: one S3 server (moto_server) for the session, and
the native topology (``_native_topology.py``) once per module that asks for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _deploy_support import S3Server, s3_server

if TYPE_CHECKING:
    from _native_topology import Topology


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto_server S3 endpoint on loopback, shared by the session's deployment tests."""
    with s3_server(Path(tmp_path_factory.mktemp("moto"))) as server:
        yield server


@pytest.fixture(scope="module")
def topology(
    _postgres_pool: Any,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Topology]:
    """PostgreSQL, the bucket, ``trackflow db upgrade`` once and two servers sharing
    them, for this module alone (its database is named after the module). Without a
    PostgreSQL server: skipped, or failed under ``CI=true`` (as ``tests/conftest.py``
    does for a missing database)."""
    if isinstance(_postgres_pool, str):
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"{_postgres_pool} (CI=true: a missing database is a failure)", False)
        pytest.skip(_postgres_pool)
    from _native_topology import native_topology

    label = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with native_topology(s3, Path(tmp_path_factory.mktemp("topology")), label) as running:
        yield running
