"""Artifacts through the server: ``mlflow.log_artifact(s)``, ``log_text``, ``log_dict``,
``MlflowClient.list_artifacts``, ``mlflow.artifacts.download_artifacts`` and
``MlflowClient.download_artifacts``, compared byte for byte by sha256.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import mlflow
from _common import Scenario, error_of, sha256, tree
from mlflow import MlflowClient

scenario = Scenario()
client = MlflowClient()


def write_sources(root: Path) -> dict[str, Path]:
    rng = random.Random(7)
    root.mkdir(parents=True, exist_ok=True)
    every_byte = bytes(range(256)) * 64  # all byte values, NUL and 0xff included
    blob = root / "blob.bin"
    blob.write_bytes(every_byte + rng.randbytes(3 * 1024 * 1024))
    notes = root / "notes.txt"
    notes.write_text("line one\r\nligne deux ✓\n", encoding="utf-8", newline="")
    empty = root / "empty.txt"
    empty.write_bytes(b"")
    data = root / "data"
    (data / "sub").mkdir(parents=True, exist_ok=True)
    (data / "a.csv").write_text("x,y\n1,2\n")
    (data / "sub" / "b.json").write_text('{"k": [1, 2, 3]}')
    (data / "sub" / "name with spaces.txt").write_text("spaces")
    return {"blob": blob, "notes": notes, "empty": empty, "data": data}


sources = write_sources(scenario.workdir / "sources")


@scenario.step("log")
def logged() -> dict[str, Any]:
    mlflow.set_experiment(scenario.name("artifacts"))
    with mlflow.start_run(run_name="art") as run:
        mlflow.log_artifact(str(sources["blob"]))
        mlflow.log_artifact(str(sources["notes"]), artifact_path="docs")
        mlflow.log_artifact(str(sources["empty"]), artifact_path="docs")
        mlflow.log_artifacts(str(sources["data"]), artifact_path="data")
        mlflow.log_text("hello ✓\n", "text/hello.txt")
        mlflow.log_dict({"a": 1, "b": [1, 2]}, "cfg/config.json")
        artifact_uri = mlflow.get_artifact_uri()
    return {
        "run_id": run.info.run_id,
        "artifact_uri": artifact_uri,
        "run_artifact_uri": client.get_run(run.info.run_id).info.artifact_uri,
        "sources": {
            "blob.bin": sha256(sources["blob"]),
            "docs/notes.txt": sha256(sources["notes"]),
            "docs/empty.txt": sha256(sources["empty"]),
            **{f"data/{k}": v for k, v in tree(sources["data"]).items()},
        },
        "blob_size": sources["blob"].stat().st_size,
    }


scenario.require(logged)
run_id = logged["run_id"]


@scenario.step("list")
def listed() -> dict[str, Any]:
    def ls(path: str | None) -> list[list[Any]]:
        return [[f.path, f.is_dir, f.file_size] for f in client.list_artifacts(run_id, path)]

    return {
        "root": ls(None),
        "data": ls("data"),
        "data/sub": ls("data/sub"),
        "docs": ls("docs"),
        "missing": ls("no/such/dir"),
    }


@scenario.step("download_file")
def download_file() -> dict[str, Any]:
    dst = scenario.workdir / "dl-file"
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="blob.bin", dst_path=str(dst)
    )
    return {
        "relative": Path(local).relative_to(dst.resolve()).as_posix(),
        "sha256": sha256(Path(local)),
    }


@scenario.step("download_dir")
def download_dir() -> dict[str, str]:
    dst = scenario.workdir / "dl-dir"
    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="data", dst_path=str(dst)
    )
    return tree(Path(local))


@scenario.step("download_all")
def download_all() -> dict[str, str]:
    dst = scenario.workdir / "dl-all"
    local = mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=str(dst))
    return tree(Path(local))


@scenario.step("client_download")
def client_download() -> dict[str, Any]:
    dst = scenario.workdir / "dl-client"
    dst.mkdir()
    local = client.download_artifacts(run_id, "docs/notes.txt", str(dst))
    return {"sha256": sha256(Path(local)), "name": Path(local).name}


@scenario.step("load")
def load() -> dict[str, Any]:
    base = logged["artifact_uri"]
    return {
        "text": mlflow.artifacts.load_text(f"{base}/text/hello.txt"),
        "dict": mlflow.artifacts.load_dict(f"{base}/cfg/config.json"),
    }


@scenario.step("download_missing")
def download_missing() -> dict[str, Any]:
    dst = scenario.workdir / "dl-missing"
    return error_of(
        lambda: mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="no/such/file.txt", dst_path=str(dst)
        )
    )


scenario.finish()
