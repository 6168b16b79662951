"""Conformance cases for params, metrics and tags, with every limit and bad input."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from tracking.client import TrackingClient
from tracking.entities import Metric, Param, RunTag
from tracking.errors import InvalidParameterError, NotFoundError, RunNotFoundError

__all__ = ["LoggingSuite", "ValidationSuite"]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _snapshot(client: TrackingClient, run_id: str) -> tuple[Any, ...]:
    run = client.get_run(run_id)
    history = {k: client.get_metric_history(run_id, k) for k in run.data.metrics}
    return dict(run.data.params), dict(run.data.metrics), dict(run.data.tags), history


class LoggingSuite:
    """Params are immutable, metrics are series with a latest value, tags overwrite."""

    def test_params(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        assert client.log_param(run_id, "lr", 0.01) == 0.01
        client.log_param(run_id, "opt", "adam")
        assert dict(client.get_run(run_id).data.params) == {"lr": "0.01", "opt": "adam"}

    def test_same_param_value_again_is_a_noop(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_param(run_id, "lr", "0.1")
        client.log_param(run_id, "lr", 0.1)
        assert dict(client.get_run(run_id).data.params) == {"lr": "0.1"}

    def test_changing_a_param_raises(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_param(run_id, "lr", "0.1")
        with pytest.raises(InvalidParameterError, match=r"lr.*0\.1.*0\.2"):
            client.log_param(run_id, "lr", "0.2")
        assert dict(client.get_run(run_id).data.params) == {"lr": "0.1"}

    def test_conflicting_param_fails_the_whole_batch(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_param(run_id, "lr", "0.1")
        before = _snapshot(client, run_id)
        with pytest.raises(InvalidParameterError, match="lr"):
            client.log_batch(
                run_id,
                metrics=[Metric("m", 1.0, 1, 0)],
                params=[Param("new", "x"), Param("lr", "0.5")],
                tags=[RunTag("t", "v")],
            )
        assert _snapshot(client, run_id) == before

    def test_metric_history_and_latest(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_metric(run_id, "loss", 3.0, timestamp=100, step=0)
        client.log_metric(run_id, "loss", 1.0, timestamp=300, step=2)
        client.log_metric(run_id, "loss", 2.0, timestamp=200, step=1)
        # An older step logged last does not move the latest value back.
        client.log_metric(run_id, "loss", 9.0, timestamp=400, step=1)
        history = client.get_metric_history(run_id, "loss")
        assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.0), (1, 9.0), (2, 1.0)]
        assert all(m.key == "loss" for m in history)
        data = client.get_run(run_id).data
        assert data.metrics == {"loss": 1.0}
        # The latest point with its step and timestamp, in get_run and in search results.
        assert data.latest == {"loss": Metric("loss", 1.0, 300, 2)}
        (found,) = client.search_runs(["0"], f"attributes.run_id = '{run_id}'")
        assert found.data.latest == {"loss": Metric("loss", 1.0, 300, 2)}

    def test_latest_tie_breaks(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_metric(run_id, "m", 1.0, timestamp=10, step=5)
        client.log_metric(run_id, "m", 0.5, timestamp=20, step=5)  # same step, later time
        assert client.get_run(run_id).data.metrics["m"] == 0.5
        client.log_metric(run_id, "m", 0.7, timestamp=20, step=5)  # same step and time
        assert client.get_run(run_id).data.metrics["m"] == 0.7

    def test_default_step_and_timestamp(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_metric(run_id, "m", 2)
        (point,) = client.get_metric_history(run_id, "m")
        assert point.step == 0 and point.timestamp > 1_600_000_000_000
        assert point.value == 2.0 and isinstance(point.value, float)

    @pytest.mark.parametrize(
        ("value", "check"),
        [
            (math.nan, math.isnan),
            (math.inf, lambda v: v == math.inf),
            (-math.inf, lambda v: v == -math.inf),
            (1.7976931348623157e308, lambda v: v == 1.7976931348623157e308),
            (-0.0, lambda v: v == 0.0),
            (5e-324, lambda v: v == 5e-324),
        ],
        ids=["nan", "inf", "-inf", "max-float", "neg-zero", "denormal"],
    )
    def test_special_values_round_trip(
        self, client: TrackingClient, value: float, check: Callable[[float], bool]
    ) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_metric(run_id, "m", value, step=1)
        assert check(client.get_run(run_id).data.metrics["m"])
        (point,) = client.get_metric_history(run_id, "m")
        assert check(point.value)

    def test_int64_steps_and_timestamps(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_batch(
            run_id,
            metrics=[
                Metric("m", 1.0, INT64_MAX, INT64_MIN),
                Metric("m", 2.0, INT64_MIN, INT64_MAX),
            ],
        )
        history = client.get_metric_history(run_id, "m")
        assert [(m.step, m.timestamp) for m in history] == [
            (INT64_MIN, INT64_MAX),
            (INT64_MAX, INT64_MIN),
        ]
        assert client.get_run(run_id).data.metrics["m"] == 2.0

    def test_resent_point_is_not_duplicated(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        batch = [Metric("m", float(i), 1000 + i, i) for i in range(10)]
        client.log_batch(run_id, metrics=batch)
        client.log_batch(run_id, metrics=batch)
        assert len(client.get_metric_history(run_id, "m")) == 10

    def test_batch_with_stored_and_repeated_points(self, client: TrackingClient) -> None:
        """A batch that repeats stored points (a retried request) and holds one point
        twice stores each new point once, and the rest of the batch still lands."""
        run_id = client.create_run("0").info.run_id
        client.log_batch(run_id, metrics=[Metric("m", float(i), 1000 + i, i) for i in range(5)])
        batch = [Metric("m", float(i), 1000 + i, i) for i in (3, 4, 5, 6, 7, 7)]
        client.log_batch(run_id, metrics=batch, params=[Param("p", "1")], tags=[RunTag("t", "x")])
        assert [m.step for m in client.get_metric_history(run_id, "m")] == list(range(8))
        run = client.get_run(run_id)
        assert run.data.metrics["m"] == 7.0
        assert run.data.params["p"] == "1"
        assert run.data.tags["t"] == "x"

    def test_full_batch(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(f"m{i % 10}", float(i), 1000 + i, i) for i in range(1000)],
            params=[Param(f"p{i}", str(i)) for i in range(100)],
            tags=[RunTag(f"t{i}", str(i)) for i in range(100)],
        )
        run = client.get_run(run_id)
        assert len(run.data.params) == 100
        assert len([k for k in run.data.tags if k.startswith("t")]) == 100
        assert run.data.metrics["m3"] == 993.0
        assert len(client.get_metric_history(run_id, "m3")) == 100

    def test_metric_columns(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_metric_columns(
            run_id, ["a", "b", "a"], [0.5, math.nan, 2], [10, 11, 12], [0, 0, INT64_MAX]
        )
        history = client.get_metric_history(run_id, "a")
        assert history == [Metric("a", 0.5, 10, 0), Metric("a", 2.0, 12, INT64_MAX)]
        assert type(history[1].value) is float
        assert math.isnan(client.get_run(run_id).data.metrics["b"])
        client.log_metric_columns(run_id, [], [], [], [])
        assert len(client.get_metric_history(run_id, "a")) == 2

    def test_metric_columns_match_log_batch(self, client: TrackingClient) -> None:
        by_columns, by_batch = (client.create_run("0").info.run_id for _ in range(2))
        points = [Metric(f"m{i % 10}", i / 4, 1000 + i, i) for i in range(1000)]
        client.log_metric_columns(by_columns, *map(list, zip(*points, strict=True)))
        client.log_batch(by_batch, metrics=points)
        for key in ("m0", "m9"):
            assert client.get_metric_history(by_columns, key) == client.get_metric_history(
                by_batch, key
            )
        columns, batch = client.get_run(by_columns), client.get_run(by_batch)
        assert columns.data.latest == batch.data.latest

    def test_history_of_unknown_key_is_empty(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        assert client.get_metric_history(run_id, "never") == []

    def test_history_of_missing_run(self, client: TrackingClient) -> None:
        with pytest.raises(RunNotFoundError):
            client.get_metric_history("c" * 32, "m")

    def test_history_pages(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_batch(run_id, metrics=[Metric("m", float(i), i, i) for i in range(25)])
        store = client.store
        seen: list[int] = []
        page = store.get_metric_history(run_id, "m", max_results=10)
        while True:
            seen.extend(m.step for m in page)
            if page.token is None:
                break
            page = store.get_metric_history(run_id, "m", max_results=10, page_token=page.token)
        assert seen == list(range(25))

    def test_tags(self, client: TrackingClient) -> None:
        run_id = client.create_run("0", run_name="r").info.run_id
        client.set_tag(run_id, "stage", "dev")
        client.set_tag(run_id, "stage", "prod")
        client.set_tag(run_id, "n", 3)
        assert {k: v for k, v in client.get_run(run_id).data.tags.items()} == {
            "stage": "prod",
            "n": "3",
            "mlflow.runName": "r",
        }
        client.delete_tag(run_id, "stage")
        assert "stage" not in client.get_run(run_id).data.tags
        with pytest.raises(NotFoundError, match="stage"):
            client.delete_tag(run_id, "stage")

    def test_run_name_tag_renames(self, client: TrackingClient) -> None:
        run_id = client.create_run("0", run_name="a").info.run_id
        client.set_tag(run_id, "mlflow.runName", "b")
        assert client.get_run(run_id).info.run_name == "b"

    def test_writes_to_missing_run(self, client: TrackingClient) -> None:
        with pytest.raises(RunNotFoundError):
            client.log_metric("d" * 32, "m", 1.0)
        with pytest.raises(RunNotFoundError):
            client.log_param("d" * 32, "p", 1)
        with pytest.raises(RunNotFoundError):
            client.set_tag("d" * 32, "t", 1)


_BAD_CALLS: list[tuple[str, Callable[[TrackingClient, str], object], str]] = [
    ("key-too-long", lambda c, r: c.log_metric(r, "k" * 251, 1.0), "250"),
    ("key-empty", lambda c, r: c.log_param(r, "", "v"), "empty"),
    ("key-bad-char", lambda c, r: c.set_tag(r, "a,b", "v"), "may only contain"),
    ("key-dotdot", lambda c, r: c.log_metric(r, "a/../b", 1.0), ".."),
    ("key-absolute", lambda c, r: c.log_param(r, "/abs", "v"), "resolve to"),
    ("key-not-str", lambda c, r: c.log_metric(r, 5, 1.0), "string"),  # type: ignore[arg-type]
    ("param-value-too-long", lambda c, r: c.log_param(r, "p", "x" * 6001), "6000"),
    ("tag-value-too-long", lambda c, r: c.set_tag(r, "t", "x" * 5001), "5000"),
    ("metric-bool", lambda c, r: c.log_metric(r, "m", True), "number"),
    ("metric-str", lambda c, r: c.log_metric(r, "m", "1.0"), "number"),  # type: ignore[arg-type]
    ("metric-none", lambda c, r: c.log_metric(r, "m", None), "number"),  # type: ignore[arg-type]
    ("metric-huge-int", lambda c, r: c.log_metric(r, "m", 10**400), "too large"),
    ("step-float", lambda c, r: c.log_metric(r, "m", 1.0, step=1.5), "step"),  # type: ignore[arg-type]
    ("step-overflow", lambda c, r: c.log_metric(r, "m", 1.0, step=2**63), "64-bit"),
    (
        "timestamp-underflow",
        lambda c, r: c.log_metric(r, "m", 1.0, timestamp=-(2**63) - 1),
        "64-bit",
    ),
    ("timestamp-bool", lambda c, r: c.log_metric(r, "m", 1.0, timestamp=True), "timestamp"),
    (
        "batch-1001-metrics",
        lambda c, r: c.log_batch(r, metrics=[Metric("m", 1.0, 1, i) for i in range(1001)]),
        "1000",
    ),
    (
        "batch-101-params",
        lambda c, r: c.log_batch(r, params=[Param(f"p{i}", "v") for i in range(101)]),
        "100",
    ),
    (
        "batch-101-tags",
        lambda c, r: c.log_batch(r, tags=[RunTag(f"t{i}", "v") for i in range(101)]),
        "100",
    ),
    (
        "batch-duplicate-param",
        lambda c, r: c.log_batch(r, params=[Param("p", "1"), Param("p", "2")]),
        "twice",
    ),
    ("batch-bad-item", lambda c, r: c.log_batch(r, metrics=["oops"]), "Metric"),  # type: ignore[list-item]
    (
        "batch-one-bad-metric",
        lambda c, r: c.log_batch(r, metrics=[Metric("ok", 1.0, 1, 0), Metric("bad", "x", 1, 0)]),  # type: ignore[arg-type]
        "number",
    ),
    (
        "columns-unequal",
        lambda c, r: c.log_metric_columns(r, ["m", "m"], [1.0], [1, 2], [0, 1]),
        "equally long",
    ),
    (
        "columns-1001",
        lambda c, r: c.log_metric_columns(r, ["m"] * 1001, [1.0] * 1001, [1] * 1001, range(1001)),
        "1000",
    ),
    (
        "columns-bad-key",
        lambda c, r: c.log_metric_columns(r, ["ok", "a,b"], [1.0, 2.0], [1, 1], [0, 0]),
        "may only contain",
    ),
    (
        "columns-bad-value",
        lambda c, r: c.log_metric_columns(r, ["ok", "bad"], [1.0, "x"], [1, 1], [0, 0]),  # type: ignore[list-item]
        "number",
    ),
    (
        "columns-step-overflow",
        lambda c, r: c.log_metric_columns(r, ["m"], [1.0], [1], [2**63]),
        "64-bit",
    ),
    (
        "columns-timestamp-bool",
        lambda c, r: c.log_metric_columns(r, ["m"], [1.0], [True], [0]),
        "timestamp",
    ),
    ("run-name-too-long", lambda c, r: c.update_run(r, name="n" * 251), "250"),
    ("bad-run-id", lambda c, r: c.log_metric("not a run id!", "m", 1.0), "run_id"),
]


class ValidationSuite:
    """Every limit and bad input: a clear error, and nothing written."""

    @pytest.mark.parametrize(
        ("call", "message"), [(c, m) for _, c, m in _BAD_CALLS], ids=[i for i, _, _ in _BAD_CALLS]
    )
    def test_refused_and_nothing_written(
        self,
        client: TrackingClient,
        call: Callable[[TrackingClient, str], object],
        message: str,
    ) -> None:
        run_id = client.create_run("0", run_name="v").info.run_id
        client.log_param(run_id, "seed", 1)
        client.log_metric(run_id, "base", 1.0, step=0)
        before = _snapshot(client, run_id)
        with pytest.raises(InvalidParameterError, match=message):
            call(client, run_id)
        assert _snapshot(client, run_id) == before

    def test_limits_are_inclusive(self, client: TrackingClient) -> None:
        run_id = client.create_run("0", run_name="r" * 250).info.run_id
        client.log_param(run_id, "k" * 250, "x" * 6000)
        client.set_tag(run_id, "t", "y" * 5000)
        run = client.get_run(run_id)
        assert run.data.params["k" * 250] == "x" * 6000
        assert run.data.tags["t"] == "y" * 5000
        assert run.info.run_name == "r" * 250

    def test_allowed_key_characters(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        key = "val/acc-top.5 score_x"
        client.log_metric(run_id, key, 0.5)
        assert client.get_run(run_id).data.metrics == {key: 0.5}

    def test_unicode_values(self, client: TrackingClient) -> None:
        run_id = client.create_run("0").info.run_id
        client.log_param(run_id, "name", "na\u00efve \u2013 \u65e5\u672c\u8a9e \U0001f680")
        assert (
            client.get_run(run_id).data.params["name"]
            == "na\u00efve \u2013 \u65e5\u672c\u8a9e \U0001f680"
        )
