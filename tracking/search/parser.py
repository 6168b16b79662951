"""Parse search filters and ``order_by`` items into :mod:`tracking.search.ast` trees.

The grammar (``grammar.lark``) only knows the shape of a filter; this module
checks the meaning against a :class:`~tracking.search.schema.SearchSchema`
(which prefixes, attributes, operators and value types are allowed) and
turns every problem, lark's included, into a
:class:`~tracking.errors.SearchSyntaxError` that points at the spot::

    parse_run_filter("metrics.acc ~ 0.9")
    # SearchSyntaxError: invalid search filter at column 13: unexpected character '~';
    # expected a comparison operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)
    #     metrics.acc ~ 0.9
    #                 ^

The error's ``position`` is the 0-based offset of the spot in the text and
``expected`` lists, in words, what would have been accepted there.

Results are cached: the trees are immutable and searches repeat.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from importlib import resources

from lark import Lark, Token, Tree
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from tracking.errors import InvalidParameterError, SearchSyntaxError
from tracking.search.ast import And, Comparison, Entity, Filter, Op, Or, OrderBy, Value
from tracking.search.schema import (
    EXPERIMENT_SCHEMA,
    RUN_SCHEMA,
    AttributeSpec,
    SearchSchema,
    ValueKind,
)

__all__ = [
    "MAX_FILTER_COMPARISONS",
    "MAX_FILTER_KEYS",
    "parse_experiment_filter",
    "parse_experiment_order_by",
    "parse_filter",
    "parse_order_by",
    "parse_run_filter",
    "parse_run_order_by",
]

#: Most comparisons one filter may hold (SQLite refuses expressions nested 1,000 deep).
MAX_FILTER_COMPARISONS = 500
#: Most distinct metric, param and tag keys one filter may name: each is a join, and
#: SQLite joins at most 64 tables, MySQL/MariaDB 61.
MAX_FILTER_KEYS = 50

_PREFIXES: dict[str, Entity] = {
    "metric": Entity.METRIC,
    "metrics": Entity.METRIC,
    "param": Entity.PARAM,
    "params": Entity.PARAM,
    "parameter": Entity.PARAM,
    "parameters": Entity.PARAM,
    "tag": Entity.TAG,
    "tags": Entity.TAG,
    "attribute": Entity.ATTRIBUTE,
    "attributes": Entity.ATTRIBUTE,
    "attr": Entity.ATTRIBUTE,
    "run": Entity.ATTRIBUTE,
}
_PREFIX_SPELLING = {
    Entity.METRIC: "metrics.",
    Entity.PARAM: "params.",
    Entity.TAG: "tags.",
    Entity.ATTRIBUTE: "attributes.",
}
_ENTITY_ORDER = (Entity.METRIC, Entity.PARAM, Entity.TAG, Entity.ATTRIBUTE)
_PLURAL = {
    Entity.METRIC: "metrics",
    Entity.PARAM: "params",
    Entity.TAG: "tags",
    Entity.ATTRIBUTE: "attributes",
}

_OPERATORS = "=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN"
_OP_ORDER = tuple(Op)
_SHOWN_WIDTH = 80
_INT_RE = re.compile(r"[+-]?\d+")
_ESCAPES = {quote: re.compile(r"\\([\\'\"`])|" + re.escape(quote * 2)) for quote in "'\""}


@functools.cache
def _lark() -> Lark:
    # Built on first use: importing tracking must stay cheap.
    grammar = resources.files("tracking.search").joinpath("grammar.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", start=["filter", "order_by"], maybe_placeholders=False)


# -- errors -------------------------------------------------------------------


def _join_alternatives(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} or {items[-1]}"


def _syntax_error(
    what: str,
    text: str,
    position: int,
    *,
    label: str,
    expected: tuple[str, ...] = (),
) -> SearchSyntaxError:
    """A SearchSyntaxError saying what went wrong, with the text and a caret under it."""
    position = max(0, min(position, len(text)))
    line_start = text.rfind("\n", 0, position) + 1
    line_end = text.find("\n", position)
    line = text[line_start : len(text) if line_end < 0 else line_end]
    column = position - line_start
    where = f"column {column + 1}"
    if "\n" in text:
        where = f"line {text.count(chr(10), 0, position) + 1}, {where}"
    shown, caret_at = line, column
    if len(line) > _SHOWN_WIDTH:  # show a window around the spot
        start = max(0, min(column - _SHOWN_WIDTH // 2, len(line) - _SHOWN_WIDTH))
        shown = line[start : start + _SHOWN_WIDTH]
        caret_at = column - start
        if start > 0:
            shown, caret_at = "..." + shown, caret_at + 3
        if start + _SHOWN_WIDTH < len(line):
            shown += "..."
    # Keep tabs in the caret line so the caret lines up under tabbed text.
    pad = "".join(ch if ch == "\t" else " " for ch in shown[:caret_at])
    message = f"invalid {label} at {where}: {what}\n    {shown}\n    {pad}^"
    return SearchSyntaxError(message, text=text, position=position, expected=expected)


def _expected_phrases(terminals: Iterable[str], schema: SearchSchema) -> tuple[str, ...]:
    names = set(terminals)
    phrases: list[str] = []
    if "IDENT" in names:
        phrases.append(_identifier_hint(schema))
    if "LPAR" in names:
        phrases.append("'('")
    if "COMP_OP" in names:
        phrases.append(f"a comparison operator ({_OPERATORS})")
    else:
        phrases.extend(kw for kw in ("LIKE", "ILIKE", "NOT", "IN") if kw in names)
    if {"STRING", "NUMBER"} <= names:
        phrases.append("a value (a quoted string or a number)")
    elif "STRING" in names:
        phrases.append("a quoted string")
    elif "NUMBER" in names:
        phrases.append("a number")
    phrases.extend(word for name, word in (("_AND", "AND"), ("_OR", "OR")) if name in names)
    phrases.extend(word for name, word in (("ASC", "ASC"), ("DESC", "DESC")) if name in names)
    phrases.extend(word for name, word in (("COMMA", "','"), ("RPAR", "')'")) if name in names)
    if "$END" in names:
        phrases.append("the end of the text")
    return tuple(phrases)


def _identifier_hint(schema: SearchSchema) -> str:
    prefixed = [
        f"{_PREFIX_SPELLING[e]}<key>"
        for e in _ENTITY_ORDER
        if e in schema.entities and e is not Entity.ATTRIBUTE
    ]
    if schema is RUN_SCHEMA:
        return f"an identifier ({', '.join(prefixed)} or attributes.<name>)"
    names = schema.attribute_names()
    return f"an identifier ({', '.join(names + prefixed)})"


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "the end of the text"
    if token.type == "STRING":
        return f"the string {token.value}"
    if token.type == "NUMBER":
        return f"the number {token.value}"
    if token.type == "IDENT":
        return f"the identifier {token.value}"
    if token.type in ("_AND", "_OR", "LIKE", "ILIKE", "IN", "NOT", "ASC", "DESC"):
        return f"the keyword {token.value.upper()}"
    return repr(str(token.value))


def _accepted(text: str, position: int, start: str, fallback: Iterable[str]) -> set[str]:
    """The terminals the parser accepts after ``text[:position]``.

    LALR merges states, so the expected set lark reports can hold terminals
    that are not valid there; replaying the prefix gives the exact set.
    """
    try:
        parser = _lark().parse_interactive(text[:position], start=start)
        for _ in parser.iter_parse():
            pass
        accepted: set[str] = parser.accepts()  # type: ignore[no-untyped-call]
        return accepted
    except UnexpectedInput:  # pragma: no cover - the prefix parsed before the error
        return set(fallback)


def _translate(
    exc: UnexpectedInput,
    text: str,
    schema: SearchSchema,
    label: str,
    start: str,
) -> SearchSyntaxError:
    """Turn a lark exception into a SearchSyntaxError pointing at the same spot."""
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        position = len(text.rstrip()) if token.type == "$END" else token.start_pos or 0
        expected = _expected_phrases(_accepted(text, position, start, exc.expected), schema)
        what = f"expected {_join_alternatives(expected)}, got {_describe_token(token)}"
        return _syntax_error(what, text, position, label=label, expected=expected)
    if isinstance(exc, UnexpectedCharacters):
        position = exc.pos_in_stream or 0
        problem = _character_problem(text, position)
        if problem is not None:
            return _syntax_error(problem[0], text, position, label=label, expected=problem[1])
        expected = _expected_phrases(_accepted(text, position, start, exc.allowed), schema)
        what = f"unexpected character {text[position]!r}"
        if expected:
            what = f"{what}; expected {_join_alternatives(expected)}"
        return _syntax_error(what, text, position, label=label, expected=expected)
    if isinstance(exc, UnexpectedEOF):  # pragma: no cover - LALR reports UnexpectedToken($END)
        expected = _expected_phrases(exc.expected, schema)
        what = f"unexpected end of text; expected {_join_alternatives(expected)}"
        return _syntax_error(what, text, len(text), label=label, expected=expected)
    return _syntax_error(str(exc), text, 0, label=label)  # pragma: no cover - lark has no others


def _character_problem(text: str, position: int) -> tuple[str, tuple[str, ...]] | None:
    """A specific explanation for characters that usually mean a quoting mistake."""
    char = text[position]
    after = text[position + 1 :]
    if char == "." and position > 0 and (text[position - 1].isalnum() or text[position - 1] == "_"):
        quote = after[:1]
        if quote in ("`", '"') and quote not in after[1:]:
            return f"unterminated quoted key: no closing {quote}", (quote,)
        return (
            "expected a key after the '.' (a name, a `backtick-quoted` or \"quoted\" key)",
            ("a key",),
        )
    if char in "'\"" and char not in after:
        return f"unterminated string: no closing {char}", (char,)
    if char == "`":
        return (
            "a backtick-quoted key must follow an entity prefix, as in tags.`my key`",
            (_PREFIX_SPELLING[Entity.TAG],),
        )
    return None


# -- meaning --------------------------------------------------------------------


def _unquote(body: str, quote: str) -> str:
    """The text of a quoted string: ``\\'``, ``\\"``, ``\\\\`` and a doubled quote unescape."""
    return _ESCAPES[quote].sub(lambda m: m.group(1) or quote, body)


