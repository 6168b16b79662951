"""Runs through ``MlflowClient``: lifecycle, logging, history, search.

Create, get, update (status, name), set_terminated, delete, restore; log a
metric / param, set / delete a tag, log a batch; metric history (order,
values, NaN and infinities, a long series); search with a filter and an
order, pages, view types and attribute filters.
"""

from __future__ import annotations

import math
from typing import Any

from _common import Scenario, error_of
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag, ViewType

scenario = Scenario()
client = MlflowClient()
T0 = 1_700_000_000_000


def describe(run: Run) -> dict[str, Any]:
    info = run.info
    return {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "run_name": info.run_name,
        "status": info.status,
        "start_time": info.start_time,
        "end_time": info.end_time,
        "lifecycle_stage": info.lifecycle_stage,
        "user_id": info.user_id,
        "artifact_uri": info.artifact_uri,
        "params": dict(run.data.params),
        "metrics": {k: _num(v) for k, v in run.data.metrics.items()},
        "tags": dict(run.data.tags),
    }


def _num(value: float) -> float | str:
    """JSON has no NaN or infinities: spell them."""
    return repr(value) if math.isnan(value) or math.isinf(value) else value


@scenario.step("experiment")
def experiment_id() -> str:
    return client.create_experiment(scenario.name("runs"))


@scenario.step("create")
def created() -> dict[str, Any]:
    run = client.create_run(experiment_id, run_name="first", tags={"team": "ml"}, start_time=T0)
    return describe(run)


scenario.require(experiment_id, created)
run_id = created["run_id"]


@scenario.step("get_fresh")
def get_fresh() -> dict[str, Any]:
    return describe(client.get_run(run_id))


@scenario.step("log")
def log() -> dict[str, Any]:
    client.log_param(run_id, "lr", 0.01)
    client.log_param(run_id, "opt", "adam")
    client.log_param(run_id, "lr", 0.01)  # the same value again is fine
    for step, (value, ts) in enumerate([(0.5, 100), (0.4, 200), (0.3, 300)]):
        client.log_metric(run_id, "loss", value, timestamp=T0 + ts, step=step)
    # An older step logged last: the run's latest value stays the one of the highest step.
    client.log_metric(run_id, "loss", 9.0, timestamp=T0 + 400, step=1)
    client.log_metric(run_id, "nan", float("nan"), timestamp=T0, step=0)
    client.log_metric(run_id, "pinf", float("inf"), timestamp=T0, step=0)
    client.log_metric(run_id, "ninf", float("-inf"), timestamp=T0, step=0)
    client.log_metric(run_id, "neg", -1.5e-9, timestamp=T0, step=-3)
    client.set_tag(run_id, "note", "ünïcode ✓")
    client.set_tag(run_id, "gone", "soon")
    client.delete_tag(run_id, "gone")
    client.log_batch(
        run_id,
        metrics=[Metric("acc", 0.1 * i, T0 + i, i) for i in range(5)],
        params=[Param("p1", "v1"), Param("p2", "x" * 500)],
        tags=[RunTag("batch", "yes")],
    )
    return describe(client.get_run(run_id))


@scenario.step("history")
def history() -> dict[str, Any]:
    def points(key: str) -> list[list[Any]]:
        return [
            [m.step, _num(m.value), m.timestamp] for m in client.get_metric_history(run_id, key)
        ]

    return {key: points(key) for key in ("loss", "acc", "nan", "pinf", "ninf", "missing")}


@scenario.step("long_history")
def long_history() -> dict[str, Any]:
    """Longer than one page of a paginated history (MLflow pages at 25,000 points)."""
    rid = client.create_run(experiment_id, run_name="long").info.run_id
    n = 30_000
    for first in range(0, n, 1000):
        client.log_batch(
            rid,
            metrics=[Metric("curve", s / n, T0 + s, s) for s in range(first, first + 1000)],
        )
    hist = client.get_metric_history(rid, "curve")
    steps = [m.step for m in hist]
    return {
        "run_id": rid,
        "count": len(hist),
        "steps_in_order": steps == list(range(n)),
        "distinct_steps": len(set(steps)),
        "last": [hist[-1].step, hist[-1].value] if hist else None,
        "latest": client.get_run(rid).data.metrics.get("curve"),
    }


