"""Conformance cases for experiments; mix into a test class that provides ``client``."""

from __future__ import annotations

import pytest

from tracking.client import TrackingClient
from tracking.entities import LifecycleStage, ViewType
from tracking.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidParameterError,
    InvalidStateError,
)

__all__ = ["ExperimentSuite"]


class ExperimentSuite:
    """Experiments: create, read, rename, delete/restore, tags."""

    def test_default_experiment_exists(self, client: TrackingClient) -> None:
        default = client.get_experiment("0")
        assert default.name == "Default"
        assert default.lifecycle_stage is LifecycleStage.ACTIVE
        assert client.get_experiment_by_name("Default") == default

    def test_create_and_get_experiment(self, client: TrackingClient) -> None:
        eid = client.create_experiment("churn", tags={"team": "ml", "n": 3})
        exp = client.get_experiment(eid)
        assert exp.experiment_id == eid
        assert exp.name == "churn"
        assert dict(exp.tags) == {"team": "ml", "n": "3"}
        assert exp.artifact_location.endswith(f"/{eid}")
        assert exp.creation_time is not None and exp.creation_time > 0
        assert client.get_experiment_by_name("churn") == exp

    def test_explicit_artifact_location(self, client: TrackingClient) -> None:
        eid = client.create_experiment("located", artifact_location="memory://bucket/x")
        assert client.get_experiment(eid).artifact_location == "memory://bucket/x"
        run = client.create_run(eid)
        assert run.info.artifact_uri == f"memory://bucket/x/{run.info.run_id}/artifacts"

    def test_ids_are_distinct_strings(self, client: TrackingClient) -> None:
        ids = [client.create_experiment(f"e{i}") for i in range(3)]
        assert len(set(ids)) == 3
        assert all(isinstance(i, str) and i.isdigit() for i in ids)

    def test_duplicate_name_refused(self, client: TrackingClient) -> None:
        client.create_experiment("dup")
        with pytest.raises(AlreadyExistsError, match="dup"):
            client.create_experiment("dup")

    def test_names_are_case_sensitive(self, client: TrackingClient) -> None:
        a = client.create_experiment("Case")
        b = client.create_experiment("case")
        assert a != b
        assert client.get_experiment_by_name("CASE") is None

    def test_missing_experiment(self, client: TrackingClient) -> None:
        with pytest.raises(ExperimentNotFoundError):
            client.get_experiment("987654")
        assert client.get_experiment_by_name("nope") is None

    def test_non_numeric_id_is_invalid(self, client: TrackingClient) -> None:
        with pytest.raises(InvalidParameterError, match="experiment_id"):
            client.get_experiment("abc")

    @pytest.mark.parametrize("name", ["", "   ", "x" * 257], ids=["empty", "blank", "too-long"])
    def test_bad_names_refused(self, client: TrackingClient, name: str) -> None:
        before = len(client.search_experiments(view_type=ViewType.ALL))
        with pytest.raises(InvalidParameterError, match="experiment name"):
            client.create_experiment(name)
        assert len(client.search_experiments(view_type=ViewType.ALL)) == before

    def test_rename(self, client: TrackingClient) -> None:
        eid = client.create_experiment("old")
        client.rename_experiment(eid, "new")
        assert client.get_experiment(eid).name == "new"
        assert client.get_experiment_by_name("old") is None

    def test_rename_to_taken_name(self, client: TrackingClient) -> None:
        eid = client.create_experiment("a")
        client.create_experiment("b")
        with pytest.raises(AlreadyExistsError):
            client.rename_experiment(eid, "b")
        assert client.get_experiment(eid).name == "a"

    def test_delete_and_restore_carry_runs(self, client: TrackingClient) -> None:
        eid = client.create_experiment("bin")
        kept = client.create_run(eid).info.run_id
        deleted_before = client.create_run(eid).info.run_id
        client.delete_run(deleted_before)
        client.delete_experiment(eid)
        assert client.get_experiment(eid).lifecycle_stage is LifecycleStage.DELETED
        assert client.get_run(kept).info.lifecycle_stage is LifecycleStage.DELETED
        with pytest.raises(InvalidStateError):
            client.create_run(eid)
        with pytest.raises(AlreadyExistsError, match="deleted"):
            client.create_experiment("bin")
        client.restore_experiment(eid)
        assert client.get_experiment(eid).lifecycle_stage is LifecycleStage.ACTIVE
        assert client.get_run(kept).info.lifecycle_stage is LifecycleStage.ACTIVE
        # A run deleted on its own before stays deleted.
        assert client.get_run(deleted_before).info.lifecycle_stage is LifecycleStage.DELETED

    def test_default_cannot_be_deleted(self, client: TrackingClient) -> None:
        with pytest.raises(InvalidParameterError):
            client.delete_experiment("0")

    def test_delete_missing(self, client: TrackingClient) -> None:
        with pytest.raises(ExperimentNotFoundError):
            client.delete_experiment("424242")

    def test_experiment_tags(self, client: TrackingClient) -> None:
        eid = client.create_experiment("tagged")
        client.set_experiment_tag(eid, "owner", "ana")
        client.set_experiment_tag(eid, "owner", "bo")
        client.set_experiment_tag(eid, "stage", "dev")
        assert dict(client.get_experiment(eid).tags) == {"owner": "bo", "stage": "dev"}

    def test_experiment_tag_value_limit(self, client: TrackingClient) -> None:
        eid = client.create_experiment("limits")
        with pytest.raises(InvalidParameterError, match="5000"):
            client.set_experiment_tag(eid, "k", "x" * 5001)
        assert dict(client.get_experiment(eid).tags) == {}

    def test_search_view_types(self, client: TrackingClient) -> None:
        live = client.create_experiment("live")
        gone = client.create_experiment("gone")
        client.delete_experiment(gone)

        def names(view: ViewType) -> set[str]:
            return {e.name for e in client.search_experiments(view_type=view)}

        assert {"live", "Default"} <= names(ViewType.ACTIVE_ONLY)
        assert "gone" not in names(ViewType.ACTIVE_ONLY)
        assert names(ViewType.DELETED_ONLY) == {"gone"}
        assert {"live", "gone"} <= names(ViewType.ALL)
        assert live
