"""MLflow 3 logged models and the model registry with the stock client and scikit-learn.

``mlflow.sklearn.log_model`` then ``load_model`` by model id, run URI,
registered version and alias, each compared with the original's predictions;
``mlflow.sklearn.autolog()`` on a small fit; ``search_logged_models``; the
registry calls of ``MlflowClient``.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import requests
from _common import Scenario, error_of
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression, Ridge

scenario = Scenario()
client = MlflowClient()
URL = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
X = np.arange(40, dtype=float).reshape(20, 2)
y = X @ np.array([1.5, -2.0]) + 3.0


def _same(model: Any, reference: Any) -> bool:
    return bool(np.allclose(model.predict(X), reference.predict(X)))


@scenario.step("log_model")
def log_model() -> dict[str, Any]:
    mlflow.set_experiment(scenario.name("models"))
    fitted = Ridge(alpha=0.5).fit(X, y)
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", 0.5)
        info = mlflow.sklearn.log_model(fitted, name="model", params={"alpha": 0.5})
        mlflow.log_metric("rmse", 0.25, model_id=info.model_id)
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_id": info.model_id,
        "model_uri": info.model_uri,
        "artifact_path": info.artifact_path,
    }


scenario.require(log_model)
fitted = Ridge(alpha=0.5).fit(X, y)
run_id, model_id = log_model["run_id"], log_model["model_id"]


@scenario.step("logged_model")
def logged_model() -> dict[str, Any]:
    model = mlflow.get_logged_model(model_id)
    return {
        "status": str(model.status),
        "name": model.name,
        "source_run_id": model.source_run_id,
        "artifact_location": model.artifact_location,
        "params": model.params,
        "metrics": [(m.key, m.value, m.run_id) for m in model.metrics or []],
        "tags": {k: v for k, v in model.tags.items() if not k.startswith("mlflow.")},
    }


@scenario.step("run_models")
def run_models() -> dict[str, Any]:
    """MLflow 3's ``inputs.model_inputs`` and ``outputs.model_outputs`` of a run."""
    from mlflow.entities import LoggedModelInput

    with mlflow.start_run() as serve:
        # MLflow's fluent log_inputs keeps models for Databricks; the client sends them.
        client.log_inputs(serve.info.run_id, models=[LoggedModelInput(model_id)])
    producer, consumer = client.get_run(run_id), client.get_run(serve.info.run_id)
    found = {
        r.info.run_id: r
        for r in client.search_runs(
            [log_model["experiment_id"]],
            f"attributes.run_id IN ('{run_id}', '{serve.info.run_id}')",
        )
    }

    def outputs(run: Any) -> list[list[Any]]:
        return [[o.model_id, o.step] for o in (run.outputs.model_outputs if run.outputs else [])]

    return {
        "consumer_id": serve.info.run_id,
        "producer_outputs": outputs(producer),
        "producer_inputs": [m.model_id for m in producer.inputs.model_inputs],
        "consumer_inputs": [m.model_id for m in consumer.inputs.model_inputs],
        "consumer_outputs": outputs(consumer),
        "searched_outputs": {k: outputs(r) for k, r in found.items()},
    }


@scenario.step("load_by_model_id")
def load_by_model_id() -> bool:
    return _same(mlflow.sklearn.load_model(f"models:/{model_id}"), fitted)


@scenario.step("load_by_model_info_uri")
def load_by_model_info_uri() -> bool:
    return _same(mlflow.sklearn.load_model(log_model["model_uri"]), fitted)


@scenario.step("load_by_run_uri")
def load_by_run_uri() -> bool:
    return _same(mlflow.sklearn.load_model(f"runs:/{run_id}/model"), fitted)


@scenario.step("pyfunc")
def pyfunc() -> bool:
    loaded = mlflow.pyfunc.load_model(f"models:/{model_id}")
    return bool(np.allclose(loaded.predict(X), fitted.predict(X)))


@scenario.step("search_logged_models")
def search_logged_models() -> dict[str, Any]:
    exp = log_model["experiment_id"]
    found = mlflow.search_logged_models(experiment_ids=[exp], output_format="list")
    by_name = client.search_logged_models([exp], filter_string="name = 'model'")
    by_param = client.search_logged_models([exp], filter_string="params.alpha = '0.5'")
    none = client.search_logged_models([exp], filter_string="name = 'other'")
    frame = mlflow.search_logged_models(experiment_ids=[exp])
    return {
        "all": [m.model_id for m in found],
        "by_name": [m.model_id for m in by_name],
        "by_param": [m.model_id for m in by_param],
        "none": list(none),
        "frame_rows": len(frame),
    }


