"""Error mapping: what ``MlflowException`` the stock client raises for each failure.

Each entry records the exception type, MLflow ``error_code`` and message (or
that nothing was raised).
"""

from __future__ import annotations

from typing import Any

from _common import Scenario, error_of
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

scenario = Scenario()
client = MlflowClient()
MISSING_RUN = "0123456789abcdef0123456789abcdef"
MISSING_EXPERIMENT = "987654321"


@scenario.step("setup")
def setup() -> dict[str, str]:
    exp = client.create_experiment(scenario.name("errors"))
    run = client.create_run(exp, run_name="e")
    client.log_param(run.info.run_id, "lr", "0.1")
    client.create_experiment(scenario.name("taken"))
    deleted = client.create_run(exp, run_name="deleted").info.run_id
    client.delete_run(deleted)
    return {"experiment_id": exp, "run_id": run.info.run_id, "deleted_run_id": deleted}


scenario.require(setup)
exp, run_id, deleted = setup["experiment_id"], setup["run_id"], setup["deleted_run_id"]


@scenario.step("errors")
def errors() -> dict[str, Any]:
    return {
        "get_run_missing": error_of(lambda: client.get_run(MISSING_RUN)),
        "get_experiment_missing": error_of(lambda: client.get_experiment(MISSING_EXPERIMENT)),
        "delete_run_missing": error_of(lambda: client.delete_run(MISSING_RUN)),
        "log_metric_missing_run": error_of(lambda: client.log_metric(MISSING_RUN, "m", 1.0)),
        "history_missing_run": error_of(lambda: client.get_metric_history(MISSING_RUN, "m")),
        "create_run_missing_experiment": error_of(lambda: client.create_run(MISSING_EXPERIMENT)),
        "delete_experiment_missing": error_of(lambda: client.delete_experiment(MISSING_EXPERIMENT)),
        "update_run_missing": error_of(
            lambda: client.set_terminated(MISSING_RUN, status="FINISHED")
        ),
        "duplicate_experiment": error_of(lambda: client.create_experiment(scenario.name("taken"))),
        "rename_to_taken": error_of(lambda: client.rename_experiment(exp, scenario.name("taken"))),
        "param_changed": error_of(lambda: client.log_param(run_id, "lr", "0.2")),
        "batch_param_changed": error_of(
            lambda: client.log_batch(run_id, params=[Param("lr", "9")])
        ),
        "delete_missing_tag": error_of(lambda: client.delete_tag(run_id, "no-such-tag")),
        "bad_filter": error_of(lambda: client.search_runs([exp], "metrics.acc >>> 1")),
        "bad_filter_key": error_of(lambda: client.search_runs([exp], "nonsense.acc > 1")),
        "bad_order_by": error_of(
            lambda: client.search_runs([exp], "", order_by=["metrics.acc SIDEWAYS"])
        ),
        "bad_experiment_filter": error_of(
            lambda: client.search_experiments(filter_string="name = ")
        ),
        "log_to_deleted_run": error_of(lambda: client.log_metric(deleted, "m", 1.0)),
        "batch_to_deleted_run": error_of(
            lambda: client.log_batch(deleted, metrics=[Metric("m", 1.0, 0, 0)])
        ),
    }


scenario.finish()
