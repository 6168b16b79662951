"""The deployment of docker/compose.yaml with its orchestrators, run natively on loopback.

On the topology of ``_native_topology.py`` (PostgreSQL, an S3 server, ``trackflow db
upgrade`` once, two ``trackflow server`` processes sharing database and bucket, never
migrating), the real deployments of the integration tests, started once for the
module:

- Airflow with the CeleryExecutor (``_airflow_deployment_support.deploy``: scheduler,
  DAG processor, API server, a Celery worker on Redis), whose ``trackflow_default``
  connection points at server A with the topology's token as its password;
- Prefect (``_prefect_deployment_support.real_deployment``: ``prefect server start``,
  a process work pool, ``prefect worker start``), whose ``TrackflowConfig`` block
  points at server B with the same token.

The retrain DAG is triggered through Airflow's REST API and the sweep flow run
through its Prefect deployment, side by side, as users do; server A is killed with
SIGKILL once the DAG run's first task has ended and started again. The tests read
what the two left: the run trees (states, parents, tags) through either server,
every artifact an object in the bucket (listed with s3fs) and downloadable through
both servers' artifact proxies, nothing lost to the outage, no embedded store in any
working directory. A second sweep then has server B killed once its first task has
ended.

Both orchestrators run with task retries (Airflow's ``default_task_retries``,
Prefect's ``PREFECT_TASKS_DEFAULT_RETRIES``), as a deployment that expects server
restarts may configure them. Tracking itself needs none: the orchestrators' hooks
give up on a call at once (the pipeline goes on; the runs catch up once the server
is back, a subflow that began during the outage as a child of its flow's run), while
a task's own logging calls wait the outage out within ``TRACKFLOW_RETRY_TIMEOUT``.
What the outage cost shows in the attempts of the runs (printed); nothing may be
missing at the end. A task run that *starts* while the server is down (its start hook
gives up at once) has its run made when its code first logs, once the server is back,
as its start would have made it: every trial of the second sweep has its whole loss
curve, in its own run.

Skipped when PostgreSQL, Redis, the Celery provider or the Prefect deployment is
missing, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from _deploy_support import PROXY, TrackflowProcess
from _native_topology import Topology
from _topology import BUCKET

ROOT = Path(__file__).resolve().parents[2]
for _folder in ("tests/tracking/server", "tests/flows", "tests/operators"):
    if str(ROOT / _folder) not in sys.path:
        sys.path.insert(0, str(ROOT / _folder))

import _airflow_deployment_support as airflow_support  # noqa: E402
import _prefect_deployment_support as prefect_support  # noqa: E402
from _server_support import ServerProcess  # noqa: E402

from tracking import Run, RunStatus, TrackingClient  # noqa: E402
from tracking.champions import CHAMPION_ALIAS, CHAMPION_TAG, model_of  # noqa: E402
from tracking.entities import FileInfo  # noqa: E402
from tracking.errors import NotFoundError  # noqa: E402
from tracking.pipelines import ATTEMPT_TAG, PipelineRun, attempts  # noqa: E402
from tracking.store.rest import RestTrackingStore  # noqa: E402

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.airflow,
    pytest.mark.prefect,
    pytest.mark.slow,
    # The first case also waits for both deployments to come up and the pipelines to run.
    pytest.mark.timeout(900),
]

DAG_ID = "retrain"
DAG_RUN_ID = "topology__retrain"
LOGICAL_DATE = "2026-11-09T00:00:00Z"
RETRAIN_TASKS = {"extract", "validate", "train", "evaluate", "decide", "promote", "report"}
RETRAIN_EPOCHS = 25
SWEEP_EXPERIMENT = "deploy-sweep"  # tests/flows/deploy/deploy_flows.py
SWEEP_FAMILIES = {"plain": 0.0, "ridge": 0.05}
SWEEP_LRS = [0.5, 1.0]
SWEEP_EPOCHS = 15  # flows.sweep.trial's default
#: The Celery broker's Redis database: not test_airflow_deployment.py's (7), so the
#: two deployments never take each other's task messages.
CELERY_REDIS_DB = 8
#: How long a killed server stays down before it is started again.
OUTAGE_S = 2.0
#: How long the run trees may take to catch up with the orchestrators' ends.
SETTLE_TIMEOUT_S = 60.0
#: Task retries of both orchestrators (see the module's docstring), spaced so that the
#: last comes well after a killed server is back (down OUTAGE_S, then its start-up).
TASK_RETRIES = 3
TASK_RETRY_DELAY_S = 5


def _client(topology: Topology, server: TrackflowProcess) -> TrackingClient:
    """A client of ``server`` with the topology's token (given, not from the environment:
    the module's fixtures run before any per-test environment is set)."""
    store = RestTrackingStore(server.url, token=topology.token, retry_timeout=60)
    return TrackingClient.from_store(store, server.url)


