"""The last wire gaps found by MLflow's own tracking tests (issue 20, item 5).

Each step records what the stock client (or a raw request, where MLflow's
tests send one) observes: deleting an experiment tag, a parent run tag naming
no run, a negative experiment id, download content types, a relative artifact
location, and MLflow's wording of six error messages.
"""

from __future__ import annotations

import os
from typing import Any

import requests
from _common import Scenario, error_of
from mlflow import MlflowClient
from mlflow.entities import Param

scenario = Scenario()
client = MlflowClient()
URL = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
API = f"{URL}/api/2.0/mlflow"
MISSING_RUN = "0123456789abcdef0123456789abcdef"


def _error(response: requests.Response) -> dict[str, Any]:
    body = response.json()
    return {
        "status": response.status_code,
        "error_code": body.get("error_code"),
        "message": body.get("message"),
    }


@scenario.step("setup")
def setup() -> dict[str, str]:
    exp = client.create_experiment(scenario.name("gaps"), tags={"keep": "1", "drop": "2"})
    run = client.create_run(exp, run_name="gaps")
    return {"experiment_id": exp, "run_id": run.info.run_id}


scenario.require(setup)
exp, run_id = setup["experiment_id"], setup["run_id"]


@scenario.step("delete_experiment_tag")
def delete_experiment_tag() -> dict[str, Any]:
    client.delete_experiment_tag(exp, "drop")
    return {
        "tags": dict(client.get_experiment(exp).tags),
        "missing": error_of(lambda: client.delete_experiment_tag(exp, "fakeTag")),
    }


@scenario.step("missing_parent")
def missing_parent() -> dict[str, Any]:
    orphan = client.create_run(exp, tags={"mlflow.parentRunId": MISSING_RUN})
    child = client.create_run(exp, tags={"mlflow.parentRunId": run_id})
    return {
        "orphan_tag": client.get_run(orphan.info.run_id).data.tags.get("mlflow.parentRunId"),
        "child_tag": client.get_run(child.info.run_id).data.tags.get("mlflow.parentRunId"),
        "children": [
            r.info.run_id
            for r in client.search_runs([exp], f"tags.mlflow.parentRunId = '{run_id}'")
        ],
        "child_id": child.info.run_id,
    }


@scenario.step("negative_experiment_id")
def negative_experiment_id() -> dict[str, Any]:
    return {
        "client": error_of(lambda: client.get_experiment("-1337")),
        "raw": _error(requests.get(f"{API}/experiments/get", params={"experiment_id": "-1337"})),
    }


@scenario.step("content_types")
def content_types() -> dict[str, str]:
    files = {"notes.txt": "hello", "MLmodel": "flavors: {}", "MLproject": "name: p", "a.json": "{}"}
    for name, text in files.items():
        client.log_text(run_id, text, name)
    client.log_text(run_id, "x", "model.pkl")
    out = {}
    for name in [*files, "model.pkl"]:
        response = requests.get(
            f"{URL}/api/2.0/mlflow-artifacts/artifacts/{exp}/{run_id}/artifacts/{name}"
        )
        response.raise_for_status()
        out[name] = response.headers["Content-Type"]
    # MLflow's root download endpoint (what its web UI fetches) answers the same.
    root = requests.get(f"{URL}/get-artifact", params={"run_uuid": run_id, "path": "MLmodel"})
    root.raise_for_status()
    out["get-artifact MLmodel"] = root.headers["Content-Type"]
    out["get-artifact body"] = root.text
    return out


@scenario.step("relative_location")
def relative_location() -> dict[str, Any]:
    rel_exp = client.create_experiment(scenario.name("rel"), artifact_location="my_location")
    run = client.create_run(rel_exp)
    client.log_text(run.info.run_id, "in my location", "where.txt")
    local = client.download_artifacts(run.info.run_id, "where.txt", str(scenario.workdir))
    with open(local) as f:
        content = f.read()
    return {
        "artifact_location": client.get_experiment(rel_exp).artifact_location,
        "artifact_uri": run.info.artifact_uri,
        "content": content,
    }


