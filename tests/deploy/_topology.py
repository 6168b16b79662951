"""The deployment topology, described once (imported by basename, so uniquely named).

``test_topology.py`` runs it natively on loopback and ``test_offline_checks.py``
compares it with ``docker/compose.yaml``, so the two cannot drift apart: the same
services, started in the same order, with the same commands and the same
settings. Only addresses, secrets and scale (how many replicas and workers)
differ between a laptop's loopback and a compose network.
"""

from __future__ import annotations

#: The core services of compose.yaml and what stands for each in the native run.
CORE_SERVICES = {
    "postgres": "the PostgreSQL server of .ci/services.sh, a database of the test's own",
    "seaweedfs": "moto_server on loopback (an S3 endpoint)",
    "create-bucket": "the bucket created once with s3fs",
    "migrate": "`trackflow db upgrade`, once",
    "trackflow": "two `trackflow server` processes on two ports",
}
#: One-shot jobs every server waits for (compose: service_completed_successfully).
SERVER_WAITS_FOR = ("migrate", "create-bucket")
SERVER_REPLICAS = 2
BUCKET = "trackflow"
MIGRATE_COMMAND = ("db", "upgrade")
SERVER_COMMAND = ("server",)

#: Settings whose values depend on where the topology runs (addresses, secrets,
#: scale): compared by name only.
PER_SITE = frozenset(
    {
        "TRACKFLOW_TRACKING_URI",
        "TRACKFLOW_SERVER_BACKEND_STORE_URI",
        "TRACKFLOW_SERVER_ARTIFACTS_ENDPOINT_URL",
        "TRACKFLOW_SERVER_AUTH_TOKEN",
        "TRACKFLOW_SERVER_WORKERS",
        "AWS_SHARED_CREDENTIALS_FILE",
    }
)

#: The server settings that are the same everywhere.
SERVER_SETTINGS = {
    "TRACKFLOW_SERVER_MIGRATE": "false",
    "TRACKFLOW_SERVER_DB_POOL_SIZE": "4",
    "TRACKFLOW_SERVER_DB_MAX_OVERFLOW": "4",
    "TRACKFLOW_SERVER_ARTIFACTS_DESTINATION": f"s3://{BUCKET}/artifacts",
    "TRACKFLOW_SERVER_ARTIFACTS_REGION": "us-east-1",
    "TRACKFLOW_SERVER_ARTIFACTS_PATH_STYLE": "true",
    "TRACKFLOW_SERVER_ALLOWED_HOSTS": "trackflow,localhost,127.0.0.1,private",
}


def migrate_env(db_uri: str) -> dict[str, str]:
    """The environment of the one-shot migration."""
    return {"TRACKFLOW_TRACKING_URI": db_uri}


def server_env(
    *, db_uri: str, endpoint: str, token: str, credentials_file: str, workers: int
) -> dict[str, str]:
    """The environment of every server replica."""
    return {
        **SERVER_SETTINGS,
        "TRACKFLOW_SERVER_BACKEND_STORE_URI": db_uri,
        "TRACKFLOW_SERVER_ARTIFACTS_ENDPOINT_URL": endpoint,
        "TRACKFLOW_SERVER_AUTH_TOKEN": token,
        "TRACKFLOW_SERVER_WORKERS": str(workers),
        "AWS_SHARED_CREDENTIALS_FILE": credentials_file,
    }
