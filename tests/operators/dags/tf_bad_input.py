"""The operators given bad input: each task fails with a clear error."""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

import tracking
from operators import ChampionChallengerOperator, PromoteRunOperator, TrackflowRunSensor


@dag(
    dag_id="tf_bad_input",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
)
def tf_bad_input() -> None:
    @task
    def make() -> None:
        tracking.log_metric("score", 0.7)

    @task
    def fails() -> None:
        raise RuntimeError("the upstream job crashed")

    branches = {"promote_task_ids": "make", "keep_task_ids": "make"}
    unknown_metric = ChampionChallengerOperator(
        task_id="unknown_metric", challenger_task_id="make", metric="auc", **branches
    )
    no_champion = ChampionChallengerOperator(
        task_id="no_champion",
        challenger_task_id="make",
        metric="score",
        if_no_champion="fail",
        **branches,
    )
    bad_direction = ChampionChallengerOperator(
        task_id="bad_direction",
        challenger_task_id="make",
        metric="score",
        direction="up",
        **branches,
    )
    missing_connection = PromoteRunOperator(
        task_id="missing_connection", run_task_id="make", trackflow_conn_id="no_such_conn"
    )
    failed_run = TrackflowRunSensor(
        task_id="failed_run",
        run_id="{{ macros.trackflow.task_run_id(ti, 'fails') }}",
        poke_interval=0.1,
        timeout=30,
        trigger_rule="all_done",
    )
    untracked_task = PromoteRunOperator(task_id="untracked_task", run_task_id="nowhere")

    made = make()
    made >> [unknown_metric, no_champion, bad_direction, missing_connection, untracked_task]
    fails() >> failed_run


tf_bad_input()
