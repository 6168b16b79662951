"""The MLflow side of the benchmark; runs in MLflow's own environment (``.bench/mlflow-env``).

Never imports trackflow. Uses MLflow the way its docs do: ``MlflowClient`` for
explicit run ids, the fluent ``mlflow.*`` functions for ``with start_run()``.
Embedded (a SQLite file in the work directory) unless given a tracking URI: a
server's ``http://`` address, MLflow's or trackflow's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param


class MlflowSide:
    name = "mlflow"
    version = mlflow.__version__

    def __init__(self, workdir: Path, tracking_uri: str | None = None) -> None:
        os.chdir(workdir)
        self.db_path: Path | None = None
        self.artifacts: str | None = None  # a server chooses its own
        if tracking_uri is None:
            self.db_path = workdir / "mlflow.db"
            self.artifacts = (workdir / "artifacts").as_uri()
            tracking_uri = f"sqlite:///{self.db_path}"
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=tracking_uri)

    def create_experiment(self, name: str) -> str:
        return self.client.create_experiment(name, artifact_location=self.artifacts)

    def create_run(self, experiment_id: str) -> str:
        return self.client.create_run(experiment_id).info.run_id

    def end_run(self, run_id: str) -> None:
        self.client.set_terminated(run_id)

    def log_metric(self, run_id: str, key: str, value: float, step: int) -> None:
        self.client.log_metric(run_id, key, value, step=step)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, int]],
        params: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, ts, step) for k, v, ts, step in metrics],
            params=[Param(k, v) for k, v in params],
        )

    def set_experiment(self, name: str) -> None:
        mlflow.set_experiment(name)

    def fluent_run(self, params: Sequence[tuple[str, str]], metric: tuple[str, float]) -> None:
        with mlflow.start_run():
            for key, value in params:
                mlflow.log_param(key, value)
            mlflow.log_metric(*metric)

    def search_runs(
        self, experiment_id: str, filter_string: str, order_by: list[str], max_results: int
    ) -> list[tuple[str, float]]:
        runs = self.client.search_runs(
            [experiment_id], filter_string, order_by=order_by, max_results=max_results
        )
        return [(r.info.run_id, r.data.metrics["acc"]) for r in runs]

    def get_metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]


def make_side(workdir: Path, tracking_uri: str | None = None) -> MlflowSide:
    return MlflowSide(workdir, tracking_uri)
