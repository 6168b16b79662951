"""Experiments through ``MlflowClient`` and ``mlflow.set_experiment``.

Create (with tags), get, get by name, search (filter, order, pages, view
types), rename, set tag, delete, restore; the ``Default`` experiment.
"""

from __future__ import annotations

from typing import Any

import mlflow
from _common import Scenario, error_of
from mlflow import MlflowClient
from mlflow.entities import Experiment, ViewType

scenario = Scenario()
client = MlflowClient()
like = f"name LIKE '{scenario.prefix}-%'"


def describe(e: Experiment | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "experiment_id": e.experiment_id,
        "name": e.name,
        "lifecycle_stage": e.lifecycle_stage,
        "tags": dict(e.tags),
        "artifact_location": e.artifact_location,
        "creation_time": e.creation_time,
        "last_update_time": e.last_update_time,
    }


@scenario.step("create")
def ids() -> dict[str, str]:
    return {
        "a": client.create_experiment(scenario.name("a"), tags={"team": "ml", "tier": "1"}),
        "b": client.create_experiment(scenario.name("b")),
        "c": client.create_experiment(scenario.name("c"), tags={"team": "ops"}),
    }


scenario.require(ids)


@scenario.step("get")
def get() -> dict[str, Any] | None:
    return describe(client.get_experiment(ids["a"]))


@scenario.step("get_by_name")
def get_by_name() -> dict[str, Any]:
    return {
        "found": describe(client.get_experiment_by_name(scenario.name("b"))),
        "missing": describe(client.get_experiment_by_name(scenario.name("nope"))),
    }


@scenario.step("default_experiment")
def default_experiment() -> dict[str, Any] | None:
    return describe(client.get_experiment("0"))


@scenario.step("duplicate_name")
def duplicate_name() -> dict[str, Any]:
    return error_of(lambda: client.create_experiment(scenario.name("a")))


@scenario.step("search_filter_order")
def search_filter_order() -> list[str]:
    return [e.name for e in client.search_experiments(filter_string=like, order_by=["name DESC"])]


@scenario.step("search_tag")
def search_tag() -> list[str]:
    found = client.search_experiments(
        filter_string=f"{like} AND tags.team = 'ml'", order_by=["name ASC"]
    )
    return [e.name for e in found]


@scenario.step("search_pages")
def search_pages() -> dict[str, Any]:
    first = client.search_experiments(filter_string=like, order_by=["name ASC"], max_results=2)
    second = client.search_experiments(
        filter_string=like, order_by=["name ASC"], max_results=2, page_token=first.token
    )
    return {
        "first": [e.name for e in first],
        "first_token": bool(first.token),
        "second": [e.name for e in second],
        "second_token": bool(second.token),
    }


@scenario.step("rename")
def rename() -> dict[str, Any]:
    client.rename_experiment(ids["c"], scenario.name("c-renamed"))
    return {
        "name": client.get_experiment(ids["c"]).name,
        "old_name": describe(client.get_experiment_by_name(scenario.name("c"))),
        "new_name_id": client.get_experiment_by_name(scenario.name("c-renamed")).experiment_id,
    }


@scenario.step("set_tag")
def set_tag() -> dict[str, str]:
    client.set_experiment_tag(ids["b"], "stage", "dev")
    client.set_experiment_tag(ids["b"], "stage", "prod")  # overwrites
    client.set_experiment_tag(ids["b"], "note", "ünïcode ✓")
    return dict(client.get_experiment(ids["b"]).tags)


@scenario.step("delete")
def delete() -> dict[str, Any]:
    client.delete_experiment(ids["b"])

    def names(view: int) -> list[str]:
        found = client.search_experiments(view_type=view, filter_string=like, order_by=["name ASC"])
        return [e.name for e in found]

    return {
        "lifecycle_stage": client.get_experiment(ids["b"]).lifecycle_stage,
        "by_name_stage": client.get_experiment_by_name(scenario.name("b")).lifecycle_stage,
        "active_only": names(ViewType.ACTIVE_ONLY),
        "deleted_only": names(ViewType.DELETED_ONLY),
        "all": names(ViewType.ALL),
        "create_same_name": error_of(lambda: client.create_experiment(scenario.name("b"))),
    }


@scenario.step("restore")
def restore() -> dict[str, Any]:
    client.restore_experiment(ids["b"])
    found = client.search_experiments(filter_string=like, order_by=["name ASC"])
    return {
        "lifecycle_stage": client.get_experiment(ids["b"]).lifecycle_stage,
        "active_only": [e.name for e in found],
    }


@scenario.step("set_experiment")
def set_experiment() -> dict[str, Any]:
    created = mlflow.set_experiment(scenario.name("fluent"))
    again = mlflow.set_experiment(scenario.name("fluent"))
    by_id = mlflow.set_experiment(experiment_id=ids["a"])
    return {
        "created": describe(created),
        "again_id": again.experiment_id,
        "by_id_name": by_id.name,
    }


scenario.finish()
