"""Fixtures of the fluent API's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import tracking
from tracking import fluent
from tracking.settings import reset_settings
from tracking.store.registry import clear_store_cache


@pytest.fixture
def fluent_uri(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The fluent API on a fresh SQLite file, with fresh fluent state and settings read
    again (set ``TRACKFLOW_*`` variables before asking for it)."""
    monkeypatch.setenv("TRACKFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    reset_settings()
    fluent._reset_for_tests()
    tracking.set_tracking_uri(sqlite_url)
    yield sqlite_url
    fluent._reset_for_tests()
    clear_store_cache()
