"""Filters, ordering and pages of logged-model and registry searches, on entities.

MLflow's grammar for these searches is a conjunction of comparisons::

    name = 'model' AND params.alpha = '0.5' AND metrics.rmse < 0.8
    tags.`my tag` LIKE 'prod%' AND source_run_id = 'abc'
    run_id IN ('a', 'b')

A search reads the rows of the experiments (or all registered models) it
covers and filters them here; pages are offsets in a signed token tied to
the search, as for runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from tracking.entities import LoggedModel, ModelVersion, PagedList, RegisteredModel
from tracking.errors import InvalidParameterError

__all__ = [
    "LOGGED_MODEL_FIELDS",
    "MODEL_VERSION_FIELDS",
    "REGISTERED_MODEL_FIELDS",
    "Clause",
    "OrderBy",
    "logged_model_matches",
    "order_logged_models",
    "order_registered",
    "order_versions",
    "page",
    "parse_filter",
    "registered_matches",
    "version_matches",
]

T = TypeVar("T")

LOGGED_MODEL_FIELDS = frozenset(
    {
        "name",
        "model_id",
        "model_type",
        "status",
        "source_run_id",
        "creation_timestamp",
        "creation_time",
        "last_updated_timestamp",
        "experiment_id",
    }
)
REGISTERED_MODEL_FIELDS = frozenset({"name"})
MODEL_VERSION_FIELDS = frozenset(
    {"name", "version", "version_number", "run_id", "source_path", "model_id", "current_stage"}
)

_CLAUSE = re.compile(
    r"""\s*(?P<key>(?:(?:attributes?|attr|params?|metrics?|tags?)\.)?(?:`[^`]+`|[\w.\-]+))\s*
    (?P<op>!=|<>|<=|>=|=|<|>|(?:NOT\s+)?I?LIKE\b|(?:NOT\s+)?IN\b)\s*
    (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\([^)]*\)|[-+0-9.eE]+)\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)


class Clause(NamedTuple):
    """One comparison: ``kind`` is ``attribute``, ``param``, ``metric`` or ``tag``."""

    kind: str
    key: str
    op: str
    value: Any


class OrderBy(NamedTuple):
    """A logged-model search's order: a field (``metrics.rmse``, ``name`` ...), the
    direction, and for a metric the data set whose value counts."""

    field: str
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


def _unquote(text: str) -> str:
    return text[1:-1].replace("\\'", "'").replace('\\"', '"')


def _split_and(text: str) -> list[str]:
    """``text`` split on AND outside quotes and parentheses."""
    parts, depth, quote, start = [], 0, "", 0
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif depth == 0:
            m = _AND.match(text, i)
            if m and (i == 0 or text[i].isspace()):
                parts.append(text[start:i])
                start = i = m.end()
                continue
        i += 1
    parts.append(text[start:])
    return parts


def parse_filter(filter_string: str | None, attributes: frozenset[str]) -> list[Clause]:
    """The comparisons of ``filter_string``; InvalidParameterError names what is wrong."""
    if not filter_string or not filter_string.strip():
        return []
    clauses = []
    for part in _split_and(filter_string.strip()):
        m = _CLAUSE.match(part)
        if m is None:
            raise InvalidParameterError(
                f"Invalid filter string {filter_string!r}: cannot parse {part.strip()!r}; "
                "expected comparisons such as name = 'm' AND metrics.rmse < 0.8"
            )
        key, op, raw = m.group("key"), " ".join(m.group("op").upper().split()), m.group("value")
        kind = "attribute"
        if "." in key and not key.startswith("`"):
            prefix, _, rest = key.partition(".")
            prefix = prefix.lower()
            if prefix in ("param", "params"):
                kind, key = "param", rest
            elif prefix in ("metric", "metrics"):
                kind, key = "metric", rest
            elif prefix in ("tag", "tags"):
                kind, key = "tag", rest
            elif prefix in ("attribute", "attributes", "attr"):
                key = rest
        key = key.strip("`")
        if kind == "attribute" and key not in attributes:
            raise InvalidParameterError(
                f"Invalid attribute key '{key}' in filter {filter_string!r}: expected one of "
                f"{', '.join(sorted(attributes))}, params.<key>, metrics.<key> or tags.<key>"
            )
        value: Any
        if raw.startswith("("):
            if not op.endswith("IN"):
                raise InvalidParameterError(f"a list of values needs IN, got {op} in {part!r}")
            value = [_unquote(v.strip()) for v in raw[1:-1].split(",") if v.strip()]
        elif raw[0] in "'\"":
            value = _unquote(raw)
        else:
            try:
                value = float(raw)
            except ValueError:
                raise InvalidParameterError(f"Invalid number {raw!r} in filter") from None
        if kind == "metric" and not isinstance(value, float):
            raise InvalidParameterError(f"metrics.{key} is compared with a number, got {raw}")
        clauses.append(Clause(kind, key, op, value))
    return clauses


def _like(pattern: str, value: str, insensitive: bool) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    flags = re.IGNORECASE | re.DOTALL if insensitive else re.DOTALL
    return re.fullmatch(regex, value, flags) is not None


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if actual is None:
        return op in ("!=", "<>", "NOT IN", "NOT LIKE", "NOT ILIKE") and expected is not None
    if op.endswith("IN"):
        inside = str(actual) in expected
        return not inside if op.startswith("NOT") else inside
    if op.endswith("LIKE"):
        hit = _like(str(expected), str(actual), "ILIKE" in op)
        return not hit if op.startswith("NOT") else hit
    if isinstance(expected, float):
        try:
            left: Any = float(actual)
        except (TypeError, ValueError):
            return False
    else:
        left, expected = str(actual), str(expected)
    if op == "=":
        return bool(left == expected)
    if op in ("!=", "<>"):
        return bool(left != expected)
    if op == "<":
        return bool(left < expected)
    if op == "<=":
        return bool(left <= expected)
    if op == ">":
        return bool(left > expected)
    return bool(left >= expected)


def _model_metric(
    model: LoggedModel, key: str, datasets: Sequence[tuple[str, str | None]]
) -> float | None:
    """The latest value of a metric of a model (on one of ``datasets`` if given)."""
    best = None
    for m in model.metrics:
        if m.key != key:
            continue
        if datasets and not any(
            m.dataset_name == name and (digest is None or m.dataset_digest == digest)
            for name, digest in datasets
        ):
            continue
        if best is None or (m.step, m.timestamp) >= (best.step, best.timestamp):
            best = m
    return None if best is None else best.value


def _logged_attribute(model: LoggedModel, key: str) -> Any:
    if key in ("creation_timestamp", "creation_time"):
        return model.creation_timestamp
    if key == "status":
        return model.status.value
    return getattr(model, key)


def logged_model_matches(
    model: LoggedModel, clauses: Sequence[Clause], datasets: Sequence[tuple[str, str | None]] = ()
) -> bool:
    """Whether a logged model satisfies every clause."""
    for c in clauses:
        if c.kind == "param":
            actual: Any = model.params.get(c.key)
        elif c.kind == "tag":
            actual = model.tags.get(c.key)
        elif c.kind == "metric":
            actual = _model_metric(model, c.key, datasets)
        else:
            actual = _logged_attribute(model, c.key)
        if not _compare(actual, c.op, c.value):
            return False
    return True


def registered_matches(model: RegisteredModel, clauses: Sequence[Clause]) -> bool:
    """Whether a registered model satisfies every clause (``name``, ``tags.<key>``)."""
    for c in clauses:
        if c.kind == "tag":
            actual: Any = model.tags.get(c.key)
        elif c.kind == "attribute":
            actual = model.name
        else:
            raise InvalidParameterError(
                f"registered models are searched by name and tags, not {c.kind}s"
            )
        if not _compare(actual, c.op, c.value):
            return False
    return True


def version_matches(version: ModelVersion, clauses: Sequence[Clause]) -> bool:
    """Whether a model version satisfies every clause."""
    for c in clauses:
        if c.kind == "tag":
            actual: Any = version.tags.get(c.key)
        elif c.kind != "attribute":
            raise InvalidParameterError(
                f"model versions are searched by attributes and tags, not {c.kind}s"
            )
        elif c.key in ("version", "version_number"):
            actual = int(version.version)
        elif c.key == "source_path":
            actual = version.source
        else:
            actual = getattr(version, c.key)
        if not _compare(actual, c.op, c.value):
            return False
    return True


def _sorted(items: list[T], keys: Sequence[tuple[Callable[[T], Any], bool]]) -> list[T]:
    """Stable multi-key sort; ``None`` values go last whatever the direction."""
    for key, ascending in reversed(keys):
        present = [i for i in items if key(i) is not None]
        missing = [i for i in items if key(i) is None]
        present.sort(key=key, reverse=not ascending)
        items = present + missing
    return items


def order_logged_models(
    models: list[LoggedModel],
    order_by: Sequence[OrderBy],
    datasets: Sequence[tuple[str, str | None]] = (),
) -> list[LoggedModel]:
    """Newest first unless ``order_by`` says otherwise (then newest first among ties)."""
    keys: list[tuple[Callable[[LoggedModel], Any], bool]] = []
    for o in order_by:
        field = o.field
        if field.startswith("metrics."):
            name = field.removeprefix("metrics.")
            scope = [(o.dataset_name, o.dataset_digest)] if o.dataset_name else list(datasets)
            keys.append(((lambda m, n=name, s=scope: _model_metric(m, n, s)), o.ascending))  # type: ignore[misc]
        elif field.startswith(("params.", "tags.")):
            kind, _, key = field.partition(".")
            if kind == "params":
                keys.append(((lambda m, k=key: m.params.get(k)), o.ascending))  # type: ignore[misc]
            else:
                keys.append(((lambda m, k=key: m.tags.get(k)), o.ascending))  # type: ignore[misc]
        else:
            attribute = field.removeprefix("attributes.")
            if attribute not in LOGGED_MODEL_FIELDS:
                raise InvalidParameterError(
                    f"Invalid order_by field {field!r}: expected an attribute "
                    f"({', '.join(sorted(LOGGED_MODEL_FIELDS))}), metrics.<key>, params.<key> "
                    "or tags.<key>"
                )
            keys.append(((lambda m, a=attribute: _logged_attribute(m, a)), o.ascending))  # type: ignore[misc]
    keys.append((lambda m: (m.creation_timestamp, m.model_id), False))
    return _sorted(models, keys)


def _order_clauses(
    order_by: Sequence[str], fields: dict[str, Callable[[Any], Any]]
) -> list[tuple[Callable[[Any], Any], bool]]:
    keys = []
    for clause in order_by:
        parts = clause.split()
        if (
            not parts
            or len(parts) > 2
            or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC"))
        ):
            raise InvalidParameterError(f"Invalid order_by clause {clause!r}")
        field = parts[0].removeprefix("attributes.")
        if field not in fields:
            raise InvalidParameterError(
                f"Invalid order_by field {parts[0]!r}: expected one of {', '.join(sorted(fields))}"
            )
        keys.append((fields[field], len(parts) == 1 or parts[1].upper() == "ASC"))
    return keys


def order_registered(
    models: list[RegisteredModel], order_by: Sequence[str]
) -> list[RegisteredModel]:
    """By name unless ``order_by`` says otherwise (``name DESC``, ``last_updated_timestamp``)."""
    fields: dict[str, Callable[[Any], Any]] = {
        "name": lambda m: m.name,
        "timestamp": lambda m: m.last_updated_timestamp,
        "last_updated_timestamp": lambda m: m.last_updated_timestamp,
        "creation_timestamp": lambda m: m.creation_timestamp,
    }
    return _sorted(models, [*_order_clauses(order_by, fields), (lambda m: m.name, True)])


def order_versions(versions: list[ModelVersion], order_by: Sequence[str]) -> list[ModelVersion]:
    """Newest version first unless ``order_by`` says otherwise."""
    fields: dict[str, Callable[[Any], Any]] = {
        "name": lambda v: v.name,
        "version_number": lambda v: int(v.version),
        "version": lambda v: int(v.version),
        "creation_timestamp": lambda v: v.creation_timestamp,
        "last_updated_timestamp": lambda v: v.last_updated_timestamp,
        "timestamp": lambda v: v.last_updated_timestamp,
    }
    return _sorted(
        versions,
        [*_order_clauses(order_by, fields), (lambda v: (v.name, -int(v.version)), True)],
    )


def page(
    items: list[T], max_results: int, page_token: str | None, fingerprint: str
) -> PagedList[T]:
    """The page of ``items`` a token points at (``max_results`` long), and the next token."""
    from tracking.search.paging import decode_page_token, encode_page_token

    offset = decode_page_token(page_token, fingerprint)
    chunk = items[offset : offset + max_results]
    more = offset + max_results < len(items)
    return PagedList(chunk, encode_page_token(offset + max_results, fingerprint) if more else None)
