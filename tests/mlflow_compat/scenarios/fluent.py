"""The fluent API: ``mlflow.start_run`` with nested runs, ``log_params``/``log_metrics``,
``mlflow.search_runs`` (a pandas DataFrame, and ``output_format="list"``), a run
that raises, ``active_run``/``last_active_run``.
"""

from __future__ import annotations

import math
from typing import Any

import mlflow
from _common import Scenario
from mlflow import MlflowClient

scenario = Scenario()
client = MlflowClient()
TRIALS = [("child-0", 0.01, 0.71), ("child-1", 0.1, 0.93), ("child-2", 0.3, 0.64)]


@scenario.step("sweep")
def sweep() -> dict[str, Any]:
    experiment = mlflow.set_experiment(scenario.name("fluent"))
    seen: dict[str, Any] = {"experiment_id": experiment.experiment_id, "children": {}}
    with mlflow.start_run(run_name="parent") as parent:
        seen["parent"] = parent.info.run_id
        mlflow.log_params({"model": "gbm", "depth": 3})
        mlflow.log_metrics({"auc": 0.80, "loss": 0.20}, step=0)
        mlflow.log_metrics({"auc": 0.85, "loss": 0.15}, step=1)
        mlflow.set_tags({"stage": "sweep", "owner": "compat"})
        for name, lr, acc in TRIALS:
            with mlflow.start_run(run_name=name, nested=True) as child:
                seen["children"][name] = child.info.run_id
                mlflow.log_param("lr", lr)
                for epoch in range(3):
                    mlflow.log_metric("acc", round(acc - (2 - epoch) * 0.1, 4), step=epoch)
                seen.setdefault("active_in_child", []).append(
                    mlflow.active_run().info.run_id == child.info.run_id
                )
                if name == "child-0":
                    with mlflow.start_run(run_name="grandchild", nested=True) as grandchild:
                        seen["grandchild"] = grandchild.info.run_id
                        mlflow.log_metric("depth", 2)
        seen["active_after_children"] = mlflow.active_run().info.run_id
    seen["active_after_parent"] = mlflow.active_run() is None
    seen["last_active_run"] = mlflow.last_active_run().info.run_id
    return seen


scenario.require(sweep)


@scenario.step("runs")
def runs() -> dict[str, Any]:
    ids = {"parent": sweep["parent"], "grandchild": sweep["grandchild"], **sweep["children"]}
    out = {}
    for name, rid in ids.items():
        run = client.get_run(rid)
        out[name] = {
            "status": run.info.status,
            "end_time_set": run.info.end_time is not None,
            "run_name": run.info.run_name,
            "parent_tag": run.data.tags.get("mlflow.parentRunId"),
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "user_tag": run.data.tags.get("mlflow.user"),
            "source_type": run.data.tags.get("mlflow.source.type"),
            "stage": run.data.tags.get("stage"),
        }
    return out


@scenario.step("failed_run")
def failed_run() -> dict[str, Any]:
    try:
        with mlflow.start_run(run_name="boom") as run:
            mlflow.log_metric("before", 1.0)
            raise ValueError("boom")
    except ValueError:
        pass
    got = client.get_run(run.info.run_id)
    return {"run_id": run.info.run_id, "status": got.info.status, "metrics": dict(got.data.metrics)}


@scenario.step("resume")
def resume() -> dict[str, Any]:
    """``start_run(run_id=...)`` reopens a finished run; leaving it ends it again."""
    with mlflow.start_run(run_id=sweep["parent"]):
        mlflow.log_metric("auc", 0.9, step=2)
        during = client.get_run(sweep["parent"]).info.status
    after = client.get_run(sweep["parent"])
    return {
        "during": during,
        "after": after.info.status,
        "auc": after.data.metrics["auc"],
        "auc_steps": [m.step for m in client.get_metric_history(sweep["parent"], "auc")],
    }


@scenario.step("async_logging")
def async_logging() -> dict[str, Any]:
    """MLflow's asynchronous logging (batched log-batch calls from a background thread)."""
    with mlflow.start_run(run_name="async") as run:
        for step in range(50):
            mlflow.log_metric("a", step * 2.0, step=step, synchronous=False)
        mlflow.log_params({"x": "1", "y": "2"}, synchronous=False)
        mlflow.set_tag("mode", "async", synchronous=False)
    got = client.get_run(run.info.run_id)
    history = client.get_metric_history(run.info.run_id, "a")
    return {
        "status": got.info.status,
        "params": dict(got.data.params),
        "tag": got.data.tags.get("mode"),
        "points": [[m.step, m.value] for m in history],
    }


@scenario.step("search_dataframe")
def search_dataframe() -> dict[str, Any]:
    df = mlflow.search_runs(
        experiment_names=[scenario.name("fluent")],
        filter_string=f"tags.mlflow.parentRunId = '{sweep['parent']}' and metrics.acc > 0.5",
        order_by=["metrics.acc DESC"],
    )

    def column(name: str) -> list[Any]:
        return [None if isinstance(v, float) and math.isnan(v) else v for v in df[name].tolist()]

    return {
        "rows": len(df),
        "run_names": column("tags.mlflow.runName"),
        "run_ids": column("run_id"),
        "acc": column("metrics.acc"),
        "lr": column("params.lr"),
        "status": column("status"),
        "parent": column("tags.mlflow.parentRunId"),
        "has_columns": sorted(
            c for c in ("experiment_id", "start_time", "end_time", "artifact_uri") if c in df
        ),
    }


@scenario.step("search_all_dataframe")
def search_all_dataframe() -> dict[str, Any]:
    df = mlflow.search_runs(
        experiment_ids=[sweep["experiment_id"]], order_by=["attributes.start_time ASC"]
    )
    return {"rows": len(df), "run_names": df["tags.mlflow.runName"].tolist()}


@scenario.step("search_list")
def search_list() -> list[str]:
    runs = mlflow.search_runs(
        experiment_names=[scenario.name("fluent")],
        filter_string="params.lr = '0.1'",
        output_format="list",
    )
    return [r.info.run_name for r in runs]


scenario.finish()