def _split_identifier(
    token: Token,
    text: str,
    schema: SearchSchema,
    label: str,
) -> tuple[Entity, str, str | None]:
    """``(entity, key, prefix)`` of an IDENT token; ``prefix`` is None for bare names."""
    raw = str(token.value)
    start = token.start_pos or 0
    prefix, dot, key = raw.partition(".")
    if not dot:
        return Entity.ATTRIBUTE, raw, None
    entity = _PREFIXES.get(prefix.lower())
    if entity is None or entity not in schema.entities:
        allowed = [_PREFIX_SPELLING[e] for e in _ENTITY_ORDER if e in schema.entities]
        if entity is None:
            what = f"unknown entity prefix {prefix!r}; expected {_join_alternatives(allowed)}"
        else:
            what = (
                f"{schema.subject} cannot be searched by {_PLURAL[entity]}; "
                f"expected {_join_alternatives(allowed)}"
            )
        if schema is not RUN_SCHEMA:
            what += f" (or an attribute: {', '.join(schema.attribute_names())})"
        raise _syntax_error(what, text, start, label=label, expected=tuple(allowed))
    if key[0] == "`":
        key = key[1:-1]
    elif key[0] == '"':
        key = _unquote(key[1:-1], '"')
    return entity, key, prefix


def _resolve_attribute(
    token: Token,
    key: str,
    prefix: str | None,
    text: str,
    schema: SearchSchema,
    label: str,
    *,
    ordering: bool,
) -> tuple[str, AttributeSpec]:
    found = schema.attribute(key)
    if found is not None and (found[1].orderable if ordering else found[1].searchable):
        return found
    names = schema.attribute_names(orderable=ordering)
    what = f"unknown attribute {key!r}; expected one of {', '.join(names)}"
    if prefix is None:
        others = [
            f"{_PREFIX_SPELLING[e]}{key}"
            for e in _ENTITY_ORDER
            if e in schema.entities and e is not Entity.ATTRIBUTE
        ]
        if others:
            what += f" (or did you mean {_join_alternatives(others)}?)"
    raise _syntax_error(what, text, token.start_pos or 0, label=label, expected=tuple(names))


