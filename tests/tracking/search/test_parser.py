"""The search grammar: filters and order_by items -> syntax trees, and its errors."""

from __future__ import annotations

import base64
import json

import pytest

from tracking.errors import InvalidParameterError, SearchSyntaxError
from tracking.search import (
    And,
    Comparison,
    Entity,
    Filter,
    Op,
    Or,
    OrderBy,
    decode_page_token,
    encode_page_token,
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_run_filter,
    parse_run_order_by,
    search_fingerprint,
)

M, P, T, A = Entity.METRIC, Entity.PARAM, Entity.TAG, Entity.ATTRIBUTE


def cmp(entity: Entity, key: str, op: Op, value: object) -> Comparison:
    return Comparison(entity, key, op, value)  # type: ignore[arg-type]


def syntax_error(text: str, *, experiments: bool = False) -> SearchSyntaxError:
    parse = parse_experiment_filter if experiments else parse_run_filter
    with pytest.raises(SearchSyntaxError) as info:
        parse(text)
    return info.value


class TestEmptyFilter:
    @pytest.mark.parametrize(
        "text", ["", "   ", "\n\t ", None], ids=["empty", "spaces", "ws", "none"]
    )
    def test_means_no_filter(self, text: str | None) -> None:
        assert parse_run_filter(text) is None
        assert parse_experiment_filter(text) is None


class TestIdentifiers:
    @pytest.mark.parametrize(
        ("text", "entity", "key"),
        [
            ("metric.acc = 1", M, "acc"),
            ("metrics.acc = 1", M, "acc"),
            ("METRICS.acc = 1", M, "acc"),
            ("param.lr = '1'", P, "lr"),
            ("params.lr = '1'", P, "lr"),
            ("parameter.lr = '1'", P, "lr"),
            ("parameters.lr = '1'", P, "lr"),
            ("tag.team = 'a'", T, "team"),
            ("tags.team = 'a'", T, "team"),
            ("attribute.status = 'a'", A, "status"),
            ("attributes.status = 'a'", A, "status"),
            ("attr.status = 'a'", A, "status"),
            ("run.status = 'a'", A, "status"),
            ("status = 'a'", A, "status"),
        ],
        ids=lambda v: v if isinstance(v, str) and "=" in v else None,
    )
    def test_prefixes_normalise(self, text: str, entity: Entity, key: str) -> None:
        node = parse_run_filter(text)
        assert isinstance(node, Comparison)
        assert (node.entity, node.key) == (entity, key)

    @pytest.mark.parametrize(
        ("text", "key"),
        [
            ("metrics.val.acc > 0", "val.acc"),
            ("metrics.a-b/c_d > 0", "a-b/c_d"),
            ("metrics.`my metric` > 0", "my metric"),
            ("metrics.`a = b AND c` > 0", "a = b AND c"),
            ('metrics."acc" > 0', "acc"),
            ('metrics."a \\"q\\" b" > 0', 'a "q" b'),
            ("metrics.`mlflow.runName` > 0", "mlflow.runName"),
            ("metrics.1st > 0", "1st"),
            ("metrics.précision > 0", "précision"),
        ],
        ids=[
            "dotted",
            "dash-slash",
            "backtick-space",
            "backtick-ops",
            "double-quoted",
            "double-quoted-escapes",
            "backtick-dots",
            "leading-digit",
            "unicode",
        ],
    )
    def test_keys(self, text: str, key: str) -> None:
        assert parse_run_filter(text) == cmp(M, key, Op.GT, 0)

    @pytest.mark.parametrize(
        ("text", "key"),
        [
            ("attributes.created > 5", "start_time"),
            ("Created > 5", "start_time"),
            ("attributes.end_time > 5", "end_time"),
        ],
        ids=["created", "Created", "end_time"],
    )
    def test_attribute_aliases(self, text: str, key: str) -> None:
        assert parse_run_filter(text) == cmp(A, key, Op.GT, 5)


