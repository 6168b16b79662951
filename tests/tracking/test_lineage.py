"""``tracking.use_artifact``: a step uses another run's artifact, checked, with the edge
recorded; run links by MLflow's UI scheme."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracking
from tracking import TrackingClient


class TestUseArtifact:
    def test_download_check_and_edge(self, fluent_uri: str, tmp_path: Path) -> None:
        model = tmp_path / "model.pkl"
        model.write_bytes(b"weights")
        with tracking.start_run(run_name="train") as train:
            ref = tracking.log_artifact(model, "model")
        with tracking.start_run(run_name="evaluate") as evaluate:
            local = tracking.use_artifact(ref, tmp_path / "in")
            assert Path(local).read_bytes() == b"weights"
        client = TrackingClient(fluent_uri)
        (edge,) = client.get_lineage(evaluate.info.run_id).consumed
        assert (edge.producer_run_id, edge.artifact_path, edge.sha256) == (
            train.info.run_id,
            "model/model.pkl",
            ref.sha256,
        )
        assert [e.consumer_run_id for e in client.get_lineage(train.info.run_id).produced] == [
            evaluate.info.run_id
        ]

    def test_changed_artifact_is_refused_and_nothing_recorded(
        self, fluent_uri: str, tmp_path: Path
    ) -> None:
        data = tmp_path / "data.csv"
        data.write_text("a,b\n")
        with tracking.start_run() as producer:
            ref = tracking.log_artifact(data)
        Path(ref.uri).write_text("tampered\n")
        with tracking.start_run() as consumer:
            with pytest.raises(tracking.ArtifactIntegrityError, match="changed since"):
                tracking.use_artifact(ref, tmp_path / "in")
            assert not (tmp_path / "in" / "data.csv").exists()
        assert TrackingClient(fluent_uri).get_lineage(consumer.info.run_id).consumed == ()
        assert producer.info.run_id

    def test_not_a_ref_is_a_clear_error(self, fluent_uri: str) -> None:
        with pytest.raises(tracking.InvalidParameterError, match="ArtifactRef"):
            tracking.use_artifact("model.pkl")  # type: ignore[arg-type]


class TestRunLinks:
    def test_mlflow_url_scheme(self) -> None:
        assert tracking.run_url("http://tracking:5000/", "3", "ab" * 16) == (
            f"http://tracking:5000/#/experiments/3/runs/{'ab' * 16}"
        )
        assert tracking.experiment_url("https://t.example/prefix", "7") == (
            "https://t.example/prefix/#/experiments/7"
        )

    def test_bad_base_is_a_clear_error(self) -> None:
        with pytest.raises(tracking.InvalidParameterError, match="UI base URL"):
            tracking.run_url("tracking:5000", "1", "x")
