"""Compiled search selects, run on real databases: which ids come back, in which order."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import Engine, create_engine, insert, text

from tracking.search import (
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_run_filter,
    parse_run_order_by,
)
from tracking.store.sql.models import (
    Base,
    ExperimentModel,
    ExperimentTagModel,
    LatestMetricModel,
    ParamModel,
    RunModel,
    TagModel,
)
from tracking.store.sql.search import like_to_glob, select_experiments, select_runs

DBL_MAX = sys.float_info.max
NAN = float("nan")
INF = float("inf")


def encode(value: float) -> tuple[float, int]:
    """(value, special) as the store writes them."""
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (DBL_MAX, 2) if value > 0 else (-DBL_MAX, 3)
    return value, 0


@dataclass
class R:
    """A run to insert: its id doubles as its name unless ``name`` is given."""

    run_id: str
    start: int
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    status: str = "FINISHED"
    user: str = "alice"
    end: int | None = None
    stage: str = "active"
    experiment: int = 1


class World:
    """A database holding runs and experiments, and helpers that search it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def orders_text_by_code_point(self) -> bool:
        """False on a PostgreSQL database whose collation is not C (say en_US)."""
        if self.dialect != "postgresql":
            return True
        with self.engine.connect() as conn:
            query = "SELECT datcollate FROM pg_database WHERE datname = current_database()"
            collation = str(conn.execute(text(query)).scalar())
        return collation in ("C", "POSIX") or collation.startswith("C.")

    def add_experiments(self, *rows: dict[str, object]) -> None:
        with self.engine.begin() as conn:
            for row in rows:
                tags = dict(row.pop("tags", {}))  # type: ignore[call-overload]
                values = {
                    "artifact_location": "mem://",
                    "lifecycle_stage": "active",
                    "creation_time": 0,
                    "last_update_time": 0,
                    **row,
                }
                conn.execute(insert(ExperimentModel), [values])
                if tags:
                    conn.execute(
                        insert(ExperimentTagModel),
                        [
                            {"experiment_id": row["experiment_id"], "key": k, "value": v}
                            for k, v in tags.items()
                        ],
                    )

    def add_runs(self, *runs: R) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(RunModel),
                [
                    {
                        "run_uuid": r.run_id,
                        "name": r.name or r.run_id,
                        "experiment_id": r.experiment,
                        "user_id": r.user,
                        "status": r.status,
                        "start_time": r.start,
                        "end_time": r.end,
                        "artifact_uri": f"mem://{r.run_id}",
                        "lifecycle_stage": r.stage,
                    }
                    for r in runs
                ],
            )
            metrics = [
                {
                    "run_uuid": r.run_id,
                    "key": k,
                    "value": encode(v)[0],
                    "special": encode(v)[1],
                    "timestamp": 0,
                    "step": 0,
                }
                for r in runs
                for k, v in r.metrics.items()
            ]
            params = [
                {"run_uuid": r.run_id, "key": k, "value": v}
                for r in runs
                for k, v in r.params.items()
            ]
            tags = [
                {"run_uuid": r.run_id, "key": k, "value": v}
                for r in runs
                for k, v in r.tags.items()
            ]
            for model, rows in (
                (LatestMetricModel, metrics),
                (ParamModel, params),
                (TagModel, tags),
            ):
                if rows:
                    conn.execute(insert(model), rows)

    def runs(
        self,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        stages: Sequence[str] = ("active",),
        experiments: Sequence[int] = (1,),
        offset: int = 0,
        limit: int | None = None,
    ) -> list[str]:
        query = select_runs(
            experiments,
            parse_run_filter(filter_string),
            stages,
            parse_run_order_by(order_by),
            offset,
            limit,
            dialect=self.dialect,
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def experiments(
        self,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        stages: Sequence[str] = ("active",),
        offset: int = 0,
        limit: int | None = None,
    ) -> list[int]:
        query = select_experiments(
            parse_experiment_filter(filter_string),
            stages,
            parse_experiment_order_by(order_by),
            offset,
            limit,
            dialect=self.dialect,
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    engine = create_engine(db_url)
    Base.metadata.create_all(engine)
    yield World(engine)
    engine.dispose()


@pytest.fixture
def sqlite_world() -> Iterator[World]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    yield World(engine)
    engine.dispose()


# Six active runs of experiment 1 (newest first by default: r6 ... r1), one
# deleted run and one run of experiment 2.
RUNS = (
    R(
        "r1",
        100,
        {"acc": 0.9, "loss": 0.1},
        {"opt": "adam", "lr": "b"},
        {"team": "Vision", "note": "50%", "rank": "b"},
        name="alpha",
        user="alice",
        end=150,
    ),
    R(
        "r2",
        200,
        {"acc": 0.5},
        {"opt": "sgd", "lr": "c"},
        {"team": "vision", "rank": "b"},
        name="Alpha-2",
        user="bob",
        status="RUNNING",
    ),
    R(
        "r3",
        300,
        {"acc": NAN},
        {"opt": "Adam"},
        {"team": "nlp", "rank": "a"},
        name="beta",
        status="FAILED",
    ),
    R("r4", 400, {"acc": INF}, {"lr": "a"}, {"note": "50 percent"}, name="gamma_1", user="ALICE"),
    R("r5", 500, {"acc": -INF}, {"opt": "adam"}, {"team": "a*b", "rank": "c"}, name="gamma%1"),
    R("r6", 600, {"loss": 0.3}, {"opt": "ad_m"}, {"team": "[x]"}, name="delta*[x]"),
    R("r7", 700, {"acc": 1.0}, {"opt": "adam"}, name="deleted", stage="deleted"),
    R("r8", 800, {"acc": 0.95}, {"opt": "adam"}, name="other", experiment=2),
)


@pytest.fixture
def runs(world: World) -> World:
    world.add_experiments({"experiment_id": 1, "name": "one"}, {"experiment_id": 2, "name": "two"})
    world.add_runs(*RUNS)
    return world


def case(filter_string: str, expected: str, case_id: str) -> object:
    """A parametrize case: the filter and the run ids expected, in order."""
    return pytest.param(filter_string, expected.split(), id=case_id)


class TestMetricFilters:
    @pytest.mark.parametrize(
        ("filter_string", "expected"),
        [
            case("metrics.acc > 0.6", "r4 r1", "gt-includes-inf"),
            case("metrics.acc < 0.6", "r5 r2", "lt-includes-neg-inf"),
            case("metrics.acc >= 0.5", "r4 r2 r1", "ge"),
            case("metrics.acc <= 0.5", "r5 r2", "le"),
            case("metrics.acc = 0.5", "r2", "eq"),
            case("metrics.acc != 0.5", "r5 r4 r1", "ne-skips-nan-and-missing"),
            case("metrics.acc = 0", "", "nan-stored-as-zero-never-matches"),
            case("metrics.acc > -1e999", "r4 r2 r1", "gt-neg-inf"),
            case("metrics.acc < 1e999", "r5 r2 r1", "lt-inf"),
            case("metrics.acc = 1e999", "r4", "eq-inf"),
            case("metrics.acc != 1e999", "r5 r2 r1", "ne-inf"),
            case("metrics.acc >= 1e999", "r4", "ge-inf"),
            case("metrics.acc > 1e999", "", "gt-inf"),
            case("metrics.acc = -1e999", "r5", "eq-neg-inf"),
            case("metrics.acc <= -1e999", "r5", "le-neg-inf"),
            case("metrics.acc > 1e308", "r4", "huge-finite"),
            case("metrics.acc = 1.7976931348623157e308", "", "dbl-max-is-not-inf"),
            case("metrics.acc < 1.7976931348623157e308", "r5 r2 r1", "lt-dbl-max"),
            case("metrics.acc > -1.7976931348623157e308", "r4 r2 r1", "gt-neg-dbl-max"),
            case("metrics.acc >= -1.7976931348623157e308", "r4 r2 r1", "ge-neg-dbl-max"),
            case("metrics.loss < 1", "r6 r1", "other-key"),
            case("metrics.nope > 0", "", "missing-key"),
            case("metrics.acc > 0.6 and metrics.loss < 0.2", "r1", "two-keys"),
        ],
    )
    def test_filter(self, runs: World, filter_string: str, expected: list[str]) -> None:
        assert runs.runs(filter_string) == expected


class TestStringFilters:
    @pytest.mark.parametrize(
        ("filter_string", "expected"),
        [
            case("params.opt = 'adam'", "r5 r1", "param-eq-case-sensitive"),
            case("params.opt != 'adam'", "r6 r3 r2", "param-ne-skips-missing"),
            case("params.opt LIKE 'a%'", "r6 r5 r1", "like-case-sensitive"),
            case("params.opt ILIKE 'A%'", "r6 r5 r3 r1", "ilike"),
            case("params.opt LIKE 'ad_m'", "r6 r5 r1", "like-underscore-wildcard"),
            case("params.opt LIKE 'ad\\_m'", "r6", "like-escaped-underscore"),
            case("params.opt ILIKE 'AD\\_M'", "r6", "ilike-escaped-underscore"),
            case("params.opt LIKE 'ADAM'", "", "like-no-case-folding"),
            case("params.opt LIKE '%'", "r6 r5 r3 r2 r1", "like-any"),
            case("params.opt IN ('adam', 'sgd')", "r5 r2 r1", "in"),
            case("params.opt NOT IN ('adam', 'sgd')", "r6 r3", "not-in-skips-missing"),
            case("tags.team = 'vision'", "r2", "tag-eq"),
            case("tags.team LIKE 'vision'", "r2", "tag-like-case-sensitive"),
            case("tags.team ILIKE 'VISION'", "r2 r1", "tag-ilike"),
            case("tags.team LIKE 'a*b'", "r5", "glob-star-is-literal"),
            case("tags.team LIKE 'a_b'", "r5", "underscore-matches-star"),
            case("tags.team LIKE 'aXb'", "", "star-is-not-a-wildcard"),
            case("tags.team LIKE '[x]'", "r6", "glob-bracket-is-literal"),
            case("tags.team LIKE '[nx]%'", "", "bracket-is-not-a-class"),
            case("tags.note LIKE '50\\%'", "r1", "escaped-percent"),
            case("tags.note LIKE '50%'", "r4 r1", "percent-wildcard"),
            case("tags.team != 'nlp'", "r6 r5 r2 r1", "tag-ne"),
            case("tags.team IN ('nlp', 'Vision')", "r3 r1", "tag-in"),
            case("tags.team NOT IN ('nlp')", "r6 r5 r2 r1", "tag-not-in"),
        ],
    )
    def test_params_and_tags(self, runs: World, filter_string: str, expected: list[str]) -> None:
        assert runs.runs(filter_string) == expected

    @pytest.mark.parametrize(
        ("filter_string", "expected"),
        [
            case("attributes.run_id = 'r3'", "r3", "run-id-eq"),
            case("attributes.run_id != 'r3'", "r6 r5 r4 r2 r1", "run-id-ne"),
            case("attributes.run_id IN ('r1', 'r2', 'r8')", "r2 r1", "run-id-in-scoped"),
            case("attributes.run_id NOT IN ('r1', 'r2')", "r6 r5 r4 r3", "run-id-not-in"),
            case("attributes.run_name = 'alpha'", "r1", "run-name-eq"),
            case("attributes.run_name LIKE 'alpha%'", "r1", "run-name-like-case-sensitive"),
            case("attributes.run_name ILIKE 'alpha%'", "r2 r1", "run-name-ilike"),
            case("attributes.run_name LIKE 'gamma_1'", "r5 r4", "run-name-underscore"),
            case("attributes.run_name LIKE 'gamma\\%1'", "r5", "run-name-escaped-percent"),
            case("attributes.run_name LIKE 'delta*[x]'", "r6", "run-name-glob-chars"),
            case("attributes.status = 'FINISHED'", "r6 r5 r4 r1", "status-eq"),
            case("attributes.status IN ('RUNNING', 'FAILED')", "r3 r2", "status-in"),
            case("attributes.status NOT IN ('FINISHED')", "r3 r2", "status-not-in"),
            case("attributes.user_id = 'alice'", "r6 r5 r3 r1", "user-eq"),
            case("attributes.user_id ILIKE 'ALICE'", "r6 r5 r4 r3 r1", "user-ilike"),
            case("attributes.artifact_uri LIKE '%r2'", "r2", "artifact-uri"),
            case("attributes.lifecycle_stage = 'active'", "r6 r5 r4 r3 r2 r1", "stage"),
            case("attributes.start_time > 300", "r6 r5 r4", "start-time-gt"),
            case("attributes.start_time <= 300", "r3 r2 r1", "start-time-le"),
            case("attributes.created = 300", "r3", "created-alias"),
            case("attributes.end_time = 150", "r1", "end-time"),
            case("attributes.end_time != 150", "", "end-time-null-never-matches"),
            case("status = 'FAILED'", "r3", "bare-attribute"),
        ],
    )
    def test_attributes(self, runs: World, filter_string: str, expected: list[str]) -> None:
        assert runs.runs(filter_string) == expected


class TestBooleanLogic:
    @pytest.mark.parametrize(
        ("filter_string", "expected"),
        [
            case("params.opt = 'sgd' or metrics.acc > 0.6", "r4 r2 r1", "or-across-entities"),
            case("metrics.acc > 0.6 or metrics.acc < 0.6", "r5 r4 r2 r1", "or-same-key"),
            case("tags.team = 'nlp' or metrics.loss > 0", "r6 r3 r1", "or-missing-keys"),
            case(
                "params.opt = 'adam' and (tags.team = 'a*b' or metrics.loss < 1)",
                "r5 r1",
                "and-of-or",
            ),
            case(
                "params.opt = 'adam' and tags.team = 'a*b' or metrics.loss < 1",
                "r6 r5 r1",
                "precedence",
            ),
            case(
                "(params.opt = 'adam' or params.opt = 'sgd') and (metrics.acc > 0.6 or "
                "metrics.acc < 0.6)",
                "r5 r2 r1",
                "or-and-or",
            ),
            case(
                "attributes.status = 'RUNNING' or attributes.run_name = 'beta'",
                "r3 r2",
                "or-attributes",
            ),
            case(
                "metrics.acc != 0.5 or params.opt = 'Adam'", "r5 r4 r3 r1", "or-brings-back-nan-run"
            ),
        ],
    )
    def test_filter(self, runs: World, filter_string: str, expected: list[str]) -> None:
        assert runs.runs(filter_string) == expected


class TestJoins:
    def sql(self, filter_string: str, order_by: Sequence[str] = ()) -> str:
        query = select_runs(
            [1],
            parse_run_filter(filter_string),
            ["active"],
            parse_run_order_by(order_by),
            0,
            10,
            dialect="sqlite",
        )
        return str(query.compile(compile_kwargs={"literal_binds": True}))

    def test_top_level_conjuncts_inner_join(self) -> None:
        sql = self.sql("metrics.acc > 0.5 and params.opt = 'adam'")
        assert sql.count("JOIN") == 2
        assert "LEFT OUTER JOIN" not in sql

    def test_keys_under_or_left_join(self) -> None:
        sql = self.sql("metrics.acc > 0.5 or params.opt = 'adam'")
        assert sql.count("LEFT OUTER JOIN") == 2

    def test_key_in_every_branch_of_an_or_inner_joins(self) -> None:
        sql = self.sql("metrics.acc > 0.5 or (metrics.acc < 0.1 and params.p = 'x')")
        assert sql.count("JOIN latest_metrics") == 1
        assert "LEFT OUTER JOIN latest_metrics" not in sql
        assert "LEFT OUTER JOIN params" in sql

    def test_order_only_key_left_joins(self) -> None:
        sql = self.sql("", ["metrics.acc DESC"])
        assert "LEFT OUTER JOIN latest_metrics" in sql

    def test_one_alias_per_key(self) -> None:
        sql = self.sql("metrics.acc > 0.5 and metrics.acc < 0.9", ["metrics.acc DESC"])
        assert sql.count("JOIN latest_metrics") == 1
        assert "ORDER BY metric_0.value DESC, runs.start_time DESC, runs.run_uuid ASC" in sql

    def test_no_filter_no_join(self) -> None:
        assert "JOIN" not in self.sql("")


class TestOrdering:
    @pytest.mark.parametrize(
        ("order_by", "expected"),
        [
            pytest.param([], "r6 r5 r4 r3 r2 r1", id="default-newest-first"),
            pytest.param(["metrics.acc DESC"], "r4 r1 r2 r5 r6 r3", id="metric-desc"),
            pytest.param(["metrics.acc ASC"], "r5 r2 r1 r4 r6 r3", id="metric-asc"),
            pytest.param(["metrics.loss"], "r1 r6 r5 r4 r3 r2", id="metric-asc-nulls-last"),
            pytest.param(["params.lr"], "r4 r1 r2 r6 r5 r3", id="param-asc"),
            pytest.param(["params.lr DESC"], "r2 r1 r4 r6 r5 r3", id="param-desc"),
            pytest.param(
                ["tags.rank DESC", "attributes.run_id"], "r5 r1 r2 r3 r4 r6", id="tag-desc-then-id"
            ),
            pytest.param(["attributes.end_time"], "r1 r6 r5 r4 r3 r2", id="end-time-asc"),
            pytest.param(["attributes.end_time DESC"], "r1 r6 r5 r4 r3 r2", id="end-time-desc"),
            pytest.param(["attributes.start_time"], "r1 r2 r3 r4 r5 r6", id="start-time-asc"),
            pytest.param(["attributes.run_id DESC"], "r6 r5 r4 r3 r2 r1", id="run-id-desc"),
            pytest.param(
                ["attributes.status", "attributes.run_id"], "r3 r1 r4 r5 r6 r2", id="status-then-id"
            ),
        ],
    )
    def test_order(self, runs: World, order_by: list[str], expected: str) -> None:
        assert runs.runs(order_by=order_by) == expected.split()

    @pytest.mark.parametrize("direction", ["ASC", "DESC"])
    def test_filtered_metric_order(self, runs: World, direction: str) -> None:
        got = runs.runs("metrics.acc > -1e999", [f"metrics.acc {direction}"])
        expected = ["r2", "r1", "r4"]  # NaN and -inf filtered out
        assert got == (expected if direction == "ASC" else expected[::-1])

    def test_ties_break_by_start_time_then_run_id(self, world: World) -> None:
        world.add_experiments({"experiment_id": 1, "name": "one"})
        ids = [f"{i:02d}" for i in range(12)]
        world.add_runs(*(R(i, 1000 if int(i) % 2 else 2000, {"m": 1.0}) for i in reversed(ids)))
        newest = [i for i in ids if int(i) % 2 == 0]
        oldest = [i for i in ids if int(i) % 2]
        for direction in ("ASC", "DESC"):
            assert world.runs(order_by=[f"metrics.m {direction}"]) == newest + oldest
        assert world.runs("metrics.m = 1", ["metrics.m DESC"]) == newest + oldest


class TestPaging:
    @pytest.mark.parametrize("page", [1, 2, 4, 5, 100], ids=lambda n: f"page-{n}")
    def test_pages_cover_everything_once(self, runs: World, page: int) -> None:
        whole = runs.runs(order_by=["metrics.acc DESC"])
        pages: list[str] = []
        for offset in range(0, len(whole) + page, page):
            pages += runs.runs(order_by=["metrics.acc DESC"], offset=offset, limit=page)
        assert pages == whole

    def test_offset_past_the_end(self, runs: World) -> None:
        assert runs.runs(offset=100, limit=10) == []


class TestScope:
    def test_stages(self, runs: World) -> None:
        assert runs.runs(stages=["deleted"]) == ["r7"]
        assert runs.runs(stages=["active", "deleted"]) == ["r7", "r6", "r5", "r4", "r3", "r2", "r1"]

    def test_experiments(self, runs: World) -> None:
        assert runs.runs("metrics.acc > 0.6", experiments=[1, 2]) == ["r8", "r4", "r1"]
        assert runs.runs(experiments=[2]) == ["r8"]
        assert runs.runs(experiments=[]) == []
        assert runs.runs(experiments=[99]) == []


class TestExperiments:
    @pytest.fixture
    def exps(self, world: World) -> World:
        world.add_experiments(
            {"experiment_id": 1, "name": "Default", "creation_time": 10, "last_update_time": 50},
            {
                "experiment_id": 2,
                "name": "vision_a",
                "creation_time": 30,
                "last_update_time": 30,
                "tags": {"team": "Vision"},
            },
            {
                "experiment_id": 3,
                "name": "Vision-b",
                "creation_time": 30,
                "last_update_time": 40,
                "tags": {"team": "vision", "prio": "high"},
            },
            {
                "experiment_id": 4,
                "name": "nlp",
                "creation_time": 20,
                "last_update_time": 20,
                "lifecycle_stage": "deleted",
            },
        )
        return world

    @pytest.mark.parametrize(
        ("filter_string", "expected"),
        [
            pytest.param("", [2, 3, 1], id="all-default-order"),
            pytest.param("name = 'Default'", [1], id="name-eq"),
            pytest.param("name LIKE 'vision%'", [2], id="name-like-case-sensitive"),
            pytest.param("name ILIKE 'vision%'", [2, 3], id="name-ilike"),
            pytest.param("name LIKE 'vision\\_%'", [2], id="escaped-underscore"),
            pytest.param("attributes.name != 'nlp'", [2, 3, 1], id="name-ne"),
            pytest.param("creation_time > 10", [2, 3], id="creation-time"),
            pytest.param("last_update_time >= 40", [3, 1], id="last-update-time"),
            pytest.param("tags.team = 'vision'", [3], id="tag-eq"),
            pytest.param("tags.team ILIKE 'VISION'", [2, 3], id="tag-ilike"),
            pytest.param("tags.team = 'Vision' or tags.prio = 'high'", [2, 3], id="tag-or"),
            pytest.param("tags.prio = 'high' and name LIKE 'V%'", [3], id="tag-and-name"),
            pytest.param("tags.missing != 'x'", [], id="missing-tag"),
        ],
    )
    def test_filter(self, exps: World, filter_string: str, expected: list[int]) -> None:
        assert exps.experiments(filter_string) == expected

    @pytest.mark.parametrize(
        ("order_by", "expected"),
        [
            pytest.param(["name"], [1, 3, 2], id="name-binary-order"),
            pytest.param(["name DESC"], [2, 3, 1], id="name-desc"),
            pytest.param(["experiment_id DESC"], [3, 2, 1], id="id-desc"),
            pytest.param(["creation_time"], [1, 2, 3], id="created-asc-tie-by-id"),
            pytest.param(["last_update_time DESC"], [1, 3, 2], id="updated-desc"),
        ],
    )
    def test_order(self, exps: World, order_by: list[str], expected: list[int]) -> None:
        if order_by[0].startswith("name") and not exps.orders_text_by_code_point():
            pytest.skip("this PostgreSQL database's collation does not order text by code point")
        assert exps.experiments(order_by=order_by) == expected

    def test_stages_and_paging(self, exps: World) -> None:
        assert exps.experiments(stages=["deleted"]) == [4]
        assert exps.experiments(stages=["active", "deleted"]) == [2, 3, 4, 1]
        assert exps.experiments(offset=1, limit=1) == [3]


class TestLikeToGlob:
    @pytest.mark.parametrize(
        ("like", "glob"),
        [
            ("abc", "abc"),
            ("a%", "a*"),
            ("a_c", "a?c"),
            ("a*b?c[d]", "a[*]b[?]c[[]d]"),
            ("50\\%", "50%"),
            ("a\\_b", "a_b"),
            ("a\\\\b", "a\\b"),
            ("a\\*", "a[*]"),
            ("end\\", "end\\"),
        ],
        ids=[
            "plain",
            "percent",
            "underscore",
            "glob-specials",
            "escaped-percent",
            "escaped-underscore",
            "escaped-backslash",
            "escaped-star",
            "trailing-backslash",
        ],
    )
    def test_conversion(self, like: str, glob: str) -> None:
        assert like_to_glob(like) == glob


class TestSqlitePlan:
    """The benchmark query (100,000 runs in under 50 ms) must be driven by the metric index."""

    def plan(self, world: World, filter_string: str, order_by: Sequence[str]) -> list[str]:
        query = select_runs(
            [1],
            parse_run_filter(filter_string),
            ["active"],
            parse_run_order_by(order_by),
            0,
            100,
            dialect="sqlite",
        )
        sql = str(query.compile(world.engine, compile_kwargs={"literal_binds": True}))
        with world.engine.connect() as conn:
            return [row[3] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]

    def test_metric_filter_and_order_use_the_key_value_index(self, sqlite_world: World) -> None:
        sqlite_world.add_experiments({"experiment_id": 1, "name": "one"})
        sqlite_world.add_runs(
            *(R(f"r{i}", i, {"acc": i / 100}, {"opt": "adam"}) for i in range(100))
        )
        plan = self.plan(
            sqlite_world, "metrics.acc > 0.5 and params.opt = 'adam'", ["metrics.acc DESC"]
        )
        assert any("ix_latest_metrics_key_value" in step for step in plan), plan
        assert not any(step == "USE TEMP B-TREE FOR ORDER BY" for step in plan), plan
        got = sqlite_world.runs(
            "metrics.acc > 0.5 and params.opt = 'adam'", ["metrics.acc DESC"], limit=3
        )
        assert got == ["r99", "r98", "r97"]
