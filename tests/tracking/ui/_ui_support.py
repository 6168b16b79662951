"""The store the browser tests look at, filled through a real server's REST API
(imported by basename, so uniquely named)."""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tracking import TrackingClient
from tracking.entities import Metric, Param, RunTag

#: Where the browser tests save what the pages showed.
SCREENSHOTS = Path(
    os.environ.get(
        "TRACKFLOW_UI_SCREENSHOTS", Path(__file__).resolve().parents[3] / ".ui-screenshots"
    )
)
AIRFLOW_URL = "http://airflow.example:8080/dags/retrain/runs/scheduled__2026-11-05/tasks/train"
PREFECT_URL = "http://prefect.example:4200/runs/flow-run/0b9a7e1c"
#: The spike in trial-a0's ``loss``: a sampled chart must still show it.
SPIKE = 50.0
HISTORY_POINTS = 5_000
MANY_RUNS = 230


def png(width: int = 4, height: int = 3) -> bytes:
    """A small valid RGB PNG (a red-to-blue gradient), written with zlib alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"".join(bytes((255 * x // width, 0, 255 * y // height)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass
class UiStore:
    """Ids of what :func:`fill` logged."""

    sweep_experiment: str = ""
    pipelines_experiment: str = ""
    many_experiment: str = ""
    runs: dict[str, str] = field(default_factory=dict)


def _history(client: TrackingClient, run_id: str, key: str, values: list[float]) -> None:
    metrics = [Metric(key, v, 1_700_000_000_000 + i * 1000, i) for i, v in enumerate(values)]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])


def _log_bytes(client: TrackingClient, run_id: str, workdir: Path, data: bytes, path: str) -> None:
    local = workdir / "upload" / path
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    directory = str(Path(path).parent)
    client.log_artifact(run_id, str(local), None if directory == "." else directory)


def fill(url: str, workdir: Path) -> UiStore:
    """Nested runs three deep, pipeline tags, lineage, artifacts of each previewable kind,
    a metric with a spike, and an experiment of many top-level runs."""
    client = TrackingClient(url)
    found = UiStore()
    runs = found.runs

    # -- a sweep three levels deep ----------------------------------------------------
    found.sweep_experiment = client.create_experiment("ui-sweep")
    sweep = client.create_run(found.sweep_experiment, run_name="sweep")
    runs["sweep"] = sweep.info.run_id
    client.log_batch(runs["sweep"], params=[Param("trials", "4"), Param("seed", "7")])
    for family, lr in (("family-a", 0.01), ("family-b", 0.1)):
        fam = client.create_run(
            found.sweep_experiment, run_name=family, parent_run_id=runs["sweep"]
        )
        runs[family] = fam.info.run_id
        for i in range(2):
            name = f"trial-{family[-1]}{i}"
            trial = client.create_run(
                found.sweep_experiment, run_name=name, parent_run_id=fam.info.run_id
            )
            rid = runs[name] = trial.info.run_id
            client.log_batch(
                rid,
                params=[
                    Param("lr", str(lr)),
                    Param("depth", str(3 + 3 * i)),
                    Param("optimizer", "adam"),
                ],
                tags=[RunTag("family", family)],
            )
            loss = [1.0 / (1 + step * (lr * 10 + i)) for step in range(HISTORY_POINTS)]
            if name == "trial-a0":
                loss[3_333] = SPIKE
            _history(client, rid, "loss", loss)
            _history(client, rid, "acc", [1 - v / 2 for v in loss[:200]])
            status = "FAILED" if name == "trial-b1" else "FINISHED"
            client.set_terminated(rid, status)
        client.set_terminated(fam.info.run_id, "FINISHED")
    client.set_terminated(runs["sweep"], "FINISHED")

    # -- pipelines: an Airflow DAG run and a Prefect flow run, with lineage ------------
    found.pipelines_experiment = client.create_experiment("ui-pipelines")
    eid = found.pipelines_experiment
    dag = client.create_run(
        eid,
        run_name="retrain / scheduled__2026-11-05",
        tags={
            "airflow.dag_id": "retrain",
            "airflow.run_id": "scheduled__2026-11-05",
            "airflow.url": "http://airflow.example:8080/dags/retrain/runs/scheduled__2026-11-05",
            "trackflow.orchestrator": "airflow",
        },
    )
    runs["dag"] = dag.info.run_id
    for task in ("extract", "train"):
        ti = client.create_run(
            eid,
            run_name=task,
            parent_run_id=runs["dag"],
            tags={
                "airflow.dag_id": "retrain",
                "airflow.run_id": "scheduled__2026-11-05",
                "airflow.task_id": task,
                "airflow.map_index": "-1",
                "airflow.try_number": "2" if task == "train" else "1",
                "airflow.operator": "_PythonDecoratedOperator",
                "airflow.url": AIRFLOW_URL.replace("/train", f"/{task}"),
                "trackflow.orchestrator": "airflow",
            },
        )
        runs[task] = ti.info.run_id
    data = b"x,y\n1,2\n3,4\n"
    _log_bytes(client, runs["extract"], workdir, data, "data/train.csv")
    client.record_lineage(
        runs["train"], runs["extract"], "data/train.csv", hashlib.sha256(data).hexdigest()
    )
    client.log_metric(runs["train"], "holdout_accuracy", 0.91)
    for rid in (runs["extract"], runs["train"], runs["dag"]):
        client.set_terminated(rid, "FINISHED")
    flow = client.create_run(
        eid,
        run_name="nightly-flow",
        tags={
            "prefect.flow_name": "nightly",
            "prefect.flow_run_id": "0b9a7e1c",
            "prefect.flow_run_name": "crimson-otter",
            "prefect.run_count": "1",
            "prefect.url": PREFECT_URL,
        },
    )
    runs["flow"] = flow.info.run_id
    task_run = client.create_run(
        eid,
        run_name="score[0]",
        parent_run_id=runs["flow"],
        tags={
            "prefect.flow_name": "nightly",
            "prefect.flow_run_id": "0b9a7e1c",
            "prefect.task_run_id": "77aa",
            "prefect.task_run_name": "score-0",
            "prefect.map_index": "0",
            "prefect.run_count": "1",
            "prefect.url": PREFECT_URL + "/task-run/77aa",
        },
    )
    runs["task_run"] = task_run.info.run_id

    # -- artifacts of every previewable kind ------------------------------------------
    art = client.create_run(eid, run_name="artifacts")
    rid = runs["artifacts"] = art.info.run_id
    client.log_text(rid, "hello from a text artifact\nsecond line\n", "notes.txt")
    client.log_text(rid, '{"b": [1, 2], "a": {"nested": true}}', "config.json")
    client.log_text(rid, "name,score\nalpha,1\nbeta,2\n", "tables/scores.csv")
    client.log_text(rid, "name\tscore\ngamma\t3\n", "tables/scores.tsv")
    _log_bytes(client, rid, workdir, png(), "plots/gradient.png")
    client.log_text(
        rid,
        "<!doctype html><h1 id=heading>Report</h1>"
        "<script>parent.document.title = 'escaped'; window.ran = 1;</script>",
        "report.html",
    )
    client.log_text(rid, "y" * ((1 << 20) + 10), "big.log")
    _log_bytes(client, rid, workdir, b"\x00\x01binary", "model.bin")

    # -- many top-level runs, for paging -----------------------------------------------
    found.many_experiment = client.create_experiment("ui-many")
    for i in range(MANY_RUNS):
        run = client.create_run(
            found.many_experiment, run_name=f"run-{i:03d}", start_time=1_000 + i
        )
        client.log_batch(run.info.run_id, metrics=[Metric("score", float(i), 0, 0)])
    return found
