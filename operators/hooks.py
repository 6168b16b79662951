"""``TrackflowHook``: the ``trackflow`` connection type and the client it gives.

A connection names a tracking server: host, port, scheme (``http`` or
``https``, in the *Schema* field), the server's token as the password, and in
its extras ``artifact_root``, ``experiment`` (the experiment the sensor searches
by default; tracked DAG runs go to the experiment named after their DAG),
``ui_base_url`` (where the web UI is, for links; default: the server itself)
and ``tracking_uri`` (any tracking URI instead of host and port, such as
``sqlite:////data/runs.db``)::

    airflow connections add trackflow_default --conn-type trackflow \\
        --conn-host tracking.internal --conn-port 5000 --conn-password "$TOKEN"

Without a ``trackflow_default`` connection the hook uses ``TRACKFLOW_TRACKING_URI``
(``sqlite:////abs/path/runs.db`` works for ``dag.test()`` and a one-machine
deployment). With neither, or when the connection cannot be read, it raises
:class:`~tracking.StoreNotConfiguredError` naming the cause: an Airflow
process never falls back to a ``./trackflow.db`` of its own working directory,
which the scheduler, the API server and the workers would each have apart. A
connection id that was named explicitly and does not exist is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk.bases.hook import BaseHook

from tracking.connection import StoreConfig
from tracking.errors import InvalidParameterError, StoreNotConfiguredError
from tracking.settings import configured_tracking_uri, get_settings, resolve_tracking_uri

__all__ = ["TrackflowConfig", "TrackflowHook", "default_config"]


#: What a ``trackflow`` connection (or the fallback settings) says.
TrackflowConfig = StoreConfig


class TrackflowHook(BaseHook):
    """Reaches trackflow through a ``trackflow`` connection::

        client = TrackflowHook().get_client()
        client.get_run(run_id)

    ``trackflow_conn_id`` defaults to ``trackflow_default``; when that default
    connection does not exist ``TRACKFLOW_TRACKING_URI`` must name the store.
    """

    conn_name_attr = "trackflow_conn_id"
    default_conn_name = "trackflow_default"
    conn_type = "trackflow"
    hook_name = "trackflow"

    def __init__(self, trackflow_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trackflow_conn_id = trackflow_conn_id
        self._config: TrackflowConfig | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How the Airflow UI shows the connection form."""
        return {
            "hidden_fields": ["login"],
            "relabeling": {"schema": "Scheme (http or https)", "password": "Token"},
            "placeholders": {
                "host": "tracking.internal",
                "port": "5000",
                "schema": "http",
                "extra": '{"ui_base_url": "https://tracking.example.com", "experiment": "retrain"}',
            },
        }

    def get_config(self) -> TrackflowConfig:
        """The connection's settings (read once per hook)."""
        if self._config is None:
            self._config = _config_for(self.trackflow_conn_id, self.default_conn_name)
        return self._config

    def get_conn(self) -> Any:
        """The client (Airflow's generic name for it)."""
        return self.get_client()

    def get_client(self) -> Any:
        """A :class:`~tracking.TrackingClient` for the connection."""
        return self.get_config().client()

    def test_connection(self) -> tuple[bool, str]:
        """Whether the store answers (the UI's *Test* button)."""
        try:
            client = self.get_config().client(max_retries=0, timeout=10.0)
            client.search_experiments(max_results=1)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to {self.get_config().tracking_uri}"


def default_config(*, server_side: bool = False) -> TrackflowConfig:
    """The default connection's settings (see :func:`_config_for` for ``server_side``)."""
    return _config_for(
        TrackflowHook.default_conn_name, TrackflowHook.default_conn_name, server_side=server_side
    )


