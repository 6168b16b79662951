"""ArtifactRef through XCom: Airflow's deserialisation allow list admits only
``airflow.*`` by default, so each process that loads trackflow's Airflow side
allows the one class it hands between tasks."""

from __future__ import annotations

from tracking.entities import ArtifactRef

try:
    from airflow.sdk.serde import allow_class
except ImportError:  # pragma: no cover - an Airflow without per-process allowing
    pass
else:
    allow_class(ArtifactRef)