@scenario.step("update")
def update() -> dict[str, Any]:
    client.update_run(run_id, status="FINISHED", name="first-renamed")
    return describe(client.get_run(run_id))


@scenario.step("set_terminated")
def set_terminated() -> dict[str, Any]:
    rid = client.create_run(experiment_id, run_name="failing").info.run_id
    client.set_terminated(rid, status="FAILED", end_time=T0 + 5000)
    return describe(client.get_run(rid))


@scenario.step("search_runs")
def search_runs() -> dict[str, Any]:
    """Runs whose acc and opt are known, so the expected order is known too."""
    exp = client.create_experiment(scenario.name("search"))
    table = [
        ("r0", "adam", 0.91),
        ("r1", "sgd", 0.95),
        ("r2", "adam", 0.42),
        ("r3", "adam", 0.77),
        ("r4", "rmsprop", 0.60),
        ("r5", "adam", 0.51),
        ("r6", "adam", 0.99),
    ]
    ids = {}
    for i, (name, opt, acc) in enumerate(table):
        rid = client.create_run(exp, run_name=name, start_time=T0 + i * 1000).info.run_id
        ids[name] = rid
        client.log_batch(
            rid,
            metrics=[Metric("acc", acc, T0, 0)],
            params=[Param("opt", opt), Param("idx", str(i))],
            tags=[RunTag("parity", "even" if i % 2 == 0 else "odd")],
        )
        client.set_terminated(rid, status="FINISHED" if name != "r3" else "FAILED")
    filt = "metrics.acc > 0.5 and params.opt = 'adam'"

    def names(runs: list[Run]) -> list[str]:
        return [r.info.run_name for r in runs]

    pages: list[list[str]] = []
    token = None
    while len(pages) < 5:  # 4 matching runs, 2 per page: 2 pages (3 if the last is empty)
        page = client.search_runs(
            [exp], filt, order_by=["metrics.acc DESC"], max_results=2, page_token=token
        )
        pages.append(names(page))
        token = page.token
        if not token:
            break
    client.delete_run(ids["r0"])
    after_delete = {
        "active": names(client.search_runs([exp], filt, order_by=["metrics.acc DESC"])),
        "deleted": names(client.search_runs([exp], "", run_view_type=ViewType.DELETED_ONLY)),
        "all": names(
            client.search_runs(
                [exp], filt, run_view_type=ViewType.ALL, order_by=["metrics.acc DESC"]
            )
        ),
        "lifecycle_stage": client.get_run(ids["r0"]).info.lifecycle_stage,
    }
    client.restore_run(ids["r0"])
    return {
        "ids": ids,
        "filtered": names(client.search_runs([exp], filt, order_by=["metrics.acc DESC"])),
        "first_row": describe(
            client.search_runs([exp], filt, order_by=["metrics.acc DESC"], max_results=1)[0]
        ),
        "pages": pages,
        "after_delete": after_delete,
        "restored_stage": client.get_run(ids["r0"]).info.lifecycle_stage,
        "after_restore": names(client.search_runs([exp], filt, order_by=["metrics.acc DESC"])),
        "by_status": names(
            client.search_runs([exp], "attributes.status = 'FAILED'", order_by=["start_time ASC"])
        ),
        "by_tag_ordered_by_param": names(
            client.search_runs([exp], "tags.parity = 'odd'", order_by=["params.idx DESC"])
        ),
        "by_run_name": names(client.search_runs([exp], "attributes.run_name = 'r4'")),
        "start_time_asc": names(client.search_runs([exp], "", order_by=["start_time ASC"])),
        "two_experiments": len(client.search_runs([exp, experiment_id], "")),
    }


@scenario.step("delete_restore")
def delete_restore() -> dict[str, Any]:
    rid = client.create_run(experiment_id, run_name="doomed").info.run_id
    client.delete_run(rid)
    deleted = client.get_run(rid).info.lifecycle_stage
    log_to_deleted = error_of(lambda: client.log_metric(rid, "x", 1.0))
    client.restore_run(rid)
    return {
        "deleted": deleted,
        "log_to_deleted": log_to_deleted,
        "restored": client.get_run(rid).info.lifecycle_stage,
    }


scenario.finish()
