"""The stock ``mlflow`` client against a real ``trackflow server``.

Each scenario in ``scenarios/`` runs once per module in MLflow's own
environment, with ``MLFLOW_TRACKING_URI`` set to the server, and prints what
it observed; the tests assert on that, then read the same data back through
trackflow itself (``TrackingClient`` on the server's SQLite file, or the
artifact files the server wrote) so a value that only round-trips through the
server's own serialization does not pass unnoticed.

MLflow's own behaviour is the reference where trackflow documents no
difference; where MLflow servers disagree with each other or trackflow is
stricter (an error code, ``inf`` kept as ``inf``), the accepted answers are
spelled out.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

import httpx
import pytest
from compat_harness import CompatServer, ScenarioResult

from tracking import RunStatus, TrackingClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def stored(compat_server: CompatServer) -> TrackingClient:
    """trackflow's own view of the server's database."""
    return TrackingClient(compat_server.db_uri)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- experiments ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def experiments(run_scenario: Any, compat_server: CompatServer) -> ScenarioResult:
    return run_scenario("experiments", compat_server)


def _exp_name(result: ScenarioResult, suffix: str) -> str:
    return f"{result['get']['name'].rsplit('-', 1)[0]}-{suffix}"


class TestExperiments:
    def test_create_and_get(self, experiments: ScenarioResult) -> None:
        got = experiments["get"]
        assert got["experiment_id"] == experiments["create"]["a"]
        assert got["name"].endswith("-a")
        assert got["lifecycle_stage"] == "active"
        assert got["tags"] == {"team": "ml", "tier": "1"}
        assert got["artifact_location"]
        assert got["creation_time"] > T0
        assert got["last_update_time"] >= got["creation_time"]
        assert len(set(experiments["create"].values())) == 3

    def test_get_by_name(self, experiments: ScenarioResult) -> None:
        by_name = experiments["get_by_name"]
        assert by_name["found"]["experiment_id"] == experiments["create"]["b"]
        assert by_name["found"]["tags"] == {}
        assert by_name["missing"] is None

    def test_default_experiment(self, experiments: ScenarioResult) -> None:
        default = experiments["default_experiment"]
        assert (default["experiment_id"], default["name"]) == ("0", "Default")

    def test_duplicate_name(self, experiments: ScenarioResult) -> None:
        assert experiments["duplicate_name"]["error_code"] == "RESOURCE_ALREADY_EXISTS"

    def test_search_filter_and_order(self, experiments: ScenarioResult) -> None:
        a, b, c = (_exp_name(experiments, s) for s in "abc")
        assert experiments["search_filter_order"] == [c, b, a]
        assert experiments["search_tag"] == [a]

    def test_search_pages(self, experiments: ScenarioResult) -> None:
        a, b, c = (_exp_name(experiments, s) for s in "abc")
        assert experiments["search_pages"] == {
            "first": [a, b],
            "first_token": True,
            "second": [c],
            "second_token": False,
        }

    def test_rename(self, experiments: ScenarioResult) -> None:
        assert experiments["rename"] == {
            "name": _exp_name(experiments, "c-renamed"),
            "old_name": None,
            "new_name_id": experiments["create"]["c"],
        }

    def test_set_tag_overwrites(self, experiments: ScenarioResult) -> None:
        assert experiments["set_tag"] == {"stage": "prod", "note": "ünïcode ✓"}

    def test_delete(self, experiments: ScenarioResult) -> None:
        a, b, c = (_exp_name(experiments, s) for s in ("a", "b", "c-renamed"))
        deleted = experiments["delete"]
        assert deleted["lifecycle_stage"] == "deleted"
        assert deleted["by_name_stage"] == "deleted"
        assert deleted["active_only"] == [a, c]
        assert deleted["deleted_only"] == [b]
        assert deleted["all"] == [a, b, c]
        assert deleted["create_same_name"]["error_code"] == "RESOURCE_ALREADY_EXISTS"

    def test_restore(self, experiments: ScenarioResult) -> None:
        a, b, c = (_exp_name(experiments, s) for s in ("a", "b", "c-renamed"))
        assert experiments["restore"] == {"lifecycle_stage": "active", "active_only": [a, b, c]}

    def test_set_experiment(self, experiments: ScenarioResult) -> None:
        fluent = experiments["set_experiment"]
        assert fluent["created"]["name"] == _exp_name(experiments, "fluent")
        assert fluent["again_id"] == fluent["created"]["experiment_id"]
        assert fluent["by_id_name"] == _exp_name(experiments, "a")

    def test_stored(self, experiments: ScenarioResult, stored: TrackingClient) -> None:
        ids = experiments["create"]
        a, b, c = (stored.get_experiment(ids[k]) for k in "abc")
        assert dict(a.tags) == {"team": "ml", "tier": "1"}
        assert dict(b.tags) == {"stage": "prod", "note": "ünïcode ✓"}
        assert b.lifecycle_stage == "active"
        assert c.name == _exp_name(experiments, "c-renamed")


# -- runs ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(run_scenario: Any, compat_server: CompatServer) -> ScenarioResult:
    return run_scenario("runs", compat_server)


class TestRunLifecycle:
    def test_create(self, runs: ScenarioResult) -> None:
        created = runs["create"]
        assert created["experiment_id"] == runs["experiment"]
        assert len(created["run_id"]) == 32
        assert created["run_name"] == "first"
        assert created["status"] == "RUNNING"
        assert created["start_time"] == T0
        assert created["end_time"] is None
        assert created["lifecycle_stage"] == "active"
        assert created["tags"] == {"team": "ml", "mlflow.runName": "first"}
        assert created["params"] == created["metrics"] == {}

    def test_get_matches_create(self, runs: ScenarioResult) -> None:
        assert runs["get_fresh"] == runs["create"]

    def test_artifact_uri_is_proxied(self, runs: ScenarioResult) -> None:
        uri = runs["create"]["artifact_uri"]
        assert uri.startswith("mlflow-artifacts:/")
        assert runs["create"]["run_id"] in uri

    def test_update_status_and_name(self, runs: ScenarioResult) -> None:
        updated = runs["update"]
        assert updated["status"] == "FINISHED"
        assert updated["run_name"] == "first-renamed"
        assert updated["tags"]["mlflow.runName"] == "first-renamed"

    def test_set_terminated(self, runs: ScenarioResult) -> None:
        ended = runs["set_terminated"]
        assert (ended["status"], ended["end_time"]) == ("FAILED", T0 + 5000)

    def test_delete_restore(self, runs: ScenarioResult) -> None:
        cycle = runs["delete_restore"]
        assert cycle["deleted"] == "deleted"
        assert cycle["restored"] == "active"
        # MLflow answers INVALID_PARAMETER_VALUE; trackflow's InvalidStateError is as good.
        assert cycle["log_to_deleted"]["error_code"] in {"INVALID_PARAMETER_VALUE", "INVALID_STATE"}

    def test_stored(self, runs: ScenarioResult, stored: TrackingClient) -> None:
        run = stored.get_run(runs["create"]["run_id"])
        assert run.info.status == RunStatus.FINISHED
        assert run.info.run_name == "first-renamed"
        assert run.info.start_time == T0
        failed = stored.get_run(runs["set_terminated"]["run_id"])
        assert (failed.info.status, failed.info.end_time) == (RunStatus.FAILED, T0 + 5000)


class TestRunLogging:
    def test_params(self, runs: ScenarioResult) -> None:
        assert runs["log"]["params"] == {"lr": "0.01", "opt": "adam", "p1": "v1", "p2": "x" * 500}

    def test_latest_metrics(self, runs: ScenarioResult) -> None:
        # The latest value is the one at the highest step, whatever was logged last.
        assert runs["log"]["metrics"] == {
            "loss": 0.3,
            "acc": 0.4,
            "nan": "nan",
            "pinf": "inf",
            "ninf": "-inf",
            "neg": -1.5e-9,
        }

    def test_tags(self, runs: ScenarioResult) -> None:
        assert runs["log"]["tags"] == {
            "team": "ml",
            "mlflow.runName": "first",
            "note": "ünïcode ✓",
            "batch": "yes",
        }

    def test_history(self, runs: ScenarioResult) -> None:
        history = runs["history"]
        # trackflow orders a series by (step, timestamp).
        assert history["loss"] == [
            [0, 0.5, T0 + 100],
            [1, 0.4, T0 + 200],
            [1, 9.0, T0 + 400],
            [2, 0.3, T0 + 300],
        ]
        assert history["acc"] == [[i, 0.1 * i, T0 + i] for i in range(5)]
        assert history["nan"] == [[0, "nan", T0]]
        assert history["pinf"] == [[0, "inf", T0]]
        assert history["ninf"] == [[0, "-inf", T0]]
        assert history["missing"] == []

    def test_long_history(self, runs: ScenarioResult) -> None:
        long = runs["long_history"]
        assert long["count"] == 30_000
        assert long["steps_in_order"] is True
        assert long["distinct_steps"] == 30_000
        assert long["last"] == [29_999, 29_999 / 30_000]
        assert long["latest"] == 29_999 / 30_000

    def test_stored(self, runs: ScenarioResult, stored: TrackingClient) -> None:
        run_id = runs["create"]["run_id"]
        run = stored.get_run(run_id)
        assert dict(run.data.params)["p2"] == "x" * 500
        assert run.data.metrics["loss"] == 0.3
        assert math.isnan(run.data.metrics["nan"])
        assert run.data.metrics["pinf"] == math.inf
        assert run.data.metrics["ninf"] == -math.inf
        assert "gone" not in run.data.tags
        assert [(m.step, m.value) for m in stored.get_metric_history(run_id, "loss")] == [
            (0, 0.5),
            (1, 0.4),
            (1, 9.0),
            (2, 0.3),
        ]
        long = stored.get_metric_history(runs["long_history"]["run_id"], "curve")
        assert len(long) == 30_000


class TestRunSearch:
    def test_filter_and_order(self, runs: ScenarioResult) -> None:
        assert runs["search_runs"]["filtered"] == ["r6", "r0", "r3", "r5"]

    def test_pages(self, runs: ScenarioResult) -> None:
        pages = runs["search_runs"]["pages"]
        assert [name for page in pages for name in page] == ["r6", "r0", "r3", "r5"]
        assert pages[:2] == [["r6", "r0"], ["r3", "r5"]]
        assert all(page == [] for page in pages[2:])

    def test_row_content(self, runs: ScenarioResult) -> None:
        row = runs["search_runs"]["first_row"]
        assert row["run_id"] == runs["search_runs"]["ids"]["r6"]
        assert row["params"] == {"opt": "adam", "idx": "6"}
        assert row["metrics"] == {"acc": 0.99}
        assert row["tags"] == {"mlflow.runName": "r6", "parity": "even"}
        assert row["status"] == "FINISHED"
        assert row["end_time"] is not None

    def test_view_types(self, runs: ScenarioResult) -> None:
        search = runs["search_runs"]
        assert search["after_delete"] == {
            "active": ["r6", "r3", "r5"],
            "deleted": ["r0"],
            "all": ["r6", "r0", "r3", "r5"],
            "lifecycle_stage": "deleted",
        }
        assert search["restored_stage"] == "active"
        assert search["after_restore"] == ["r6", "r0", "r3", "r5"]

    @pytest.mark.parametrize(
        ("case", "expected"),
        [
            pytest.param("by_status", ["r3"], id="attribute-status"),
            pytest.param("by_tag_ordered_by_param", ["r5", "r3", "r1"], id="tag-order-by-param"),
            pytest.param("by_run_name", ["r4"], id="attribute-run-name"),
            pytest.param("start_time_asc", [f"r{i}" for i in range(7)], id="order-start-time"),
        ],
    )
    def test_other_filters(self, runs: ScenarioResult, case: str, expected: list[str]) -> None:
        assert runs["search_runs"][case] == expected

    def test_two_experiments(self, runs: ScenarioResult) -> None:
        # 7 runs in the search experiment + first, long and failing in the other one.
        assert runs["search_runs"]["two_experiments"] == 10

    def test_stored(self, runs: ScenarioResult, stored: TrackingClient) -> None:
        ids = runs["search_runs"]["ids"]
        experiment_id = stored.get_run(ids["r0"]).info.experiment_id
        found = stored.search_runs(
            [experiment_id],
            "metrics.acc > 0.5 and params.opt = 'adam'",
            order_by=["metrics.acc DESC"],
        )
        assert [r.info.run_id for r in found] == [ids[n] for n in ("r6", "r0", "r3", "r5")]


# -- the fluent API -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fluent(run_scenario: Any, compat_server: CompatServer) -> ScenarioResult:
    return run_scenario("fluent", compat_server)


class TestFluentRuns:
    def test_nesting_tags(self, fluent: ScenarioResult) -> None:
        sweep, runs = fluent["sweep"], fluent["runs"]
        assert runs["parent"]["parent_tag"] is None
        for name in ("child-0", "child-1", "child-2"):
            assert runs[name]["parent_tag"] == sweep["parent"]
        assert runs["grandchild"]["parent_tag"] == sweep["children"]["child-0"]

    def test_active_run_stack(self, fluent: ScenarioResult) -> None:
        sweep = fluent["sweep"]
        assert sweep["active_in_child"] == [True, True, True]
        assert sweep["active_after_children"] == sweep["parent"]
        assert sweep["active_after_parent"] is True
        assert sweep["last_active_run"] == sweep["parent"]

    def test_statuses(self, fluent: ScenarioResult) -> None:
        for name, run in fluent["runs"].items():
            assert (name, run["status"], run["end_time_set"]) == (name, "FINISHED", True)
        assert fluent["failed_run"]["status"] == "FAILED"
        assert fluent["failed_run"]["metrics"] == {"before": 1.0}

    def test_logged_values(self, fluent: ScenarioResult) -> None:
        runs = fluent["runs"]
        assert runs["parent"]["params"] == {"model": "gbm", "depth": "3"}
        assert runs["parent"]["metrics"] == {"auc": 0.85, "loss": 0.15}
        assert runs["parent"]["stage"] == "sweep"
        assert runs["child-1"]["params"] == {"lr": "0.1"}
        assert runs["child-1"]["metrics"] == {"acc": 0.93}
        assert runs["grandchild"]["metrics"] == {"depth": 2.0}
        assert runs["parent"]["source_type"] == "LOCAL"
        assert runs["parent"]["user_tag"]

    def test_resume(self, fluent: ScenarioResult) -> None:
        assert fluent["resume"] == {
            "during": "RUNNING",
            "after": "FINISHED",
            "auc": 0.9,
            "auc_steps": [0, 1, 2],
        }

    def test_async_logging(self, fluent: ScenarioResult) -> None:
        logged = fluent["async_logging"]
        assert logged["status"] == "FINISHED"
        assert logged["params"] == {"x": "1", "y": "2"}
        assert logged["tag"] == "async"
        assert logged["points"] == [[step, step * 2.0] for step in range(50)]

    def test_search_runs_dataframe(self, fluent: ScenarioResult) -> None:
        df = fluent["search_dataframe"]
        parent = fluent["sweep"]["parent"]
        children = fluent["sweep"]["children"]
        assert df["rows"] == 3
        assert df["run_names"] == ["child-1", "child-0", "child-2"]
        assert df["run_ids"] == [children[n] for n in ("child-1", "child-0", "child-2")]
        assert df["acc"] == [0.93, 0.71, 0.64]
        assert df["lr"] == ["0.1", "0.01", "0.3"]
        assert df["status"] == ["FINISHED"] * 3
        assert df["parent"] == [parent] * 3
        assert df["has_columns"] == ["artifact_uri", "end_time", "experiment_id", "start_time"]

    def test_search_runs_all_and_list(self, fluent: ScenarioResult) -> None:
        everything = fluent["search_all_dataframe"]
        assert everything["rows"] == 7
        assert sorted(everything["run_names"]) == sorted(
            ["parent", "child-0", "child-1", "child-2", "grandchild", "boom", "async"]
        )
        assert everything["run_names"][0] == "parent"
        assert fluent["search_list"] == ["child-1"]

    def test_stored_tree(self, fluent: ScenarioResult, stored: TrackingClient) -> None:
        sweep = fluent["sweep"]
        children = stored.get_children(sweep["parent"])
        assert sorted(r.info.run_name for r in children) == ["child-0", "child-1", "child-2"]
        assert {r.info.parent_run_id for r in children} == {sweep["parent"]}
        subtree = {r.info.run_name: r for r in stored.get_subtree(sweep["parent"])}
        assert "grandchild" in subtree
        assert subtree["grandchild"].info.parent_run_id == sweep["children"]["child-0"]
        assert stored.get_run(fluent["failed_run"]["run_id"]).info.status == RunStatus.FAILED


# -- artifacts ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifacts(run_scenario: Any, compat_server: CompatServer) -> ScenarioResult:
    return run_scenario("artifacts", compat_server)


def _expected_tree(artifacts: ScenarioResult) -> dict[str, str]:
    return {
        **artifacts["log"]["sources"],
        "text/hello.txt": _sha("hello ✓\n".encode()),
        "cfg/config.json": artifacts["download_all"].get("cfg/config.json", "<missing>"),
    }


def _listing(entries: list[list[Any]]) -> list[tuple[str, bool]]:
    return [(path, is_dir) for path, is_dir, _ in entries]


class TestArtifacts:
    def test_artifact_uri(self, artifacts: ScenarioResult) -> None:
        logged = artifacts["log"]
        assert logged["artifact_uri"].startswith("mlflow-artifacts:/")
        assert logged["run_id"] in logged["artifact_uri"]
        assert logged["run_artifact_uri"] == logged["artifact_uri"]

    def test_list_root(self, artifacts: ScenarioResult) -> None:
        root = artifacts["list"]["root"]
        assert _listing(root) == [
            ("blob.bin", False),
            ("cfg", True),
            ("data", True),
            ("docs", True),
            ("text", True),
        ]
        assert root[0][2] == artifacts["log"]["blob_size"]

    def test_list_subdirectories(self, artifacts: ScenarioResult) -> None:
        listed = artifacts["list"]
        assert _listing(listed["data"]) == [("data/a.csv", False), ("data/sub", True)]
        assert listed["data"][0][2] == 8
        assert _listing(listed["data/sub"]) == [
            ("data/sub/b.json", False),
            ("data/sub/name with spaces.txt", False),
        ]
        assert [size for _, _, size in listed["data/sub"]] == [16, 6]
        assert _listing(listed["docs"]) == [("docs/empty.txt", False), ("docs/notes.txt", False)]
        assert listed["docs"][0][2] in (0, None)  # protobuf drops a zero size; MLflow too
        assert listed["docs"][1][2] == 25
        assert listed["missing"] == []

    def test_download_file(self, artifacts: ScenarioResult) -> None:
        assert artifacts["download_file"] == {
            "relative": "blob.bin",
            "sha256": artifacts["log"]["sources"]["blob.bin"],
        }

    def test_download_directory(self, artifacts: ScenarioResult) -> None:
        sources = artifacts["log"]["sources"]
        assert artifacts["download_dir"] == {
            k.removeprefix("data/"): v for k, v in sources.items() if k.startswith("data/")
        }

    def test_download_everything(self, artifacts: ScenarioResult) -> None:
        assert artifacts["download_all"] == _expected_tree(artifacts)
        assert sorted(artifacts["download_all"]) == sorted(
            [*artifacts["log"]["sources"], "text/hello.txt", "cfg/config.json"]
        )

    def test_client_download_and_load(self, artifacts: ScenarioResult) -> None:
        assert artifacts["client_download"] == {
            "sha256": artifacts["log"]["sources"]["docs/notes.txt"],
            "name": "notes.txt",
        }
        assert artifacts["load"] == {"text": "hello ✓\n", "dict": {"a": 1, "b": [1, 2]}}

    def test_download_missing(self, artifacts: ScenarioResult) -> None:
        assert artifacts["download_missing"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_stored_files(self, artifacts: ScenarioResult, compat_server: CompatServer) -> None:
        """The bytes the server wrote under its artifacts destination are the ones logged."""
        run_id = artifacts["log"]["run_id"]
        marker = f"{run_id}/artifacts/"
        on_disk = {}
        for path in compat_server.artifacts.rglob("*"):
            posix = path.as_posix()
            if path.is_file() and marker in posix:
                on_disk[posix.split(marker, 1)[1]] = _sha(path.read_bytes())
        assert on_disk == _expected_tree(artifacts)
        config = next(compat_server.artifacts.rglob(f"{run_id}/artifacts/cfg/config.json"))
        assert json.loads(config.read_text()) == {"a": 1, "b": [1, 2]}


# -- errors ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def errors(run_scenario: Any, compat_server: CompatServer) -> dict[str, Any]:
    result: dict[str, Any] = run_scenario("errors", compat_server)["errors"]
    return result


NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST"}
INVALID = {"INVALID_PARAMETER_VALUE"}


class TestErrorMapping:
    @pytest.mark.parametrize(
        ("case", "codes"),
        [
            pytest.param("get_run_missing", NOT_FOUND, id="get-run-missing"),
            pytest.param("get_experiment_missing", NOT_FOUND, id="get-experiment-missing"),
            pytest.param("delete_run_missing", NOT_FOUND, id="delete-run-missing"),
            pytest.param("log_metric_missing_run", NOT_FOUND, id="log-metric-missing-run"),
            pytest.param("create_run_missing_experiment", NOT_FOUND, id="create-run-no-experiment"),
            pytest.param("delete_experiment_missing", NOT_FOUND, id="delete-experiment-missing"),
            pytest.param("update_run_missing", NOT_FOUND, id="update-run-missing"),
            pytest.param("delete_missing_tag", NOT_FOUND, id="delete-missing-tag"),
            pytest.param("duplicate_experiment", {"RESOURCE_ALREADY_EXISTS"}, id="duplicate"),
            # MLflow's own server says BAD_REQUEST here (a leaked IntegrityError).
            pytest.param(
                "rename_to_taken",
                {"RESOURCE_ALREADY_EXISTS", "INVALID_PARAMETER_VALUE"},
                id="rename-to-taken",
            ),
            pytest.param("param_changed", INVALID, id="param-changed"),
            pytest.param("batch_param_changed", INVALID, id="batch-param-changed"),
            pytest.param("bad_filter", INVALID, id="bad-filter"),
            pytest.param("bad_filter_key", INVALID, id="bad-filter-key"),
            pytest.param("bad_order_by", INVALID, id="bad-order-by"),
            pytest.param("bad_experiment_filter", INVALID, id="bad-experiment-filter"),
            pytest.param(
                "log_to_deleted_run", {*INVALID, "INVALID_STATE"}, id="log-to-deleted-run"
            ),
            pytest.param(
                "batch_to_deleted_run", {*INVALID, "INVALID_STATE"}, id="batch-to-deleted-run"
            ),
        ],
    )
    def test_error_code(self, errors: dict[str, Any], case: str, codes: set[str]) -> None:
        error = errors[case]
        assert error["type"] in {"RestException", "MlflowException"}, error
        assert error["error_code"] in codes, error

    def test_history_of_missing_run(self, errors: dict[str, Any]) -> None:
        # MLflow's server answers an empty history; a not-found error is as good.
        error = errors["history_missing_run"]
        assert error["error_code"] in NOT_FOUND or error == {"type": None, "returned": "[]"}


class TestWireErrors:
    """The JSON error body and HTTP status, as MLflow's clients parse them."""

    @pytest.mark.parametrize(
        ("method", "path", "body", "status", "code"),
        [
            pytest.param(
                "GET",
                "/api/2.0/mlflow/runs/get?run_id=0123456789abcdef0123456789abcdef",
                None,
                404,
                "RESOURCE_DOES_NOT_EXIST",
                id="missing-run",
            ),
            pytest.param(
                "GET",
                "/api/2.0/mlflow/experiments/get?experiment_id=987654321",
                None,
                404,
                "RESOURCE_DOES_NOT_EXIST",
                id="missing-experiment",
            ),
            pytest.param(
                "POST",
                "/api/2.0/mlflow/runs/search",
                {"experiment_ids": ["0"], "filter": "metrics.acc >>> 1"},
                400,
                "INVALID_PARAMETER_VALUE",
                id="bad-filter",
            ),
            pytest.param(
                "POST",
                "/api/2.0/mlflow/experiments/create",
                {"name": "Default"},
                400,
                "RESOURCE_ALREADY_EXISTS",
                id="duplicate-experiment",
            ),
        ],
    )
    def test_status_and_body(
        self,
        compat_server: CompatServer,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        status: int,
        code: str,
    ) -> None:
        response = httpx.request(method, compat_server.url + path, json=body, timeout=30)
        assert response.status_code == status
        payload = response.json()
        assert payload["error_code"] == code
        assert isinstance(payload["message"], str)
        assert payload["message"]


