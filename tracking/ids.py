"""Deterministic run ids, so a retried task or a re-sent request never makes a second run."""

from __future__ import annotations

import uuid

__all__ = ["TRACKFLOW_NAMESPACE", "run_id_for"]

#: The uuid5 namespace of trackflow's derived run ids.
TRACKFLOW_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://trackflow.dev/run-id")


def run_id_for(*keys: object) -> str:
    """A stable 32-hex-digit run id derived from ``keys`` (uuid5).

    Example::

        run_id = tracking.run_id_for("retrain_dag", "scheduled__2026-11-26", "train")
        client.create_run(exp_id, run_id=run_id)   # a retry returns the same run
    """
    if not keys:
        raise ValueError("run_id_for needs at least one key")
    # The unit separator cannot appear by accident, so ("a", "b") and ("a\x1fb",)
    # are the only pair that collide, and only by intent.
    name = "\x1f".join(str(k) for k in keys)
    return uuid.uuid5(TRACKFLOW_NAMESPACE, name).hex