class TestValues:
    @pytest.mark.parametrize(
        ("literal", "value"),
        [
            ("'adam'", "adam"),
            ('"adam"', "adam"),
            ("''", ""),
            ("'it''s'", "it's"),
            ("'it\\'s'", "it's"),
            ('"say \\"hi\\""', 'say "hi"'),
            ('"a""b"', 'a"b'),
            ("'back\\\\slash'", "back\\slash"),
            ("'keep\\n'", "keep\\n"),
            ("'a AND b'", "a AND b"),
            ("'tab\there'", "tab\there"),
        ],
        ids=[
            "single",
            "double",
            "empty",
            "doubled-single",
            "escaped-single",
            "escaped-double",
            "doubled-double",
            "escaped-backslash",
            "other-escape-kept",
            "keyword-inside",
            "tab",
        ],
    )
    def test_strings(self, literal: str, value: str) -> None:
        assert parse_run_filter(f"params.p = {literal}") == cmp(P, "p", Op.EQ, value)

    @pytest.mark.parametrize(
        ("literal", "value"),
        [
            ("1", 1),
            ("-1", -1),
            ("+3", 3),
            ("0.5", 0.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("-2.5E-3", -0.0025),
            ("1e999", float("inf")),
            ("123456789012345678901", 123456789012345678901),
        ],
        ids=[
            "int",
            "negative",
            "plus",
            "float",
            "leading-dot",
            "trailing-dot",
            "exponent",
            "negative-exponent",
            "overflow-inf",
            "big-int",
        ],
    )
    def test_numbers(self, literal: str, value: float) -> None:
        node = parse_run_filter(f"metrics.m >= {literal}")
        assert node == cmp(M, "m", Op.GE, value)
        assert isinstance(node, Comparison)
        assert type(node.value) is type(value)

    def test_no_space_needed_around_operators(self) -> None:
        assert parse_run_filter("metrics.a>-1") == cmp(M, "a", Op.GT, -1)

    def test_time_attributes_become_integers(self) -> None:
        assert parse_run_filter("start_time >= 1.7e12") == cmp(A, "start_time", Op.GE, 1.7e12)
        node = parse_run_filter("start_time >= 1.7e12")
        assert isinstance(node, Comparison)
        assert type(node.value) is int

    @pytest.mark.parametrize(
        ("text", "op", "value"),
        [
            ("attributes.run_id IN ('a')", Op.IN, ("a",)),
            ("attributes.run_id in ('a', \"b\", 'c')", Op.IN, ("a", "b", "c")),
            ("attributes.run_id NOT IN ('a','b')", Op.NOT_IN, ("a", "b")),
            ("attributes.run_id not   in('a')", Op.NOT_IN, ("a",)),
        ],
        ids=["one", "mixed-quotes", "not-in", "spacing"],
    )
    def test_in_lists(self, text: str, op: Op, value: tuple[str, ...]) -> None:
        assert parse_run_filter(text) == cmp(A, "run_id", op, value)


class TestOperators:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("metrics.m = 1", cmp(M, "m", Op.EQ, 1)),
            ("metrics.m != 1", cmp(M, "m", Op.NE, 1)),
            ("metrics.m < 1", cmp(M, "m", Op.LT, 1)),
            ("metrics.m <= 1", cmp(M, "m", Op.LE, 1)),
            ("metrics.m > 1", cmp(M, "m", Op.GT, 1)),
            ("metrics.m >= 1", cmp(M, "m", Op.GE, 1)),
            ("params.p = 'x'", cmp(P, "p", Op.EQ, "x")),
            ("params.p != 'x'", cmp(P, "p", Op.NE, "x")),
            ("params.p LIKE 'x%'", cmp(P, "p", Op.LIKE, "x%")),
            ("params.p ILIKE 'x%'", cmp(P, "p", Op.ILIKE, "x%")),
            ("params.p IN ('x')", cmp(P, "p", Op.IN, ("x",))),
            ("params.p NOT IN ('x')", cmp(P, "p", Op.NOT_IN, ("x",))),
            ("tags.t = 'x'", cmp(T, "t", Op.EQ, "x")),
            ("tags.t != 'x'", cmp(T, "t", Op.NE, "x")),
            ("tags.t LIKE '_x'", cmp(T, "t", Op.LIKE, "_x")),
            ("tags.t ILIKE '_x'", cmp(T, "t", Op.ILIKE, "_x")),
            ("tags.t IN ('x', 'y')", cmp(T, "t", Op.IN, ("x", "y"))),
            ("tags.t NOT IN ('x')", cmp(T, "t", Op.NOT_IN, ("x",))),
            ("attributes.status = 'FINISHED'", cmp(A, "status", Op.EQ, "FINISHED")),
            ("attributes.run_name LIKE 'a%'", cmp(A, "run_name", Op.LIKE, "a%")),
            ("attributes.user_id ILIKE 'BOB'", cmp(A, "user_id", Op.ILIKE, "BOB")),
            ("attributes.artifact_uri != 's3://x'", cmp(A, "artifact_uri", Op.NE, "s3://x")),
            (
                "attributes.lifecycle_stage IN ('active')",
                cmp(A, "lifecycle_stage", Op.IN, ("active",)),
            ),
            ("attributes.run_id = 'abc'", cmp(A, "run_id", Op.EQ, "abc")),
            ("attributes.run_id != 'abc'", cmp(A, "run_id", Op.NE, "abc")),
            ("attributes.start_time < 10", cmp(A, "start_time", Op.LT, 10)),
            ("attributes.end_time >= 10", cmp(A, "end_time", Op.GE, 10)),
        ],
        ids=lambda v: v if isinstance(v, str) else None,
    )
    def test_allowed(self, text: str, expected: Filter) -> None:
        assert parse_run_filter(text) == expected

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("metrics.m LIKE 1", "LIKE cannot compare metrics"),
            ("metrics.m ILIKE 1", "ILIKE cannot compare metrics"),
            ("metrics.m IN ('1')", "IN cannot compare metrics"),
            ("metrics.m NOT IN ('1')", "NOT IN cannot compare metrics"),
            ("params.p < 'x'", "< cannot compare params"),
            ("params.p >= 'x'", ">= cannot compare params"),
            ("tags.t > 'x'", "> cannot compare tags"),
            ("attributes.run_id LIKE 'a%'", "LIKE cannot compare attribute 'run_id'"),
            ("attributes.run_id ILIKE 'a%'", "ILIKE cannot compare attribute 'run_id'"),
            ("attributes.status > 'a'", "> cannot compare attribute 'status'"),
            ("attributes.start_time LIKE 1", "LIKE cannot compare attribute 'start_time'"),
            ("attributes.end_time IN ('1')", "IN cannot compare attribute 'end_time'"),
        ],
        ids=lambda v: v if "cannot" not in v else None,
    )
    def test_rejected_with_the_allowed_list(self, text: str, fragment: str) -> None:
        error = syntax_error(text)
        assert fragment in str(error)
        assert "expected one of" in str(error)
        assert error.position == text.index(text.split()[1])
        assert error.expected