# -- auth ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth(run_scenario: Any, auth_server: CompatServer) -> ScenarioResult:
    assert auth_server.token
    return run_scenario("auth", auth_server, token=auth_server.token)


class TestAuth:
    def test_with_token(self, auth: ScenarioResult) -> None:
        authed = auth["with_token"]
        assert authed["status"] == "FINISHED"
        assert authed["metrics"] == {"m": 1.5}
        assert authed["artifacts"] == ["note.txt"]
        assert authed["downloaded"] == "authorized\n"

    @pytest.mark.parametrize("step", ["without_token", "wrong_token"])
    @pytest.mark.parametrize(
        "call", ["get_run", "search_experiments", "log_metric", "list_artifacts"]
    )
    def test_refused(self, auth: ScenarioResult, step: str, call: str) -> None:
        error = auth[step][call]
        assert error["type"] is not None, f"{call} succeeded {step.replace('_', ' ')}"
        # MLflow parses the JSON error body: the code survives to the exception.
        assert error["error_code"] == "UNAUTHENTICATED", error

    def test_refused_calls_wrote_nothing(self, auth: ScenarioResult) -> None:
        assert auth["after"] == {"history": [1.5]}

    def test_http_status(self, auth_server: CompatServer, auth: ScenarioResult) -> None:
        run_id = auth["with_token"]["run_id"]
        url = f"{auth_server.url}/api/2.0/mlflow/runs/get?run_id={run_id}"
        refused = httpx.get(url, timeout=30)
        assert refused.status_code == 401
        assert refused.json()["error_code"] == "UNAUTHENTICATED"
        wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401
        # The wrong tokens so far have locked 127.0.0.1 out for a while (429, the login
        # rate limit); the right token still works from another client address.
        elsewhere = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with elsewhere:
            ok = elsewhere.get(
                url, headers={"Authorization": f"Bearer {auth_server.token}"}, timeout=30
            )
        assert ok.status_code == 200
        assert ok.json()["run"]["info"]["run_id"] == run_id
        assert httpx.get(f"{auth_server.url}/health", timeout=30).status_code == 200

    def test_stored(self, auth: ScenarioResult, auth_server: CompatServer) -> None:
        client = TrackingClient(auth_server.db_uri)
        run_id = auth["with_token"]["run_id"]
        assert [m.value for m in client.get_metric_history(run_id, "m")] == [1.5]
        assert dict(client.get_run(run_id).data.params) == {"p": "v"}


