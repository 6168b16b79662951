"""Fixtures of the deployment tests: one S3 server (moto_server) for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _deploy_support import S3Server, s3_server


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto_server S3 endpoint on loopback, shared by the session's deployment tests."""
    with s3_server(Path(tmp_path_factory.mktemp("moto"))) as server:
        yield server
