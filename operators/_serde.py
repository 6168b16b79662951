"""What trackflow hands between tasks through XCom: Airflow's deserialisation allow
list admits only ``airflow.*`` by default, so each process that loads trackflow's
Airflow side allows the classes it hands on: ``ArtifactRef`` (a file), and a
logged model, returned as a ``LoggedModel`` (it travels as its ``ModelRef``) or a
``ModelRef``."""

from __future__ import annotations

from tracking.entities import ArtifactRef, LoggedModel, ModelRef

_HANDED_ON = (ArtifactRef, LoggedModel, ModelRef)

try:
    from airflow.sdk.serde import allow_class
except ImportError:  # Airflow 3.2 (task SDK 1.2): the same per-process set, not public yet
    from airflow.sdk import serde as _airflow_serde

    for _cls in _HANDED_ON:
        _airflow_serde._extra_allowed.add(f"{_cls.__module__}.{_cls.__qualname__}")
else:
    for _cls in _HANDED_ON:
        allow_class(_cls)