@scenario.step("history_bulk")
def history_bulk() -> dict[str, Any]:
    """MLflow's web UI endpoints for charts of several runs."""
    runs = [client.create_run(exp).info.run_id for _ in range(2)]
    for i, rid in enumerate(runs):
        for step in range(10 * (i + 1)):
            client.log_metric(rid, "m", float(step), timestamp=100 + step, step=step)
    ajax = f"{URL}/ajax-api/2.0/mlflow/metrics"
    bulk = requests.get(f"{ajax}/get-history-bulk", params={"run_id": runs, "metric_key": "m"})
    interval = requests.get(
        f"{ajax}/get-history-bulk-interval",
        params={"run_ids": runs, "metric_key": "m", "max_results": 5},
    )
    ranged = requests.get(
        f"{ajax}/get-history-bulk-interval",
        params={
            "run_ids": runs[:1],
            "metric_key": "m",
            "start_step": 2,
            "end_step": 4,
            "max_results": 5,
        },
    )
    return {
        "runs": runs,
        "bulk": [(p["run_id"], p["step"]) for p in bulk.json()["metrics"]],
        "interval": [(p["run_id"], p["step"]) for p in interval.json()["metrics"]],
        "ranged": [p["step"] for p in ranged.json()["metrics"]],
        "no_runs": _error(requests.get(f"{ajax}/get-history-bulk", params={"metric_key": "m"})),
        "bad_range": _error(
            requests.get(
                f"{ajax}/get-history-bulk-interval",
                params={"run_ids": runs, "metric_key": "m", "start_step": 3, "end_step": 1},
            )
        ),
    }


@scenario.step("search_datasets")
def search_datasets() -> dict[str, Any]:
    """MLflow's web UI lists an experiment's data sets with ``experiments/search-datasets``."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    ds_exp = client.create_experiment(scenario.name("datasets"))
    run = client.create_run(ds_exp).info.run_id
    dataset = Dataset("train", "d1", "local", '{"uri": "/data/train.csv"}')
    client.log_inputs(
        run,
        [
            DatasetInput(dataset, [InputTag("mlflow.data.context", "training")]),
            DatasetInput(Dataset("holdout", "d2", "local", "{}"), []),
        ],
    )
    url = f"{URL}/ajax-api/2.0/mlflow/experiments/search-datasets"
    found = requests.post(url, json={"experiment_ids": [ds_exp]}).json()
    return {
        "experiment_id": ds_exp,
        "summaries": sorted(found["dataset_summaries"], key=lambda s: s["name"]),
        "none": _error(requests.post(url, json={"experiment_ids": []})),
    }


@scenario.step("messages")
def messages() -> dict[str, Any]:
    client.log_param(run_id, "lr", "0.1")
    client.create_experiment("popular_name" + scenario.prefix)
    return {
        "run_id_type": _error(
            requests.post(
                f"{API}/runs/log-metric",
                json={"run_id": 31, "key": "m", "value": 41, "timestamp": 59, "step": 26},
            )
        ),
        "duplicate_params": error_of(
            lambda: client.log_batch(run_id, params=[Param("a", "1"), Param("a", "2")])
        ),
        "missing_tag": error_of(lambda: client.delete_tag(run_id, "fakeTag")),
        "max_results": _error(
            requests.post(
                f"{API}/runs/search", json={"experiment_ids": [exp], "max_results": 123456789}
            )
        ),
        "invalid_path": _error(
            requests.get(f"{API}/artifacts/list", params={"run_id": run_id, "path": "../x"})
        ),
        "invalid_path_get_artifact": _error(
            requests.get(f"{URL}/get-artifact", params={"run_id": run_id, "path": "../x"})
        ),
        "null_key": _error(
            requests.post(
                f"{API}/runs/log-metric",
                json={"run_id": run_id, "key": None, "value": 1, "timestamp": 1, "step": 1},
            )
        ),
        "experiment_taken": error_of(
            lambda: client.create_experiment("popular_name" + scenario.prefix)
        ),
    }


scenario.finish()
