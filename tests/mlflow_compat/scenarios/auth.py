"""Bearer-token auth: ``MLFLOW_TRACKING_TOKEN`` against ``trackflow server --auth-token``.

Arguments: ``token`` (the server's). With the right token every kind of call
works (tracking and artifact routes); without it, or with a wrong one, the
client gets an error. MLflow reads the token from the environment on every
request, so one process covers all three cases.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
from _common import Scenario, error_of
from mlflow import MlflowClient

scenario = Scenario()
client = MlflowClient()
TOKEN = scenario.args["token"]


@scenario.step("with_token")
def with_token() -> dict[str, Any]:
    os.environ["MLFLOW_TRACKING_TOKEN"] = TOKEN
    exp = client.create_experiment(scenario.name("auth"))
    run = client.create_run(exp, run_name="authed")
    client.log_metric(run.info.run_id, "m", 1.5, step=1)
    client.log_param(run.info.run_id, "p", "v")
    note = scenario.workdir / "note.txt"
    note.write_text("authorized\n")
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)
    got = client.get_run(run.info.run_id)
    return {
        "experiment_id": exp,
        "run_id": run.info.run_id,
        "status": got.info.status,
        "metrics": dict(got.data.metrics),
        "artifacts": [f.path for f in client.list_artifacts(run.info.run_id)],
        "downloaded": mlflow.artifacts.load_text(f"{got.info.artifact_uri}/note.txt"),
    }


scenario.require(with_token)
run_id = with_token["run_id"]


def refused(token: str | None) -> dict[str, Any]:
    if token is None:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    else:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    return {
        "get_run": error_of(lambda: client.get_run(run_id)),
        "search_experiments": error_of(lambda: client.search_experiments()),
        "log_metric": error_of(lambda: client.log_metric(run_id, "m", 2.0, step=2)),
        "list_artifacts": error_of(lambda: client.list_artifacts(run_id)),
    }


@scenario.step("without_token")
def without_token() -> dict[str, Any]:
    return refused(None)


@scenario.step("wrong_token")
def wrong_token() -> dict[str, Any]:
    return refused(TOKEN + "-wrong")


@scenario.step("after")
def after() -> dict[str, Any]:
    os.environ["MLFLOW_TRACKING_TOKEN"] = TOKEN
    return {"history": [m.value for m in client.get_metric_history(run_id, "m")]}


scenario.finish()
