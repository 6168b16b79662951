"""What Airflow discovers: the provider (connection type, ``@task.trackflow``), the
plugin (listener, macros, links, views), and what importing costs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.airflow


class TestProvider:
    def test_provider_info_is_valid(self) -> None:
        import airflow
        import jsonschema

        from operators.provider import get_provider_info

        schema = json.loads(
            (Path(airflow.__file__).parent / "provider_info.schema.json").read_text()
        )
        jsonschema.validate(get_provider_info(), schema)

    def test_airflow_finds_the_connection_type_and_decorator(self) -> None:
        from airflow.providers_manager import ProvidersManager

        manager = ProvidersManager()
        assert "trackflow" in manager.providers
        assert manager.hooks["trackflow"].hook_class_name == "operators.hooks.TrackflowHook"
        from operators.decorators import tracked_task

        assert manager.taskflow_decorators["trackflow"] is tracked_task

    def test_task_trackflow(self) -> None:
        from airflow.sdk import task

        from operators.decorators import tracked_task

        assert task.trackflow is tracked_task


class TestPlugin:
    def test_airflow_loads_the_plugin(self) -> None:
        from airflow import plugins_manager

        plugins, _ = plugins_manager._get_plugins()
        ours = [p for p in plugins if p.name == "trackflow"]
        assert len(ours) == 1
        from operators import listener

        assert ours[0].listeners == [listener]
        views = {v["destination"]: v["href"] for v in ours[0].external_views}
        assert views == {
            "dag_run": "/trackflow/dag_run/{DAG_ID}/{RUN_ID}",
            "task_instance": "/trackflow/task_instance/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}",
        }

    def test_importing_tracking_never_imports_airflow(self) -> None:
        code = "import sys, tracking, tracking.pipelines; print('airflow' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "False", out.stderr

    def test_importing_operators_loads_nothing_until_used(self) -> None:
        code = (
            "import sys, operators; "
            "print(sorted(m for m in sys.modules if m.startswith(('airflow', 'operators.'))))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "[]", out.stderr


class TestHook:
    @pytest.fixture
    def conn(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        def set_conn(conn_id: str, **fields: Any) -> None:
            monkeypatch.setenv(
                f"AIRFLOW_CONN_{conn_id.upper()}",
                json.dumps({"conn_type": "trackflow", **fields}),
            )

        return set_conn

    def test_connection_to_a_server(self, conn: Any, tracking_server: Any) -> None:
        from operators.hooks import TrackflowHook

        port = int(tracking_server.url.rsplit(":", 1)[1])
        conn("tf_ok", host="127.0.0.1", port=port, extra={"ui_base_url": "https://ui.test"})
        hook = TrackflowHook("tf_ok")
        config = hook.get_config()
        assert config.tracking_uri == tracking_server.url
        assert config.ui_base == "https://ui.test"
        assert hook.test_connection() == (True, f"Connected to {tracking_server.url}")
        client = hook.get_client()
        assert client.get_experiment("0").name == "Default"

    def test_nobody_listening(self, conn: Any) -> None:
        from _server_support import free_port

        from operators.hooks import TrackflowHook

        conn("tf_down", host="127.0.0.1", port=free_port())
        ok, message = TrackflowHook("tf_down").test_connection()
        assert not ok
        assert "StoreUnavailableError" in message

    def test_default_falls_back_to_the_settings(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        from operators.hooks import TrackflowHook
        from tracking.settings import reset_settings

        monkeypatch.delenv("AIRFLOW_CONN_TRACKFLOW_DEFAULT", raising=False)
        monkeypatch.setenv("TRACKFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/x.db")
        reset_settings()
        assert TrackflowHook().get_config().tracking_uri == f"sqlite:///{tmp_path}/x.db"

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            pytest.param({}, "has no host", id="no-host"),
            pytest.param({"host": "h", "schema": "ftp"}, "must be http or https", id="scheme"),
            pytest.param(
                {"host": "h", "extra": {"colour": "red"}}, "unknown extra field(s)", id="extra"
            ),
            pytest.param(
                {"host": "h", "extra": {"ui_base_url": "ui.test"}},
                "ui_base_url 'ui.test' must start with http",
                id="ui-base",
            ),
        ],
    )
    def test_bad_connections(self, conn: Any, fields: dict[str, Any], message: str) -> None:
        from operators.hooks import TrackflowHook
        from tracking import InvalidParameterError

        conn("tf_bad", **fields)
        with pytest.raises(InvalidParameterError, match="tf_bad") as info:
            TrackflowHook("tf_bad").get_client()
        assert message in str(info.value)

    def test_missing_connection(self) -> None:
        from operators.hooks import TrackflowHook
        from tracking import InvalidParameterError

        with pytest.raises(InvalidParameterError, match="'nope' does not exist"):
            TrackflowHook("nope").get_client()