class TestBooleanLogic:
    a = cmp(M, "a", Op.EQ, 1)
    b = cmp(M, "b", Op.EQ, 2)
    c = cmp(M, "c", Op.EQ, 3)
    d = cmp(M, "d", Op.EQ, 4)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("metrics.a = 1 AND metrics.b = 2", And((a, b))),
            ("metrics.a = 1 OR metrics.b = 2", Or((a, b))),
            ("metrics.a = 1 and metrics.b = 2 and metrics.c = 3", And((a, b, c))),
            ("metrics.a = 1 or metrics.b = 2 and metrics.c = 3", Or((a, And((b, c))))),
            ("metrics.a = 1 and metrics.b = 2 or metrics.c = 3", Or((And((a, b)), c))),
            ("(metrics.a = 1 or metrics.b = 2) and metrics.c = 3", And((Or((a, b)), c))),
            ("metrics.a = 1 and (metrics.b = 2 or metrics.c = 3)", And((a, Or((b, c))))),
            ("((metrics.a = 1))", a),
            ("metrics.a = 1 and (metrics.b = 2 and metrics.c = 3)", And((a, b, c))),
            (
                "(metrics.a = 1 or metrics.b = 2) or (metrics.c = 3 or metrics.d = 4)",
                Or((a, b, c, d)),
            ),
            (
                "(metrics.a = 1 or metrics.b = 2) and (metrics.c = 3 or metrics.d = 4)",
                And((Or((a, b)), Or((c, d)))),
            ),
            ("metrics.a=1 AnD(metrics.b=2 oR metrics.c=3)", And((a, Or((b, c))))),
        ],
        ids=[
            "and",
            "or",
            "and3",
            "and-binds-tighter-right",
            "and-binds-tighter-left",
            "parens-or-first",
            "parens-or-last",
            "double-parens",
            "flatten-and",
            "flatten-or",
            "and-of-ors",
            "no-spaces-mixed-case",
        ],
    )
    def test_trees(self, text: str, expected: Filter) -> None:
        assert parse_run_filter(text) == expected


