"""trackflow in a real Airflow deployment, not ``dag.test()``: a scheduler, a DAG
processor and an API server over a PostgreSQL metadata database, tasks run by the
LocalExecutor (and once by the CeleryExecutor), DAG runs triggered and watched through
the REST API, and the run trees they leave read from a real tracking server that only
the ``trackflow_default`` connection points at. See ``_airflow_deployment_support`` for how the
deployment is set up.

After every case the scheduler (and every other process) must still run, no Airflow
process may have made an embedded store (``trackflow.db``) in its working directory,
and trackflow must have logged no warning (the listener swallows what goes wrong, so
its warnings are where a failure shows). A process that died is started again for the
next case, so one crash fails the case that caused it and not every later one.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _airflow_deployment_support import (
    REDIS_DB,
    REDIS_HOST,
    REDIS_PORT,
    Deployment,
    celery_missing,
    database_name,
    deploy,
    redis_command,
    redis_unavailable,
    unavailable,
)
from _airflow_support import TRACKFLOW_UI, run_tree

from operators._tracking import pipeline_for, step_for
from operators.champion import CHAMPION_TAG
from tracking import Run, RunStatus
from tracking.champions import CHAMPION_ALIAS, model_of
from tracking.errors import RunNotFoundError
from tracking.pipelines import ATTEMPT_TAG, FAILURE_REASON_TAG, Step, attempts

#: How long the run tree may take to catch up with a DAG run's end.
SETTLE_TIMEOUT_S = 60.0

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.slow,
    pytest.mark.postgres,
    # The first case also waits for the deployment to come up.
    pytest.mark.timeout(900),
]


# -- fixtures ---------------------------------------------------------------------------


# Module-scoped: started once per session all the same (only this module uses them), and
# stopped once its cases are done, so the rest of the suite does not run beside them.
@pytest.fixture(scope="module")
def deployment(
    _postgres_pool: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Airflow with the LocalExecutor."""
    if isinstance(_postgres_pool, str):
        unavailable(_postgres_pool)
    root = tmp_path_factory.mktemp("airflow-local")
    # The scheduler's reaper sweeps every 3 s, for DAG runs ended 10 s ago.
    reaper = {"TRACKFLOW_AIRFLOW_REAP_INTERVAL": "3", "TRACKFLOW_AIRFLOW_REAP_GRACE": "10"}
    with deploy(root, _postgres_pool.server, "local", settings=reaper) as running:
        yield running


