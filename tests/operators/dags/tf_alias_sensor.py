"""ModelAliasSensor in a DAG: a task moves ``tf-alias@champion`` from version 1 to 2,
the sensor (``from_version=1``) fires, and the next task deploys what it returned."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import dag, task

import tracking
from operators import ModelAliasSensor


@dag(
    dag_id="tf_alias_sensor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    params={"from_version": "1"},
)
def tf_alias_sensor() -> None:
    @task.trackflow
    def promote() -> None:
        folder = Path(tempfile.mkdtemp())
        (folder / "model.json").write_text("{}")
        model = tracking.log_model(folder, "toy")
        for _ in range(2):
            tracking.register_model(model.model_uri, "tf-alias")
        active = tracking.active_run()
        assert active is not None
        active.client.set_registered_model_alias("tf-alias", "champion", "2")

    moved = ModelAliasSensor(
        task_id="new_champion",
        registered_model="tf-alias",
        from_version="{{ params.from_version }}",
        poke_interval=0.1,
        timeout=20,
    )

    @task.trackflow
    def deploy(ti: Any = None) -> None:
        found = ti.xcom_pull(task_ids="new_champion")
        tracking.set_tags({"deployed": f"{found['name']}/{found['version']}"})
        tracking.set_tag("left", str(found["previous"]))
        tracking.set_tag("model_id", str(found["model_id"]))

    promote() >> moved >> deploy()


tf_alias_sensor()
