"""The store conformance suite on SQLite, PostgreSQL and MySQL/MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tracking.client import TrackingClient
from tracking.store.registry import clear_store_cache
from tracking.store.sql.store import SqlTrackingStore
from tracking.testing.store import StoreConformance
from tracking.testing.store.models import LoggedModelSuite, ModelRegistrySuite
from tracking.testing.store.search import SearchSuite


class TestSqlStore(StoreConformance, SearchSuite, LoggedModelSuite, ModelRegistrySuite):
    """Each case runs once per backend: ids ``sqlite``, ``postgres``, ``mysql``."""

    @pytest.fixture
    def client(self, db_url: str, tmp_path: Path) -> Iterator[TrackingClient]:
        clear_store_cache()
        # Shared databases are migrated on purpose, as `trackflow db upgrade` does.
        SqlTrackingStore(db_url, str(tmp_path / "artifacts"), auto_upgrade=True).close()
        yield TrackingClient(db_url, str(tmp_path / "artifacts"))
        clear_store_cache()