class TestKeywordCase:
    @pytest.mark.parametrize(
        "text",
        [
            "params.p like 'x' and tags.t ilike 'y' or attributes.run_id not in ('z')",
            "params.p LIKE 'x' AND tags.t ILIKE 'y' OR attributes.run_id NOT IN ('z')",
            "params.p Like 'x' And tags.t iLike 'y' Or attributes.run_id Not In ('z')",
        ],
        ids=["lower", "upper", "mixed"],
    )
    def test_keywords_ignore_case(self, text: str) -> None:
        expected = Or(
            (
                And((cmp(P, "p", Op.LIKE, "x"), cmp(T, "t", Op.ILIKE, "y"))),
                cmp(A, "run_id", Op.NOT_IN, ("z",)),
            )
        )
        assert parse_run_filter(text) == expected

    def test_keyword_prefix_of_a_word_is_not_a_keyword(self) -> None:
        error = syntax_error("metrics.a = 1 andy metrics.b = 2")
        assert error.position == 14
        assert "expected AND, OR or the end of the text, got the identifier andy" in str(error)


class TestSyntaxErrors:
    @pytest.mark.parametrize(
        ("text", "position", "fragment"),
        [
            (
                "metrics.acc ~ 1",
                12,
                "unexpected character '~'; expected a comparison operator"
                " (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)",
            ),
            ("metrics.acc 1", 12, "expected a comparison operator"),
            ("metrics.acc == 1", 13, "expected a value (a quoted string or a number), got '='"),
            ("metrics.acc =", 13, "expected a value (a quoted string or a number), got the end"),
            ("metrics.acc > 1 and", 19, "expected an identifier"),
            ("metrics.acc > 1 or or", 19, "expected an identifier"),
            ("and metrics.acc > 1", 0, "expected an identifier"),
            ("(metrics.acc > 1", 16, "expected AND, OR or ')'"),
            ("metrics.acc > 1)", 15, "expected AND, OR or the end of the text, got ')'"),
            ("()", 1, "expected an identifier"),
            ("metrics.a = 1 metrics.b = 2", 14, "got the identifier metrics.b"),
            ("params.p = 'open", 11, "unterminated string: no closing '"),
            ('params.p = "open', 11, 'unterminated string: no closing "'),
            ("params.`open = 'x'", 6, "unterminated quoted key: no closing `"),
            ('params."open = 1', 6, 'unterminated quoted key: no closing "'),
            ("params. = 'x'", 6, "expected a key after the '.'"),
            ("`p` = 'x'", 0, "a backtick-quoted key must follow an entity prefix"),
            ("params.p IN ()", 13, "expected a value"),
            ("params.p IN ('a' 'b')", 17, "expected ',' or ')'"),
            ("params.p IN ('a',)", 17, "expected a value"),
            ("params.p IN 'a'", 12, "expected '('"),
            ("params.p NOT LIKE 'a'", 13, "expected IN"),
            ("params.p = 'a' $", 15, "unexpected character '$'"),
            ("metrics.a = 1\nand metrics.b ?", 28, "line 2, column 15"),
        ],
        ids=[
            "bad-operator",
            "missing-operator",
            "double-equals",
            "missing-value",
            "dangling-and",
            "double-or",
            "leading-and",
            "unclosed-paren",
            "extra-paren",
            "empty-parens",
            "missing-and",
            "unterminated-single",
            "unterminated-double",
            "unterminated-backtick-key",
            "unterminated-quoted-key",
            "missing-key",
            "bare-backtick",
            "empty-in-list",
            "in-list-missing-comma",
            "in-list-trailing-comma",
            "in-without-parens",
            "not-like",
            "stray-character",
            "multi-line",
        ],
    )
    def test_points_at_the_problem(self, text: str, position: int, fragment: str) -> None:
        error = syntax_error(text)
        assert error.position == position
        assert fragment in str(error)
        assert error.text == text
        assert isinstance(error, InvalidParameterError)

    def test_message_shows_a_caret_under_the_spot(self) -> None:
        error = syntax_error("metrics.acc ~ 0.9")
        lines = str(error).splitlines()
        assert lines[0].startswith("invalid search filter at column 13:")
        assert lines[1] == "    metrics.acc ~ 0.9"
        assert lines[2] == "    " + " " * 12 + "^"

    def test_long_filters_show_a_window_around_the_spot(self) -> None:
        ids = ", ".join(f"'{i:032x}'" for i in range(40))
        text = f"attributes.run_id IN ({ids}) and metrics.a ~ 1"
        error = syntax_error(text)
        assert error.position == text.index("~")
        _, shown, caret = str(error).splitlines()
        assert shown.startswith("    ...") and shown.endswith("metrics.a ~ 1")
        assert len(shown) < 100
        assert shown[caret.index("^")] == "~"

    def test_deep_nesting_is_an_error_not_a_crash(self) -> None:
        depth = 3000
        text = "(metrics.a = 1 or (metrics.b = 2 and " * depth + "metrics.c = 3" + "))" * depth
        assert "nests AND/OR groups too deeply" in str(syntax_error(text))

    def test_expected_lists_exactly_what_fits(self) -> None:
        # LALR merges states: a value followed by junk must not suggest ',' or ')'.
        error = syntax_error("metrics.a = 1 b")
        assert error.expected == ("AND", "OR", "the end of the text")

    def test_lark_errors_never_escape(self) -> None:
        for text in ["(", ")", "'", "=", "metrics.", "metrics.a in (", "a b c", "\x00", "\\"]:
            with pytest.raises(SearchSyntaxError):
                parse_run_filter(text)


