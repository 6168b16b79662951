"""MLflow's experiment endpoints: request and response shapes, paging, errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from _server_support import MLFLOW, unique

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def create(client: TestClient, name: str, **extra: Any) -> str:
    response = client.post(f"{MLFLOW}/experiments/create", json={"name": name, **extra})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"experiment_id"}
    assert isinstance(body["experiment_id"], str)
    return str(body["experiment_id"])


class TestCreateAndGet:
    def test_create_then_get_renders_mlflow_shape(self, client: TestClient) -> None:
        exp_id = create(client, "churn", tags=[{"key": "team", "value": "ml"}])
        response = client.get(f"{MLFLOW}/experiments/get", params={"experiment_id": exp_id})
        assert response.status_code == 200
        experiment = response.json()["experiment"]
        assert set(experiment) == {
            "experiment_id",
            "name",
            "artifact_location",
            "lifecycle_stage",
            "last_update_time",
            "creation_time",
            "tags",
        }
        assert experiment["experiment_id"] == exp_id
        assert experiment["name"] == "churn"
        assert experiment["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
        assert experiment["lifecycle_stage"] == "active"
        assert isinstance(experiment["creation_time"], int)
        assert experiment["tags"] == [{"key": "team", "value": "ml"}]

    def test_explicit_artifact_location_is_kept(self, client: TestClient) -> None:
        exp_id = create(client, "elsewhere", artifact_location="mlflow-artifacts:/elsewhere")
        got = client.get(f"{MLFLOW}/experiments/get", params={"experiment_id": exp_id}).json()
        assert got["experiment"]["artifact_location"] == "mlflow-artifacts:/elsewhere"

    def test_get_by_name(self, client: TestClient) -> None:
        exp_id = create(client, "by-name")
        response = client.get(
            f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "by-name"}
        )
        assert response.json()["experiment"]["experiment_id"] == exp_id

    def test_get_by_unknown_name_is_404(self, client: TestClient) -> None:
        response = client.get(
            f"{MLFLOW}/experiments/get-by-name", params={"experiment_name": "missing"}
        )
        assert response.status_code == 404
        assert response.json() == {
            "error_code": "RESOURCE_DOES_NOT_EXIST",
            "message": "Could not find experiment with name 'missing'",
            "error_class": "ExperimentNotFoundError",
        }

    def test_duplicate_name_is_resource_already_exists(self, client: TestClient) -> None:
        create(client, "twice")
        response = client.post(f"{MLFLOW}/experiments/create", json={"name": "twice"})
        assert response.status_code == 400
        assert response.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
        assert response.json()["error_class"] == "AlreadyExistsError"

    @pytest.mark.parametrize(
        ("experiment_id", "status", "code"),
        [
            pytest.param("424242", 404, "RESOURCE_DOES_NOT_EXIST", id="unknown"),
            pytest.param("abc", 400, "INVALID_PARAMETER_VALUE", id="not-a-number"),
            pytest.param("9" * 30, 400, "INVALID_PARAMETER_VALUE", id="past-int64"),
        ],
    )
    def test_bad_experiment_ids(
        self, client: TestClient, experiment_id: str, status: int, code: str
    ) -> None:
        response = client.get(f"{MLFLOW}/experiments/get", params={"experiment_id": experiment_id})
        assert response.status_code == status
        assert response.json()["error_code"] == code


class TestSearch:
    @pytest.fixture
    def three(self, client: TestClient) -> list[str]:
        return [
            create(client, f"search-{i}", tags=[{"key": "n", "value": str(i)}]) for i in range(3)
        ]

    def test_post_with_filter_and_order(self, client: TestClient, three: list[str]) -> None:
        response = client.post(
            f"{MLFLOW}/experiments/search",
            json={
                "filter": "name LIKE 'search-%'",
                "order_by": ["name DESC"],
                "max_results": 10,
            },
        )
        body = response.json()
        assert [e["name"] for e in body["experiments"]] == ["search-2", "search-1", "search-0"]
        assert "next_page_token" not in body

    def test_get_with_query_parameters_pages(self, client: TestClient, three: list[str]) -> None:
        seen: list[str] = []
        params: dict[str, Any] = {
            "filter": "name LIKE 'search-%'",
            "max_results": 2,
            "order_by": "name ASC",
        }
        while True:
            body = client.get(f"{MLFLOW}/experiments/search", params=params).json()
            seen += [e["name"] for e in body["experiments"]]
            if "next_page_token" not in body:
                break
            params["page_token"] = body["next_page_token"]
        assert seen == ["search-0", "search-1", "search-2"]

    @pytest.mark.parametrize(
        ("view_type", "names"),
        [
            pytest.param("ACTIVE_ONLY", {"kept", "Default"}, id="active-name"),
            pytest.param("DELETED_ONLY", {"binned"}, id="deleted-name"),
            pytest.param(3, {"kept", "binned", "Default"}, id="all-number"),
        ],
    )
    def test_view_types(self, client: TestClient, view_type: Any, names: set[str]) -> None:
        create(client, "kept")
        binned = create(client, "binned")
        client.post(f"{MLFLOW}/experiments/delete", json={"experiment_id": binned})
        body = client.post(f"{MLFLOW}/experiments/search", json={"view_type": view_type}).json()
        assert {e["name"] for e in body["experiments"]} == names

    def test_bad_filter_is_400_naming_the_problem(self, client: TestClient) -> None:
        response = client.post(f"{MLFLOW}/experiments/search", json={"filter": "name ~~ 'x'"})
        assert response.status_code == 400
        assert response.json()["error_class"] == "SearchSyntaxError"

    def test_bad_view_type_names_the_field(self, client: TestClient) -> None:
        response = client.post(f"{MLFLOW}/experiments/search", json={"view_type": "SOME"})
        assert response.status_code == 400
        assert "view_type" in response.json()["message"]


class TestChanges:
    def test_update_renames(self, client: TestClient) -> None:
        exp_id = create(client, "old-name")
        response = client.post(
            f"{MLFLOW}/experiments/update", json={"experiment_id": exp_id, "new_name": "new-name"}
        )
        assert response.status_code == 200
        assert response.json() == {}
        got = client.get(f"{MLFLOW}/experiments/get", params={"experiment_id": exp_id}).json()
        assert got["experiment"]["name"] == "new-name"

    def test_delete_and_restore(self, client: TestClient) -> None:
        exp_id = create(client, unique())
        assert (
            client.post(f"{MLFLOW}/experiments/delete", json={"experiment_id": exp_id}).json() == {}
        )
        got = client.get(f"{MLFLOW}/experiments/get", params={"experiment_id": exp_id}).json()
        assert got["experiment"]["lifecycle_stage"] == "deleted"
        assert (
            client.post(f"{MLFLOW}/experiments/restore", json={"experiment_id": exp_id}).json()
            == {}
        )
        got = client.get(f"{MLFLOW}/experiments/get", params={"experiment_id": exp_id}).json()
        assert got["experiment"]["lifecycle_stage"] == "active"

    def test_set_experiment_tag(self, client: TestClient) -> None:
        exp_id = create(client, unique())
        response = client.post(
            f"{MLFLOW}/experiments/set-experiment-tag",
            json={"experiment_id": exp_id, "key": "k", "value": "v"},
        )
        assert response.json() == {}
        got = client.get(f"{MLFLOW}/experiments/get", params={"experiment_id": exp_id}).json()
        assert got["experiment"]["tags"] == [{"key": "k", "value": "v"}]

    def test_deleting_default_experiment_is_refused(self, client: TestClient) -> None:
        response = client.post(f"{MLFLOW}/experiments/delete", json={"experiment_id": "0"})
        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"

    def test_ajax_prefix_serves_the_same_api(self, client: TestClient) -> None:
        exp_id = create(client, "ajax")
        response = client.get(
            "/ajax-api/2.0/mlflow/experiments/get", params={"experiment_id": exp_id}
        )
        assert response.status_code == 200
        assert response.json()["experiment"]["name"] == "ajax"
