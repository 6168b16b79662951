"""The tracking store conformance suite, shared by every backend.

A backend's tests mix :class:`StoreConformance` into a test class and provide
a ``client`` fixture: a :class:`~tracking.client.TrackingClient` on a fresh,
empty store. Every case then runs against that backend::

    class TestSqlite(StoreConformance):
        @pytest.fixture
        def client(self, tmp_path):
            yield TrackingClient(f"sqlite:///{tmp_path}/t.db", str(tmp_path / "artifacts"))
"""

from __future__ import annotations

from tracking.testing.store.experiments import ExperimentSuite
from tracking.testing.store.inputs import InputSuite
from tracking.testing.store.lineage import LineageSuite
from tracking.testing.store.run_data import LoggingSuite, ValidationSuite
from tracking.testing.store.runs import NestingSuite, RunLifecycleSuite

__all__ = [
    "ExperimentSuite",
    "InputSuite",
    "LineageSuite",
    "LoggingSuite",
    "NestingSuite",
    "RunLifecycleSuite",
    "StoreConformance",
    "ValidationSuite",
]


class StoreConformance(
    ExperimentSuite,
    RunLifecycleSuite,
    NestingSuite,
    LoggingSuite,
    ValidationSuite,
    InputSuite,
    LineageSuite,
):
    """Every conformance case; needs a ``client`` fixture."""