class TestMeaningErrors:
    @pytest.mark.parametrize(
        ("text", "position", "fragment"),
        [
            (
                "metricz.acc > 1",
                0,
                "unknown entity prefix 'metricz'; expected metrics., params., tags. or attributes.",
            ),
            ("datasets.name = 'x'", 0, "unknown entity prefix 'datasets'"),
            (
                "attributes.foo = 'x'",
                0,
                "unknown attribute 'foo'; expected one of artifact_uri,"
                " end_time, lifecycle_stage, run_id, run_name, start_time, status, user_id",
            ),
            ("acc > 1", 0, "or did you mean metrics.acc, params.acc or tags.acc?"),
            ("metrics.acc > 'high'", 14, "metric values must be numbers, got the string 'high'"),
            ("params.lr = 0.1", 12, "param values must be quoted strings, got the number 0.1"),
            ("tags.t = 1", 9, "tag values must be quoted strings, got the number 1"),
            ("attributes.status = 1", 20, "status values must be quoted strings"),
            ("attributes.start_time > '1'", 24, "start_time values must be numbers"),
            ("attributes.end_time > 1.5", 22, "end_time values must be whole numbers"),
            ("attributes.run_id IN ('a', 2)", 27, "IN lists hold quoted strings, got the number 2"),
            ("metrics.a > 1 and params.b = 2", 29, "param values must be quoted strings"),
        ],
        ids=[
            "unknown-prefix",
            "dataset-prefix",
            "unknown-attribute",
            "bare-key-hint",
            "metric-string",
            "param-number",
            "tag-number",
            "status-number",
            "time-string",
            "time-fraction",
            "in-list-number",
            "second-conjunct",
        ],
    )
    def test_points_at_the_problem(self, text: str, position: int, fragment: str) -> None:
        error = syntax_error(text)
        assert error.position == position
        assert fragment in str(error)
        assert error.expected


class TestExperimentFilter:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("name = 'a'", cmp(A, "name", Op.EQ, "a")),
            ("attributes.name LIKE 'a%'", cmp(A, "name", Op.LIKE, "a%")),
            ("name ILIKE '%A%'", cmp(A, "name", Op.ILIKE, "%A%")),
            ("creation_time > 5", cmp(A, "creation_time", Op.GT, 5)),
            ("attributes.last_update_time <= 5", cmp(A, "last_update_time", Op.LE, 5)),
            ("tags.team = 'x'", cmp(T, "team", Op.EQ, "x")),
            ("tags.`team name` != 'x'", cmp(T, "team name", Op.NE, "x")),
            (
                "name = 'a' or (tags.t = 'x' and creation_time > 1)",
                Or(
                    (
                        cmp(A, "name", Op.EQ, "a"),
                        And((cmp(T, "t", Op.EQ, "x"), cmp(A, "creation_time", Op.GT, 1))),
                    )
                ),
            ),
        ],
        ids=[
            "name",
            "attributes-name",
            "ilike",
            "creation_time",
            "last_update_time",
            "tag",
            "backtick-tag",
            "or-parens",
        ],
    )
    def test_valid(self, text: str, expected: Filter) -> None:
        assert parse_experiment_filter(text) == expected

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            ("metrics.a > 1", "experiments cannot be searched by metrics"),
            ("params.a = 'x'", "experiments cannot be searched by params"),
            (
                "status = 'x'",
                "unknown attribute 'status'; expected one of creation_time, last_update_time, name",
            ),
            ("experiment_id = 1", "unknown attribute 'experiment_id'"),
            ("name > 'a'", "> cannot compare attribute 'name'"),
            ("creation_time = 'yesterday'", "creation_time values must be numbers"),
        ],
        ids=["metrics", "params", "run-attribute", "id-not-searchable", "name-gt", "time-string"],
    )
    def test_invalid(self, text: str, fragment: str) -> None:
        assert fragment in str(syntax_error(text, experiments=True))