def _number(token: Token) -> int | float:
    raw = str(token.value)
    return int(raw) if _INT_RE.fullmatch(raw) else float(raw)


def _value(
    token: Token,
    kind: ValueKind,
    subject: str,
    text: str,
    label: str,
    *,
    integral: bool = False,
) -> int | float | str:
    raw = str(token.value)
    position = token.start_pos or 0
    if kind is ValueKind.STRING:
        if token.type != "STRING":
            what = f"{subject} values must be quoted strings, got the number {raw}"
            raise _syntax_error(what, text, position, label=label, expected=("a quoted string",))
        return _unquote(raw[1:-1], raw[0])
    if token.type != "NUMBER":
        what = f"{subject} values must be numbers, got the string {raw}"
        raise _syntax_error(what, text, position, label=label, expected=("a number",))
    number = _number(token)
    if integral and isinstance(number, float):
        if not number.is_integer():
            what = (
                f"{subject} values must be whole numbers (milliseconds since the epoch), got {raw}"
            )
            raise _syntax_error(what, text, position, label=label, expected=("a whole number",))
        number = int(number)
    return number


def _comparison(tree: Tree[Token], text: str, schema: SearchSchema) -> Comparison:
    label = "search filter"
    ident = tree.children[0]
    assert isinstance(ident, Token)
    entity, key, prefix = _split_identifier(ident, text, schema, label)
    rest = tree.children[1:]
    op_tokens = [
        t for t in rest if isinstance(t, Token) and t.type != "STRING" and t.type != "NUMBER"
    ]
    op = Op.NOT_IN if len(op_tokens) == 2 else Op(str(op_tokens[0].value).upper())
    op_token = op_tokens[0]

    integral = False
    if entity is Entity.ATTRIBUTE:
        key, spec = _resolve_attribute(ident, key, prefix, text, schema, label, ordering=False)
        allowed, kind, integral = spec.ops, spec.kind, spec.integral
        subject = key
    else:
        allowed = schema.entity_ops(entity)
        kind = ValueKind.NUMBER if entity is Entity.METRIC else ValueKind.STRING
        subject = entity.value
    if op not in allowed:
        names = tuple(o.value for o in _OP_ORDER if o in allowed)
        target = f"attribute {key!r}" if entity is Entity.ATTRIBUTE else f"{subject}s"
        what = f"{op.value} cannot compare {target}; expected one of {', '.join(names)}"
        raise _syntax_error(what, text, op_token.start_pos or 0, label=label, expected=names)

    last = rest[-1]
    value: Value
    if isinstance(last, Tree):  # IN / NOT IN (...)
        items: list[str] = []
        for item in last.children:
            assert isinstance(item, Token)
            if item.type != "STRING":
                what = f"{op.value} lists hold quoted strings, got the number {item.value}"
                raise _syntax_error(
                    what, text, item.start_pos or 0, label=label, expected=("a quoted string",)
                )
            items.append(_unquote(str(item.value)[1:-1], str(item.value)[0]))
        value = tuple(items)
    else:
        value = _value(last, kind, subject, text, label, integral=integral)
    return Comparison(entity, key, op, value)


