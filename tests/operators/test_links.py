"""Links from Airflow to trackflow: the operator link kept in XCom per map index, the
global link the API server resolves, the DAG-run and task-instance views, the macros."""

from __future__ import annotations

from typing import Any

import pytest
from _airflow_support import TRACKFLOW_UI, run_tree

from tracking import TrackingClient

pytestmark = pytest.mark.airflow


@pytest.fixture(scope="class")
def ran(run_dag: Any, class_embedded: TrackingClient) -> tuple[Any, Any, dict[str, Any]]:
    dag_run = run_dag("tf_operators")
    assert dag_run.state == "success"
    parent, children = run_tree(class_embedded, "tf_operators", dag_run.run_id)
    return dag_run, parent, children


def _url(run: Any) -> str:
    return f"{TRACKFLOW_UI}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


def _xcom(dag_run: Any, task_id: str, map_index: int, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        row = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == key,
            )
        )
    return XComModel.deserialize_value(_Row(row)) if row is not None else None


class _Row:
    def __init__(self, value: Any) -> None:
        self.value = value


def _key(dag_run: Any, task_id: str, map_index: int = -1) -> Any:
    from airflow.models.taskinstancekey import TaskInstanceKey

    return TaskInstanceKey(dag_run.dag_id, task_id, dag_run.run_id, 1, map_index)


class TestOperatorLink:
    def test_kept_per_map_index(self, ran: Any) -> None:
        dag_run, _, children = ran
        for i in range(3):
            link = _xcom(dag_run, "mapped", i, "_link_TrackflowRunLink")
            assert link == _url(children[f"mapped[{i}]"])

    def test_global_link_on_any_task(self, ran: Any) -> None:
        from operators.links import TrackflowRunLink

        dag_run, _, children = ran
        link = TrackflowRunLink()
        assert link.get_link(None, ti_key=_key(dag_run, "produce")) == _url(children["produce"])
        assert link.get_link(None, ti_key=_key(dag_run, "mapped", 2)) == _url(children["mapped[2]"])
        # A task that was not tracked has no run: no link, and no error.
        assert link.get_link(None, ti_key=_key(dag_run, "never_ran")) == ""


class TestViews:
    """The redirects as the API server serves them, behind its authentication."""

    @pytest.fixture(scope="class")
    def token(self, airflow_api: Any) -> str:
        # The test deployment's simple auth manager makes everyone an admin.
        answer = airflow_api.get("/auth/token")
        assert answer.status_code == 201, answer.text
        return str(answer.json()["access_token"])

    def _get(self, airflow_api: Any, path: str, token: str | None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return airflow_api.get(f"/trackflow{path}", headers=headers, follow_redirects=False)

    def test_dag_run_and_task_instance_pages(self, ran: Any, airflow_api: Any, token: str) -> None:
        dag_run, parent, children = ran
        answer = self._get(airflow_api, f"/dag_run/tf_operators/{dag_run.run_id}", token)
        assert answer.status_code == 302
        assert answer.headers["location"] == _url(parent)
        path = f"/task_instance/tf_operators/{dag_run.run_id}"
        answer = self._get(airflow_api, f"{path}/mapped/1", token)
        assert answer.headers["location"] == _url(children["mapped[1]"])
        answer = self._get(airflow_api, f"{path}/fit/-1", token)
        assert answer.headers["location"] == _url(children["fit"])

    def test_refused_without_airflows_login(self, ran: Any, airflow_api: Any) -> None:
        from fastapi.testclient import TestClient

        from operators.views import redirect_app

        dag_run, _, _ = ran
        paths = (
            f"/dag_run/tf_operators/{dag_run.run_id}",
            f"/task_instance/tf_operators/{dag_run.run_id}/fit/-1",
        )
        # The test API server makes everyone an admin (a middleware of its simple auth
        # manager), so "no token" is asked of the views on their own, as a real
        # deployment's API server asks them; a forged token of the API server itself.
        bare = TestClient(redirect_app())
        for path in paths:
            answer = bare.get(path, follow_redirects=False)
            assert answer.status_code == 401, (path, answer.text)
            answer = self._get(airflow_api, path, "eyJhbGciOiJIUzI1NiJ9.e30.forged")
            assert answer.status_code in (401, 403), (path, answer.status_code)
            assert "location" not in answer.headers

    def test_not_tracked(self, ran: Any, airflow_api: Any, token: str) -> None:
        answer = self._get(airflow_api, "/dag_run/tf_operators/manual__nope", token)
        assert answer.status_code == 404
        assert "was not tracked" in answer.json()["detail"]


class TestMacros:
    def test_ids_match_the_runs(self, ran: Any) -> None:
        from operators import macros

        dag_run, parent, children = ran
        ti = _key(dag_run, "mapped", 1)
        assert macros.run_id(ti) == children["mapped[1]"].info.run_id
        assert macros.parent_run_id(ti) == parent.info.run_id
        assert macros.task_run_id(ti, "fit") == children["fit"].info.run_id
        assert macros.run_url(ti) == _url(children["mapped[1]"])
        assert macros.tracking_uri().startswith("sqlite:///")
