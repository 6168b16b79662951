"""docker/ checked without a Docker engine: the Compose Specification's JSON schema,
hadolint, yamllint, and the compose file against the topology the native test runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _topology import (
    BUCKET,
    CORE_SERVICES,
    MIGRATE_COMMAND,
    PER_SITE,
    SERVER_COMMAND,
    SERVER_REPLICAS,
    SERVER_SETTINGS,
    SERVER_WAITS_FOR,
    migrate_env,
    server_env,
)

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
BIN = Path(sys.executable).parent
DOCKERFILES = sorted(
    p for p in DOCKER.rglob("Dockerfile*") if p.is_file() and not p.name.endswith(".dockerignore")
)


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = BIN / name
    assert binary.exists(), f"{name} is missing from the environment (a dev dependency): uv sync"
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=120, check=False
    )


_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's interpolation with nothing set: ``${X:-d}`` is d, ``${X:?msg}`` a
    placeholder ``<X>``, ``$$`` a dollar."""
    if isinstance(value, str):
        text = _VARIABLE.sub(
            lambda m: m.group(3) if m.group(2) == "-" else f"<{m.group(1)}>", value
        )
        return text.replace("$$", "$")
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    service: dict[str, Any] = _interpolate(compose["services"][name])
    return service


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_compose_matches_the_compose_specification() -> None:
    done = _tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    done = _tool("hadolint", "--failure-threshold", "info", str(dockerfile))
    assert done.returncode == 0, done.stdout + done.stderr


def test_yaml_passes_yamllint() -> None:
    done = _tool("yamllint", "--strict", "-c", str(DOCKER / ".yamllint"), str(DOCKER))
    assert done.returncode == 0, done.stdout + done.stderr


def test_there_is_a_dockerfile_with_the_three_targets() -> None:
    assert DOCKERFILES == [DOCKER / "Dockerfile"]
    text = (DOCKER / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE)
    assert {"build", "trackflow", "airflow", "prefect-worker"} <= set(stages)
    # Every image runs as a numeric non-root user.
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert len(users) == 3 and all(u.split(":")[0] not in ("0", "root") for u in users)
    assert "UV_FROZEN=1" in text  # from the lock, never resolved at build time
    assert "--extra postgres --extra mysql --extra s3" in text
    trackflow_stage = text.split("AS trackflow", 1)[1].split("\nFROM ", 1)[0]
    assert "HEALTHCHECK" in trackflow_stage and "/health" in trackflow_stage


def test_compose_profiles(compose: dict[str, Any]) -> None:
    by_profile: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        for profile in service.get("profiles") or ["core"]:
            by_profile.setdefault(profile, set()).add(name)
    assert by_profile["core"] == set(CORE_SERVICES)
    assert by_profile["airflow"] == {
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    }
    assert by_profile["prefect"] == {"prefect-server", "prefect-init", "prefect-worker"}
    for name in by_profile["airflow"] - {"redis"}:
        env = _env(_service(compose, name))
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        connection = env["AIRFLOW_CONN_TRACKFLOW_DEFAULT"]
        assert '"conn_type": "trackflow"' in connection and '"host": "trackflow"' in connection
    # The S3 store: SeaweedFS's official image (MinIO publishes none any more).
    assert compose["services"]["seaweedfs"]["image"].startswith("chrislusf/seaweedfs:")


def test_no_literal_secrets_in_compose(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|_CONN_|STORE_URI|TRACKING_URI", key):
                if "://" in value and "@" not in value:
                    continue  # an address without credentials
                assert "${" in value, f"{name}: {key} holds a literal secret"
    assert {s["file"] for s in compose["secrets"].values()} <= {
        "./secrets/s3_credentials",
        "./secrets/seaweedfs_s3.json",
    }
    ignored = (DOCKER / ".gitignore").read_text().split()
    assert ".env" in ignored and "secrets/*" in ignored


def _compare(compose_env: dict[str, str], native_env: dict[str, str], what: str) -> None:
    assert set(compose_env) == set(native_env), what
    for key in compose_env.keys() - PER_SITE:
        assert compose_env[key] == native_env[key], f"{what}: {key}"


def test_compose_starts_what_the_native_topology_starts(compose: dict[str, Any]) -> None:
    native = dict(db_uri="postgresql://x", endpoint="http://x", token="t", credentials_file="f")
    migrate = _service(compose, "migrate")
    assert tuple(migrate["command"]) == MIGRATE_COMMAND
    _compare(_env(migrate), migrate_env("postgresql://x"), "migrate")

    server = _service(compose, "trackflow")
    assert tuple(server["command"]) == SERVER_COMMAND
    _compare(_env(server), server_env(**native, workers=1), "trackflow")
    assert int(server["deploy"]["replicas"]) == SERVER_REPLICAS
    assert _env(server)["TRACKFLOW_SERVER_ARTIFACTS_DESTINATION"] == f"s3://{BUCKET}/artifacts"
    # The servers wait for the one-shot jobs, and never migrate themselves.
    waits = server["depends_on"]
    for job in SERVER_WAITS_FOR:
        assert waits[job]["condition"] == "service_completed_successfully", job
    assert SERVER_SETTINGS["TRACKFLOW_SERVER_MIGRATE"] == "false"
    assert waits["postgres"]["condition"] == "service_healthy"
    assert waits["seaweedfs"]["condition"] == "service_healthy"
    assert _service(compose, "migrate")["depends_on"]["postgres"]["condition"] == (
        "service_healthy"
    )
    bucket_job = _service(compose, "create-bucket")
    assert _env(bucket_job)["BUCKET"] == BUCKET
    assert "create-bucket" in " ".join(bucket_job["command"])
    # The Airflow and Prefect sides talk to the servers' service name.
    assert "trackflow" in _env(server)["TRACKFLOW_SERVER_ALLOWED_HOSTS"].split(",")


def test_kubernetes_manifests_run_the_same_server() -> None:
    docs = list(yaml.safe_load_all((DOCKER / "k8s" / "trackflow.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Job", "Deployment", "Service"}
    job = kinds["Job"]["spec"]["template"]["spec"]["containers"][0]
    assert tuple(job["args"]) == MIGRATE_COMMAND
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert tuple(container["args"]) == SERVER_COMMAND
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    for key, value in SERVER_SETTINGS.items():
        assert env[key] == value, key
    for secret in ("TRACKFLOW_SERVER_BACKEND_STORE_URI", "TRACKFLOW_SERVER_AUTH_TOKEN"):
        assert "secretKeyRef" in env[secret], secret
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert os.path.basename(container["image"]).startswith("trackflow")
