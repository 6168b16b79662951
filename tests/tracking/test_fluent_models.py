"""The fluent API of logged models and the registry: ``log_model``, ``register_model``,
``use_model``, on a SQLite store and against a real ``trackflow server`` (the files then
go through the artifact proxy)."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

import tracking
from tracking import LoggedModelStatus, TrackingClient, fluent
from tracking.errors import InvalidParameterError, NotFoundError
from tracking.settings import reset_settings
from tracking.store.registry import clear_store_cache
from tracking.testing.live_server import serving


def _model_dir(root: Path) -> Path:
    model = root / "model-src"
    (model / "sub").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    return model


def _exercise(tmp_path: Path) -> None:
    client = TrackingClient()
    source = _model_dir(tmp_path)
    with tracking.start_run(run_name="train") as run:
        model = tracking.log_model(source, "churn-model", params={"depth": 4}, step=2)
    assert model.status is LoggedModelStatus.READY
    assert (model.name, model.source_run_id, dict(model.params)) == (
        "churn-model",
        run.info.run_id,
        {"depth": "4"},
    )
    assert client.get_run_models(run.info.run_id) == ([], [(model.model_id, 2)])
    assert {f.path for f in client.list_model_artifacts(model.model_id)} == {"MLmodel", "sub"}

    version = tracking.register_model(model.model_uri, "churn")
    assert (version.version, version.model_id) == ("1", model.model_id)
    assert tracking.register_model(model.model_uri, "churn").version == "2"
    client.set_registered_model_alias("churn", "champion", "1")

    with tracking.start_run(run_name="serve") as serve:
        local = Path(tracking.use_model("models:/churn@champion", tmp_path / "dst"))
    assert (local / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 100
    assert (local / "MLmodel").read_text() == "flavors: {}\n"
    assert client.get_run_models(serve.info.run_id) == ([model.model_id], [])
    # The use is a lineage edge from the producing run, naming the model and the
    # digest of its files (each relative path with its content's sha256, in order).
    files = sorted(("MLmodel", "sub/weights.bin"))
    tree = hashlib.sha256(
        "".join(
            f"{name}\0{hashlib.sha256((local / name).read_bytes()).hexdigest()}\n" for name in files
        ).encode()
    ).hexdigest()
    (edge,) = client.get_lineage(serve.info.run_id).consumed
    assert (edge.producer_run_id, edge.artifact_path, edge.sha256) == (
        run.info.run_id,
        model.model_uri,
        tree,
    )
    # Handed on as a LoggedModel or its ModelRef (what a pipeline step returns); a
    # LoggedModel pickles (a Prefect task's persisted result).
    assert pickle.loads(pickle.dumps(model)) == model
    for handed in (model, model.ref):
        with tracking.start_run(run_name="consume") as consume:
            tracking.use_model(handed, tmp_path / f"dst-{type(handed).__name__}")
        (edge,) = client.get_lineage(consume.info.run_id).consumed
        assert (edge.producer_run_id, edge.artifact_path) == (run.info.run_id, model.model_uri)
    own_source = tmp_path / "own-src"
    own_source.mkdir()
    (own_source / "MLmodel").write_text("flavors: {}\n")
    with tracking.start_run(run_name="own") as own:
        mine = tracking.log_model(own_source, "mine")
        tracking.use_model(mine.ref, tmp_path / "dst-own")
    assert client.get_lineage(own.info.run_id).consumed == ()  # no edge to itself
    for uri in ("models:/churn/2", "models:/churn/latest", model.model_uri):
        assert client.resolve_model_uri(uri).model_id == model.model_id
    with pytest.raises(NotFoundError):
        client.resolve_model_uri("models:/churn@nobody")
    with pytest.raises(InvalidParameterError, match="models:/"):
        tracking.use_model("runs:/abc/model")

    with tracking.start_run(), pytest.raises(InvalidParameterError):
        tracking.log_model(tmp_path / "no-such-dir", "broken")
    broken = client.search_logged_models(run.info.experiment_id, "name = 'broken'")
    assert [m.status for m in broken] == [LoggedModelStatus.FAILED]


def test_fluent_models_on_sqlite(fluent_uri: str, tmp_path: Path) -> None:
    _exercise(tmp_path)


@pytest.fixture
def server_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from tracking.server import create_app
    from tracking.server.settings import ServerSettings

    settings = ServerSettings(
        backend_store_uri=f"sqlite:///{tmp_path / 'server.db'}",
        artifacts_destination=str(tmp_path / "server-artifacts"),
    )
    with serving(create_app(settings)) as url:
        monkeypatch.setenv("TRACKFLOW_TRACKING_URI", url)
        reset_settings()
        fluent._reset_for_tests()
        clear_store_cache()
        tracking.set_tracking_uri(url)
        yield url
        fluent._reset_for_tests()
        clear_store_cache()


def test_fluent_models_over_the_server(server_uri: str, tmp_path: Path) -> None:
    _exercise(tmp_path)
    stored = list((tmp_path / "server-artifacts").rglob("weights.bin"))
    assert len(stored) == 1 and "/models/m-" in stored[0].as_posix()