def _build(node: Tree[Token] | Token, text: str, schema: SearchSchema) -> Filter:
    assert isinstance(node, Tree)
    if node.data == "comparison":
        return _comparison(node, text, schema)
    kind = And if node.data == "and_expr" else Or
    operands: list[Filter] = []
    for child in node.children:
        built = _build(child, text, schema)
        # Flatten (a and b) and c: the compiler looks for top-level conjuncts.
        operands.extend(built.operands if isinstance(built, kind) else (built,))
    return kind(tuple(operands))


# -- public -----------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def parse_filter(text: str | None, schema: SearchSchema) -> Filter | None:
    """Parse a filter for ``schema``; ``None`` for an empty or blank filter.

    Raises SearchSyntaxError (with ``position`` and ``expected``) on bad input.
    """
    if text is None or not text.strip():
        return None
    try:
        tree = _lark().parse(text, start="filter")
        if not tree.children:  # pragma: no cover - blank text is handled above
            return None
        built = _build(tree.children[0], text, schema)
    except UnexpectedInput as exc:
        raise _translate(exc, text, schema, "search filter", "filter") from None
    except RecursionError:
        raise _syntax_error(
            "the filter nests AND/OR groups too deeply", text, 0, label="search filter"
        ) from None
    _check_size(built)
    return built


