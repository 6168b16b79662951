"""Keys with ':', data sets (``mlflow.log_input``) and ``log_model`` through the stock client."""

from __future__ import annotations

from typing import Any

import mlflow
from _common import Scenario, error_of
from mlflow import MlflowClient

scenario = Scenario()
client = MlflowClient()


@scenario.step("colon_keys")
def colon_keys() -> dict[str, Any]:
    exp = client.create_experiment(scenario.name("inputs"))
    run = client.create_run(exp, run_name="colons")
    run_id = run.info.run_id
    client.log_metric(run_id, "train:loss", 0.5)
    client.log_param(run_id, "opt:name", "adam")
    client.set_tag(run_id, "team:owner", "ml")
    data = client.get_run(run_id).data
    return {
        "run_id": run_id,
        "experiment_id": exp,
        "metrics": dict(data.metrics),
        "params": dict(data.params),
        "tags": {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")},
    }


scenario.require(colon_keys)


@scenario.step("log_input")
def log_input() -> dict[str, Any]:
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    mlflow.set_experiment(experiment_id=colon_keys["experiment_id"])
    source = HTTPDatasetSource(url="https://example.invalid/churn.csv")
    dataset = MetaDataset(source=source, name="churn-train", digest="9f86d081")
    with mlflow.start_run(run_name="with-data") as run:
        mlflow.log_input(dataset, context="training")
    got = client.get_run(run.info.run_id)
    inputs = [
        {
            "name": i.dataset.name,
            "digest": i.dataset.digest,
            "source_type": i.dataset.source_type,
            "source": i.dataset.source,
            "tags": {t.key: t.value for t in i.tags},
        }
        for i in got.inputs.dataset_inputs
    ]
    searched = client.search_runs(
        [colon_keys["experiment_id"]], filter_string="attributes.run_name = 'with-data'"
    )
    return {
        "run_id": run.info.run_id,
        "inputs": inputs,
        "searched": [i.dataset.name for r in searched for i in r.inputs.dataset_inputs],
    }


@scenario.step("log_model")
def log_model() -> dict[str, Any]:
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any) -> Any:
            return model_input

    with mlflow.start_run(run_name="with-model"):
        return error_of(lambda: mlflow.pyfunc.log_model(name="echo", python_model=Echo()))


scenario.finish()
