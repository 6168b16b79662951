"""Conformance cases for ``search_runs`` and ``search_experiments``.

Mixed into every backend's test class (it needs a ``client`` fixture: a
:class:`~tracking.client.TrackingClient` on a fresh store). Each case builds a
small set of runs through the public API and checks which runs a search
returns, in which order, page after page. Filter tables are checked in one
test per behaviour, reporting every mismatch at once, because building the
runs costs a store round trip per call on the server backends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pytest

from tracking.client import TrackingClient
from tracking.entities import Metric, Param, RunStatus, RunTag, ViewType
from tracking.errors import InvalidParameterError, SearchSyntaxError

__all__ = ["SearchSuite"]

NAN = float("nan")
INF = float("inf")


@dataclass(frozen=True)
class _Spec:
    name: str
    start: int
    metrics: Mapping[str, float]
    params: Mapping[str, str]
    tags: Mapping[str, str]
    status: RunStatus = RunStatus.RUNNING
    end: int | None = None


# Active runs of experiment "a", newest first: delta ... alpha.
_SPECS = (
    _Spec(
        "alpha",
        1000,
        {"acc": 0.9, "loss": 0.1},
        {"opt": "adam", "lr": "b"},
        {"team": "Vision", "rank": "b", "note": "50%"},
        RunStatus.FINISHED,
        1500,
    ),
    _Spec(
        "Alpha-2", 2000, {"acc": 0.5}, {"opt": "sgd", "lr": "c"}, {"team": "vision", "rank": "b"}
    ),
    _Spec(
        "beta",
        3000,
        {"acc": NAN},
        {"opt": "Adam", "batch size": "32"},
        {"team": "nlp", "rank": "a"},
        RunStatus.FAILED,
        3500,
    ),
    _Spec(
        "gamma_1", 4000, {"acc": INF}, {"lr": "a"}, {"note": "50 percent"}, RunStatus.KILLED, 4100
    ),
    _Spec("gamma%1", 5000, {"acc": -INF}, {"opt": "adam"}, {"team": "a*b", "rank": "c"}),
    _Spec("delta*[x]", 6000, {"loss": 0.3}, {"opt": "ad_m"}, {"team": "[x]"}),
)
_ALL = ["delta*[x]", "gamma%1", "gamma_1", "beta", "Alpha-2", "alpha"]


@dataclass
class _World:
    """The runs a search case looks at."""

    client: TrackingClient
    exp_a: str
    exp_b: str
    ids: dict[str, str]

    def names(
        self,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        view: ViewType = ViewType.ACTIVE_ONLY,
        experiments: Sequence[str] | None = None,
    ) -> list[str]:
        found = self.client.search_runs(
            list(experiments or [self.exp_a]),
            filter_string,
            view,
            order_by=order_by,
        )
        assert found.token is None
        return [run.info.run_name for run in found]

    def check(self, cases: Mapping[str, str], **kwargs: object) -> None:
        """Every filter in ``cases`` finds the space-separated run names, in that order."""
        wrong = {}
        for filter_string, expected in cases.items():
            got = self.names(filter_string, **kwargs)  # type: ignore[arg-type]
            if got != expected.split():
                wrong[filter_string] = f"got {got}, expected {expected.split()}"
        assert not wrong, "\n".join(f"{f!r}: {msg}" for f, msg in wrong.items())


class SearchSuite:
    """Run and experiment search: every operator, OR, order, views, paging, errors."""

    @pytest.fixture
    def world(self, client: TrackingClient) -> _World:
        exp_a = client.create_experiment("search-a")
        exp_b = client.create_experiment("search-b")
        ids: dict[str, str] = {}
        for spec in _SPECS:
            run = client.create_run(exp_a, run_name=spec.name, start_time=spec.start)
            run_id = ids[spec.name] = run.info.run_id
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, 10, 0) for k, v in spec.metrics.items()],
                params=[Param(k, v) for k, v in spec.params.items()],
                tags=[RunTag(k, v) for k, v in spec.tags.items()],
            )
            if spec.status.is_terminated:
                client.set_terminated(run_id, spec.status, end_time=spec.end)
        gone = client.create_run(exp_a, run_name="gone", start_time=7000).info.run_id
        client.log_metric(gone, "acc", 1.0, timestamp=10)
        client.log_param(gone, "opt", "adam")
        client.delete_run(gone)
        ids["gone"] = gone
        other = client.create_run(exp_b, run_name="other", start_time=8000).info.run_id
        client.log_metric(other, "acc", 0.95, timestamp=10)
        client.log_param(other, "opt", "adam")
        ids["other"] = other
        return _World(client, exp_a, exp_b, ids)

    # -- filters ----------------------------------------------------------------

    def test_empty_filter_finds_every_active_run(self, world: _World) -> None:
        assert world.names("") == _ALL
        assert world.names("   ") == _ALL

    def test_metric_operators(self, world: _World) -> None:
        world.check(
            {
                "metrics.acc > 0.6": "gamma_1 alpha",
                "metrics.acc >= 0.5": "gamma_1 Alpha-2 alpha",
                "metrics.acc < 0.6": "gamma%1 Alpha-2",
                "metrics.acc <= 0.5": "gamma%1 Alpha-2",
                "metrics.acc = 0.5": "Alpha-2",
                "metrics.acc != 0.5": "gamma%1 gamma_1 alpha",
                "metrics.loss < 1": "delta*[x] alpha",
                "metrics.missing > 0": "",
                "metrics.acc > 0.6 and metrics.loss < 0.2": "alpha",
            }
        )

    def test_nan_and_infinite_metrics(self, world: _World) -> None:
        world.check(
            {
                "metrics.acc = 0": "",  # NaN matches nothing
                "metrics.acc > -1e999": "gamma_1 Alpha-2 alpha",
                "metrics.acc < 1e999": "gamma%1 Alpha-2 alpha",
                "metrics.acc = 1e999": "gamma_1",
                "metrics.acc = -1e999": "gamma%1",
                "metrics.acc > 1e308": "gamma_1",
                "metrics.acc < -1e308": "gamma%1",
                "metrics.acc = 1.7976931348623157e308": "",
            }
        )
        run = world.client.get_run(world.ids["beta"])
        assert run.data.metrics["acc"] != run.data.metrics["acc"]  # NaN survives the trip

    def test_latest_metric_value_is_searched(self, world: _World) -> None:
        run_id = world.ids["Alpha-2"]
        world.client.log_metric(run_id, "acc", 0.99, timestamp=20, step=5)
        world.client.log_metric(run_id, "acc", 0.01, timestamp=5, step=1)  # older step
        assert world.names("metrics.acc > 0.95") == ["gamma_1", "Alpha-2"]
        assert world.names("metrics.acc = 0.5") == []

    def test_param_operators(self, world: _World) -> None:
        world.check(
            {
                "params.opt = 'adam'": "gamma%1 alpha",
                "params.opt != 'adam'": "delta*[x] beta Alpha-2",
                "params.opt LIKE 'a%'": "delta*[x] gamma%1 alpha",
                "params.opt LIKE 'ADAM'": "",
                "params.opt ILIKE 'A%'": "delta*[x] gamma%1 beta alpha",
                "params.opt LIKE 'ad_m'": "delta*[x] gamma%1 alpha",
                "params.opt LIKE 'ad\\_m'": "delta*[x]",
                "params.opt IN ('adam', 'sgd')": "gamma%1 Alpha-2 alpha",
                "params.opt NOT IN ('adam', 'sgd')": "delta*[x] beta",
                "params.`batch size` = '32'": "beta",
            }
        )

    def test_tag_operators(self, world: _World) -> None:
        world.check(
            {
                "tags.team = 'vision'": "Alpha-2",
                "tags.team != 'nlp'": "delta*[x] gamma%1 Alpha-2 alpha",
                "tags.team LIKE 'vision'": "Alpha-2",
                "tags.team ILIKE 'VISION'": "Alpha-2 alpha",
                "tags.team LIKE 'a*b'": "gamma%1",
                "tags.team LIKE '[x]'": "delta*[x]",
                "tags.team LIKE '[nx]%'": "",
                "tags.note LIKE '50\\%'": "alpha",
                "tags.note LIKE '50%'": "gamma_1 alpha",
                "tags.team IN ('nlp', 'Vision')": "beta alpha",
                "tags.team NOT IN ('nlp')": "delta*[x] gamma%1 Alpha-2 alpha",
                "tags.`mlflow.runName` = 'beta'": "beta",
                "tags.\"mlflow.runName\" LIKE 'gamma%'": "gamma%1 gamma_1",
            }
        )

    def test_attribute_operators(self, world: _World) -> None:
        user = world.client.get_run(world.ids["alpha"]).info.user_id
        ids = world.ids
        alpha, beta, other = ids["alpha"], ids["beta"], ids["other"]
        world.check(
            {
                f"attributes.run_id = '{beta}'": "beta",
                f"attributes.run_id != '{beta}'": "delta*[x] gamma%1 gamma_1 Alpha-2 alpha",
                f"attributes.run_id IN ('{alpha}', '{other}', '{beta}')": "beta alpha",
                f"attributes.run_id NOT IN ('{alpha}', '{beta}')": (
                    "delta*[x] gamma%1 gamma_1 Alpha-2"
                ),
                "attributes.run_name = 'alpha'": "alpha",
                "attributes.run_name LIKE 'alpha%'": "alpha",
                "attributes.run_name ILIKE 'alpha%'": "Alpha-2 alpha",
                "attributes.run_name LIKE 'gamma_1'": "gamma%1 gamma_1",
                "attributes.run_name LIKE 'gamma\\%1'": "gamma%1",
                "attributes.run_name NOT IN ('alpha', 'beta')": "delta*[x] gamma%1 gamma_1 Alpha-2",
                "attributes.status = 'FINISHED'": "alpha",
                "attributes.status != 'RUNNING'": "gamma_1 beta alpha",
                "attributes.status IN ('FAILED', 'KILLED')": "gamma_1 beta",
                "attributes.status LIKE 'F%'": "beta alpha",
                f"attributes.user_id = '{user}'": " ".join(_ALL),
                "attributes.user_id = 'nobody'": "",
                f"attributes.artifact_uri LIKE '%{beta}%'": "beta",
                "attributes.lifecycle_stage = 'active'": " ".join(_ALL),
                "attributes.start_time > 3000": "delta*[x] gamma%1 gamma_1",
                "attributes.start_time <= 3000": "beta Alpha-2 alpha",
                "attributes.created = 2000": "Alpha-2",
                "attributes.end_time >= 3500": "gamma_1 beta",
                "attributes.end_time < 2000": "alpha",
                "status = 'FAILED'": "beta",
                "run_name = 'beta'": "beta",
            }
        )

    def test_or_and_parentheses(self, world: _World) -> None:
        world.check(
            {
                "params.opt = 'sgd' OR metrics.acc > 0.6": "gamma_1 Alpha-2 alpha",
                "metrics.acc > 0.6 or metrics.acc < 0.6": "gamma%1 gamma_1 Alpha-2 alpha",
                "tags.team = 'nlp' or metrics.loss > 0": "delta*[x] beta alpha",
                "params.opt = 'adam' and (tags.team = 'a*b' or metrics.loss < 1)": "gamma%1 alpha",
                "params.opt = 'adam' and tags.team = 'a*b' or metrics.loss < 1": (
                    "delta*[x] gamma%1 alpha"
                ),
                "(params.opt = 'adam' or params.opt = 'sgd') and "
                "(metrics.acc > 0.6 or metrics.acc < 0.6)": "gamma%1 Alpha-2 alpha",
                "attributes.status = 'KILLED' or (tags.rank = 'b' and params.lr = 'c')": (
                    "gamma_1 Alpha-2"
                ),
                "((metrics.acc = 0.5))": "Alpha-2",
            }
        )

    def test_keywords_ignore_case(self, world: _World) -> None:
        world.check(
            {
                "params.opt like 'a%' AND tags.team ilike 'A%'": "gamma%1",
                "params.opt Like 'a%' aNd tags.team iLike 'A%'": "gamma%1",
                "params.opt not in ('adam') or Params.opt In ('adam')": (
                    "delta*[x] gamma%1 beta Alpha-2 alpha"
                ),
            }
        )

    # -- scope ------------------------------------------------------------------

    def test_view_types(self, world: _World) -> None:
        assert world.names("params.opt = 'adam'", view=ViewType.DELETED_ONLY) == ["gone"]
        assert world.names("params.opt = 'adam'", view=ViewType.ALL) == ["gone", "gamma%1", "alpha"]
        assert world.names("params.opt = 'adam'") == ["gamma%1", "alpha"]
        world.client.restore_run(world.ids["gone"])
        assert world.names("params.opt = 'adam'", view=ViewType.DELETED_ONLY) == []
        assert world.names("metrics.acc >= 1") == ["gone", "gamma_1"]

    def test_several_experiments(self, world: _World) -> None:
        both = [world.exp_a, world.exp_b]
        assert world.names("metrics.acc > 0.6", experiments=both) == ["other", "gamma_1", "alpha"]
        assert world.names("", experiments=[world.exp_b]) == ["other"]
        empty = world.client.create_experiment("search-empty")
        assert world.names("", experiments=[empty]) == []

    def test_results_carry_run_data(self, world: _World) -> None:
        (run,) = world.client.search_runs([world.exp_a], "attributes.run_name = 'alpha'")
        assert run.info.run_id == world.ids["alpha"]
        assert run.info.status is RunStatus.FINISHED
        assert dict(run.data.params) == {"opt": "adam", "lr": "b"}
        assert dict(run.data.metrics) == {"acc": 0.9, "loss": 0.1}
        assert run.data.tags["team"] == "Vision"

    # -- order ------------------------------------------------------------------

    def test_order_puts_missing_values_last(self, world: _World) -> None:
        cases = [
            ([], " ".join(_ALL)),
            (["metrics.acc DESC"], "gamma_1 alpha Alpha-2 gamma%1 delta*[x] beta"),
            (["metrics.acc"], "gamma%1 Alpha-2 alpha gamma_1 delta*[x] beta"),
            (["metrics.loss ASC"], "alpha delta*[x] gamma%1 gamma_1 beta Alpha-2"),
            (["params.lr"], "gamma_1 alpha Alpha-2 delta*[x] gamma%1 beta"),
            (["params.lr DESC"], "Alpha-2 alpha gamma_1 delta*[x] gamma%1 beta"),
            (
                ["tags.rank DESC", "attributes.start_time"],
                "gamma%1 alpha Alpha-2 beta gamma_1 delta*[x]",
            ),
            (["attributes.end_time"], "alpha beta gamma_1 delta*[x] gamma%1 Alpha-2"),
            (["attributes.end_time DESC"], "gamma_1 beta alpha delta*[x] gamma%1 Alpha-2"),
            (["attributes.start_time ASC"], " ".join(reversed(_ALL))),
            (
                ["attributes.status", "metrics.acc DESC"],
                "beta alpha gamma_1 Alpha-2 gamma%1 delta*[x]",
            ),
        ]
        wrong = {}
        for order_by, expected in cases:
            got = world.names(order_by=order_by)
            if got != expected.split():
                wrong[str(order_by)] = f"got {got}, expected {expected.split()}"
        assert not wrong, "\n".join(f"{o}: {msg}" for o, msg in wrong.items())

    def test_filtered_metric_order(self, world: _World) -> None:
        assert world.names("metrics.acc > -1e999", ["metrics.acc DESC"]) == [
            "gamma_1",
            "alpha",
            "Alpha-2",
        ]
        assert world.names("metrics.acc > -1e999", ["metrics.acc ASC"]) == [
            "Alpha-2",
            "alpha",
            "gamma_1",
        ]

    def test_ties_break_by_start_time_then_run_id(self, client: TrackingClient) -> None:
        eid = client.create_experiment("search-ties")
        ids = []
        for i in range(6):
            run_id = client.create_run(eid, start_time=1000 + (i % 2)).info.run_id
            client.log_metric(run_id, "m", 1.0, timestamp=1)
            ids.append((1000 + (i % 2), run_id))
        expected = [r for _, r in sorted(ids, key=lambda p: (-p[0], p[1]))]
        for order in ([], ["metrics.m DESC"], ["metrics.m"], ["params.none"]):
            found = client.search_runs([eid], order_by=order)
            assert [r.info.run_id for r in found] == expected, order

    # -- paging -----------------------------------------------------------------

    def test_paging_returns_everything_once(self, world: _World) -> None:
        queries = [
            ("", None),
            ("metrics.acc != 0.7", ["metrics.acc DESC"]),
            ("params.opt LIKE '%a%' or tags.rank = 'b'", ["params.opt"]),
        ]
        for filter_string, order_by in queries:
            whole = world.names(filter_string, order_by)
            for page_size in (1, 2, 4, len(whole), len(whole) + 1):
                seen: list[str] = []
                token = None
                for _ in range(len(whole) + 2):
                    page = world.client.search_runs(
                        [world.exp_a],
                        filter_string,
                        max_results=page_size,
                        order_by=order_by,
                        page_token=token,
                    )
                    assert len(page) <= page_size
                    seen += [r.info.run_name for r in page]
                    token = page.token
                    if token is None:
                        break
                assert seen == whole, (filter_string, order_by, page_size)

    def test_page_token_of_another_query_is_refused(self, world: _World) -> None:
        page = world.client.search_runs([world.exp_a], "metrics.acc > 0", max_results=1)
        assert page.token is not None
        with pytest.raises(InvalidParameterError, match="page_token"):
            world.client.search_runs(
                [world.exp_a], "metrics.acc > 1", max_results=1, page_token=page.token
            )
        with pytest.raises(InvalidParameterError, match="page_token"):
            world.client.search_runs([world.exp_a], max_results=1, page_token="not-a-token")

    # -- errors -----------------------------------------------------------------

    @pytest.mark.parametrize(
        ("filter_string", "fragment"),
        [
            ("metrics.acc ~ 1", "expected a comparison operator"),
            ("metrics.acc > 'high'", "metric values must be numbers"),
            ("params.lr = 0.1", "param values must be quoted strings"),
            ("params.lr > '1'", "> cannot compare params"),
            ("metricz.acc > 1", "unknown entity prefix 'metricz'"),
            ("attributes.nope = 'x'", "unknown attribute 'nope'"),
            ("metrics.acc > 1 and", "expected an identifier"),
            ("(metrics.acc > 1", "expected AND, OR or ')'"),
            ("params.p = 'open", "unterminated string"),
            ("attributes.run_id LIKE 'a%'", "LIKE cannot compare attribute 'run_id'"),
        ],
        ids=[
            "operator",
            "metric-type",
            "param-type",
            "param-op",
            "prefix",
            "attribute",
            "dangling-and",
            "unclosed-paren",
            "unterminated",
            "run-id-like",
        ],
    )
    def test_bad_filter_raises(
        self, client: TrackingClient, filter_string: str, fragment: str
    ) -> None:
        eid = client.create_experiment("search-errors")
        with pytest.raises(SearchSyntaxError, match="invalid search filter") as info:
            client.search_runs([eid], filter_string)
        assert fragment in str(info.value)

    @pytest.mark.parametrize(
        ("filter_string", "fragment"),
        [
            pytest.param(
                " and ".join(f"metrics.k{i} > 0" for i in range(70)),
                "70 distinct metric, param and tag keys, more than the limit of 50",
                id="70-keys",
            ),
            pytest.param(
                " or ".join(f"params.p = '{i}'" for i in range(1000)),
                "1000 comparisons, more than the limit of 500",
                id="1000-ors-one-key",
            ),
            pytest.param(
                " or ".join(f"metrics.k{i} > 0" for i in range(5000)),
                "5000 comparisons",
                id="5000-ored-keys",
            ),
        ],
    )
    def test_filter_too_big_is_refused_not_retried(
        self, client: TrackingClient, filter_string: str, fragment: str
    ) -> None:
        eid = client.create_experiment("search-too-big")
        with pytest.raises(InvalidParameterError) as info:
            client.search_runs([eid], filter_string)
        assert fragment in str(info.value)

    def test_filter_at_the_limits_works(self, client: TrackingClient) -> None:
        eid = client.create_experiment("search-at-limit")
        run_id = client.create_run(eid, run_name="wide").info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(f"k{i}", 1.0, 10, 0) for i in range(25)],
            params=[Param(f"p{i}", "x") for i in range(25)],
        )
        keys = [f"metrics.k{i} > 0" for i in range(25)] + [f"params.p{i} = 'x'" for i in range(25)]
        found = client.search_runs([eid], " and ".join(keys), order_by=["metrics.k0 DESC"])
        assert [r.info.run_id for r in found] == [run_id]
        ors = " or ".join(f"params.p0 = '{i}'" for i in range(499)) + " or params.p0 = 'x'"
        assert [r.info.run_id for r in client.search_runs([eid], ors)] == [run_id]

    @pytest.mark.parametrize(
        "order_by",
        [["metrics.acc up"], ["bogus"], ["metricz.a DESC"], [""]],
        ids=["direction", "attribute", "prefix", "empty"],
    )
    def test_bad_order_by_raises(self, client: TrackingClient, order_by: list[str]) -> None:
        eid = client.create_experiment("search-errors")
        with pytest.raises(SearchSyntaxError, match="invalid order_by clause"):
            client.search_runs([eid], order_by=order_by)

    # -- experiments --------------------------------------------------------------

    @pytest.fixture
    def experiments(self, client: TrackingClient) -> dict[str, str]:
        # "Vision-a" < "vision_b" both by code point and in natural-language collations.
        ids = {
            "Vision-a": client.create_experiment(
                "Vision-a", tags={"team": "vision", "prio": "high"}
            ),
            "vision_b": client.create_experiment("vision_b", tags={"team": "Vision"}),
            "nlp": client.create_experiment("nlp"),
        }
        client.delete_experiment(ids["nlp"])
        return ids

    def _experiment_names(
        self,
        client: TrackingClient,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        view: ViewType = ViewType.ACTIVE_ONLY,
    ) -> list[str]:
        found = client.search_experiments(view, filter_string=filter_string, order_by=order_by)
        return [e.name for e in found if e.name != "Default"]

    def test_experiment_filters(self, client: TrackingClient, experiments: dict[str, str]) -> None:
        cases = {
            "name = 'vision_b'": ["vision_b"],
            "name LIKE 'vision%'": ["vision_b"],
            "name ILIKE 'vision%'": ["Vision-a", "vision_b"],
            "name LIKE 'vision\\_%'": ["vision_b"],
            "attributes.name != 'vision_b'": ["Vision-a"],
            "tags.team = 'vision'": ["Vision-a"],
            "tags.team ILIKE 'VISION'": ["Vision-a", "vision_b"],
            "tags.team = 'Vision' or tags.prio = 'high'": ["Vision-a", "vision_b"],
            "tags.prio = 'high' and name LIKE 'V%'": ["Vision-a"],
            "tags.missing = 'x'": [],
            "creation_time >= 0 and last_update_time >= 0": ["Vision-a", "vision_b"],
            "creation_time < 0": [],
        }
        wrong = {}
        for filter_string, expected in cases.items():
            got = sorted(self._experiment_names(client, filter_string))
            if got != expected:
                wrong[filter_string] = (got, expected)
        assert not wrong

    def test_experiment_order_and_views(
        self, client: TrackingClient, experiments: dict[str, str]
    ) -> None:
        assert self._experiment_names(client, order_by=["name"]) == ["Vision-a", "vision_b"]
        assert self._experiment_names(client, order_by=["name DESC"]) == ["vision_b", "Vision-a"]
        by_id = self._experiment_names(client, order_by=["experiment_id DESC"])
        assert by_id == ["vision_b", "Vision-a"]
        assert self._experiment_names(client, view=ViewType.DELETED_ONLY) == ["nlp"]
        assert sorted(self._experiment_names(client, view=ViewType.ALL)) == [
            "Vision-a",
            "nlp",
            "vision_b",
        ]
        # Default order: newest first, ties by id.
        found = [client.get_experiment(experiments[n]) for n in ("Vision-a", "vision_b")]
        found.sort(key=lambda e: (-(e.creation_time or 0), int(e.experiment_id)))
        assert self._experiment_names(client) == [e.name for e in found]

    def test_experiment_paging(self, client: TrackingClient, experiments: dict[str, str]) -> None:
        whole = client.search_experiments(ViewType.ALL, order_by=["name"])
        seen = []
        token = None
        while True:
            page = client.search_experiments(
                ViewType.ALL, max_results=1, order_by=["name"], page_token=token
            )
            seen += [e.experiment_id for e in page]
            token = page.token
            if token is None:
                break
        assert seen == [e.experiment_id for e in whole]
        assert len(seen) == len(set(seen)) >= 3

    def test_bad_experiment_filter_raises(self, client: TrackingClient) -> None:
        with pytest.raises(SearchSyntaxError, match="experiments cannot be searched by metrics"):
            client.search_experiments(filter_string="metrics.acc > 1")
        with pytest.raises(SearchSyntaxError, match="invalid order_by clause"):
            client.search_experiments(order_by=["start_time"])
