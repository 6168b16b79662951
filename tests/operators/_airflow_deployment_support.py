"""A real Airflow deployment for ``test_airflow_deployment.py`` (imported by basename, so uniquely
named; nothing here imports Airflow: the deployment runs in processes of its own).

What :func:`deploy` starts
--------------------------
- a throw-away Airflow metadata database on the PostgreSQL server of the suite
  (``trackflow_test_<pid>_airflow_<name>``: created fresh, migrated with
  ``airflow db migrate``, dropped at the end; one a killed session left is dropped
  by the next);
- a real ``trackflow server`` (:func:`_server_support.start_server`), and the
  ``trackflow_default`` connection to it, added the way the README says
  (``airflow connections add ... --conn-extra '{"ui_base_url": ...}'``) and so kept in
  the metadata database;
- ``airflow scheduler --skip-serve-logs``, ``airflow dag-processor`` and
  ``airflow api-server`` on a free loopback port (it also serves the execution API the
  workers call), plus any extra service (``airflow celery worker``), each a separate
  process with a working directory of its own, so a stray ``./trackflow.db`` shows.

Every process runs ``sys.executable -m airflow`` in an environment with every
``AIRFLOW*``, ``TRACKFLOW_*`` and ``MLFLOW_*`` variable removed and only the settings
below added: the connection is the one thing that points at the tracking server. The
DAGs folder holds ``dags/*.py`` and ``tests/operators/dags/*.py``.

Auth: the simple auth manager with ``[core] simple_auth_manager_all_admins``; in
Airflow 3.3 ``GET /auth/token`` then hands out an admin's token with no credentials
(``POST /auth/token`` wants a user name and password), sent as a bearer token.

Each process logs to ``<root>/logs/<name>.log``; :meth:`Deployment.diagnostics` gives
their tails and those of the task logs of the DAG runs a test triggered.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from _airflow_support import TRACKFLOW_UI
from _server_support import ServerProcess, free_port, start_server

from tracking import TrackingClient

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = (sys.executable, "-m", "airflow")
#: What the environment of the Airflow processes loses before the settings are added.
CLEARED_PREFIXES = ("AIRFLOW", "_AIRFLOW", "TRACKFLOW_", "MLFLOW_")
#: Where a DAG run or a task instance stops moving.
RUN_DONE = frozenset({"success", "failed"})
TI_DONE = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: The DAG ids the deployment must have parsed before the tests start.
EXPECTED_DAGS = (
    "retrain",
    "sweep",
    "tf_deploy_basics",
    "tf_deploy_failing",
    "tf_deploy_hold",
    "tf_deploy_sleep",
)
#: A warning or an error of trackflow's in a process's log (structlog's console format).
SERVICE_WARNING = re.compile(r"\[(warning|error|critical)\s*\]\s+trackflow:")
WARNING_LEVELS = frozenset({"warning", "error", "critical"})
STARTUP_TIMEOUT_S = 180.0
CLI_TIMEOUT_S = 300.0
#: Redis for the CeleryExecutor (a database number of its own: nothing else uses it).
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 7


def in_ci() -> bool:
    """True under CI (``CI=true``), where a missing server fails rather than skips."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail under CI, as ``tests/conftest.py`` does for a missing database."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a file, or a note that it is not there."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} is missing)"
    return "\n".join(text[-lines:])


# -- Redis ----------------------------------------------------------------------


def redis_command(*words: str, db: int = REDIS_DB) -> str:
    """Send one command to the Redis server (after ``SELECT db``); its first reply line.
    Plain RESP over a socket, so no Redis client is needed to check on the broker."""
    payload = b""
    for command in (("SELECT", str(db)), words):
        payload += f"*{len(command)}\r\n".encode()
        for word in command:
            payload += f"${len(word.encode())}\r\n{word}\r\n".encode()
    with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=5) as sock:
        sock.sendall(payload)
        reply = b""
        while reply.count(b"\r\n") < 2:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    lines = reply.decode(errors="replace").split("\r\n")
    if not lines[0].startswith("+OK"):
        raise OSError(f"Redis refused SELECT {db}: {lines[0]}")
    return lines[1] if len(lines) > 1 else ""