@pytest.fixture(scope="module")
def celery_deployment(
    _postgres_pool: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Airflow with the CeleryExecutor (Redis as the broker, results in PostgreSQL)
    and one ``airflow celery worker`` of concurrency 2."""
    if isinstance(_postgres_pool, str):
        unavailable(_postgres_pool)
    for reason in (celery_missing(), redis_unavailable()):
        if reason:
            unavailable(f"CeleryExecutor: {reason}")
    redis_command("FLUSHDB")  # no task messages of an earlier session
    server = _postgres_pool.server
    results = server.url(database_name("celery"))
    settings = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
        # The metadata database holds the results too (SQLAlchemy 2.1: psycopg 3).
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{results}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
    }
    worker = ("celery", "worker", "--concurrency", "2", "--skip-serve-logs")
    root = tmp_path_factory.mktemp("airflow-celery")
    with deploy(
        root, server, "celery", settings=settings, extra_services=[("celery-worker", worker)]
    ) as running:
        yield running
    redis_command("FLUSHDB")


def _healthy(deployment: Deployment) -> Iterator[None]:
    restarted = deployment.begin_case()
    if restarted:
        print(f"restarted {restarted} (they died in an earlier case)")
    yield
    problems = deployment.problems()
    assert not problems, f"{problems}\n{deployment.diagnostics()}"


# -- helpers ----------------------------------------------------------------------------


class _Ti:
    """A task instance's identity, as operators._tracking.step_for reads it."""

    def __init__(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = dag_id, run_id, task_id, map_index


def _step(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Step:
    return step_for(_Ti(dag_id, run_id, task_id, map_index))


def _tries(run: Run) -> list[tuple[int, str]]:
    """A step run's attempt history: (attempt, status) per try."""
    return [(int(a["attempt"]), str(a.get("status"))) for a in attempts(run)]


def _wait_for_status(
    deployment: Deployment, run_id: str, status: RunStatus, timeout: float = 120.0
) -> Run:
    """Poll a step's run (it may not exist yet) until it is ``status``, which it must
    reach in its first attempt."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        try:
            run: Run | None = deployment.client.get_run(run_id)
        except RunNotFoundError:
            run = None
        if run is not None:
            state = f"{run.info.status.value} (attempt {run.data.tags.get(ATTEMPT_TAG)})"
            if not seen or seen[-1] != state:
                seen.append(state)
            if run.info.status is status:
                return run
            if run.data.tags.get(ATTEMPT_TAG, "1") != "1" or run.info.status.is_terminated:
                pytest.fail(f"run {run_id} was never {status.value}: {seen}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} was never {status.value}: {seen}", pytrace=False)
        time.sleep(0.1)


def _ui_url(run: Run) -> str:
    return f"{TRACKFLOW_UI}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


def _tree(
    deployment: Deployment, dag_id: str, run_id: str, *, settled: bool = True
) -> tuple[Run, dict[str, Run]]:
    """The DAG run's run tree, checked for shape. ``settled``: once the DAG run's end
    has reached the store (the scheduler's and the API server's hooks hand their work
    to a thread of trackflow's, so it lands a moment after Airflow's state)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        parent, children = run_tree(deployment.client, dag_id, run_id)
        runs = [parent, *children.values()]
        if not settled or all(r.info.status.is_terminated for r in runs):
            break
        if time.monotonic() > deadline:
            break  # the assertions say what stayed open
        time.sleep(0.2)
    assert parent.info.run_id == pipeline_for(dag_id, run_id).run_id
    assert parent.info.parent_run_id is None
    for child in children.values():
        assert child.info.parent_run_id == parent.info.run_id, child.info.run_name
        assert child.info.experiment_id == parent.info.experiment_id
    return parent, children


def _assert_parent(
    deployment: Deployment, parent: Run, dag_id: str, run_id: str, status: RunStatus
) -> None:
    assert parent.info.status is status, parent.data.tags.get(FAILURE_REASON_TAG)
    tags = parent.data.tags
    assert tags["airflow.dag_id"] == dag_id
    assert tags["airflow.run_id"] == run_id
    assert tags["airflow.run_type"] == "manual"
    assert tags["airflow.url"] == f"{deployment.api_url}/dags/{dag_id}/runs/{run_id}"
    assert tags["airflow.run_after"]
    # Named after the DAG and the logical date (a manual run without one: its run_after).
    assert re.fullmatch(rf"{dag_id} 20\d\d-\d\d-\d\d( \d\d:\d\d:\d\d)?", parent.info.run_name)
    exp = deployment.client.get_experiment(parent.info.experiment_id)
    assert exp.name == dag_id


def _assert_task_run(
    deployment: Deployment,
    run: Run,
    dag_id: str,
    run_id: str,
    task_id: str,
    *,
    map_index: int = -1,
    status: RunStatus = RunStatus.FINISHED,
    attempt: int = 1,
) -> None:
    assert run.info.status is status, (task_id, run.data.tags.get(FAILURE_REASON_TAG))
    assert run.info.run_id == _step(dag_id, run_id, task_id, map_index).run_id
    tags = run.data.tags
    assert tags["airflow.dag_id"] == dag_id
    assert tags["airflow.run_id"] == run_id
    assert tags["airflow.task_id"] == task_id
    assert tags["airflow.map_index"] == str(map_index)
    assert tags["airflow.try_number"] == str(attempt)
    assert tags[ATTEMPT_TAG] == str(attempt)
    assert tags["airflow.operator"]
    page = f"{deployment.api_url}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}"
    assert tags["airflow.url"] == page + (f"/mapped/{map_index}" if map_index >= 0 else "")


def _assert_links(
    deployment: Deployment,
    dag_id: str,
    run_id: str,
    parent: Run,
    tasks: dict[tuple[str, int], Run],
) -> None:
    """The extra link and the plugin's views, read through the API server, lead to the
    trackflow UI's page of the right run (the redirect is checked, not followed)."""
    answer = deployment.view(f"/trackflow/dag_run/{dag_id}/{run_id}")
    assert answer.status_code == 302, answer.text
    assert answer.headers["location"] == _ui_url(parent)
    for (task_id, map_index), run in tasks.items():
        links = deployment.links(dag_id, run_id, task_id, map_index)
        assert links.get("trackflow run") == _ui_url(run), (task_id, map_index, links)
        answer = deployment.view(
            f"/trackflow/task_instance/{dag_id}/{run_id}/{task_id}/{map_index}"
        )
        assert answer.status_code == 302, answer.text
        assert answer.headers["location"] == _ui_url(run), (task_id, map_index)


def _holding(
    deployment: Deployment,
    run_id: str,
    markers: Path,
    dag_id: str = "tf_deploy_hold",
    task_id: str = "hold",
) -> int:
    """Start a run of a DAG whose one task holds on, and wait until it does, RUNNING in
    trackflow; the pid of the task's process (found by its command line: the task
    runner names itself after its task instance)."""
    deployment.trigger(dag_id, run_id, conf={"markers": str(markers)})
    deployment.wait_for_file(markers / f"{run_id}.holding")
    ti = deployment.task_instance(dag_id, run_id, task_id)
    assert ti["state"] == "running"
    pid = int(ti["pid"])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert f"airflow worker -- {ti['id']}" in cmdline, cmdline
    _, children = _tree(deployment, dag_id, run_id, settled=False)
    assert children[task_id].info.status is RunStatus.RUNNING
    return pid


def _check_retrain(deployment: Deployment, run_id: str, day: int) -> dict[str, Run]:
    """What a first retrain run of a fresh store leaves: the challenger promoted."""
    client = deployment.client
    parent, children = _tree(deployment, "retrain", run_id)
    _assert_parent(deployment, parent, "retrain", run_id, RunStatus.FINISHED)
    assert parent.data.tags["airflow.logical_date"].startswith(f"2026-11-{day:02d}")
    assert parent.info.run_name == f"retrain 2026-11-{day:02d}"
    assert parent.data.params == {"epochs": "25", "lr": "0.5", "min_improvement": "0.0"}
    tasks = ["extract", "validate", "train", "evaluate", "decide", "promote", "report"]
    assert set(children) == set(tasks)  # no champion yet: promote, never keep
    for task_id in tasks:
        _assert_task_run(deployment, children[task_id], "retrain", run_id, task_id)
    extract, train, evaluate = children["extract"], children["train"], children["evaluate"]
    assert extract.data.params == {"seed": f"202611{day:02d}", "rows": "600"}
    assert train.data.params == {"epochs": "25", "lr": "0.5"}
    losses = client.get_metric_history(train.info.run_id, "loss")
    assert [m.step for m in losses] == list(range(1, 26))
    assert losses[-1].value < losses[0].value
    model_id = model_of(client, train)  # handed to evaluate as a logged model
    consumed = client.get_lineage(evaluate.info.run_id).consumed
    assert {(e.producer_run_id, e.artifact_path) for e in consumed} == {
        (train.info.run_id, f"models:/{model_id}"),
        (extract.info.run_id, "data/rows.jsonl"),
    }
    score = evaluate.data.metrics["holdout_accuracy"]
    assert 0.7 < score <= 1.0
    assert train.data.metrics["holdout_accuracy"] == score
    assert train.data.tags["trackflow.decision"] == "promote"
    assert train.data.tags[CHAMPION_TAG] == "true"
    report = client.download_artifacts(children["report"].info.run_id, "report.md")
    assert f"{score:.4f}: promote" in Path(report).read_text()
    # Promoted: the challenger's logged model is models:/retrain@champion.
    version = client.get_model_version_by_alias("retrain", CHAMPION_ALIAS)
    assert version.run_id == train.info.run_id
    assert client.resolve_model_uri("models:/retrain@champion").source_run_id == version.run_id
    _assert_pipeline_view(deployment, parent, children)
    return children


def _assert_pipeline_view(deployment: Deployment, parent: Run, children: dict[str, Run]) -> None:
    """The DAG run's page in trackflow's UI: a timeline bar and a graph node per task,
    each linking to its run, and the lineage edges between them."""
    page = httpx.get(
        f"{deployment.tracking.url}/experiments/{parent.info.experiment_id}/runs/"
        f"{parent.info.run_id}",
        timeout=30,
    )
    assert page.status_code == 200, page.text[:500]
    html = page.text
    assert f"<h2>Pipeline: {len(children)} steps</h2>" in html
    nodes = set(re.findall(r'<g class="node [a-z]+" data-step="([^"]+)"', html))
    assert nodes == set(children)
    for run in children.values():
        assert f"/experiments/{parent.info.experiment_id}/runs/{run.info.run_id}" in html
    edges = set(re.findall(r'<g class="edge" data-from="([^"]+)" data-to="([^"]+)"', html))
    assert {("train", "evaluate"), ("extract", "evaluate")} <= edges, edges


# -- the LocalExecutor ----------------------------------------------------------------


class TestLocalExecutor:
    @pytest.fixture(autouse=True)
    def healthy(self, deployment: Deployment) -> Iterator[None]:
        yield from _healthy(deployment)

    def test_retrain_example(self, deployment: Deployment) -> None:
        run_id = deployment.trigger(
            "retrain", "deploy__retrain", logical_date="2026-11-03T00:00:00Z"
        )
        assert deployment.wait_for_run("retrain", run_id) == "success"
        children = _check_retrain(deployment, run_id, 3)
        parent, _ = _tree(deployment, "retrain", run_id)
        _assert_links(
            deployment,
            "retrain",
            run_id,
            parent,
            {("train", -1): children["train"], ("decide", -1): children["decide"]},
        )

    def test_sweep_example(self, deployment: Deployment) -> None:
        client = deployment.client
        run_id = deployment.trigger("sweep", "deploy__sweep")
        assert deployment.wait_for_run("sweep", run_id) == "success"
        parent, children = _tree(deployment, "sweep", run_id)
        _assert_parent(deployment, parent, "sweep", run_id, RunStatus.FINISHED)
        assert parent.data.params == {"epochs": "15", "seed": "7"}
        trials = {n: r for n, r in children.items() if n.startswith("trial[")}
        assert set(children) - set(trials) == {"prepare", "best", "promote"}
        assert len(trials) == 8
        assert "trial[lr=0.5 l2=0.05]" in trials
        by_index = {int(r.data.tags["airflow.map_index"]): r for r in trials.values()}
        assert sorted(by_index) == list(range(8))
        for index, run in by_index.items():
            _assert_task_run(deployment, run, "sweep", run_id, "trial", map_index=index)
            assert set(run.data.params) == {"lr", "l2", "epochs"}
            assert len(client.get_metric_history(run.info.run_id, "loss")) == 15
        best = max(
            trials.values(), key=lambda r: (r.data.metrics["val_accuracy"], -r.data.metrics["loss"])
        )
        assert parent.data.tags["best_run_id"] == best.info.run_id
        assert parent.data.metrics["best_val_accuracy"] == best.data.metrics["val_accuracy"]
        champions = [r for r in trials.values() if r.data.tags.get(CHAMPION_TAG) == "true"]
        assert [r.info.run_id for r in champions] == [best.info.run_id]
        _assert_links(
            deployment,
            "sweep",
            run_id,
            parent,
            {("trial", 3): by_index[3], ("trial", 6): by_index[6], ("best", -1): children["best"]},
        )

    def test_two_runs_at_once_with_a_retry_and_a_mapped_task(
        self, deployment: Deployment, tmp_path: Path
    ) -> None:
        meet = tmp_path / "meet"
        meet.mkdir()
        run_ids = [
            deployment.trigger("tf_deploy_basics", f"deploy__basics_{n}", conf={"meet": str(meet)})
            for n in (1, 2)
        ]
        # Between its tries the retried task's run waits, SCHEDULED, with the reason.
        flaky_id = _step("tf_deploy_basics", run_ids[0], "flaky").run_id
        waiting = _wait_for_status(deployment, flaky_id, RunStatus.SCHEDULED)
        assert waiting.data.tags[ATTEMPT_TAG] == "1"
        assert waiting.data.tags[FAILURE_REASON_TAG] == "RuntimeError: transient failure"
        for run_id in run_ids:
            assert deployment.wait_for_run("tf_deploy_basics", run_id) == "success"
        parents = set()
        for run_id in run_ids:
            parent, children = _tree(deployment, "tf_deploy_basics", run_id)
            parents.add(parent.info.run_id)
            _assert_parent(deployment, parent, "tf_deploy_basics", run_id, RunStatus.FINISHED)
            assert parent.data.params == {"alpha": "0.5", "meet": str(meet)}
            expected = {"extract", "flaky", "meet", "total", *(f"square[{i}]" for i in range(3))}
            assert set(children) == expected
            for task_id in ("extract", "meet", "total"):
                _assert_task_run(deployment, children[task_id], "tf_deploy_basics", run_id, task_id)
            # Both DAG runs were in ``meet`` at the same time.
            assert children["meet"].data.metrics["met"] == 1.0
            for i in range(3):
                square = children[f"square[{i}]"]
                _assert_task_run(
                    deployment, square, "tf_deploy_basics", run_id, "square", map_index=i
                )
                assert square.data.metrics["sq"] == (i + 1) ** 2
            # Failed once, retried in the same run, then succeeded.
            flaky = children["flaky"]
            _assert_task_run(deployment, flaky, "tf_deploy_basics", run_id, "flaky", attempt=2)
            history = deployment.client.get_metric_history(flaky.info.run_id, "try")
            assert sorted(m.value for m in history) == [1.0, 2.0]
            assert _tries(flaky) == [(1, "FAILED"), (2, "FINISHED")]
            assert children["total"].data.metrics["total"] == 14.0
        assert len(parents) == 2
        parent, children = _tree(deployment, "tf_deploy_basics", run_ids[1])
        _assert_links(
            deployment,
            "tf_deploy_basics",
            run_ids[1],
            parent,
            {("square", 2): children["square[2]"], ("flaky", -1): children["flaky"]},
        )

    def test_cleared_task_runs_again_in_the_same_run(self, deployment: Deployment) -> None:
        dag_id = "tf_deploy_basics"
        run_id = deployment.trigger(dag_id, "deploy__cleared")
        assert deployment.wait_for_run(dag_id, run_id) == "success"
        _, before = _tree(deployment, dag_id, run_id)
        deployment.api(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            json={
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": ["total"],
                "only_failed": False,
                "reset_dag_runs": True,
            },
        )
        ti = deployment.wait_for_task(dag_id, run_id, "total", {"success"})
        assert ti["try_number"] == 2
        assert deployment.wait_for_run(dag_id, run_id) == "success"
        parent, children = _tree(deployment, dag_id, run_id)
        assert set(children) == set(before)  # the same runs, no second "total"
        _assert_parent(deployment, parent, dag_id, run_id, RunStatus.FINISHED)
        total = children["total"]
        _assert_task_run(deployment, total, dag_id, run_id, "total", attempt=2)
        history = deployment.client.get_metric_history(total.info.run_id, "total")
        assert [(m.step, m.value) for m in history] == [(1, 14.0), (2, 14.0)]
        assert _tries(total) == [(1, "FINISHED"), (2, "FINISHED")]
        # The others were not run again.
        assert children["extract"].data.tags[ATTEMPT_TAG] == "1"
        assert children["extract"].info.end_time == before["extract"].info.end_time

    def test_task_failing_for_good(self, deployment: Deployment) -> None:
        dag_id = "tf_deploy_failing"
        run_id = deployment.trigger(dag_id, "deploy__failing")
        assert deployment.wait_for_run(dag_id, run_id) == "failed"
        parent, children = _tree(deployment, dag_id, run_id)
        _assert_parent(deployment, parent, dag_id, run_id, RunStatus.FAILED)
        assert set(children) == {"boom"}  # after_boom never ran: no run
        boom = children["boom"]
        _assert_task_run(deployment, boom, dag_id, run_id, "boom", status=RunStatus.FAILED)
        assert "ValueError: boom: the input file is empty" in boom.data.tags[FAILURE_REASON_TAG]
        assert boom.data.metrics["before"] == 1.0

    def test_task_marked_failed_through_the_api_while_running(
        self, deployment: Deployment, tmp_path: Path
    ) -> None:
        dag_id, run_id = "tf_deploy_hold", "deploy__marked_failed"
        _holding(deployment, run_id, tmp_path)
        deployment.api(
            "PATCH",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/hold",
            json={"new_state": "failed"},
        )
        assert deployment.wait_for_run(dag_id, run_id, timeout=120) == "failed"
        parent, children = _tree(deployment, dag_id, run_id)
        _assert_parent(deployment, parent, dag_id, run_id, RunStatus.FAILED)
        hold = children["hold"]
        # Killed by the marking; the worker terminating the task afterwards, and the DAG
        # run's end, keep the status and the reason.
        _assert_task_run(deployment, hold, dag_id, run_id, "hold", status=RunStatus.KILLED)
        assert hold.data.tags[FAILURE_REASON_TAG] == (
            "task instance marked failed from the Airflow UI or API while running"
        )
        assert deployment.task_instance(dag_id, run_id, "hold")["state"] == "failed"

    def test_task_process_terminated_with_sigterm(
        self, deployment: Deployment, tmp_path: Path
    ) -> None:
        # Airflow 3.3's task runner answers SIGTERM with the operator's on_kill (nothing
        # more): a BashOperator's stops its command, and the task fails.
        dag_id, run_id = "tf_deploy_sleep", "deploy__sigterm"
        os.kill(_holding(deployment, run_id, tmp_path, dag_id, "sleep"), signal.SIGTERM)
        assert deployment.wait_for_run(dag_id, run_id, timeout=120) == "failed"
        assert deployment.task_instance(dag_id, run_id, "sleep")["state"] == "failed"
        parent, children = _tree(deployment, dag_id, run_id)
        _assert_parent(deployment, parent, dag_id, run_id, RunStatus.FAILED)
        sleep = children["sleep"]
        _assert_task_run(deployment, sleep, dag_id, run_id, "sleep", status=RunStatus.KILLED)
        assert "Bash command failed" in sleep.data.tags[FAILURE_REASON_TAG]

    def test_task_process_killed_with_sigkill(self, deployment: Deployment, tmp_path: Path) -> None:
        dag_id, run_id = "tf_deploy_hold", "deploy__sigkill"
        os.kill(_holding(deployment, run_id, tmp_path), signal.SIGKILL)
        assert deployment.wait_for_run(dag_id, run_id, timeout=120) == "failed"
        assert deployment.task_instance(dag_id, run_id, "hold")["state"] == "failed"
        parent, children = _tree(deployment, dag_id, run_id)
        _assert_parent(deployment, parent, dag_id, run_id, RunStatus.FAILED)
        hold = children["hold"]
        # Nobody was left in the task to end its run: the DAG run's end closed it, as
        # the task instance failed.
        _assert_task_run(deployment, hold, dag_id, run_id, "hold", status=RunStatus.FAILED)
        assert "when the pipeline run ended FAILED" in hold.data.tags[FAILURE_REASON_TAG]

    def test_runs_of_dag_runs_whose_end_was_lost_are_reaped(self, deployment: Deployment) -> None:
        dag_id = "tf_deploy_failing"
        run_id = deployment.trigger(dag_id, "deploy__reaped")
        assert deployment.wait_for_run(dag_id, run_id) == "failed"
        parent, children = _tree(deployment, dag_id, run_id)
        client = deployment.client

        def lose_the_end() -> None:
            # As when the store was down for longer than the listener retries.
            for run in (parent, children["boom"]):
                client.update_run(run.info.run_id, status=RunStatus.RUNNING)

        def reaped() -> Run:
            deadline = time.monotonic() + 60
            while (run := client.get_run(parent.info.run_id)).info.status is RunStatus.RUNNING:
                assert time.monotonic() < deadline, "the scheduler's reaper never came"
                time.sleep(0.5)
            return run

        lose_the_end()
        run = reaped()
        assert run.info.status is RunStatus.FAILED
        assert run.data.tags[FAILURE_REASON_TAG].startswith("the DAG run ended failed in Airflow")
        assert client.get_run(children["boom"].info.run_id).info.status is RunStatus.FAILED

        # Deleted from Airflow: nothing will ever end it but the reaper.
        lose_the_end()
        deployment.api("DELETE", f"/dags/{dag_id}/dagRuns/{run_id}", expect=204)
        run = reaped()
        assert run.info.status is RunStatus.FAILED
        assert "no longer exists in Airflow (deleted)" in run.data.tags[FAILURE_REASON_TAG]
        # The scheduler's log says what the reaper did, once per sweep that ended a run.
        heard = deployment.tracking_warnings()
        assert heard and all("of DAG runs whose end was lost" in line for line in heard), heard
        deployment.begin_case()  # those warnings were this case's point

    def test_untracked_dag_run_has_no_page(self, deployment: Deployment) -> None:
        answer = deployment.view("/trackflow/dag_run/tf_deploy_basics/never__triggered")
        assert answer.status_code == 404
        assert "was not tracked" in answer.json()["detail"]


# -- the CeleryExecutor ---------------------------------------------------------------


class TestCeleryExecutor:
    @pytest.fixture(autouse=True)
    def healthy(self, celery_deployment: Deployment) -> Iterator[None]:
        yield from _healthy(celery_deployment)

    def test_retrain_example(self, celery_deployment: Deployment) -> None:
        deployment = celery_deployment
        run_id = deployment.trigger(
            "retrain", "deploy__celery", logical_date="2026-11-05T00:00:00Z"
        )
        assert deployment.wait_for_run("retrain", run_id) == "success"
        children = _check_retrain(deployment, run_id, 5)
        # Every task instance went through the Celery worker.
        worker_log = deployment.services["celery-worker"].log.read_text(errors="replace")
        tis = deployment.task_instances("retrain", run_id)
        ran = [ti for ti in tis if ti["state"] == "success"]
        assert {ti["task_id"] for ti in ran} == set(children)
        assert "Executing workload in Celery" in worker_log
        for ti in ran:
            assert f"id=UUID('{ti['id']}')" in worker_log, ti["task_id"]
        parent, _ = _tree(deployment, "retrain", run_id)
        _assert_links(deployment, "retrain", run_id, parent, {("train", -1): children["train"]})
