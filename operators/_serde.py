"""ArtifactRef through XCom: Airflow's deserialisation allow list admits only
``airflow.*`` by default, so each process that loads trackflow's Airflow side
allows the one class it hands between tasks."""

from __future__ import annotations

from tracking.entities import ArtifactRef

try:
    from airflow.sdk.serde import allow_class
except ImportError:  # Airflow 3.2 (task SDK 1.2): the same per-process set, not public yet
    from airflow.sdk import serde as _airflow_serde

    _airflow_serde._extra_allowed.add(f"{ArtifactRef.__module__}.{ArtifactRef.__qualname__}")
else:
    allow_class(ArtifactRef)
