"""Which identifiers a search may use, and how each one compares.

Runs and experiments share one grammar; what differs is this table: the
entity prefixes allowed, the built-in attributes, their value type and the
operators each accepts. :data:`RUN_SCHEMA` follows MLflow's ``search_runs``
and :data:`EXPERIMENT_SCHEMA` its ``search_experiments``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tracking.search.ast import Entity, Op

__all__ = [
    "EXPERIMENT_SCHEMA",
    "ID_OPS",
    "NUMBER_OPS",
    "RUN_SCHEMA",
    "STRING_OPS",
    "AttributeSpec",
    "SearchSchema",
    "ValueKind",
]

#: Operators that compare numbers.
NUMBER_OPS: frozenset[Op] = frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE})
#: Operators that compare strings.
STRING_OPS: frozenset[Op] = frozenset({Op.EQ, Op.NE, Op.LIKE, Op.ILIKE, Op.IN, Op.NOT_IN})
#: Operators that compare identifiers (no pattern matching).
ID_OPS: frozenset[Op] = frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN})


class ValueKind(enum.StrEnum):
    """The type of value an identifier compares with."""

    NUMBER = "number"
    STRING = "string"


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """A built-in attribute: its value type, its operators, where it may be used.

    ``integral`` numbers must be whole (times in epoch milliseconds).
    """

    kind: ValueKind
    ops: frozenset[Op]
    searchable: bool = True
    orderable: bool = True
    integral: bool = False


_STR = AttributeSpec(ValueKind.STRING, STRING_OPS)
_ID = AttributeSpec(ValueKind.STRING, ID_OPS)
_TIME = AttributeSpec(ValueKind.NUMBER, NUMBER_OPS, integral=True)


def _frozen(mapping: Mapping[str, AttributeSpec]) -> Mapping[str, AttributeSpec]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, eq=False)
class SearchSchema:
    """The identifiers one kind of search accepts (compared and hashed by identity).

    ``subject`` names what is searched (``"runs"``), ``entities`` the prefixes
    allowed besides attributes, ``attributes`` the built-in keys by canonical
    name and ``aliases`` extra spellings of them.
    """

    subject: str
    entities: frozenset[Entity]
    attributes: Mapping[str, AttributeSpec]
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def attribute(self, key: str) -> tuple[str, AttributeSpec] | None:
        """The canonical name and spec of an attribute key or alias, or ``None``."""
        name = self.aliases.get(key, key)
        spec = self.attributes.get(name)
        return None if spec is None else (name, spec)

    def attribute_names(self, *, orderable: bool = False) -> list[str]:
        """Sorted attribute names usable in a filter (or with ``orderable``, in order_by)."""
        return sorted(
            name
            for name, spec in self.attributes.items()
            if (spec.orderable if orderable else spec.searchable)
        )

    def entity_ops(self, entity: Entity) -> frozenset[Op]:
        """Operators allowed on metrics, params or tags."""
        return NUMBER_OPS if entity is Entity.METRIC else STRING_OPS


RUN_SCHEMA = SearchSchema(
    subject="runs",
    entities=frozenset({Entity.METRIC, Entity.PARAM, Entity.TAG, Entity.ATTRIBUTE}),
    attributes=_frozen(
        {
            "run_id": _ID,
            "run_name": _STR,
            "status": _STR,
            "user_id": _STR,
            "artifact_uri": _STR,
            "lifecycle_stage": _STR,
            "start_time": _TIME,
            "end_time": _TIME,
        }
    ),
    aliases=MappingProxyType({"created": "start_time", "Created": "start_time"}),
)
"""Identifiers of ``search_runs``: ``metrics.``, ``params.``, ``tags.``, ``attributes.``."""

EXPERIMENT_SCHEMA = SearchSchema(
    subject="experiments",
    entities=frozenset({Entity.TAG, Entity.ATTRIBUTE}),
    attributes=_frozen(
        {
            "name": _STR,
            "creation_time": _TIME,
            "last_update_time": _TIME,
            "experiment_id": AttributeSpec(
                ValueKind.NUMBER, NUMBER_OPS, searchable=False, integral=True
            ),
        }
    ),
)
"""Identifiers of ``search_experiments``: ``name``, the two times and ``tags.``."""
