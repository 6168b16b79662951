"""For the deployment tests (``test_airflow_deployment.py``): a BashOperator that sleeps until
the test sends SIGTERM to its task process (Airflow then calls ``on_kill``, which stops
the command), or lets go by itself after a while."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag

#: The longest the command sleeps (the test acts within seconds).
SLEEP_S = 90


@dag(
    dag_id="tf_deploy_sleep",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
    params={"markers": ""},
)
def tf_deploy_sleep() -> None:
    BashOperator(
        task_id="sleep",
        bash_command="touch '{{ params.markers }}/{{ run_id }}.holding' && sleep " + str(SLEEP_S),
    )


tf_deploy_sleep()
