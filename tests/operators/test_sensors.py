"""ModelAliasSensor: it fires when a registered model's alias moves to another version."""

from __future__ import annotations

from typing import Any

import pytest

from tracking import TrackingClient
from tracking.entities import RunStatus

pytestmark = pytest.mark.timeout(600)


def _registered(client: TrackingClient, name: str, versions: int) -> str:
    exp = client.create_experiment(f"{name}-exp")
    run = client.create_run(exp).info.run_id
    model = client.create_logged_model(exp, "toy", source_run_id=run)
    client.finalize_logged_model(model.model_id)
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, model.model_uri, model_id=model.model_id)
    return model.model_id


class TestModelAliasSensor:
    def test_fires_when_the_alias_moves_after_the_first_poke(
        self, embedded: TrackingClient
    ) -> None:
        from operators import ModelAliasSensor

        model_id = _registered(embedded, "churn", 3)
        embedded.set_registered_model_alias("churn", "champion", 1)
        sensor = ModelAliasSensor(task_id="wait", registered_model="churn")
        assert sensor.poke({}) is False  # the first poke notes version 1
        assert sensor.poke({}) is False  # still there
        embedded.set_registered_model_alias("churn", "champion", 3)
        done = sensor.poke({})
        assert done.is_done
        assert done.xcom_value == {
            "name": "churn",
            "alias": "champion",
            "version": "3",
            "model_id": model_id,
            "previous": "1",
        }

    def test_an_alias_set_for_the_first_time_counts_as_a_move(
        self, embedded: TrackingClient
    ) -> None:
        from operators import ModelAliasSensor

        sensor = ModelAliasSensor(task_id="wait", registered_model="fresh", alias="prod")
        assert sensor.poke({}) is False  # no model registered yet
        _registered(embedded, "fresh", 1)
        assert sensor.poke({}) is False  # registered, the alias not set
        embedded.set_registered_model_alias("fresh", "prod", 1)
        done = sensor.poke({})
        assert (done.xcom_value["version"], done.xcom_value["previous"]) == ("1", None)

    def test_from_version(self, embedded: TrackingClient) -> None:
        from operators import ModelAliasSensor

        _registered(embedded, "churn", 2)
        embedded.set_registered_model_alias("churn", "champion", 2)
        assert (
            ModelAliasSensor(task_id="a", registered_model="churn", from_version=2).poke({})
            is False
        )
        done = ModelAliasSensor(task_id="b", registered_model="churn", from_version="1").poke({})
        assert (done.xcom_value["version"], done.xcom_value["previous"]) == ("2", "1")

    def test_reschedule_mode_needs_from_version(self, embedded: TrackingClient) -> None:
        from airflow.providers.common.compat.sdk import AirflowFailException

        from operators import ModelAliasSensor

        sensor = ModelAliasSensor(task_id="wait", registered_model="churn", mode="reschedule")
        with pytest.raises(AirflowFailException, match="from_version"):
            sensor.execute({})

    def test_in_a_dag_the_next_task_gets_the_new_version(
        self, run_dag: Any, embedded: TrackingClient
    ) -> None:
        dag_run = run_dag("tf_alias_sensor")
        assert dag_run.state == "success"
        exp = embedded.get_experiment_by_name("tf_alias_sensor")
        assert exp is not None
        (deploy,) = embedded.search_runs(
            [exp.experiment_id], filter_string="tags.`airflow.task_id` = 'deploy'"
        )
        assert deploy.info.status is RunStatus.FINISHED
        champion = embedded.get_model_version_by_alias("tf-alias", "champion")
        assert deploy.data.tags["deployed"] == "tf-alias/2" == f"tf-alias/{champion.version}"
        assert deploy.data.tags["left"] == "1"
        assert deploy.data.tags["model_id"] == champion.model_id
