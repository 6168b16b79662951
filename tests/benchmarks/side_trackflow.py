"""The trackflow side of the benchmark; runs in the project's environment.

Never imports MLflow. The calls mirror ``side_mlflow.py`` one for one:
``TrackingClient`` for explicit run ids, the fluent ``tracking.*`` functions
for ``with start_run()``. Embedded (a SQLite file in the work directory) unless
given a tracking URI: a server's ``http://`` address.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import tracking


class TrackflowSide:
    name = "trackflow"
    version = version("trackflow")

    def __init__(self, workdir: Path, tracking_uri: str | None = None) -> None:
        os.chdir(workdir)
        self.db_path: Path | None = None
        artifacts = None  # a server chooses its own
        if tracking_uri is None:
            self.db_path = workdir / "trackflow.db"
            tracking_uri = f"sqlite:///{self.db_path}"
            artifacts = (workdir / "artifacts").as_uri()
            os.environ["TRACKFLOW_ARTIFACT_ROOT"] = artifacts
        # The fluent API reads its configuration from the environment, as in a pipeline task.
        os.environ["TRACKFLOW_TRACKING_URI"] = tracking_uri
        tracking.set_tracking_uri(tracking_uri)
        self.client = tracking.TrackingClient(tracking_uri=tracking_uri, artifact_root=artifacts)

    def create_experiment(self, name: str) -> str:
        return self.client.create_experiment(name)

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
            metrics=[tracking.Metric(k, v, ts, step) for k, v, ts, step in metrics],
            params=[tracking.Param(k, v) for k, v in params],
        )

    def set_experiment(self, name: str) -> None:
        tracking.set_experiment(name)

    def fluent_run(self, params: Sequence[tuple[str, str]], metric: tuple[str, float]) -> None:
        with tracking.start_run():
            for key, value in params:
                tracking.log_param(key, value)
            tracking.log_metric(*metric)

    def search_runs(
        self, experiment_id: str, filter_string: str, order_by: list[str], max_results: int
    ) -> list[tuple[str, float]]:
        runs = self.client.search_runs(
            [experiment_id], filter_string, order_by=order_by, max_results=max_results
        )
        return [(r.info.run_id, r.data.metrics["acc"]) for r in runs]

    def get_metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [(m.step, m.value) for m in self.client.get_metric_history(run_id, key)]


def make_side(workdir: Path, tracking_uri: str | None = None) -> TrackflowSide:
    return TrackflowSide(workdir, tracking_uri)
