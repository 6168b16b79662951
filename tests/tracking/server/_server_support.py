"""Constants and helpers shared by the server tests (imported by basename, so uniquely named)."""

from __future__ import annotations

import uuid

TOKEN = "s3cret-token-for-tests"
MLFLOW = "/api/2.0/mlflow"
TRACKFLOW = "/api/2.0/trackflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


def unique(prefix: str = "exp") -> str:
    """A name no other test of the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
