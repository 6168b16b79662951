"""A task whose subprocess logs with the stock mlflow client (MLFLOW_RUN_ID and
MLFLOW_TRACKING_URI come from the task's environment)."""

from __future__ import annotations

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import dag

SCRIPT = "import mlflow; mlflow.log_metric('stock', 3.0); mlflow.set_tag('client', 'mlflow')"


@dag(
    dag_id="tf_stock_mlflow",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    tags=["trackflow"],
)
def tf_stock_mlflow() -> None:
    BashOperator(
        task_id="stock_mlflow",
        bash_command="{{ dag_run.conf['mlflow_python'] }} -c \"" + SCRIPT + '"',
    )


tf_stock_mlflow()