def _comparisons(node: Filter) -> Iterable[Comparison]:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Comparison):
            yield current
        else:
            stack.extend(current.operands)


def _check_size(node: Filter) -> None:
    """Refuse a filter too big for the databases, naming the limit it passes."""
    count = 0
    keys: set[tuple[Entity, str]] = set()
    for comparison in _comparisons(node):
        count += 1
        if comparison.entity is not Entity.ATTRIBUTE:
            keys.add((comparison.entity, comparison.key))
    if count > MAX_FILTER_COMPARISONS:
        raise InvalidParameterError(
            f"Invalid search filter: it holds {count} comparisons, more than the limit of "
            f"{MAX_FILTER_COMPARISONS}; compare one key with many values as "
            "IN ('a', 'b', ...) instead of ORing equalities"
        )
    if len(keys) > MAX_FILTER_KEYS:
        raise InvalidParameterError(
            f"Invalid search filter: it names {len(keys)} distinct metric, param and tag keys, "
            f"more than the limit of {MAX_FILTER_KEYS}"
        )


@functools.lru_cache(maxsize=1024)
def _parse_order_item(text: str, schema: SearchSchema) -> OrderBy:
    label = "order_by clause"
    if not text.strip():
        raise _syntax_error(
            "empty order_by clause; expected e.g. 'metrics.acc DESC'",
            text,
            0,
            label=label,
            expected=(_identifier_hint(schema),),
        )
    try:
        tree = _lark().parse(text, start="order_by")
    except UnexpectedInput as exc:
        raise _translate(exc, text, schema, label, "order_by") from None
    ident = tree.children[0]
    assert isinstance(ident, Token)
    entity, key, prefix = _split_identifier(ident, text, schema, label)
    if entity is Entity.ATTRIBUTE:
        key, _ = _resolve_attribute(ident, key, prefix, text, schema, label, ordering=True)
    ascending = not (len(tree.children) > 1 and str(tree.children[1]).upper() == "DESC")
    return OrderBy(entity, key, ascending)


def parse_order_by(clauses: Sequence[str] | None, schema: SearchSchema) -> tuple[OrderBy, ...]:
    """Parse ``order_by`` items such as ``"metrics.acc DESC"`` (default ascending)."""
    if isinstance(clauses, str):
        clauses = [clauses]
    return tuple(_parse_order_item(clause, schema) for clause in clauses or ())


def parse_run_filter(text: str | None) -> Filter | None:
    """Parse a ``search_runs`` filter.

    Example::

        >>> parse_run_filter("metrics.acc > 0.9 and params.opt = 'adam'")
        And(operands=(Comparison(entity=<Entity.METRIC: 'metric'>, key='acc', ...
    """
    return parse_filter(text, RUN_SCHEMA)


def parse_experiment_filter(text: str | None) -> Filter | None:
    """Parse a ``search_experiments`` filter (``name``, ``creation_time``, ``tags.`` ...)."""
    return parse_filter(text, EXPERIMENT_SCHEMA)


def parse_run_order_by(clauses: Sequence[str] | None) -> tuple[OrderBy, ...]:
    """Parse ``search_runs`` order_by items, e.g. ``["metrics.acc DESC", "params.lr"]``."""
    return parse_order_by(clauses, RUN_SCHEMA)


def parse_experiment_order_by(clauses: Sequence[str] | None) -> tuple[OrderBy, ...]:
    """Parse ``search_experiments`` order_by items (``name``, ``creation_time`` ...)."""
    return parse_order_by(clauses, EXPERIMENT_SCHEMA)