class TestOrderBy:
    @pytest.mark.parametrize(
        ("clause", "expected"),
        [
            ("metrics.acc DESC", OrderBy(M, "acc", ascending=False)),
            ("metrics.acc desc", OrderBy(M, "acc", ascending=False)),
            ("metrics.acc", OrderBy(M, "acc")),
            ("params.lr ASC", OrderBy(P, "lr")),
            ("tags.`a b` desc", OrderBy(T, "a b", ascending=False)),
            ("attributes.start_time", OrderBy(A, "start_time")),
            ("start_time DESC", OrderBy(A, "start_time", ascending=False)),
            ("attributes.created", OrderBy(A, "start_time")),
            ("run_name", OrderBy(A, "run_name")),
            ("  metrics.val.loss   Asc ", OrderBy(M, "val.loss")),
            ('metrics."x y" DESC', OrderBy(M, "x y", ascending=False)),
        ],
        ids=lambda v: v if isinstance(v, str) else None,
    )
    def test_runs(self, clause: str, expected: OrderBy) -> None:
        assert parse_run_order_by([clause]) == (expected,)

    def test_several_and_none(self) -> None:
        assert parse_run_order_by(["metrics.a DESC", "params.b"]) == (
            OrderBy(M, "a", ascending=False),
            OrderBy(P, "b"),
        )
        assert parse_run_order_by(None) == ()
        assert parse_run_order_by([]) == ()

    @pytest.mark.parametrize(
        ("clause", "position", "fragment"),
        [
            (
                "metrics.acc up",
                12,
                "expected ASC, DESC or the end of the text, got the identifier up",
            ),
            ("metrics.acc DESC ASC", 17, "expected the end of the text, got the keyword ASC"),
            ("", 0, "empty order_by clause"),
            (
                "DESC",
                0,
                "expected an identifier (metrics.<key>, params.<key>, tags.<key> or "
                "attributes.<name>), got the keyword DESC",
            ),
            ("metricz.acc", 0, "unknown entity prefix 'metricz'"),
            ("attributes.foo", 0, "unknown attribute 'foo'"),
            ("metrics.acc > 1", 12, "got '>'"),
            ("metrics.a, metrics.b", 9, "got ','"),
        ],
        ids=[
            "bad-direction",
            "two-directions",
            "empty",
            "direction-only",
            "bad-prefix",
            "bad-attribute",
            "a-filter",
            "two-items-in-one",
        ],
    )
    def test_errors(self, clause: str, position: int, fragment: str) -> None:
        with pytest.raises(SearchSyntaxError) as info:
            parse_run_order_by([clause])
        assert info.value.position == position
        assert fragment in str(info.value)
        assert str(info.value).startswith("invalid order_by clause")

    @pytest.mark.parametrize(
        ("clause", "expected"),
        [
            ("name", OrderBy(A, "name")),
            ("attributes.name DESC", OrderBy(A, "name", ascending=False)),
            ("experiment_id desc", OrderBy(A, "experiment_id", ascending=False)),
            ("creation_time", OrderBy(A, "creation_time")),
            ("last_update_time DESC", OrderBy(A, "last_update_time", ascending=False)),
        ],
        ids=["name", "attributes-name", "experiment_id", "creation_time", "last_update_time"],
    )
    def test_experiments(self, clause: str, expected: OrderBy) -> None:
        assert parse_experiment_order_by([clause]) == (expected,)

    @pytest.mark.parametrize(
        "clause", ["metrics.a", "start_time", "params.p DESC"], ids=["metric", "run-attr", "param"]
    )
    def test_experiments_reject(self, clause: str) -> None:
        with pytest.raises(SearchSyntaxError):
            parse_experiment_order_by([clause])


