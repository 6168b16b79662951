"""The web UI's run table reads (tracking.store.sql.browse) on SQLite, PostgreSQL and MariaDB:
keyset pages that add up to the whole ordering, the run tree, filters that keep
matching children under their parents, and clear errors for bad input."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from tracking import TrackingClient
from tracking.entities import Metric, Param, RunStatus, RunTag
from tracking.errors import InvalidParameterError, SearchSyntaxError
from tracking.store.sql.browse import (
    MAX_PAGE_ROWS,
    Columns,
    ancestors,
    available_keys,
    browse_runs,
    count_runs,
    experiment_summaries,
    parse_sort,
)
from tracking.store.sql.store import SqlTrackingStore

ROOTS = 23


@pytest.fixture
def filled(db_url: str) -> Iterator[tuple[SqlTrackingStore, str, dict[str, str]]]:
    """23 top-level runs (metric ``score`` on most, NaN on one, param ``lr``, tag ``team``),
    and under ``root-00`` two children, under the first child two grandchildren."""
    store = SqlTrackingStore(db_url)
    client = TrackingClient.from_store(store, db_url)
    eid = client.create_experiment("browse")
    names: dict[str, str] = {}
    for i in range(ROOTS):
        run = client.create_run(eid, run_name=f"root-{i:02d}", start_time=1_000 + i // 2)
        rid = run.info.run_id
        names[f"root-{i:02d}"] = rid
        metrics = []
        if i % 5 != 4:  # every fifth run lacks the metric
            metrics.append(Metric("score", float(i % 7), 0, 0))
        if i == 13:
            metrics = [Metric("score", math.nan, 0, 0)]
        client.log_batch(
            rid,
            metrics=metrics,
            params=[Param("lr", str(i % 4))] if i % 3 else [],
            tags=[RunTag("team", "ab"[i % 2])],
        )
        if i % 2:
            client.set_terminated(rid, "FINISHED", end_time=2_000 + i)
    parent = names["root-00"]
    for j in range(2):
        child = client.create_run(eid, run_name=f"child-{j}", parent_run_id=parent)
        names[f"child-{j}"] = child.info.run_id
        if j == 1:
            client.set_terminated(child.info.run_id, "FAILED")
    for k in range(2):
        grand = client.create_run(eid, run_name=f"grand-{k}", parent_run_id=names["child-0"])
        names[f"grand-{k}"] = grand.info.run_id
        client.log_metric(grand.info.run_id, "score", 100.0 + k)
    yield store, eid, names
    store.close()


def _walk(store: SqlTrackingStore, eid: str, limit: int, **kwargs: object) -> list[str]:
    names: list[str] = []
    cursor = None
    for _ in range(100):
        page = browse_runs(store, [eid], cursor=cursor, limit=limit, **kwargs)  # type: ignore[arg-type]
        names += [r.name for r in page.rows]
        cursor = page.cursor
        if cursor is None:
            return names
    raise AssertionError("paging did not end")


SORTS = [
    "attributes.start_time DESC",
    "attributes.start_time ASC",
    "attributes.end_time DESC",
    "attributes.end_time ASC",
    "attributes.run_name ASC",
    "attributes.status DESC",
    "metrics.`score` DESC",
    "metrics.`score` ASC",
    "params.`lr` ASC",
    "tags.`team` DESC",
]


class TestKeysetPages:
    @pytest.mark.parametrize("sort", SORTS, ids=SORTS)
    @pytest.mark.parametrize("limit", [1, 4, 50], ids=["by1", "by4", "by50"])
    def test_pages_add_up_to_the_whole_ordering(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]], sort: str, limit: int
    ) -> None:
        store, eid, _ = filled
        whole = browse_runs(store, [eid], sort=parse_sort(sort), limit=MAX_PAGE_ROWS, count=True)
        assert whole.total == ROOTS and whole.cursor is None
        walked = _walk(store, eid, limit, sort=parse_sort(sort))
        assert walked == [r.name for r in whole.rows]
        assert len(set(walked)) == ROOTS

    def test_metric_order_puts_missing_and_nan_last_both_ways(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]]
    ) -> None:
        store, eid, _ = filled
        for direction in ("DESC", "ASC"):
            rows = browse_runs(
                store,
                [eid],
                sort=parse_sort(f"metrics.score {direction}"),
                limit=MAX_PAGE_ROWS,
                columns=Columns(metrics=("score",)),
            ).rows
            values = [r.metrics.get("score") for r in rows]
            present = [v for v in values if v is not None and not math.isnan(v)]
            assert values[: len(present)] == present
            assert present == sorted(present, reverse=direction == "DESC")
            tail = {r.name for r in rows[len(present) :]}
            assert tail == {"root-04", "root-09", "root-13", "root-14", "root-19"}

    def test_the_query_pages_by_key_not_offset(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]]
    ) -> None:
        store, eid, _ = filled
        statements: list[str] = []
        offsets: list[object] = []
        from sqlalchemy import event

        def record(
            conn: object, cursor: object, statement: str, parameters: object, *args: object
        ) -> None:
            statements.append(statement.upper())
            if "OFFSET" in statement.upper():  # SQLite's dialect always writes one: it must be 0
                offsets.append(list(parameters)[-1])  # type: ignore[call-overload]

        event.listen(store.engine, "before_cursor_execute", record)
        try:
            first = browse_runs(store, [eid], sort=parse_sort("metrics.score DESC"), limit=5)
            browse_runs(
                store, [eid], sort=parse_sort("metrics.score DESC"), limit=5, cursor=first.cursor
            )
        finally:
            event.remove(store.engine, "before_cursor_execute", record)
        assert statements and all(o == 0 for o in offsets)
        assert any(
            "(SORT_KEY.VALUE, RUNS.RUN_UUID) <" in s.replace('"', "").replace("`", "")
            for s in statements
        )


class TestTree:
    def test_top_level_rows_count_children_and_failed_children(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]]
    ) -> None:
        store, eid, _ = filled
        rows = {r.name: r for r in browse_runs(store, [eid], limit=100).rows}
        assert set(rows) == {f"root-{i:02d}" for i in range(ROOTS)}
        assert (rows["root-00"].children, rows["root-00"].failed_children) == (2, 1)
        assert rows["root-01"].children == 0

    def test_levels_expand_one_at_a_time_to_any_depth(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]]
    ) -> None:
        store, eid, names = filled
        level1 = browse_runs(store, [eid], parent_run_id=names["root-00"]).rows
        assert sorted(r.name for r in level1) == ["child-0", "child-1"]
        assert {r.name: r.children for r in level1} == {"child-0": 2, "child-1": 0}
        level2 = browse_runs(store, [eid], parent_run_id=names["child-0"]).rows
        assert sorted(r.name for r in level2) == ["grand-0", "grand-1"]
        assert [n for n, *_ in ancestors(store, names["grand-1"])] == [
            names["root-00"],
            names["child-0"],
        ]

    def test_a_filter_keeps_matching_grandchildren_under_their_ancestors(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]]
    ) -> None:
        store, eid, _ = filled
        page = browse_runs(store, [eid], filter_string="metrics.score >= 100", limit=10, count=True)
        assert page.total == 2
        assert count_runs(store, [eid], filter_string="metrics.score >= 100") == 2
        assert count_runs(store, [eid]) == ROOTS
        assert count_runs(store, [eid], parent_run_id=page.rows[1].run_id) == 2
        shown = [(r.name, r.depth, r.context) for r in page.rows]
        assert shown[:2] == [("root-00", 0, True), ("child-0", 1, True)]
        assert sorted(shown[2:]) == [("grand-0", 2, False), ("grand-1", 2, False)]

    def test_a_filter_with_or_and_parentheses(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]]
    ) -> None:
        store, eid, _ = filled
        page = browse_runs(
            store,
            [eid],
            filter_string="(metrics.score = 6 or metrics.score = 101) "
            "and attributes.status != 'KILLED'",
            limit=50,
        )
        matches = sorted(r.name for r in page.rows if not r.context)
        assert matches == ["grand-1", "root-06", "root-20"]


class TestCounts:
    def test_the_count_stops_past_the_cap(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from tracking.store.sql import browse

        store, eid, _ = filled
        monkeypatch.setattr(browse, "COUNT_CAP", 5)
        assert count_runs(store, [eid]) == 6
        assert count_runs(store, [eid], filter_string="metrics.score >= 100") == 2


class TestColumnsAndSummaries:
    def test_only_chosen_keys_are_read(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]]
    ) -> None:
        store, eid, _ = filled
        rows = browse_runs(store, [eid], limit=100, columns=Columns(tags=("team",))).rows
        assert all(r.params == {} and r.metrics == {} for r in rows)
        assert {r.tags["team"] for r in rows} == {"a", "b"}

    def test_keys_and_summaries(self, filled: tuple[SqlTrackingStore, str, dict[str, str]]) -> None:
        store, eid, _ = filled
        keys = available_keys(store, [eid])
        assert keys["params"] == ["lr"] and keys["metrics"] == ["score"]
        assert "team" in keys["tags"]
        summary = experiment_summaries(store, [eid])[eid]
        assert summary.runs == ROOTS + 4
        assert summary.last_activity is not None


class TestBadInput:
    def test_a_bad_filter_says_where(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]]
    ) -> None:
        store, eid, _ = filled
        with pytest.raises(SearchSyntaxError, match=r"(?s)column 16.*\^"):
            browse_runs(store, [eid], filter_string="metrics.score >")

    @pytest.mark.parametrize(
        "cursor", ["garbage!", "WzIsMSwieCJd", "e30"], ids=["b64", "phase", "obj"]
    )
    def test_a_bad_cursor(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]], cursor: str
    ) -> None:
        store, eid, _ = filled
        with pytest.raises(InvalidParameterError, match="cursor of a previous page"):
            browse_runs(store, [eid], cursor=cursor)

    @pytest.mark.parametrize("limit", [0, MAX_PAGE_ROWS + 1], ids=["zero", "over"])
    def test_page_size_limits(
        self, filled: tuple[SqlTrackingStore, str, dict[str, str]], limit: int
    ) -> None:
        store, eid, _ = filled
        with pytest.raises(InvalidParameterError, match=f"1 to {MAX_PAGE_ROWS} rows"):
            browse_runs(store, [eid], limit=limit)

    def test_a_bad_sort_key(self, filled: tuple[SqlTrackingStore, str, dict[str, str]]) -> None:
        with pytest.raises(SearchSyntaxError, match="unknown attribute"):
            parse_sort("attributes.nope DESC")


def test_statuses_survive(filled: tuple[SqlTrackingStore, str, dict[str, str]]) -> None:
    store, eid, names = filled
    rows = {r.name: r for r in browse_runs(store, [eid], parent_run_id=names["root-00"]).rows}
    assert rows["child-1"].status is RunStatus.FAILED


class TestPipelines:
    """The pipeline view's reads, on runs PipelineTracker wrote."""

    @pytest.fixture
    def pipelines(self, db_url: str) -> Iterator[tuple[SqlTrackingStore, TrackingClient]]:
        store = SqlTrackingStore(db_url)
        yield store, TrackingClient.from_store(store, db_url)
        store.close()

    def _day(self, client: TrackingClient, day: int, outside: str) -> tuple[str, list[str]]:
        from tracking.pipelines import PipelineRun, PipelineTracker, Step

        tracker = PipelineTracker(client, "browse-pipelines")
        pipeline = PipelineRun("airflow", "retrain", f"scheduled__2026-11-0{day}")
        tracker.pipeline_started(pipeline, tags={"airflow.dag_id": "retrain"})
        steps = []
        for task in ("extract", "train"):
            step = Step(pipeline, task)
            tracker.step_running(step, tags={"airflow.task_id": task})
            tracker.step_ended(step, RunStatus.FINISHED)
            steps.append(step.run_id)
        client.record_lineage(steps[1], steps[0], "data.csv", "0" * 64)
        client.record_lineage(steps[0], outside, "raw.csv", "0" * 64)
        client.log_metric(steps[1], "acc", 0.5 + day / 10)
        tracker.pipeline_ended(pipeline, RunStatus.FINISHED)
        return pipeline.run_id, steps

    def test_steps_edges_history_and_pipelines(
        self, pipelines: tuple[SqlTrackingStore, TrackingClient]
    ) -> None:
        from tracking.store.sql.browse import (
            experiment_pipelines,
            is_pipeline_run,
            latest_metrics,
            pipeline_runs,
            pipeline_steps,
        )

        store, client = pipelines
        eid = client.create_experiment("browse-pipelines")
        outside = client.create_run(eid, run_name="source").info.run_id
        first, first_steps = self._day(client, 1, outside)
        second, second_steps = self._day(client, 2, outside)
        sweep = client.create_run(eid, run_name="sweep").info.run_id
        client.create_run(eid, run_name="trial", parent_run_id=sweep)
        assert is_pipeline_run(store, first) and is_pipeline_run(store, second)
        assert not is_pipeline_run(store, sweep)
        assert not is_pipeline_run(store, first_steps[0])
        found = pipeline_steps(store, second)
        assert [s.name for s in found.steps] == ["extract", "train"]
        assert found.total == 2
        assert found.edges == [(second_steps[0], second_steps[1], "data.csv")]
        assert found.external == 1  # raw.csv, from a run outside the pipeline run
        assert found.steps[1].tags["airflow.task_id"] == "train"
        runs, steps = pipeline_runs(store, eid, "airflow", "retrain")
        assert [r.run_id for r in runs] == [second, first]  # newest first
        assert [s.run_id for s in steps[first]] == first_steps
        values = latest_metrics(store, [first_steps[1], second_steps[1]])
        assert values == {first_steps[1]: {"acc": 0.6}, second_steps[1]: {"acc": 0.7}}
        summary = experiment_pipelines(store, eid)
        assert [(p.orchestrator, p.pipeline_id, p.runs) for p in summary] == [
            ("airflow", "retrain", 2)
        ]
        with pytest.raises(InvalidParameterError, match="expected one of airflow, prefect"):
            pipeline_runs(store, eid, "luigi", "retrain")

    def test_run_id_prefixes(self, pipelines: tuple[SqlTrackingStore, TrackingClient]) -> None:
        from tracking.store.sql.browse import runs_with_prefix

        store, client = pipelines
        eid = client.create_experiment("browse-prefixes")
        a = client.create_run(eid, run_id="abcd" + "0" * 28).info.run_id
        b = client.create_run(eid, run_id="abcd" + "1" * 28).info.run_id
        assert runs_with_prefix(store, "abcd0") == [a]
        assert runs_with_prefix(store, "abcd") == [a, b]
        assert runs_with_prefix(store, "abc%") == []  # a wildcard is a character here
        with pytest.raises(InvalidParameterError, match="prefix"):
            runs_with_prefix(store, "")