def _dag_parent_id() -> str:
    # The id every Airflow process derives for the DAG run (operators._tracking.pipeline_for,
    # not imported here: it imports Airflow, which this process must not).
    return PipelineRun("airflow", DAG_ID, DAG_RUN_ID).run_id


def _flow_parent_id(flow_run_id: str) -> str:
    from flows._tracking import flow_pipeline

    return flow_pipeline(flow_run_id).run_id


def _get(client: TrackingClient, run_id: str) -> Run | None:
    try:
        return client.get_run(run_id)
    except NotFoundError:
        return None


def _until(
    what: str, predicate: Callable[[], Any], timeout: float, explain: Callable[[], str]
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out: {what}\n{explain()}", pytrace=False)
        time.sleep(0.1)


# -- the deployments --------------------------------------------------------------------


@pytest.fixture(scope="module")
def _components(_postgres_pool: Any) -> Any:
    """What the module needs besides the topology; skipped (failed under CI) without it."""
    if isinstance(_postgres_pool, str):
        airflow_support.unavailable(_postgres_pool)
    for reason in (airflow_support.celery_missing(), airflow_support.redis_unavailable()):
        if reason:
            airflow_support.unavailable(f"CeleryExecutor: {reason}")
    return _postgres_pool


@pytest.fixture(scope="module")
def airflow(
    _components: Any, topology: Topology, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[airflow_support.Deployment]:
    """Airflow with the CeleryExecutor (one worker of concurrency 2), its connection
    pointing at server A with the topology's token."""
    server = _components.server
    broker = f"redis://{airflow_support.REDIS_HOST}:{airflow_support.REDIS_PORT}/{CELERY_REDIS_DB}"
    results = server.url(airflow_support.database_name("topology"))
    settings = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        # The metadata database holds the results too (SQLAlchemy 2.1: psycopg 3).
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{results}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": str(TASK_RETRIES),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(TASK_RETRY_DELAY_S),
    }
    worker = ("celery", "worker", "--concurrency", "2", "--skip-serve-logs")
    a = topology.servers[0]
    tracking = ServerProcess(
        url=a.url,
        db_uri=topology.db_uri,
        artifacts=topology.workdir,  # unused: the server's artifacts are in the bucket
        token=topology.token,
        log=a.log,
        process=a.process,
    )
    airflow_support.redis_command("FLUSHDB", db=CELERY_REDIS_DB)
    try:
        with airflow_support.deploy(
            tmp_path_factory.mktemp("airflow-topology"),
            server,
            "topology",
            settings=settings,
            extra_services=[("celery-worker", worker)],
            tracking=tracking,
        ) as running:
            yield running
    finally:
        airflow_support.redis_command("FLUSHDB", db=CELERY_REDIS_DB)


@pytest.fixture(scope="module")
def prefect(
    _components: Any, topology: Topology, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[prefect_support.Deployment]:
    """Prefect server, process pool and worker; the ``TrackflowConfig`` block points at
    server B with the topology's token."""
    root = tmp_path_factory.mktemp("prefect-topology")
    # This process talks to the Prefect server (deployments, states): a home of its
    # own, unless tests/flows/conftest.py already gave the session one.
    for name, value in (
        ("PREFECT_HOME", str(root / "pytest-home")),
        ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
        ("PREFECT_LOGGING_LEVEL", "WARNING"),
    ):
        os.environ.setdefault(name, value)
    b = topology.servers[1]
    try:
        context = prefect_support.real_deployment(
            root,
            b.url,
            token=topology.token,
            flows=("sweep",),
            worker_env={
                "PREFECT_TASKS_DEFAULT_RETRIES": str(TASK_RETRIES),
                "PREFECT_TASKS_DEFAULT_RETRY_DELAY_SECONDS": str(TASK_RETRY_DELAY_S),
            },
        )
        running = context.__enter__()
    except Exception as exc:
        airflow_support.unavailable(f"the Prefect deployment did not start: {exc!r}")
    try:
        yield running
    finally:
        context.__exit__(None, None, None)


def _diagnostics(
    topology: Topology,
    airflow: airflow_support.Deployment,
    prefect: prefect_support.Deployment,
) -> str:
    """The tails of every service's log: Airflow's processes and task logs, Prefect's
    server and worker, the trackflow servers."""
    return "\n".join(
        [
            airflow.diagnostics(lines=25),
            f"----- prefect server\n{prefect.log_tail('prefect-server', 25)}",
            f"----- prefect worker\n{prefect.log_tail('worker', 40)}",
            topology.diagnostics(lines=30),
        ]
    )


# -- the runs -------------------------------------------------------------------------


@dataclass
class Pipelines:
    """What the module's pipelines did, for the tests to check."""

    topology: Topology
    airflow: airflow_support.Deployment
    prefect: prefect_support.Deployment
    flow_run_id: str
    #: The DAG run's state when server A was killed, and its runs that had ended then.
    dag_state_at_kill: str = ""
    dag_ended_at_kill: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    _clients: list[TrackingClient] = field(default_factory=list)

    def explain(self) -> str:
        return _diagnostics(self.topology, self.airflow, self.prefect)

    def clients(self) -> list[TrackingClient]:
        """A client of each server (made once: each holds a connection pool)."""
        if not self._clients:
            self._clients = [_client(self.topology, s) for s in self.topology.servers]
        return self._clients


def _subtree(client: TrackingClient, parent_id: str) -> tuple[Run | None, list[Run]]:
    parent = _get(client, parent_id)
    return parent, client.get_subtree(parent_id) if parent is not None else []


def _ended(client: TrackingClient, parent_id: str) -> list[str]:
    _, runs = _subtree(client, parent_id)
    return sorted(r.info.run_name for r in runs if r.info.status.is_terminated)


def _flow_state(prefect: prefect_support.Deployment, flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return (await client.read_flow_run(uuid.UUID(flow_run_id))).state

    with prefect.settings():
        return asyncio.run(read())


def _run_sweep(prefect: prefect_support.Deployment) -> str:
    """Start a run of the sweep's deployment, as ``prefect deployment run`` does; its id."""
    from prefect.deployments import run_deployment

    with prefect.settings():
        flow_run = run_deployment(
            name=prefect.deployments["sweep"],
            parameters={"families": SWEEP_FAMILIES, "lrs": SWEEP_LRS},
            timeout=0,
        )
    return str(flow_run.id)  # type: ignore[union-attr]


def _wait_for_flow(
    prefect: prefect_support.Deployment, flow_run_id: str, explain: Callable[[], str]
) -> None:
    """Until the flow run ends, which must be Completed."""
    deadline = time.monotonic() + 300
    while (state := _flow_state(prefect, flow_run_id)) is None or not state.is_final():
        assert time.monotonic() < deadline, f"the flow run never ended: {state}\n{explain()}"
        assert prefect.worker.poll() is None, f"the Prefect worker died\n{explain()}"
        time.sleep(0.5)
    assert state.name == "Completed", f"the flow run ended {state.name}\n{explain()}"


def _settle(client: TrackingClient, parent_id: str, explain: Callable[[], str]) -> None:
    """Until every run of the tree has ended (the orchestrators' last calls land a
    moment after their ends)."""

    def ended() -> bool:
        parent, runs = _subtree(client, parent_id)
        return parent is not None and all(r.info.status.is_terminated for r in [parent, *runs])

    _until(f"every run under {parent_id} ended", ended, SETTLE_TIMEOUT_S, explain)


def _kill_and_restart(server: TrackflowProcess, explain: Callable[[], str]) -> None:
    """SIGKILL, down for ``OUTAGE_S``, then the same command on the same port."""
    server.kill()
    time.sleep(OUTAGE_S)
    try:
        server.restart()
    except AssertionError as exc:
        pytest.fail(f"{exc}\n{explain()}", pytrace=False)


@pytest.fixture(scope="module")
def pipelines(
    _components: Any,  # first: nothing starts when a component is missing
    topology: Topology,
    airflow: airflow_support.Deployment,
    prefect: prefect_support.Deployment,
) -> Pipelines:
    """The retrain DAG on Airflow, server A killed while it runs, and beside it the
    sweep flow on Prefect, run to their ends."""
    started = time.monotonic()
    server_a = topology.servers[0]
    client_a, client_b = (_client(topology, s) for s in topology.servers)
    airflow.begin_case()

    def explain() -> str:
        return _diagnostics(topology, airflow, prefect)

    # The DAG run, through Airflow's REST API, and the flow run, through its deployment.
    airflow.trigger(DAG_ID, DAG_RUN_ID, logical_date=LOGICAL_DATE)
    flow_run_id = _run_sweep(prefect)
    # Server A goes down once the DAG run's first task has ended (read through B, which
    # stays up), while the rest is still to come.
    parent_id = _dag_parent_id()
    _until(
        "the DAG run's extract task run ended",
        lambda: "extract" in _ended(client_b, parent_id),
        240,
        explain,
    )
    outcome = Pipelines(
        topology,
        airflow,
        prefect,
        flow_run_id,
        dag_state_at_kill=str(airflow.dag_run(DAG_ID, DAG_RUN_ID)["state"]),
        dag_ended_at_kill=_ended(client_b, parent_id),
    )
    _kill_and_restart(server_a, explain)
    # Both to their ends.
    dag_end = airflow.wait_for_run(DAG_ID, DAG_RUN_ID, timeout=300)
    assert dag_end == "success", f"the DAG run ended {dag_end}\n{explain()}"
    _wait_for_flow(prefect, flow_run_id, explain)
    _settle(client_a, parent_id, explain)
    _settle(client_a, _flow_parent_id(flow_run_id), explain)
    outcome.wall_s = time.monotonic() - started
    print(f"pipelines: both ran in {outcome.wall_s:.0f} s")
    return outcome


@contextlib.contextmanager
def _explained(pipes: Pipelines) -> Iterator[None]:
    """Add the services' log tails to a failed assertion's message."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{pipes.explain()}") from exc


# -- helpers ------------------------------------------------------------------------------


def _walk(
    list_files: Callable[[str | None], list[FileInfo]], path: str | None = None
) -> list[FileInfo]:
    """Every file under ``path``, depth first."""
    found: list[FileInfo] = []
    for info in list_files(path):
        found.extend(_walk(list_files, info.path) if info.is_dir else [info])
    return found


def _dag_tree(client: TrackingClient) -> tuple[Run, dict[str, Run]]:
    parent = client.get_run(_dag_parent_id())
    return parent, {r.info.run_name: r for r in client.get_subtree(parent.info.run_id)}


def _flow_tree(client: TrackingClient, flow_run_id: str) -> tuple[Run, list[Run]]:
    parent = client.get_run(_flow_parent_id(flow_run_id))
    return parent, client.get_subtree(parent.info.run_id)


def _attempt(run: Run) -> int:
    """The run's last attempt, which must have ended it FINISHED: the first, or a retry
    of a try the outage failed (see the module's docstring)."""
    attempt = int(run.data.tags.get(ATTEMPT_TAG, "1"))
    assert 1 <= attempt <= 1 + TASK_RETRIES, (run.info.run_name, attempt)
    last = attempts(run)[-1]
    assert (int(last["attempt"]), last.get("status")) == (attempt, "FINISHED"), (
        run.info.run_name,
        attempts(run),
    )
    return attempt


def _children(runs: list[Run], parent: Run) -> dict[str, list[Run]]:
    found: dict[str, list[Run]] = {}
    for run in runs:
        if run.info.parent_run_id == parent.info.run_id:
            found.setdefault(run.info.run_name, []).append(run)
    return found


def _artifacts(pipes: Pipelines) -> dict[str, tuple[str, list[FileInfo]]]:
    """Every artifact root of the two pipelines' runs and logged models, read through
    server A: owner -> (the root's URI, its files)."""
    client = pipes.clients()[0]
    _, dag_children = _dag_tree(client)
    parent, flow_runs = _flow_tree(client, pipes.flow_run_id)
    roots: dict[str, tuple[str, list[FileInfo]]] = {}
    for run in [client.get_run(_dag_parent_id()), *dag_children.values(), parent, *flow_runs]:
        files = _walk(functools.partial(client.list_artifacts, run.info.run_id))
        roots[f"run {run.info.run_name} {run.info.run_id}"] = (run.info.artifact_uri, files)
    model_id = model_of(client, dag_children["train"])
    assert model_id is not None, "train logged no model"
    model = client.get_logged_model(model_id)
    files = _walk(lambda path: client.list_model_artifacts(model_id, path))
    roots[f"model {model_id}"] = (model.artifact_location, files)
    return roots


# -- the tests ----------------------------------------------------------------------------


def test_retrain_dag_on_the_celery_executor_tracked_through_server_a(
    pipelines: Pipelines,
) -> None:
    airflow = pipelines.airflow
    with _explained(pipelines):
        for client in pipelines.clients():  # the same tree through either server
            parent, children = _dag_tree(client)
            assert parent.info.status is RunStatus.FINISHED
            assert parent.info.parent_run_id is None
            tags = parent.data.tags
            assert tags["airflow.dag_id"] == DAG_ID
            assert tags["airflow.run_id"] == DAG_RUN_ID
            assert tags["airflow.run_type"] == "manual"
            assert tags["airflow.logical_date"].startswith("2026-11-09")
            assert parent.info.run_name == "retrain 2026-11-09"
            assert client.get_experiment(parent.info.experiment_id).name == DAG_ID
            assert set(children) == RETRAIN_TASKS  # a fresh store: promote, never keep
            for task_id, run in children.items():
                assert run.info.status is RunStatus.FINISHED, task_id
                assert run.info.parent_run_id == parent.info.run_id, task_id
                assert run.info.experiment_id == parent.info.experiment_id, task_id
                assert run.data.tags["airflow.task_id"] == task_id
                assert run.data.tags["airflow.run_id"] == DAG_RUN_ID
                assert run.data.tags["airflow.try_number"] == str(_attempt(run)), task_id
            train = children["train"]
            assert train.data.params == {"epochs": str(RETRAIN_EPOCHS), "lr": "0.5"}
            assert train.data.tags[CHAMPION_TAG] == "true"
            version = client.get_model_version_by_alias(DAG_ID, CHAMPION_ALIAS)
            assert version.run_id == train.info.run_id
        # Every task instance went through the Celery worker.
        worker_log = airflow.services["celery-worker"].log.read_text(errors="replace")
        ran = [ti for ti in airflow.task_instances(DAG_ID, DAG_RUN_ID) if ti["state"] == "success"]
        assert {ti["task_id"] for ti in ran} == RETRAIN_TASKS
        for ti in ran:
            assert f"id=UUID('{ti['id']}')" in worker_log, ti["task_id"]


def test_sweep_flow_on_the_prefect_worker_tracked_through_server_b(
    pipelines: Pipelines,
) -> None:
    with _explained(pipelines):
        for client in pipelines.clients():
            parent, runs = _flow_tree(client, pipelines.flow_run_id)
            assert parent.info.status is RunStatus.FINISHED
            assert parent.info.parent_run_id is None
            assert parent.data.tags["prefect.flow_run_id"] == pipelines.flow_run_id
            assert parent.data.tags["prefect.flow_name"] == "deploy-sweep"
            assert client.get_experiment(parent.info.experiment_id).name == SWEEP_EXPERIMENT
            assert {r.info.status for r in runs} == {RunStatus.FINISHED}
            assert all(r.info.experiment_id == parent.info.experiment_id for r in runs)
            for run in runs:
                _attempt(run)
            children = _children(runs, parent)
            assert sorted(children) == ["family", "prepare"]
            families = children["family"]
            assert len(families) == len(SWEEP_FAMILIES)
            trials: list[Run] = []
            for family in families:
                under = _children(runs, family)
                assert sorted(under) == [f"trial[{i}]" for i in range(len(SWEEP_LRS))]
                trials += [run for same in under.values() for run in same]
                assert family.data.tags["best_run_id"] in {
                    r.info.run_id for same in under.values() for r in same
                }
            assert len(runs) == 1 + len(families) + len(trials)
            for trial in trials:
                history = client.get_metric_history(trial.info.run_id, "loss")
                assert sorted(m.step for m in history) == list(range(1, SWEEP_EPOCHS + 1))
                assert float(trial.data.params["lr"]) in SWEEP_LRS
                assert float(trial.data.params["l2"]) in SWEEP_FAMILIES.values()
            champions = [t.info.run_id for t in trials if t.data.tags.get(CHAMPION_TAG) == "true"]
            assert champions == [parent.data.tags["best_run_id"]]


def test_every_artifact_is_an_object_in_the_bucket_served_by_both_proxies(
    pipelines: Pipelines,
) -> None:
    topology = pipelines.topology
    fs = topology.s3.filesystem()
    with _explained(pipelines):
        roots = _artifacts(pipelines)
        named = {
            (owner.split()[1] if owner.startswith("run") else "model", info.path)
            for owner, (_, files) in roots.items()
            for info in files
        }
        # What the DAG and the flow log, at least.
        assert ("extract", "data/rows.jsonl") in named
        assert ("report", "report.md") in named
        assert ("prepare", "data/rows.jsonl") in named
        assert ("model", "model.json") in named
        checked = 0
        for owner, (uri, files) in roots.items():
            assert uri.startswith("mlflow-artifacts:/"), (owner, uri)
            root = uri.removeprefix("mlflow-artifacts:/").strip("/")
            prefix = f"{BUCKET}/artifacts/{root}"
            # The bucket holds exactly what the server lists.
            listed = {key.removeprefix(prefix + "/") for key in fs.find(prefix)}
            assert listed == {info.path for info in files}, owner
            for info in files:
                content = fs.cat_file(f"{prefix}/{info.path}")
                assert len(content) == info.file_size, (owner, info.path)
                for server in topology.servers:
                    got = httpx.get(
                        f"{server.url}{PROXY}/{root}/{info.path}",
                        headers=topology.headers(),
                        timeout=30,
                    )
                    assert got.status_code == 200, (server.url, owner, info.path, got.text[:300])
                    assert got.content == content, (server.url, owner, info.path)
                checked += 1
        assert checked >= 4
        print(f"{checked} artifacts of {len(roots)} roots in the bucket and behind both proxies")


def test_server_a_killed_while_the_dag_runs_lost_nothing(pipelines: Pipelines) -> None:
    server_a = pipelines.topology.servers[0]
    with _explained(pipelines):
        # Killed while the DAG run was running, and started again.
        assert pipelines.dag_state_at_kill == "running"
        assert "extract" in pipelines.dag_ended_at_kill
        assert "report" not in pipelines.dag_ended_at_kill
        assert server_a.restarts == 1
        assert server_a.process.poll() is None
        assert "never migrating" in server_a.log_text()
        client = pipelines.clients()[1]
        # One run per task and no more (a write retried across the outage made no second
        # run), every metric point there.
        _, children = _dag_tree(client)
        experiment = client.get_run(_dag_parent_id()).info.experiment_id
        everything = client.search_runs([experiment], max_results=1000)
        assert len(everything) == 1 + len(RETRAIN_TASKS)
        train = children["train"]
        losses = client.get_metric_history(train.info.run_id, "loss")
        assert [m.step for m in losses] == list(range(1, RETRAIN_EPOCHS + 1))
        accuracy = client.get_metric_history(train.info.run_id, "train_accuracy")
        assert len(accuracy) == RETRAIN_EPOCHS
        score = children["evaluate"].data.metrics["holdout_accuracy"]
        assert train.data.metrics["holdout_accuracy"] == score
        assert {"rows", "positive_rate"} <= set(children["validate"].data.metrics)
        assert set(children["extract"].data.params) == {"seed", "rows"}
        report = client.download_artifacts(children["report"].info.run_id, "report.md")
        assert f"{score:.4f}: promote" in Path(report).read_text()
        # What the outage cost: the tasks Airflow had to try again.
        retried = sorted(
            f"{r.info.run_name} (attempt {_attempt(r)})"
            for r in children.values()
            if _attempt(r) > 1
        )
        print(f"tried again after server A's outage: {', '.join(retried) or 'nothing'}")


def _tree_dump(runs: list[Run]) -> str:
    return "\n".join(
        f"  {r.info.run_name} {r.info.run_id} parent={r.info.parent_run_id} "
        f"{r.info.status.value} attempt={r.data.tags.get(ATTEMPT_TAG)}"
        for r in runs
    )


def test_server_b_killed_while_a_flow_runs(pipelines: Pipelines) -> None:
    """A second run of the sweep, server B killed once its first task has ended. What
    reached the store must be whole, a subflow or a task run that begins during the
    outage included (a child of its flow run's run once the server is back, with what
    its code logged: every trial's whole loss curve), and no run outside the two flow
    runs' trees."""
    topology, prefect = pipelines.topology, pipelines.prefect
    server_b = topology.servers[1]
    client_a = pipelines.clients()[0]
    explain = pipelines.explain
    flow_run_id = _run_sweep(prefect)
    parent_id = _flow_parent_id(flow_run_id)
    # As for the DAG run: down once the first task has ended, the rest still to come.
    _until(
        "the flow run's prepare task run ended",
        lambda: "prepare" in _ended(client_a, parent_id),
        240,
        explain,
    )
    state = _flow_state(prefect, flow_run_id)
    ended_at_kill = _ended(client_a, parent_id)
    _kill_and_restart(server_b, explain)
    with _explained(pipelines):
        assert state is not None and state.name == "Running", state
        assert "family" not in ended_at_kill, ended_at_kill
        assert server_b.restarts == 1
        assert server_b.process.poll() is None
        assert "never migrating" in server_b.log_text()
        _wait_for_flow(prefect, flow_run_id, explain)
        _settle(client_a, parent_id, explain)
        for client in pipelines.clients():
            parent, runs = _flow_tree(client, flow_run_id)
            assert parent.info.status is RunStatus.FINISHED
            assert {r.info.status for r in runs} == {RunStatus.FINISHED}, _tree_dump(runs)
            for run in runs:
                _attempt(run)
            trials = [r for r in runs if r.info.run_name.startswith("trial[")]
            pointless = [
                trial
                for trial in trials
                if sorted(m.step for m in client.get_metric_history(trial.info.run_id, "loss"))
                != list(range(1, SWEEP_EPOCHS + 1))
            ]
            assert pointless == [], (
                "trial runs without their whole loss curve:\n"
                + _tree_dump(pointless)
                + "\ntree:\n"
                + _tree_dump([parent, *runs])
            )
            # Nothing a trial logged went to a run further out.
            trial_ids = {t.info.run_id for t in trials}
            strays = [
                r
                for r in [parent, *runs]
                if r.info.run_id not in trial_ids and "loss" in r.data.metrics
            ]
            assert strays == [], _tree_dump(strays)
            champion = client.get_run(parent.data.tags["best_run_id"])
            assert champion.data.tags[CHAMPION_TAG] == "true"
            assert "prepare" in _children(runs, parent)
        experiment = parent.info.experiment_id
        everything = client.search_runs([experiment], max_results=1000)
        first_parent, first = _flow_tree(client, pipelines.flow_run_id)
        in_trees = {r.info.run_id for r in [first_parent, *first, parent, *runs]}
        astray = [r for r in everything if r.info.run_id not in in_trees]
        families = _children(runs, parent).get("family", [])
        tree = _tree_dump([parent, *runs])
        assert astray == [], f"runs in neither flow run's tree:\n{_tree_dump(astray)}"
        assert len(families) == len(SWEEP_FAMILIES), tree
        assert len(trials) == len(SWEEP_FAMILIES) * len(SWEEP_LRS), tree
        retried = sorted(
            f"{r.info.run_name} (attempt {_attempt(r)})" for r in runs if _attempt(r) > 1
        )
        print(f"tried again after server B's outage: {', '.join(retried) or 'nothing'}")


def test_no_embedded_store_in_any_working_directory(pipelines: Pipelines) -> None:
    with _explained(pipelines):
        assert pipelines.airflow.stray_databases() == []
        folders = [pipelines.airflow.root, pipelines.prefect.root, pipelines.topology.workdir]
        found = [p for folder in folders for p in folder.rglob("trackflow.db*")]
        assert found == [], f"an embedded store appeared: {found}"
        dead = [s.name for s in pipelines.airflow.services.values() if not s.alive()]
        assert dead == [], f"Airflow services died: {dead}"
        assert pipelines.prefect.worker.poll() is None, "the Prefect worker died"
