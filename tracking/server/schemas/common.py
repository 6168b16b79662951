"""Field types and JSON shapes shared by the MLflow and trackflow endpoints.

The types accept what protobuf's JSON parser accepts from MLflow's clients
(int64 as a number or a decimal string, doubles as numbers or the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"``), refuse booleans where a number is
expected, and name the field when they refuse.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from tracking.entities import RunStatus, ViewType

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "DatasetBody",
    "DatasetInputBody",
    "Double",
    "ExperimentOut",
    "Int64",
    "KeyValue",
    "MetricOut",
    "RequestModel",
    "RunDataOut",
    "RunInfoOut",
    "RunInputsOut",
    "RunOut",
    "RunStatusField",
    "ViewTypeField",
]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    return value


def _view_type(value: Any) -> ViewType:
    if isinstance(value, bool):
        raise ValueError("expected ACTIVE_ONLY, DELETED_ONLY or ALL")
    try:
        return ViewType.parse(value)
    except ValueError as exc:
        raise ValueError(f"expected ACTIVE_ONLY, DELETED_ONLY or ALL ({exc})") from None


_STATUS_NUMBERS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}


def _run_status(value: Any) -> RunStatus:
    if isinstance(value, int) and not isinstance(value, bool):
        value = _STATUS_NUMBERS.get(value, value)
    if not isinstance(value, str | RunStatus):
        raise ValueError("expected one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED")
    return RunStatus.parse(value)


#: A 64-bit integer; a decimal string is accepted as protobuf's JSON allows.
Int64 = Annotated[int, BeforeValidator(_no_bool), Field(ge=INT64_MIN, le=INT64_MAX)]
#: A double; ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` strings are accepted too.
Double = Annotated[float, BeforeValidator(_no_bool)]
#: MLflow's ViewType: a name (``"ACTIVE_ONLY"``) or its number (1, 2, 3).
ViewTypeField = Annotated[
    ViewType,
    BeforeValidator(_view_type),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": ["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]},
                {"type": "integer", "enum": [1, 2, 3]},
            ]
        }
    ),
]
#: A run status by name (``"FINISHED"``) or MLflow's enum number.
RunStatusField = Annotated[
    RunStatus,
    BeforeValidator(_run_status),
    WithJsonSchema(
        {"type": "string", "enum": ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]}
    ),
]


class RequestModel(BaseModel):
    """Base of request bodies: unknown fields are ignored, as protobuf's parser does,
    so newer clients can send fields this server does not know yet.

    A write body names in :attr:`payload_fields` the fields that carry what it
    writes. An object that has none of them but has fields the model does not
    know is refused with a message naming those fields: a misspelt
    ``"metrix"`` would otherwise be ignored and the request answered 200 with
    nothing written.
    """

    model_config = ConfigDict(extra="ignore")

    #: What a write body writes; empty for bodies that only read or name a target.
    payload_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _known_payload(cls, data: Any) -> Any:
        if not cls.payload_fields or type(data) is not dict:
            return data
        if any(name in data for name in cls.payload_fields):
            return data
        known = {name for name, field in cls.model_fields.items()}
        known |= {field.alias for field in cls.model_fields.values() if field.alias}
        unknown = [str(name) for name in data if name not in known]
        if unknown:
            fields = ", ".join(repr(name) for name in unknown)
            expected = ", ".join(repr(name) for name in cls.payload_fields)
            raise ValueError(
                f"unknown field{'s' if len(unknown) > 1 else ''} {fields} and none of "
                f"{expected}: nothing would be written (a misspelt field name?)"
            )
        return data


class KeyValue(RequestModel):
    """A tag or param: ``{"key": ..., "value": ...}``."""

    payload_fields = ("value",)

    key: str = Field(description="The tag or param key.")
    value: str = Field("", description="Its value (a string).")


class MetricOut(BaseModel):
    """One metric point as MLflow renders it."""

    key: str
    value: float | Literal["NaN", "Infinity", "-Infinity"] = Field(
        description='A number, or "NaN", "Infinity", "-Infinity" as MLflow writes them.'
    )
    timestamp: int = Field(description="Epoch milliseconds.")
    step: int


class RunInfoOut(BaseModel):
    """MLflow's RunInfo; ``end_time`` is left out while the run has none."""

    run_id: str
    run_uuid: str = Field(description="MLflow's older name for run_id.")
    experiment_id: str
    run_name: str
    user_id: str
    status: str = Field(description="RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.")
    start_time: int | None = None
    end_time: int | None = None
    artifact_uri: str
    lifecycle_stage: str = Field(description="active or deleted.")


class RunDataOut(BaseModel):
    """A run's latest metric values, params and tags (the parent id is the tag
    ``mlflow.parentRunId``)."""

    metrics: list[MetricOut] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class DatasetBody(RequestModel):
    """MLflow's Dataset: what a data set is and where it lives (not its content)."""

    name: str
    digest: str
    source_type: str
    source: str
    schema_: str | None = Field(None, alias="schema", description="JSON text, optional.")
    profile: str | None = Field(None, description="JSON text, optional.")


class DatasetInputBody(RequestModel):
    """A data set used by a run, with the tags of that use."""

    tags: list[KeyValue] = Field(default_factory=list)
    dataset: DatasetBody


class RunInputsOut(BaseModel):
    """What a run consumed (``{}`` when nothing was logged)."""

    dataset_inputs: list[DatasetInputBody] = Field(default_factory=list)


class RunOut(BaseModel):
    """A run as MLflow renders it."""

    info: RunInfoOut
    data: RunDataOut
    inputs: RunInputsOut = Field(default_factory=RunInputsOut)


class ExperimentOut(BaseModel):
    """An experiment as MLflow renders it."""

    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    last_update_time: int | None = None
    creation_time: int | None = None
    tags: list[KeyValue] = Field(default_factory=list)
