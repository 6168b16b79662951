"""Conformance cases for MLflow 3 logged models and the model registry.

Mixed into a backend's test class next to the store suite (it needs the same
``client`` fixture): every case runs on SQLite, PostgreSQL, MySQL and over REST.
"""

from __future__ import annotations

import json

import pytest

from tracking.client import TrackingClient
from tracking.entities import LoggedModelStatus
from tracking.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidParameterError,
    NotFoundError,
    RunNotFoundError,
)

__all__ = ["LoggedModelSuite", "ModelRegistrySuite"]

MISSING_MODEL = "m-" + "0" * 32


class LoggedModelSuite:
    """Logged models: create, finalize, tags, params, metrics, runs, search, delete."""

    def test_create_get_finalize(self, client: TrackingClient) -> None:
        exp = client.create_experiment("models")
        run = client.create_run(exp).info.run_id
        model = client.create_logged_model(
            exp,
            "model",
            source_run_id=run,
            tags={"flavor": "sklearn"},
            params={"alpha": 0.5},
            model_type="regressor",
        )
        assert model.model_id.startswith("m-") and len(model.model_id) == 34
        assert model.status is LoggedModelStatus.PENDING
        assert model.artifact_location.endswith(f"models/{model.model_id}/artifacts")
        assert model.artifact_location.startswith(client.get_experiment(exp).artifact_location)
        got = client.get_logged_model(model.model_id)
        assert (got.name, got.source_run_id, got.model_type) == ("model", run, "regressor")
        assert dict(got.tags) == {"flavor": "sklearn"}
        assert dict(got.params) == {"alpha": "0.5"}
        assert got.model_uri == f"models:/{model.model_id}"
        ready = client.finalize_logged_model(model.model_id, "READY")
        assert ready.status is LoggedModelStatus.READY
        assert client.get_logged_model(model.model_id).status is LoggedModelStatus.READY
        failed = client.create_logged_model(exp, "broken")
        assert client.finalize_logged_model(failed.model_id, "FAILED").status.value == "FAILED"

    def test_generated_name_and_refusals(self, client: TrackingClient) -> None:
        exp = client.create_experiment("refusals")
        assert client.create_logged_model(exp).name
        with pytest.raises(ExperimentNotFoundError):
            client.create_logged_model("987654", "m")
        with pytest.raises(RunNotFoundError):
            client.create_logged_model(exp, "m", source_run_id="f" * 32)
        with pytest.raises(NotFoundError):
            client.get_logged_model(MISSING_MODEL)
        with pytest.raises(InvalidParameterError, match="model_id"):
            client.get_logged_model("not-a-model")
        with pytest.raises(InvalidParameterError, match="status"):
            client.finalize_logged_model(client.create_logged_model(exp).model_id, "DONE")

    def test_tags_params_and_delete(self, client: TrackingClient) -> None:
        exp = client.create_experiment("tags")
        mid = client.create_logged_model(exp, "m", tags={"a": "1"}).model_id
        client.set_logged_model_tags(mid, {"a": "2", "b": "3"})
        client.delete_logged_model_tag(mid, "b")
        with pytest.raises(NotFoundError, match="No tag with name: b"):
            client.delete_logged_model_tag(mid, "b")
        client.log_model_params(mid, {"p": "x"})
        client.log_model_params(mid, {"p": "x"})  # the same value again: fine
        with pytest.raises(InvalidParameterError, match="p"):
            client.log_model_params(mid, {"p": "y"})
        got = client.get_logged_model(mid)
        assert (dict(got.tags), dict(got.params)) == ({"a": "2"}, {"p": "x"})
        client.delete_logged_model(mid)
        with pytest.raises(NotFoundError):
            client.get_logged_model(mid)
        assert client.get_logged_model(mid, allow_deleted=True).model_id == mid
        assert client.search_logged_models([exp]) == []

    def test_linked_metrics_and_run_models(self, client: TrackingClient) -> None:
        exp = client.create_experiment("linked")
        run = client.create_run(exp).info.run_id
        mid = client.create_logged_model(exp, "m", source_run_id=run).model_id
        client.log_model_metric(
            mid,
            "rmse",
            0.5,
            run_id=run,
            timestamp=10,
            step=1,
            dataset_name="test",
            dataset_digest="abc",
        )
        client.link_model_metrics([])
        metrics = client.get_logged_model(mid).metrics
        assert [(m.key, m.value, m.step, m.run_id, m.dataset_name) for m in metrics] == [
            ("rmse", 0.5, 1, run, "test")
        ]
        assert client.get_run(run).data.metrics == {"rmse": 0.5}
        consumer = client.create_run(exp).info.run_id
        client.log_run_models(run, outputs=[(mid, 3)])
        client.log_run_models(consumer, inputs=[mid])
        assert client.get_run_models(run) == ([], [(mid, 3)])
        assert client.get_run_models(consumer) == ([mid], [])
        with pytest.raises(NotFoundError):
            client.log_run_models(consumer, inputs=[MISSING_MODEL])

    def test_search(self, client: TrackingClient) -> None:
        exp = client.create_experiment("search")
        other = client.create_experiment("search-other")
        run = client.create_run(exp).info.run_id
        ids = {}
        for name, alpha, rmse in (("a", "0.1", 0.9), ("b", "0.5", 0.3), ("c", "0.9", 0.6)):
            mid = client.create_logged_model(
                exp, name, source_run_id=run, params={"alpha": alpha}, tags={"t": name}
            ).model_id
            client.log_model_metric(mid, "rmse", rmse, run_id=run, dataset_name="test")
            ids[name] = mid
        client.create_logged_model(other, "a")
        client.finalize_logged_model(ids["b"], "READY")

        def names(filter_string: str = "", **kw: object) -> list[str]:
            return [m.name for m in client.search_logged_models([exp], filter_string, **kw)]  # type: ignore[arg-type]

        assert names() == ["c", "b", "a"]  # newest first
        assert names("name = 'a'") == ["a"]
        assert names(f"source_run_id = '{run}' AND params.alpha > '0.2'") == ["c", "b"]
        assert names("metrics.rmse < 0.7") == ["c", "b"]
        assert names("tags.t LIKE 'a%' ") == ["a"]
        assert names("status = 'READY'") == ["b"]
        assert names(order_by=["metrics.rmse ASC"]) == ["b", "c", "a"]
        assert names(order_by=[{"field_name": "name", "ascending": False}]) == ["c", "b", "a"]
        assert names("metrics.rmse < 0.7", datasets=[{"dataset_name": "other"}]) == []
        assert len(client.search_logged_models([exp, other])) == 4
        first = client.search_logged_models([exp], max_results=2, order_by=["name"])
        assert [m.name for m in first] == ["a", "b"] and first.token
        rest = client.search_logged_models(
            [exp], max_results=2, order_by=["name"], page_token=first.token
        )
        assert [m.name for m in rest] == ["c"] and rest.token is None
        with pytest.raises(InvalidParameterError, match="filter"):
            client.search_logged_models([exp], "name ==== 'a'")
        with pytest.raises(InvalidParameterError, match="attribute"):
            client.search_logged_models([exp], "nonsense = 'a'")


