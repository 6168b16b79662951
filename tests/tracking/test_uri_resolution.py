"""One rule for the tracking URI: argument, set_tracking_uri, TRACKFLOW_TRACKING_URI, default."""

from __future__ import annotations

from pathlib import Path

import pytest

import tracking
from tracking.settings import DEFAULT_TRACKING_URI, reset_settings


class TestTrackingClientFollowsSetTrackingUri:
    def test_client_without_uri_uses_set_tracking_uri(
        self, fluent_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        workdir = tmp_path / "work"
        workdir.mkdir()
        monkeypatch.chdir(workdir)
        client = tracking.TrackingClient()
        assert client.tracking_uri == fluent_uri
        exp_id = client.create_experiment("routed")
        # The run is where the fluent API looks, not in ./trackflow.db.
        tracking.set_experiment(experiment_id=exp_id)
        with tracking.start_run() as run:
            pass
        assert client.get_run(run.info.run_id).info.experiment_id == exp_id
        assert not (workdir / "trackflow.db").exists()

    def test_argument_beats_set_tracking_uri(self, fluent_uri: str, tmp_path: Path) -> None:
        other = f"sqlite:///{tmp_path / 'other.db'}"
        assert tracking.TrackingClient(other).tracking_uri == other

    def test_path_like_argument_is_accepted(self, fluent_uri: str, tmp_path: Path) -> None:
        from tracking import settings

        assert settings.resolve_tracking_uri(tmp_path / "x.db") == str(tmp_path / "x.db")

    def test_environment_then_default(
        self, fluent_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from tracking import settings

        settings.set_tracking_uri(None)
        env_uri = f"sqlite:///{tmp_path / 'env.db'}"
        monkeypatch.setenv("TRACKFLOW_TRACKING_URI", env_uri)
        reset_settings()
        assert settings.resolve_tracking_uri() == env_uri
        assert tracking.get_tracking_uri() == env_uri
        monkeypatch.delenv("TRACKFLOW_TRACKING_URI")
        reset_settings()
        assert settings.resolve_tracking_uri() == DEFAULT_TRACKING_URI