def _config_for(
    conn_id: str, default_conn_id: str, *, server_side: bool = False
) -> TrackflowConfig:
    """The settings of ``conn_id``, else (the default connection) of the environment.

    ``server_side``: look the connection up as a server process does (environment, the
    configured secrets backend, Airflow's metadata database), never through the task
    supervisor's channel. Threads of ours that run beside a task must: ``dag.test()``
    runs its tasks in its own process, and while one runs the Task SDK's
    ``SUPERVISOR_COMMS`` is a process-wide channel that belongs to the task's thread;
    a lookup sent through it from another thread unsets it under the task, which then
    fails (``NameError: SUPERVISOR_COMMS``).
    """
    conn, failures = _lookup(conn_id, server_side=server_side)
    if conn is None:
        if conn_id != default_conn_id:
            raise InvalidParameterError(
                f"Airflow connection {conn_id!r} does not exist: create a connection of "
                "type 'trackflow' with that id, or leave trackflow_conn_id unset to use "
                "'trackflow_default' or TRACKFLOW_TRACKING_URI"
            )
        if failures:
            raise StoreNotConfiguredError(
                f"the Airflow connection {conn_id!r} could not be read ({failures}); "
                "nothing is tracked until it can be"
            )
        uri = configured_tracking_uri()
        if uri is None:
            raise StoreNotConfiguredError(
                f"no Airflow connection {conn_id!r} and no TRACKFLOW_TRACKING_URI in this "
                "process: add the connection (every Airflow process reads it) or set "
                "TRACKFLOW_TRACKING_URI for the scheduler, the API server and the workers "
                "alike; trackflow does not fall back to a ./trackflow.db of each process's "
                "own working directory"
            )
        settings = get_settings()
        return TrackflowConfig(
            tracking_uri=resolve_tracking_uri(uri),
            token=settings.tracking_token,
            artifact_root=settings.artifact_root,
            experiment=settings.experiment_name,
            ui_base_url=settings.ui_base_url,
        )
    return config_from_connection(conn)


def _lookup(conn_id: str, *, server_side: bool) -> tuple[Any, str]:
    """``(connection or None, why the secrets backends could not answer)``; the second is
    "" when each of them answered "no such connection". Airflow's own lookup (a task's:
    through its supervisor) reports a backend that failed as "not found", which would
    send the runs elsewhere, so a miss asks each backend again for its error."""
    if server_side:
        return _ask(conn_id, _server_backends)
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id), ""
    except AirflowNotFoundException:
        return None, _ask(conn_id, _process_backends)[1]


def _server_backends() -> list[Any]:
    from airflow.configuration import ensure_secrets_loaded

    return list(ensure_secrets_loaded())


def _process_backends() -> list[Any]:
    from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

    return list(ensure_secrets_backend_loaded())


def _ask(conn_id: str, backends_of: Callable[[], list[Any]]) -> tuple[Any, str]:
    """Ask each secrets backend in turn: ``(the first connection, "")``, else
    ``(None, the failures)``."""
    try:
        backends = backends_of()
    except Exception as exc:  # an Airflow without this helper: nothing more to learn
        return None, f"secrets backends not loaded: {type(exc).__name__}: {exc}"
    failures = []
    for backend in backends:
        try:
            conn = backend.get_connection(conn_id=conn_id)
        except Exception as exc:
            failures.append(f"{type(backend).__name__}: {type(exc).__name__}: {exc}")
            continue
        if conn is not None:
            return conn, ""
    return None, "; ".join(failures)


def config_from_connection(conn: Any) -> TrackflowConfig:
    """Read a ``trackflow`` connection; a bad field is an error naming it."""
    extra = conn.extra_dejson or {}
    unknown = set(extra) - {"artifact_root", "experiment", "ui_base_url", "tracking_uri"}
    if unknown:
        raise InvalidParameterError(
            f"Connection {conn.conn_id!r}: unknown extra field(s) {sorted(unknown)}; "
            "expected artifact_root, experiment, ui_base_url or tracking_uri"
        )
    uri = extra.get("tracking_uri")
    if not uri:
        if not conn.host:
            raise InvalidParameterError(
                f"Connection {conn.conn_id!r} has no host: give the tracking server's "
                "host (and port), or a tracking_uri extra"
            )
        scheme = (conn.schema or "http").lower()
        if scheme not in ("http", "https"):
            raise InvalidParameterError(
                f"Connection {conn.conn_id!r}: scheme {conn.schema!r} must be http or https"
            )
        host = conn.host
        if host.startswith(("http://", "https://")):
            uri = host.rstrip("/")
        else:
            uri = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
    ui_base = extra.get("ui_base_url")
    if ui_base is not None and not str(ui_base).startswith(("http://", "https://")):
        raise InvalidParameterError(
            f"Connection {conn.conn_id!r}: ui_base_url {ui_base!r} must start with "
            "http:// or https://"
        )
    return TrackflowConfig(
        tracking_uri=str(uri),
        token=conn.password or None,
        artifact_root=extra.get("artifact_root"),
        experiment=extra.get("experiment"),
        ui_base_url=ui_base,
        conn_id=conn.conn_id,
    )