class ModelRegistrySuite:
    """Registered models, versions, tags, aliases, stages and searches."""

    def _logged(self, client: TrackingClient) -> tuple[str, str]:
        exp = client.create_experiment("registry")
        run = client.create_run(exp).info.run_id
        model = client.create_logged_model(exp, "model", source_run_id=run)
        client.finalize_logged_model(model.model_id)
        return run, model.model_id

    def test_registered_model_lifecycle(self, client: TrackingClient) -> None:
        created = client.create_registered_model("churn", tags={"team": "a"}, description="d")
        assert (created.name, created.description, dict(created.tags)) == (
            "churn",
            "d",
            {"team": "a"},
        )
        with pytest.raises(AlreadyExistsError, match=r"Registered Model \(name=churn\)"):
            client.create_registered_model("churn")
        client.set_registered_model_tag("churn", "owner", "b")
        client.delete_registered_model_tag("churn", "team")
        assert client.update_registered_model("churn", "new").description == "new"
        assert dict(client.get_registered_model("churn").tags) == {"owner": "b"}
        client.create_registered_model("other")
        with pytest.raises(AlreadyExistsError):
            client.rename_registered_model("churn", "other")
        renamed = client.rename_registered_model("churn", "churn2")
        assert (renamed.name, dict(renamed.tags)) == ("churn2", {"owner": "b"})
        with pytest.raises(NotFoundError):
            client.get_registered_model("churn")
        client.delete_registered_model("churn2")
        with pytest.raises(NotFoundError):
            client.get_registered_model("churn2")

    def test_versions_aliases_and_download_uri(self, client: TrackingClient) -> None:
        run, mid = self._logged(client)
        client.create_registered_model("churn")
        v1 = client.create_model_version("churn", f"models:/{mid}", run_id=run, model_id=mid)
        assert (v1.version, v1.model_id, v1.run_id, v1.status) == ("1", mid, run, "READY")
        artifact_uri = client.get_run(run).info.artifact_uri
        v2 = client.create_model_version("churn", f"runs:/{run}/model", tags={"k": "v"})
        assert (v2.version, v2.run_id, dict(v2.tags)) == ("2", run, {"k": "v"})
        location = client.get_logged_model(mid).artifact_location
        assert client.get_model_version_download_uri("churn", 1) == location
        assert client.get_model_version_download_uri("churn", "2").startswith(artifact_uri)
        client.set_registered_model_alias("churn", "champion", 1)
        assert client.get_model_version_by_alias("churn", "champion").version == "1"
        client.set_registered_model_alias("churn", "champion", "2")  # the alias moves
        assert client.get_model_version_by_alias("churn", "champion").version == "2"
        assert client.get_model_version("churn", 2).aliases == ("champion",)
        assert dict(client.get_registered_model("churn").aliases) == {"champion": "2"}
        with pytest.raises(InvalidParameterError, match="alias"):
            client.set_registered_model_alias("churn", "v3", 1)
        with pytest.raises(NotFoundError):
            client.set_registered_model_alias("churn", "x", 9)
        client.delete_registered_model_alias("churn", "champion")
        with pytest.raises(NotFoundError):
            client.get_model_version_by_alias("churn", "champion")
        client.set_model_version_tag("churn", 1, "validated", "yes")
        client.delete_model_version_tag("churn", 2, "k")
        assert dict(client.get_model_version("churn", 1).tags) == {"validated": "yes"}
        assert client.update_model_version("churn", 1, "best").description == "best"
        client.set_registered_model_alias("churn", "old", 1)
        client.delete_model_version("churn", 1)
        with pytest.raises(NotFoundError):
            client.get_model_version("churn", 1)
        assert dict(client.get_registered_model("churn").aliases) == {}
        assert client.create_model_version("churn", f"models:/{mid}").version == "3"
        with pytest.raises(NotFoundError):
            client.create_model_version("missing", f"models:/{mid}")
        with pytest.raises(InvalidParameterError, match="version"):
            client.get_model_version("churn", "one")

    def test_a_retried_create_returns_what_the_first_attempt_made(
        self, client: TrackingClient
    ) -> None:
        run, mid = self._logged(client)
        first = client.create_registered_model("retried", request_id="req-rm-1")
        again = client.create_registered_model("retried", request_id="req-rm-1")
        assert again.name == first.name == "retried"
        with pytest.raises(AlreadyExistsError):  # another call, another request id
            client.create_registered_model("retried", request_id="req-rm-2")
        with pytest.raises(AlreadyExistsError):
            client.create_registered_model("retried")
        v1 = client.create_model_version("retried", f"models:/{mid}", request_id="req-mv-1")
        v1_again = client.create_model_version("retried", f"models:/{mid}", request_id="req-mv-1")
        assert (v1.version, v1_again.version) == ("1", "1")
        v2 = client.create_model_version("retried", f"runs:/{run}/model", request_id="req-mv-2")
        assert v2.version == "2"
        versions = client.search_model_versions("name = 'retried'")
        assert sorted(v.version for v in versions) == ["1", "2"]

    def test_registering_a_logged_model_tags_it_with_its_versions(
        self, client: TrackingClient
    ) -> None:
        _, mid = self._logged(client)
        for name in ("tagged-a", "tagged-b"):
            client.create_registered_model(name)
        client.create_model_version("tagged-a", f"models:/{mid}")
        client.create_model_version("tagged-b", f"models:/{mid}", model_id=mid)
        client.create_model_version("tagged-a", f"models:/{mid}")
        tag = client.get_logged_model(mid).tags["mlflow.modelVersions"]
        assert json.loads(tag) == [
            {"name": "tagged-a", "version": 1},
            {"name": "tagged-b", "version": 1},
            {"name": "tagged-a", "version": 2},
        ]

    def test_stages_and_latest_versions(self, client: TrackingClient) -> None:
        _, mid = self._logged(client)
        client.create_registered_model("staged")
        for _ in range(3):
            client.create_model_version("staged", f"models:/{mid}")
        client.transition_model_version_stage("staged", 1, "production")
        moved = client.transition_model_version_stage(
            "staged", 2, "Production", archive_existing_versions=True
        )
        assert moved.current_stage == "Production"
        assert client.get_model_version("staged", 1).current_stage == "Archived"
        latest = {v.current_stage: v.version for v in client.get_latest_versions("staged")}
        assert latest == {"Archived": "1", "Production": "2", "None": "3"}
        assert [v.version for v in client.get_latest_versions("staged", ["Production"])] == ["2"]
        with pytest.raises(InvalidParameterError, match="stage"):
            client.transition_model_version_stage("staged", 1, "Gold")

    def test_searches(self, client: TrackingClient) -> None:
        run, mid = self._logged(client)
        for name in ("churn-a", "churn-b", "fraud"):
            client.create_registered_model(name, tags={"kind": name.split("-")[0]})
        client.create_model_version("churn-a", f"models:/{mid}")
        client.create_model_version("churn-a", f"runs:/{run}/model")
        client.create_model_version("fraud", f"models:/{mid}")
        found = client.search_registered_models("name LIKE 'churn%'")
        assert [m.name for m in found] == ["churn-a", "churn-b"]
        assert [m.name for m in client.search_registered_models("tags.kind = 'fraud'")] == ["fraud"]
        assert [m.name for m in client.search_registered_models(order_by=["name DESC"])] == [
            "fraud",
            "churn-b",
            "churn-a",
        ]
        page = client.search_registered_models(max_results=2)
        assert len(page) == 2 and page.token
        assert len(client.search_registered_models(max_results=2, page_token=page.token)) == 1
        versions = client.search_model_versions("name = 'churn-a'")
        assert [v.version for v in versions] == ["2", "1"]
        assert {(v.name, v.version) for v in client.search_model_versions(f"run_id = '{run}'")} == {
            ("churn-a", "1"),
            ("churn-a", "2"),
            ("fraud", "1"),
        }
        with pytest.raises(InvalidParameterError):
            client.search_model_versions("metrics.x > 1")
