"""Untracked. While its task runs, the listener's dispatcher thread reads the trackflow
connection again and again in the same process (what ``dag.test()`` does when a DAG
run's end is still being tracked as the next DAG run's tasks start), and the task
checks that its supervisor channel stays in place meanwhile, as the task runner
needs it for each of its messages (rendered fields, XComs, its end state)."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import dag, task

LOOKUPS = 40


@dag(dag_id="tf_beside_task", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))
def tf_beside_task() -> None:
    @task
    def talk() -> dict[str, Any]:
        from airflow.sdk.execution_time import task_runner

        from operators._tracking import airflow_tracking

        tracking = airflow_tracking()
        uris: list[str] = []

        def look_up() -> None:
            tracking._config = None  # as a process that has not read it yet
            uris.append(str(tracking.config().tracking_uri))

        for _ in range(LOOKUPS):
            tracking.dispatcher.submit("connection lookup", look_up)
        checks = missing = 0
        while len(uris) < LOOKUPS and checks < 10_000_000:
            if getattr(task_runner, "SUPERVISOR_COMMS", None) is None:
                missing += 1
            checks += 1
        assert tracking.flush(60)
        return {"uris": uris, "checks": checks, "missing": missing}

    talk()


tf_beside_task()