class TestCaching:
    def test_same_text_gives_the_same_tree(self) -> None:
        text = "metrics.cached > 1 or params.p = 'x'"
        assert parse_run_filter(text) is parse_run_filter(text)

    def test_runs_and_experiments_cache_apart(self) -> None:
        assert parse_run_filter("tags.t = 'x'") == parse_experiment_filter("tags.t = 'x'")
        syntax_error("name = 'x'")  # a run attribute named "name" does not exist
        assert parse_experiment_filter("name = 'x'") is not None


class TestPageTokens:
    fingerprint = search_fingerprint(["1", "2"], "metrics.a > 1", 1, ["metrics.a DESC"])

    @pytest.mark.parametrize("offset", [0, 1, 1000, 10**12], ids=["0", "1", "1000", "huge"])
    def test_round_trip(self, offset: int) -> None:
        token = encode_page_token(offset, self.fingerprint)
        assert decode_page_token(token, self.fingerprint) == offset
        assert token.replace("-", "").replace("_", "").isalnum()  # URL-safe, no padding

    @pytest.mark.parametrize("token", [None, ""], ids=["none", "empty"])
    def test_no_token_is_the_first_page(self, token: str | None) -> None:
        assert decode_page_token(token, self.fingerprint) == 0

    def test_fingerprint_covers_the_query_but_not_id_order(self) -> None:
        base = (["1", "2"], "metrics.a > 1", 1, ["metrics.a DESC"])
        assert search_fingerprint(["2", "1"], *base[1:]) == self.fingerprint  # type: ignore[arg-type]
        others = [
            search_fingerprint(["1"], "metrics.a > 1", 1, ["metrics.a DESC"]),
            search_fingerprint(["1", "2"], "metrics.a > 2", 1, ["metrics.a DESC"]),
            search_fingerprint(["1", "2"], "metrics.a > 1", 3, ["metrics.a DESC"]),
            search_fingerprint(["1", "2"], "metrics.a > 1", 1, ["metrics.a"]),
        ]
        assert self.fingerprint not in others
        assert len(set(others)) == len(others)

    def test_token_of_another_query_is_refused(self) -> None:
        token = encode_page_token(10, search_fingerprint(["1"], "", 1, None))
        with pytest.raises(InvalidParameterError, match=r"invalid page_token .*another query"):
            decode_page_token(token, self.fingerprint)

    @staticmethod
    def _forge(payload: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()

    @pytest.mark.parametrize(
        "token",
        [
            "garbage!",
            "Zm9v",  # "foo"
            "AAAA",
            "%%%",
            "eyJ",  # truncated JSON
        ],
        ids=["not-base64", "not-json", "binary", "symbols", "truncated"],
    )
    def test_garbage_is_refused(self, token: str) -> None:
        with pytest.raises(InvalidParameterError, match="invalid page_token"):
            decode_page_token(token, self.fingerprint)

    @pytest.mark.parametrize(
        "payload",
        [
            [1, 2],
            {"v": 1, "o": -1, "f": "x"},
            {"v": 1, "o": "10", "f": "x"},
            {"v": 1, "o": True, "f": "x"},
            {"v": 1, "o": 1.5, "f": "x"},
            {"v": 99, "o": 1, "f": "x"},
            {"o": 1, "f": "x"},
        ],
        ids=[
            "list",
            "negative",
            "string-offset",
            "bool-offset",
            "float-offset",
            "version",
            "no-version",
        ],
    )
    def test_tampered_payload_is_refused(self, payload: object) -> None:
        if isinstance(payload, dict):
            payload["f"] = self.fingerprint
        with pytest.raises(InvalidParameterError, match="invalid page_token"):
            decode_page_token(self._forge(payload), self.fingerprint)

    def test_tampered_offset_within_the_same_query_is_accepted(self) -> None:
        # Tokens are opaque, not signed: another offset of the same query is harmless.
        forged = self._forge({"v": 1, "o": 7, "f": self.fingerprint})
        assert decode_page_token(forged, self.fingerprint) == 7