# -- keys with ':', data sets, log_model ----------------------------------------------------


@pytest.fixture(scope="module")
def inputs(run_scenario: Any, compat_server: CompatServer) -> ScenarioResult:
    return run_scenario("inputs", compat_server)


class TestKeysDatasetsModels:
    def test_keys_with_colons_are_accepted(
        self, inputs: ScenarioResult, stored: TrackingClient
    ) -> None:
        got = inputs["colon_keys"]
        assert got["metrics"] == {"train:loss": 0.5}
        assert got["params"] == {"opt:name": "adam"}
        assert got["tags"] == {"team:owner": "ml"}
        run = stored.get_run(got["run_id"])
        assert dict(run.data.params) == {"opt:name": "adam"}

    def test_log_input_is_stored_and_read_back(
        self, inputs: ScenarioResult, stored: TrackingClient
    ) -> None:
        got = inputs["log_input"]
        assert len(got["inputs"]) == 1
        item = got["inputs"][0]
        assert (item["name"], item["digest"], item["source_type"]) == (
            "churn-train",
            "9f86d081",
            "http",
        )
        assert "example.invalid/churn.csv" in item["source"]
        assert item["tags"] == {"mlflow.data.context": "training"}
        assert got["searched"] == ["churn-train"]
        own = stored.get_run(got["run_id"]).inputs.dataset_inputs
        assert [(i.dataset.name, dict(i.tags)) for i in own] == [
            ("churn-train", {"mlflow.data.context": "training"})
        ]

    def test_pyfunc_log_model(self, inputs: ScenarioResult) -> None:
        """MLflow 3's log_model creates a logged model (see test_mlflow_models.py)."""
        got = inputs["log_model"]
        assert got["type"] is None, got
        assert "ModelInfo" in got["returned"]


class TestPrintedLinks:
    """The "View run ... at" and "View experiment at" lines the mlflow client prints open
    the matching pages of trackflow's UI, in a real browser."""

    def test_run_and_experiment_links(
        self, fluent: ScenarioResult, browser: Any, compat_server: CompatServer
    ) -> None:
        from playwright.sync_api import expect

        runs = re.findall(r"View run (.+?) at: (\S+)", fluent.stdout)
        experiments = re.findall(r"View experiment at: (\S+)", fluent.stdout)
        assert runs and experiments, fluent.stdout
        page = browser.new_page()
        try:
            for name, url in dict(runs).items():
                assert url.startswith(f"{compat_server.url}/#/experiments/"), url
                page.goto(url)
                run_id = url.rsplit("/", 1)[1]
                page.wait_for_url(re.compile(rf"/experiments/\d+/runs/{run_id}$"))
                expect(page.locator("h1")).to_contain_text(name)
            page.goto(experiments[0])
            page.wait_for_url(re.compile(r"/experiments/\d+$"))
            expect(page.locator("#runs")).to_be_visible()
        finally:
            page.close()