@scenario.step("autolog")
def autolog() -> dict[str, Any]:
    mlflow.set_experiment(scenario.name("autolog"))
    mlflow.sklearn.autolog()
    with mlflow.start_run() as run:
        LinearRegression().fit(X, y)
    mlflow.sklearn.autolog(disable=True)
    data = client.get_run(run.info.run_id).data
    models = client.search_logged_models([run.info.experiment_id])
    loaded = mlflow.sklearn.load_model(f"models:/{models[0].model_id}") if models else None
    return {
        "params": sorted(data.params),
        "metrics": sorted(data.metrics),
        "models": [(m.name, m.source_run_id == run.info.run_id) for m in models],
        "loaded": loaded is not None
        and bool(np.allclose(loaded.predict(X), LinearRegression().fit(X, y).predict(X))),
    }


@scenario.step("register")
def register() -> dict[str, Any]:
    name = scenario.name("churn")
    v1 = mlflow.register_model(f"models:/{model_id}", name)
    v2 = mlflow.register_model(f"runs:/{run_id}/model", name)
    client.set_registered_model_alias(name, "champion", v1.version)
    client.set_registered_model_tag(name, "team", "ml")
    client.set_model_version_tag(name, v1.version, "validated", "yes")
    return {
        "name": name,
        "versions": [v1.version, v2.version],
        "v1_model_id": v1.model_id,
        "v1_run_id": v1.run_id,
    }


scenario.require(register)
name = register["name"]


@scenario.step("model_versions_tag")
def model_versions_tag() -> dict[str, Any]:
    """The ``mlflow.modelVersions`` tag MLflow's server puts on a registered logged model."""
    other = scenario.name("versions-tag")
    client.create_registered_model(other)
    version = client.create_model_version(other, f"models:/{model_id}", model_id=model_id)
    tag = mlflow.get_logged_model(model_id).tags.get("mlflow.modelVersions")
    return {"name": other, "version": version.version, "tag": tag}


@scenario.step("load_registered")
def load_registered() -> dict[str, bool]:
    return {
        "version_1": _same(mlflow.sklearn.load_model(f"models:/{name}/1"), fitted),
        "version_2": _same(mlflow.sklearn.load_model(f"models:/{name}/2"), fitted),
        "champion": _same(mlflow.sklearn.load_model(f"models:/{name}@champion"), fitted),
        "latest": _same(mlflow.sklearn.load_model(f"models:/{name}/latest"), fitted),
    }


def _version_file(model: str, version: str, path: str) -> dict[str, Any]:
    """A file of a version through MLflow's ``/model-versions/get-artifact``."""
    response = requests.get(
        f"{URL}/model-versions/get-artifact",
        params={"name": model, "version": version, "path": path},
    )
    return {
        "status": response.status_code,
        "type": response.headers.get("Content-Type"),
        "has_flavors": "flavors:" in response.text,
    }


@scenario.step("registry_reads")
def registry_reads() -> dict[str, Any]:
    model = client.get_registered_model(name)
    by_alias = client.get_model_version_by_alias(name, "champion")
    client.set_registered_model_alias(name, "champion", "2")
    moved = client.get_model_version_by_alias(name, "champion")
    return {
        "aliases": dict(model.aliases),
        "tags": dict(model.tags),
        "by_alias": by_alias.version,
        "moved": moved.version,
        "version_tags": dict(client.get_model_version(name, "1").tags),
        "search_models": [m.name for m in client.search_registered_models(f"name = '{name}'")],
        "search_versions": sorted(
            v.version for v in client.search_model_versions(f"name = '{name}'")
        ),
        "download_uri": client.get_model_version_download_uri(name, "1"),
        "version_file": _version_file(name, "1", "MLmodel"),
        "transition": client.transition_model_version_stage(name, "1", "Staging").current_stage,
        "latest": [v.version for v in client.get_latest_versions(name, stages=["Staging"])],
        "missing_alias": error_of(lambda: client.get_model_version_by_alias(name, "nope")),
        "duplicate": error_of(lambda: client.create_registered_model(name)),
    }


@scenario.step("registry_writes")
def registry_writes() -> dict[str, Any]:
    client.update_registered_model(name, description="churn model")
    client.update_model_version(name, "2", description="second")
    client.delete_registered_model_alias(name, "champion")
    new_name = name + "-renamed"
    client.rename_registered_model(name, new_name)
    renamed = client.get_registered_model(new_name)
    client.delete_model_version(new_name, "2")
    remaining = [v.version for v in client.search_model_versions(f"name = '{new_name}'")]
    client.delete_registered_model(new_name)
    return {
        "renamed": renamed.name,
        "description": renamed.description,
        "remaining": remaining,
        "old_name": error_of(lambda: client.get_registered_model(name)),
        "gone": error_of(lambda: client.get_registered_model(new_name)),
    }


scenario.finish()
