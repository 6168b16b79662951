"""Search filters and ``order_by`` clauses: grammar, syntax tree and page tokens.

No SQL here: stores compile the tree (see :mod:`tracking.store.sql.search`).

Example::

    >>> from tracking.search import parse_run_filter
    >>> parse_run_filter("params.opt = 'adam' or metrics.acc >= 0.9")
    Or(operands=(Comparison(entity=<Entity.PARAM: 'param'>, key='opt', op=<Op.EQ: '='>, ...
"""

from __future__ import annotations

from tracking.search.ast import And, Comparison, Entity, Filter, Op, Or, OrderBy, Value
from tracking.search.paging import decode_page_token, encode_page_token, search_fingerprint
from tracking.search.parser import (
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_filter,
    parse_order_by,
    parse_run_filter,
    parse_run_order_by,
)
from tracking.search.schema import EXPERIMENT_SCHEMA, RUN_SCHEMA, SearchSchema

__all__ = [
    "EXPERIMENT_SCHEMA",
    "RUN_SCHEMA",
    "And",
    "Comparison",
    "Entity",
    "Filter",
    "Op",
    "Or",
    "OrderBy",
    "SearchSchema",
    "Value",
    "decode_page_token",
    "encode_page_token",
    "parse_experiment_filter",
    "parse_experiment_order_by",
    "parse_filter",
    "parse_order_by",
    "parse_run_filter",
    "parse_run_order_by",
    "search_fingerprint",
]
