"""The stock MLflow 3 client against ``trackflow server``: the wire gaps of issue 20,
logged models (``log_model``, ``load_model``, autolog) and the model registry.

Each scenario runs once in MLflow's environment (``.bench/mlflow-env``, with
scikit-learn) against one server shared by the module; the tests assert on
what it observed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from compat_harness import CompatServer, ScenarioResult

from tracking import TrackingClient
from tracking.entities import LoggedModelStatus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MISSING_RUN = "0123456789abcdef0123456789abcdef"


def _message(observed: dict[str, Any]) -> str:
    """The server's message (the client's exception puts the error code in front)."""
    message: str = observed["message"]
    return message.removeprefix(f"{observed['error_code']}: ")


@pytest.fixture(scope="module")
def stored(compat_server: CompatServer) -> TrackingClient:
    """trackflow's own view of the server's database."""
    return TrackingClient(compat_server.db_uri)


@pytest.fixture(scope="module")
def gaps(run_scenario: Any, compat_server: CompatServer) -> ScenarioResult:
    result: ScenarioResult = run_scenario("wire_gaps", compat_server)
    return result


class TestWireGaps:
    def test_delete_experiment_tag(self, gaps: ScenarioResult) -> None:
        step = gaps["delete_experiment_tag"]
        assert step["tags"] == {"keep": "1"}
        assert step["missing"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert _message(step["missing"]).startswith("No tag with name: fakeTag")

    def test_parent_run_tag_naming_no_run(self, gaps: ScenarioResult) -> None:
        step = gaps["missing_parent"]
        assert step["orphan_tag"] == MISSING_RUN
        assert step["children"] == [step["child_id"]]

    def test_negative_experiment_id_is_not_found(self, gaps: ScenarioResult) -> None:
        step = gaps["negative_experiment_id"]
        assert step["client"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert step["raw"]["status"] == 404
        assert step["raw"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_download_content_types(self, gaps: ScenarioResult) -> None:
        assert gaps["content_types"] == {
            "notes.txt": "text/plain",
            "MLmodel": "text/plain",
            "MLproject": "text/plain",
            "a.json": "text/plain",
            "model.pkl": "application/octet-stream",
            "get-artifact MLmodel": "text/plain",
            "get-artifact body": "flavors: {}",
        }

    def test_relative_artifact_location(self, gaps: ScenarioResult) -> None:
        step = gaps["relative_location"]
        assert step["artifact_location"] == "mlflow-artifacts:/my_location"
        assert step["artifact_uri"].startswith("mlflow-artifacts:/my_location/")
        assert step["content"] == "in my location"

    def test_metric_history_bulk(self, gaps: ScenarioResult) -> None:
        step = gaps["history_bulk"]
        first, second = step["runs"]
        expected = sorted(
            [[first, s] for s in range(10)] + [[second, s] for s in range(20)],
            key=lambda p: p[0],
        )
        assert step["bulk"] == expected
        # Each run sampled on its own, its first and last point kept (MLflow 3.17's rule).
        assert step["interval"] == [[first, s] for s in (0, 2, 4, 7, 9)] + [
            [second, s] for s in (0, 5, 10, 14, 19)
        ]
        assert step["ranged"] == [2, 3, 4]
        assert _message(step["no_runs"]).startswith(
            "GetMetricHistoryBulk request must specify at least one run_id"
        )
        assert _message(step["bad_range"]).startswith("end_step must be greater than start_step")

    def test_search_datasets(self, gaps: ScenarioResult) -> None:
        step = gaps["search_datasets"]
        exp = step["experiment_id"]
        assert step["summaries"] == [
            {"experiment_id": exp, "name": "holdout", "digest": "d2"},
            {"experiment_id": exp, "name": "train", "digest": "d1", "context": "training"},
        ]
        assert _message(step["none"]).startswith(
            "SearchDatasets request must specify at least one experiment_id"
        )

    @pytest.mark.parametrize(
        ("case", "prefix"),
        [
            ("run_id_type", "Invalid value 31 for parameter 'run_id' supplied"),
            ("duplicate_params", "Duplicate parameter keys have been submitted"),
            ("missing_tag", "No tag with name: fakeTag"),
            ("max_results", "Invalid value 123456789 for parameter 'max_results' supplied"),
            ("invalid_path", "Invalid path"),
            ("invalid_path_get_artifact", "Invalid path"),
            ("null_key", "Missing value for required parameter 'key'"),
            ("experiment_taken", "Experiment(name=popular_name"),
        ],
    )
    def test_messages_start_with_mlflows_wording(
        self, gaps: ScenarioResult, case: str, prefix: str
    ) -> None:
        observed = gaps["messages"][case]
        assert _message(observed).startswith(prefix), observed
        assert observed["error_code"] in {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"} or (
            case == "experiment_taken" and observed["error_code"] == "RESOURCE_ALREADY_EXISTS"
        )


# -- logged models and the registry -----------------------------------------------------


@pytest.fixture(scope="module")
def models(run_scenario: Any, compat_server: CompatServer) -> ScenarioResult:
    result: ScenarioResult = run_scenario("models", compat_server)
    return result


class TestLoggedModels:
    def test_log_model_creates_a_logged_model(
        self, models: ScenarioResult, stored: TrackingClient, compat_server: CompatServer
    ) -> None:
        logged = models["log_model"]
        model_id = logged["model_id"]
        assert logged["model_uri"] == f"models:/{model_id}"
        model = stored.get_logged_model(model_id)
        assert model.status is LoggedModelStatus.READY
        assert (model.name, model.source_run_id) == ("model", logged["run_id"])
        assert dict(model.params) == {"alpha": "0.5"}
        assert stored.get_run_models(logged["run_id"]) == ([], [(model_id, 0)])
        # The files are under the model's own location in the artifacts destination.
        location = model.artifact_location.removeprefix("mlflow-artifacts:/")
        files = {p.name for p in (Path(compat_server.artifacts) / location).iterdir()}
        assert {"MLmodel", "requirements.txt"} <= files
        assert any(name.startswith("model.") for name in files), files  # the pickled model

    def test_run_json_names_the_models_a_run_used_and_produced(
        self, models: ScenarioResult
    ) -> None:
        step = models["run_models"]
        producer, consumer = models["log_model"]["run_id"], step["consumer_id"]
        model_id = models["log_model"]["model_id"]
        assert step["producer_outputs"] == [[model_id, 0]]
        assert step["producer_inputs"] == []
        assert step["consumer_inputs"] == [model_id]
        assert step["consumer_outputs"] == []
        # runs/search gives the outputs (MLflow's search leaves model_inputs out).
        assert step["searched_outputs"] == {producer: [[model_id, 0]], consumer: []}

    def test_get_logged_model(self, models: ScenarioResult) -> None:
        got = models["logged_model"]
        assert got["status"] == "READY"
        assert got["source_run_id"] == models["log_model"]["run_id"]
        assert got["params"] == {"alpha": "0.5"}
        assert got["metrics"] == [["rmse", 0.25, models["log_model"]["run_id"]]]

    @pytest.mark.parametrize(
        "step", ["load_by_model_id", "load_by_model_info_uri", "load_by_run_uri", "pyfunc"]
    )
    def test_load_model_predicts_as_the_original(self, models: ScenarioResult, step: str) -> None:
        assert models[step] is True

    def test_search_logged_models(self, models: ScenarioResult) -> None:
        model_id = models["log_model"]["model_id"]
        assert models["search_logged_models"] == {
            "all": [model_id],
            "by_name": [model_id],
            "by_param": [model_id],
            "none": [],
            "frame_rows": 1,
        }

    def test_autolog(self, models: ScenarioResult) -> None:
        step = models["autolog"]
        assert {"fit_intercept", "copy_X"} <= set(step["params"])
        assert "training_score" in step["metrics"]
        assert step["models"] == [["model", True]]
        assert step["loaded"] is True


class TestModelRegistry:
    def test_register_model(self, models: ScenarioResult, stored: TrackingClient) -> None:
        step = models["register"]
        assert step["versions"] == ["1", "2"]
        assert step["v1_run_id"] == models["log_model"]["run_id"]
        name = step["name"] + "-renamed"  # as registry_writes left it, then deleted
        assert models["registry_writes"]["renamed"] == name

    def test_registering_a_logged_model_tags_it_with_its_versions(
        self, models: ScenarioResult
    ) -> None:
        step = models["model_versions_tag"]
        entries = json.loads(step["tag"])
        # The version is a number in the tag, as MLflow's server writes it.
        assert {"name": step["name"], "version": int(step["version"])} in entries
        # mlflow.register_model's two versions were recorded too (the fluent call
        # appends its own entry on the client as well, as against MLflow's server).
        name = models["register"]["name"]
        assert {"name": name, "version": 1} in entries

    @pytest.mark.parametrize("uri", ["version_1", "version_2", "champion", "latest"])
    def test_load_registered_model(self, models: ScenarioResult, uri: str) -> None:
        assert models["load_registered"][uri] is True

    def test_registry_reads(self, models: ScenarioResult) -> None:
        step = models["registry_reads"]
        model_id = models["log_model"]["model_id"]
        assert step["aliases"] == {"champion": "1"}
        assert step["tags"] == {"team": "ml"}
        assert (step["by_alias"], step["moved"]) == ("1", "2")
        assert step["version_tags"] == {"validated": "yes"}
        assert step["search_models"] == [models["register"]["name"]]
        assert step["search_versions"] == ["1", "2"]
        assert step["download_uri"].endswith(f"/models/{model_id}/artifacts")
        assert step["version_file"] == {"status": 200, "type": "text/plain", "has_flavors": True}
        assert (step["transition"], step["latest"]) == ("Staging", ["1"])
        assert step["missing_alias"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert step["duplicate"]["error_code"] == "RESOURCE_ALREADY_EXISTS"

    def test_registry_writes(self, models: ScenarioResult, stored: TrackingClient) -> None:
        step = models["registry_writes"]
        assert step["description"] == "churn model"
        assert step["remaining"] == ["1"]
        assert step["old_name"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert step["gone"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        assert stored.search_registered_models(f"name LIKE '{step['renamed']}%'") == []
