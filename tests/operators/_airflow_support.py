"""Constants and helpers of the Airflow tests (imported by basename, so uniquely named;
nothing here imports Airflow)."""

from __future__ import annotations

import json
from typing import Any

from tracking import Run, TrackingClient

#: Where the Airflow UI pretends to be: links to it are asserted against this.
AIRFLOW_UI = "http://airflow.test:8080"
#: Where the trackflow UI pretends to be, for the embedded store's links.
TRACKFLOW_UI = "http://tracking.test:5000"


def connection_env(url: str, **extra: Any) -> str:
    """``AIRFLOW_CONN_*`` JSON of a trackflow connection to ``url``."""
    scheme, rest = url.split("://", 1)
    host, port = rest.rsplit(":", 1)
    conn: dict[str, Any] = {"conn_type": "trackflow", "host": host, "port": int(port)}
    conn["schema"] = scheme
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


def run_tree(client: TrackingClient, dag_id: str, run_id: str) -> tuple[Run, dict[str, Run]]:
    """The DAG run's run and its task runs by name."""
    from operators._tracking import pipeline_for

    parent = client.get_run(pipeline_for(dag_id, run_id).run_id)
    children = {r.info.run_name: r for r in client.get_subtree(parent.info.run_id)}
    return parent, children
