"""Checks of identifiers that arrive as strings, before they reach the store.

The store parses experiment ids itself; these checks keep values it cannot
even bind (an id past 64 bits) from turning into driver errors.
"""

from __future__ import annotations

import re

from tracking.errors import InvalidParameterError

__all__ = ["experiment_id", "experiment_ids"]

_EXPERIMENT_ID = re.compile(r"^[0-9]{1,18}$")


def experiment_id(value: str, field: str = "experiment_id") -> str:
    """An experiment id: 1 to 18 decimal digits (``"0"`` is the Default experiment)."""
    if not _EXPERIMENT_ID.match(value):
        shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
        raise InvalidParameterError(
            f"Invalid value {shown} for parameter '{field}': expected an experiment id such as '1'"
        )
    return value


def experiment_ids(values: list[str], field: str = "experiment_ids") -> list[str]:
    """Every element checked with :func:`experiment_id`, named by its index."""
    return [experiment_id(v, f"{field}[{i}]") for i, v in enumerate(values)]
