"""Where an orchestrator's steps log, and what a step hands its subprocesses.

Airflow's ``trackflow`` connection and Prefect's ``TrackflowConfig`` block
both come down to a :class:`StoreConfig`; :func:`enter_step_env` /
:func:`leave_step_env` put a step's run in the environment of the processes
the step starts (``start_run()`` there joins it, so does the stock mlflow
client against a server)::

    saved = enter_step_env(step.run_id, config)
    try:
        subprocess.run(["python", "train.py"])
    finally:
        leave_step_env(saved)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from tracking.client import TrackingClient
from tracking.links import ui_base_for

__all__ = ["StoreConfig", "enter_step_env", "leave_step_env", "patient_client"]


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """A tracking store as an orchestrator's configuration names it."""

    tracking_uri: str
    token: str | None = None
    artifact_root: str | None = None
    experiment: str | None = None
    ui_base_url: str | None = None
    conn_id: str | None = None

    def client(self, *, max_retries: int | None = None, timeout: float | None = None) -> Any:
        """A :class:`~tracking.TrackingClient` for this store (``max_retries`` and
        ``timeout`` bound each HTTP call to a server)."""
        if self.tracking_uri.startswith(("http://", "https://")):
            from tracking.store.rest import RestTrackingStore

            store = RestTrackingStore(
                self.tracking_uri, token=self.token, max_retries=max_retries, timeout=timeout
            )
            return TrackingClient.from_store(store, self.tracking_uri)
        return TrackingClient(self.tracking_uri, artifact_root=self.artifact_root)

    def env(self) -> dict[str, str]:
        """The environment a subprocess needs to reach the same store, for trackflow
        and for the stock mlflow client (only a server speaks its protocol)."""
        env = {"TRACKFLOW_TRACKING_URI": self.tracking_uri}
        if self.tracking_uri.startswith(("http://", "https://")):
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
            if self.token:
                env["TRACKFLOW_TRACKING_TOKEN"] = self.token
                env["MLFLOW_TRACKING_TOKEN"] = self.token
        if self.artifact_root:
            env["TRACKFLOW_ARTIFACT_ROOT"] = self.artifact_root
        return env

    @property
    def ui_base(self) -> str | None:
        """The web UI's base URL: the configured one, else the server's own."""
        return self.ui_base_url or ui_base_for(self.tracking_uri)


def patient_client(client: Any) -> Any:
    """The client a step's own code logs through, beside an orchestrator hook's
    ``client`` (built with few retries: a hook must not hold the pipeline up): against
    a server, a patient view of the same store (:meth:`RestTrackingStore.patient`), so
    a call waits out a server restart within ``TRACKFLOW_RETRY_TIMEOUT`` and still goes
    after the writes the hooks deferred; a store in the process has nothing to retry,
    and the same client serves."""
    from tracking.store.rest import RestTrackingStore

    store = client.store
    if not isinstance(store, RestTrackingStore):
        return client
    return TrackingClient.from_store(store.patient(), client.tracking_uri)


#: The step environments entered and not left yet, oldest first: what each put in
#: ``os.environ`` and what it replaced (the dict :func:`enter_step_env` returned).
_entered: list[tuple[dict[str, str | None], dict[str, str]]] = []
_entered_lock = threading.Lock()


def enter_step_env(run_id: str, config: StoreConfig) -> dict[str, str | None]:
    """Put ``run_id`` and ``config``'s store in ``os.environ``; returns what was there.

    The environment is the process's: steps running side by side in threads (Prefect's
    mapped task runs) take turns in it, the newest open step's holding, and each may
    leave in any order (:func:`leave_step_env`). So it is for the processes a step
    starts; the step's own code logs to the run attached to its context (see
    :mod:`tracking.fluent`)."""
    env = {"TRACKFLOW_RUN_ID": run_id, **config.env()}
    if "MLFLOW_TRACKING_URI" in env:
        env["MLFLOW_RUN_ID"] = run_id
    with _entered_lock:
        saved: dict[str, str | None] = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        _entered.append((saved, env))
    return saved


def leave_step_env(saved: dict[str, str | None]) -> None:
    """Put back what :func:`enter_step_env` replaced. A step that leaves while a step
    entered after it is still open leaves that one's values in place: what it had
    replaced is put back when that one leaves."""
    with _entered_lock:
        at = next((i for i, (known, _) in enumerate(_entered) if known is saved), None)
        if at is None:  # left already (empty), or a dict of the caller's own
            _restore(saved)
            return
        _, env = _entered.pop(at)
        for name in env:
            # The next step that set the name replaced this one's value: it gets what
            # this one had replaced; without one, it is put back now.
            later = next((before for before, set_ in _entered[at:] if name in set_), None)
            if later is not None:
                later[name] = saved[name]
            else:
                _restore({name: saved[name]})
        saved.clear()


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    saved.clear()
