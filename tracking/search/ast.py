"""The syntax tree a search filter parses into: frozen dataclasses, no behaviour.

A filter such as ``metrics.acc > 0.9 and (params.opt = 'adam' or tags.team = 'a')``
becomes::

    And((
        Comparison(Entity.METRIC, "acc", Op.GT, 0.9),
        Or((
            Comparison(Entity.PARAM, "opt", Op.EQ, "adam"),
            Comparison(Entity.TAG, "team", Op.EQ, "a"),
        )),
    ))

``And`` and ``Or`` are n-ary and flattened (``a and (b and c)`` is one ``And``
of three operands). Attribute keys are canonical (``created`` is stored as
``start_time``), and every value already has the type its identifier needs:
a number for metrics and numeric attributes, a string for the rest, a tuple
of strings for ``IN`` and ``NOT IN``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "And",
    "Comparison",
    "Entity",
    "Filter",
    "Op",
    "Or",
    "OrderBy",
    "Value",
]


class Entity(enum.StrEnum):
    """What an identifier names: a metric, a param, a tag or a built-in attribute."""

    METRIC = "metric"
    PARAM = "param"
    TAG = "tag"
    ATTRIBUTE = "attribute"


class Op(enum.StrEnum):
    """A comparison operator, spelled as in the filter (keywords upper-case)."""

    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    LIKE = "LIKE"
    ILIKE = "ILIKE"
    IN = "IN"
    NOT_IN = "NOT IN"


#: The value a comparison compares with: a number, a string, or a list of strings.
Value = int | float | str | tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Comparison:
    """``<entity>.<key> <op> <value>``, e.g. ``Comparison(Entity.METRIC, "acc", Op.GT, 0.9)``."""

    entity: Entity
    key: str
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class And:
    """True when every operand is (two or more operands)."""

    operands: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """True when any operand is (two or more operands)."""

    operands: tuple[Filter, ...]


#: A parsed filter: one comparison, or a boolean combination of them.
Filter = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class OrderBy:
    """One ``order_by`` item: ``metrics.acc DESC`` is ``OrderBy(Entity.METRIC, "acc", False)``."""

    entity: Entity
    key: str
    ascending: bool = True