def redis_unavailable() -> str | None:
    """Why Redis cannot be the broker, or None."""
    try:
        answer = redis_command("PING")
    except OSError as exc:
        return f"Redis is not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}"
    return None if answer == "+PONG" else f"Redis answered PING with {answer!r}"


def celery_missing() -> str | None:
    """Why the CeleryExecutor cannot run in this environment, or None."""
    import importlib.util

    why = "{} is not installed (apache-airflow-providers-celery belongs in the airflow extra)"
    for module, dist in (
        ("celery", "celery"),
        ("airflow.providers.celery", "apache-airflow-providers-celery"),
    ):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # a parent package is missing
            found = None
        if found is None:
            return why.format(dist)
    return None


# -- processes ------------------------------------------------------------------


@dataclass
class Service:
    """One long-running Airflow process, its working directory and its log."""

    name: str
    command: tuple[str, ...]
    workdir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: Where the log stood when the current case began (see Deployment.begin_case).
    mark: int = 0

    def start(self, env: Mapping[str, str], logs: Path) -> None:
        self.starts += 1
        suffix = "" if self.starts == 1 else f"-{self.starts}"
        self.log = logs / f"{self.name}{suffix}.log"
        self.mark = 0
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.workdir,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stopped with its children (workers, tasks)
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def new_output(self) -> str:
        """What the process logged since :attr:`mark`."""
        try:
            with open(self.log, "rb") as text:
                text.seek(self.mark)
                return text.read().decode(errors="replace")
        except OSError:
            return ""

    def terminate(self) -> None:
        """SIGTERM to the process group (it may take a while to stop: see :meth:`stop`)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s (nothing here is worth a
        graceful shutdown: the database and the store go with it)."""
        process = self.process
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 15)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The group may outlive its leader (a worker finishing a task): no strays.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Deployment:
    """A running Airflow (``api_url``) tracking into a trackflow server (``tracking``)."""

    root: Path
    home: Path
    dags_folder: Path
    env: dict[str, str]
    api_url: str
    tracking: ServerProcess
    services: dict[str, Service]
    token: str = ""
    #: (dag_id, run_id) of every DAG run :meth:`trigger` started.
    triggered: list[tuple[str, str]] = field(default_factory=list)
    _http: httpx.Client | None = None

    # -- the REST API -------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.api_url, timeout=30)
        return self._http

    @property
    def client(self) -> TrackingClient:
        """A client of the tracking server the connection points at."""
        return TrackingClient(self.tracking.url)

    def login(self) -> None:
        """Get an admin's token (``GET /auth/token``: all users are admins here)."""
        answer = self.http.get("/auth/token")
        assert answer.status_code == 201, answer.text
        self.token = answer.json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"

    def api(
        self,
        method: str,
        path: str,
        *,
        expect: int | tuple[int, ...] = 200,
        **kwargs: Any,
    ) -> Any:
        """Call ``/api/v2`` + ``path``; the JSON answer (the status must be ``expect``)."""
        answer = self.http.request(method, f"/api/v2{path}", **kwargs)
        wanted = (expect,) if isinstance(expect, int) else expect
        if answer.status_code not in wanted:
            pytest.fail(
                f"{method} {path}: {answer.status_code} {answer.text}\n{self.diagnostics()}",
                pytrace=False,
            )
        return answer.json() if answer.content else None

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(
        self,
        dag_id: str,
        run_id: str,
        *,
        conf: Mapping[str, Any] | None = None,
        logical_date: str | None = None,
    ) -> str:
        """Start a DAG run (``POST /api/v2/dags/{dag_id}/dagRuns``); its run id."""
        self.unpause(dag_id)
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": dict(conf or {})}
        answer = self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)
        assert answer["dag_run_id"] == run_id
        self.triggered.append((dag_id, run_id))
        return run_id

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
        return result

    def task_instance(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> dict[str, Any]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        if map_index >= 0:
            path += f"/{map_index}"
        result: dict[str, Any] = self.api("GET", path)
        return result

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        answer = self.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )
        result: list[dict[str, Any]] = answer["task_instances"]
        return result

    def links(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> dict[str, str | None]:
        """A task instance's extra links, as the UI asks for them."""
        answer = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links",
            params={"map_index": map_index},
        )
        result: dict[str, str | None] = answer["extra_links"]
        return result

    def view(self, path: str) -> httpx.Response:
        """GET one of the plugin's pages (``/trackflow/...``), redirects not followed."""
        return self.http.get(path, follow_redirects=False)

    # -- waiting ------------------------------------------------------------------

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240.0) -> str:
        """Wait until the DAG run ends; its state."""
        deadline = time.monotonic() + timeout
        while True:
            state = str(self.dag_run(dag_id, run_id)["state"])
            if state in RUN_DONE:
                return state
            self._check_pulse(f"DAG run {dag_id}/{run_id} is {state}", deadline)
            time.sleep(1)

    def wait_for_task(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        states: frozenset[str] | set[str],
        timeout: float = 180.0,
    ) -> dict[str, Any]:
        """Wait until the task instance is in one of ``states``; the task instance."""
        deadline = time.monotonic() + timeout
        while True:
            ti = self.task_instance(dag_id, run_id, task_id)
            if ti["state"] in states:
                return ti
            if ti["state"] in TI_DONE:
                pytest.fail(
                    f"{dag_id}/{run_id}/{task_id} ended {ti['state']}, not {sorted(states)}\n"
                    + self.diagnostics(),
                    pytrace=False,
                )
            self._check_pulse(f"{dag_id}/{run_id}/{task_id} is {ti['state']}", deadline)
            time.sleep(0.5)

    def wait_for_file(self, path: Path, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            self._check_pulse(f"{path} never appeared", deadline)
            time.sleep(0.2)

    def _check_pulse(self, waiting_for: str, deadline: float) -> None:
        dead = [s.name for s in self.services.values() if not s.alive()]
        if dead:
            pytest.fail(f"{', '.join(dead)} died; {waiting_for}\n{self.diagnostics()}", False)
        if time.monotonic() > deadline:
            pytest.fail(f"timed out: {waiting_for}\n{self.diagnostics()}", pytrace=False)

    # -- health ---------------------------------------------------------------------

    def stray_databases(self) -> list[Path]:
        """``trackflow.db`` files in the working directories of the Airflow processes."""
        workdirs = {s.workdir for s in self.services.values()} | {self.root / "cli", self.home}
        return sorted(p for d in workdirs for p in d.glob("trackflow.db*"))

    def tracking_warnings(self) -> list[str]:
        """The warnings and errors trackflow logged (``trackflow: ...``; the listener
        swallows what went wrong, so this is where it shows) since the case began: in
        the processes' logs and in the task logs of the DAG runs it triggered."""
        found = []
        for service in self.services.values():
            for line in service.new_output().splitlines():
                if SERVICE_WARNING.search(line):
                    found.append(f"{service.name}: {line[:600]}")
        for dag_id, run_id in self.triggered:
            folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
            for log in sorted(folder.glob("task_id=*/**/attempt=*.log")):
                for line in log.read_text(errors="replace").splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    event = str(record.get("event", ""))
                    if record.get("level") in WARNING_LEVELS and event.startswith("trackflow:"):
                        found.append(f"{log.relative_to(self.home)}: {event[:600]}")
        return found

    def problems(self) -> list[str]:
        """What is wrong with the deployment now: dead processes, stray embedded stores,
        trackflow's warnings since the case began."""
        found = [
            f"{s.name} exited with {s.process.returncode}"
            for s in self.services.values()
            if s.process is not None and not s.alive()
        ]
        found += [f"a stray embedded store: {p}" for p in self.stray_databases()]
        found += self.tracking_warnings()
        return found

    def begin_case(self) -> list[str]:
        """Start again whatever died (so one crash does not fail every later case: the
        case that saw it has reported it), and start reading the logs from here."""
        restarted = []
        for service in self.services.values():
            if not service.alive():
                service.start(self.env, self.root / "logs")
                restarted.append(service.name)
            service.mark = service.log.stat().st_size if service.log.exists() else 0
        for path in self.stray_databases():
            path.unlink()
        self.triggered.clear()
        return restarted

    def diagnostics(self, lines: int = 40) -> str:
        """The tails of the processes' logs and of the triggered DAG runs' task logs."""
        parts = []
        for service in self.services.values():
            status = "running" if service.alive() else "EXITED"
            parts.append(
                f"----- {service.name} ({status}): {service.log}\n{tail(service.log, lines)}"
            )
        parts.append(f"----- trackflow server: {self.tracking.log}\n{self.tracking.log_tail(20)}")
        for dag_id, run_id in self.triggered[-4:]:
            folder = self.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
            for log in sorted(folder.glob("task_id=*/**/attempt=*.log")):
                parts.append(f"----- {log.relative_to(self.home)}\n{tail(log, 15)}")
        return "\n".join(parts)

    def cli(self, *args: str) -> str:
        """Run ``airflow <args>`` in the deployment's environment; its output."""
        return _airflow_cli(self.env, self.root / "cli", *args)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


def _airflow_cli(env: Mapping[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [*AIRFLOW, *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    if done.returncode:
        pytest.fail(
            f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}\n"
            f"{done.stderr[-5000:]}",
            pytrace=False,
        )
    return done.stdout


def airflow_env(
    home: Path, dags_folder: Path, db_url: str, api_port: int, settings: Mapping[str, str]
) -> dict[str, str]:
    """The environment of every Airflow process: this one's, without any Airflow,
    trackflow or mlflow setting, plus the deployment's own."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(CLEARED_PREFIXES)}
    api_url = f"http://127.0.0.1:{api_port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            # No login: every request is an admin's (GET /auth/token gives a token).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # The scheduler signs the workers' tokens, the API server checks them.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            # Only the runs a test triggers: retrain's @daily would start one on unpause.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # Two cores: a few task processes at a time, DAG files parsed once.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            # A task marked from outside is noticed at the worker's next heartbeat.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__CORE__DAGBAG_IMPORT_ERROR_TRACEBACKS": "True",
            **settings,
        }
    )
    return env


def _copy_dags(folder: Path) -> None:
    folder.mkdir(parents=True)
    for source in (
        *sorted((ROOT / "dags").glob("*.py")),
        *sorted((ROOT / "tests/operators/dags").glob("*.py")),
    ):
        shutil.copy(source, folder / source.name)


def database_name(name: str) -> str:
    """The metadata database of deployment ``name`` in this session."""
    return f"trackflow_test_{os.getpid()}_airflow_{name}"


def drop_leftover_databases(server: Any) -> None:
    """Drop the metadata databases of sessions whose process is gone."""
    for db in server.list_test_databases():
        match = re.fullmatch(r"trackflow_test_(\d+)_airflow_\w+", db)
        if match and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(Exception):
                server.drop(db)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_until_up(deployment: Deployment) -> None:
    """Until the API server answers and the DAG processor has serialised every DAG."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            if deployment.http.get("/api/v2/monitor/health").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        deployment._check_pulse("the API server never answered", deadline)
        time.sleep(0.5)
    deployment.login()
    while True:
        errors = deployment.api("GET", "/importErrors")["import_errors"]
        if errors:
            pytest.fail(f"DAG files did not import: {json.dumps(errors, indent=1)}", False)
        dags = deployment.api("GET", "/dags", params={"limit": 100})["dags"]
        missing = set(EXPECTED_DAGS) - {d["dag_id"] for d in dags}
        if not missing:
            return
        deployment._check_pulse(f"DAGs not parsed yet: {sorted(missing)}", deadline)
        time.sleep(1)


@contextlib.contextmanager
def deploy(
    root: Path,
    server: Any,
    name: str,
    *,
    settings: Mapping[str, str] | None = None,
    extra_services: Sequence[tuple[str, tuple[str, ...]]] = (),
    tracking_uri: str | None = None,
    tracking: ServerProcess | None = None,
) -> Iterator[Deployment]:
    """Run an Airflow deployment in ``root`` until the block ends.

    ``server`` is the suite's PostgreSQL server (``_postgres_pool``'s), ``name`` names
    the metadata database, ``settings`` are added to the environment (another
    executor), ``extra_services`` are (name, airflow arguments) of more processes;
    ``tracking_uri`` makes the connection name that store (its ``tracking_uri``
    extra, e.g. an embedded SQLite file) instead of the trackflow server.
    ``tracking`` is a trackflow server already running (the caller's, neither started
    nor stopped here) for the connection to point at instead of one of the
    deployment's own; its token, if any, is the connection's password, as the
    README's ``airflow connections add ... --conn-password`` has it.
    """
    home, dags_folder, logs = root / "home", root / "dags", root / "logs"
    for folder in (home, logs, root / "cli"):
        folder.mkdir(parents=True)
    _copy_dags(dags_folder)
    drop_leftover_databases(server)
    db = database_name(name)
    server.drop(db)
    server.create(db)
    api_port = free_port()
    env = airflow_env(home, dags_folder, server.url(db), api_port, settings or {})
    services: dict[str, Service] = {}
    deployment: Deployment | None = None
    try:
        running: contextlib.AbstractContextManager[ServerProcess] = (
            contextlib.nullcontext(tracking)
            if tracking is not None
            else start_server(root / "trackflow-server")
        )
        with running as tracking:
            _airflow_cli(env, root / "cli", "db", "migrate")
            host, port = tracking.url.rsplit("://", 1)[1].rsplit(":", 1)
            _airflow_cli(
                env,
                root / "cli",
                *("connections", "add", "trackflow_default", "--conn-type", "trackflow"),
                *("--conn-host", host, "--conn-port", port, "--conn-schema", "http"),
                *(("--conn-password", tracking.token) if tracking.token else ()),
                *(
                    "--conn-extra",
                    json.dumps(
                        {"ui_base_url": TRACKFLOW_UI}
                        | ({"tracking_uri": tracking_uri} if tracking_uri else {})
                    ),
                ),
            )
            commands = [
                ("scheduler", ("scheduler", "--skip-serve-logs")),
                ("dag-processor", ("dag-processor",)),
                ("api-server", ("api-server", "--host", "127.0.0.1", "--port", str(api_port))),
                *extra_services,
            ]
            for service_name, args in commands:
                workdir = root / service_name
                workdir.mkdir()
                service = Service(service_name, (*AIRFLOW, *args), workdir, logs / "unused")
                services[service_name] = service
                service.start(env, logs)
            deployment = Deployment(
                root=root,
                home=home,
                dags_folder=dags_folder,
                env=env,
                api_url=f"http://127.0.0.1:{api_port}",
                tracking=tracking,
                services=services,
            )
            _wait_until_up(deployment)
            yield deployment
    finally:
        for service in services.values():  # all at once: each takes seconds to stop
            service.terminate()
        for service in services.values():
            service.stop()
        if deployment is not None:
            deployment.close()
        with contextlib.suppress(Exception):
            server.drop(db)
