"""In Chromium: a run page lists the models the run logged, a logged model's page shows
its params, linked metrics, files and registered versions, and the registry shows each
model's aliases and, for each version, the run and the pipeline run it came from.
Hostile names and tags are shown as text; an unknown model is a 404 page naming it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _server_support import ServerProcess
from playwright.sync_api import expect

from tracking import TrackingClient
from tracking.entities import LoggedModelStatus

HOSTILE = '<img src=x onerror="window.__xss = 1">'
MLMODEL = "flavors:\n  sklearn:\n    pickled_model: model.pkl\n"


@dataclass
class Models:
    """Ids of what :func:`models` logged."""

    experiment_id: str
    dag_run: str
    train_runs: list[str]
    model_ids: list[str]
    hostile_model: str
    evaluate_run: str


def _logged_model(
    client: TrackingClient, eid: str, run_id: str, name: str, workdir: Path, auc: float
) -> str:
    model = client.create_logged_model(
        eid,
        name,
        source_run_id=run_id,
        params={"depth": "4", "criterion": "gini"},
        tags={"team": "churn"},
        model_type="sklearn",
    )
    files = workdir / model.model_id
    files.mkdir(parents=True)
    (files / "MLmodel").write_text(MLMODEL)
    (files / "model.pkl").write_bytes(b"\x80\x04pickled")
    client.log_model_artifacts(model.model_id, files)
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_run_models(run_id, outputs=[model.model_id])
    client.log_model_metric(model.model_id, "auc", auc, run_id=run_id, dataset_name="holdout")
    return model.model_id


@pytest.fixture(scope="module")
def models(ui_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Two Airflow DAG runs of ``retrain-models`` whose ``train`` task logs a model, both
    registered as ``churn`` (v1, v2), ``champion`` on v2; a hostile model and tag."""
    client = TrackingClient(ui_server.url)
    workdir = tmp_path_factory.mktemp("ui-models")
    eid = client.create_experiment("ui-models")
    client.create_registered_model("churn", description="Predicts churn")
    dag_runs, trains, model_ids = [], [], []
    for day, auc in (("2026-11-05", 0.88), ("2026-11-06", 0.93)):
        pipeline = {"airflow.dag_id": "retrain-models", "airflow.run_id": f"scheduled__{day}"}
        dag = client.create_run(
            eid,
            run_name=f"retrain-models / {day}",
            tags={**pipeline, "trackflow.orchestrator": "airflow"},
        )
        train = client.create_run(
            eid,
            run_name=f"train {day}",
            parent_run_id=dag.info.run_id,
            tags={**pipeline, "airflow.task_id": "train"},
        )
        dag_runs.append(dag.info.run_id)
        trains.append(train.info.run_id)
        model_ids.append(_logged_model(client, eid, train.info.run_id, "churn-model", workdir, auc))
        client.create_model_version("churn", f"models:/{model_ids[-1]}")
    client.set_registered_model_alias("churn", "champion", 2)
    # The second DAG run's evaluate task is handed the model its train task logged.
    evaluate = client.create_run(
        eid,
        run_name="evaluate 2026-11-06",
        parent_run_id=dag_runs[1],
        tags={
            "airflow.dag_id": "retrain-models",
            "airflow.run_id": "scheduled__2026-11-06",
            "airflow.task_id": "evaluate",
        },
    )
    client.record_lineage(evaluate.info.run_id, trains[1], f"models:/{model_ids[1]}", "0" * 64)
    client.create_registered_model("churn-files")
    client.create_model_version(
        "churn-files", f"runs:/{trains[0]}/model", tags={"validated": "yes"}
    )
    hostile_run = client.create_run(eid, run_name="hostile")
    hostile = _logged_model(client, eid, hostile_run.info.run_id, HOSTILE, workdir, 0.5)
    client.set_logged_model_tags(hostile, {"note": HOSTILE})
    client.create_registered_model(HOSTILE, tags={"owner": HOSTILE})
    client.create_model_version(HOSTILE, f"models:/{hostile}")
    return Models(eid, dag_runs[1], trains, model_ids, hostile, evaluate.info.run_id)


def _no_script_ran(page: Any) -> None:
    page.wait_for_timeout(200)  # an onerror handler would have run by now
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0


class TestRunPage:
    def test_lists_the_run_s_models_with_their_versions(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{models.experiment_id}/runs/{models.train_runs[1]}")
        rows = page.locator("#models-table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("churn-model")
        expect(rows.first).to_contain_text(models.model_ids[1])
        expect(rows.first).to_contain_text("READY")
        expect(rows.first).to_contain_text("sklearn")
        expect(rows.first.locator("td.registered")).to_have_text("churn v2 @champion")
        rows.first.locator("a", has_text="churn-model").click()
        page.wait_for_url(re.compile(f"/models/{models.model_ids[1]}$"))
        expect(page.locator("h1")).to_contain_text("churn-model")

    def test_a_version_of_the_run_s_files_is_listed(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        page.goto(f"{ui_server.url}/runs/{models.train_runs[0]}")
        expect(page.locator("#models-table tbody tr")).to_have_count(1)
        expect(page.locator("#models-table td.registered")).to_have_text("churn v1")
        files = page.locator("#registered-files")
        expect(files).to_contain_text(f"churn-files v1 runs:/{models.train_runs[0]}/model")
        files.locator("a").click()
        page.wait_for_url(re.compile("/models/churn-files#v1$"))
        expect(page.locator("#v1 td.model")).to_have_text(f"runs:/{models.train_runs[0]}/model")
        expect(page.locator("#v1 td.run")).to_have_text("train 2026-11-05")
        expect(page.locator("#v1 td.tags")).to_have_text("validated: yes")

    def test_a_run_without_models_has_no_section(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        page.goto(f"{ui_server.url}/experiments/{models.experiment_id}/runs/{models.dag_run}")
        expect(page.locator("#pipeline")).to_be_visible()
        expect(page.locator("#models")).to_have_count(0)


class TestModelPage:
    def test_shows_params_metrics_versions_and_files(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        model_id = models.model_ids[1]
        page.goto(f"{ui_server.url}/logged-models/{model_id}")
        page.wait_for_url(re.compile(f"/experiments/{models.experiment_id}/models/{model_id}$"))
        expect(page.locator("#params")).to_contain_text("depth")
        expect(page.locator("#params tr", has_text="criterion")).to_contain_text("gini")
        expect(page.locator("#metrics tr", has_text="auc")).to_contain_text("0.93")
        expect(page.locator("#metrics")).to_contain_text("holdout")
        expect(page.locator("#versions")).to_contain_text("churn v2")
        expect(page.locator("#versions")).to_contain_text("@champion")
        expect(page.locator("#source-run")).to_have_text("train 2026-11-06")
        expect(page.locator("#pipeline-run")).to_have_text("retrain-models / 2026-11-06")
        expect(page.locator("#file-list li a")).to_have_text(["MLmodel", "model.pkl"])
        page.click("#file-list a:text-is('MLmodel')")
        expect(page.locator("pre.text-preview")).to_contain_text("pickled_model: model.pkl")
        download = page.locator("#download").get_attribute("href")
        answer = page.request.get(ui_server.url + download)
        assert answer.status == 200 and answer.text() == MLMODEL
        page.click("#versions a:text('churn v2')")
        page.wait_for_url(re.compile("/models/churn#v2$"))
        expect(page.locator("#v2")).to_contain_text("@champion")

    def test_an_unknown_model_is_a_404_naming_it(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        missing = "m-" + "0" * 32
        for url in (
            f"/experiments/{models.experiment_id}/models/{missing}",
            f"/logged-models/{missing}",
        ):
            answer = page.goto(ui_server.url + url)
            assert answer.status == 404
            expect(page.locator("h1")).to_have_text("Model not found")
            expect(page.locator("#error")).to_contain_text(missing)
        answer = page.goto(f"{ui_server.url}/models/no-such-model")
        assert answer.status == 404
        expect(page.locator("#error")).to_contain_text("no-such-model")
        page.errors.clear()  # the 404 answers


class TestRegistry:
    def test_the_champion_alias_points_at_v2_whose_runs_link(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        page.goto(ui_server.url + "/")
        page.click("#nav-models")
        row = page.locator("#registry tr[data-name='churn']")
        expect(row.locator("td.latest")).to_have_text("v2")
        expect(row.locator("td.aliases")).to_have_text("@champion → v2")
        expect(row).to_contain_text("Predicts churn")
        row.locator("a", has_text="churn").first.click()
        page.wait_for_url(re.compile("/models/churn$"))
        expect(page.locator("#aliases")).to_contain_text("@champion")
        expect(page.locator("#aliases a")).to_have_text("version 2")
        v2, v1 = page.locator("#v2"), page.locator("#v1")
        expect(v2.locator("td.aliases")).to_have_text("@champion")
        expect(v1.locator("td.aliases")).to_have_text("")
        expect(v1.locator("td.run")).to_have_text("train 2026-11-05")
        expect(v2.locator("td.pipeline")).to_have_text("retrain-models / 2026-11-06")
        v2.locator("td.run a").click()
        page.wait_for_url(re.compile(f"/runs/{models.train_runs[1]}$"))
        expect(page.locator("h1")).to_contain_text("train 2026-11-06")
        page.go_back()
        page.locator("#v2 td.pipeline a").click()
        page.wait_for_url(re.compile(f"/runs/{models.dag_run}$"))
        expect(page.locator("#pipeline")).to_be_visible()


class TestVersionPages:
    def test_versions_come_a_hundred_a_page_newest_first(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        client = TrackingClient(ui_server.url)
        client.create_registered_model("many-versions")
        for _ in range(205):
            client.create_model_version("many-versions", f"runs:/{models.train_runs[0]}/model")
        client.set_registered_model_alias("many-versions", "first", 3)
        page.goto(f"{ui_server.url}/models/many-versions")
        rows = page.locator("#versions-table tbody tr")
        expect(page.locator("#version-count")).to_have_text("205")
        for first, last in (("205", "106"), ("105", "6")):
            expect(rows).to_have_count(100)
            expect(rows.first).to_have_attribute("data-version", first)
            expect(rows.last).to_have_attribute("data-version", last)
            page.click("#next-page")
        expect(rows).to_have_count(5)
        expect(rows.last).to_have_attribute("data-version", "1")
        expect(page.locator("#next-page")).to_have_count(0)
        page.click("#newest-page")
        expect(rows.first).to_have_attribute("data-version", "205")
        # An alias whose version is on a later page opens that page.
        page.locator("#aliases a", has_text="version 3").click()
        page.wait_for_url(re.compile(r"/models/many-versions\?before=4#v3$"))
        expect(page.locator("#v3 td.aliases")).to_have_text("@first")


class TestLineageModels:
    def test_a_model_handed_on_links_to_its_page(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        page.goto(f"{ui_server.url}/runs/{models.evaluate_run}")
        link = page.locator("#lineage ul.consumed a.model-ref")
        expect(link).to_have_text("model churn-model")
        expect(page.locator("#lineage ul.consumed")).to_contain_text("from train 2026-11-06")
        link.click()
        page.wait_for_url(
            re.compile(f"/experiments/{models.experiment_id}/models/{models.model_ids[1]}$")
        )
        expect(page.locator("h1")).to_contain_text("churn-model")
        page.goto(f"{ui_server.url}/runs/{models.train_runs[1]}")
        expect(page.locator("#lineage ul.produced a.model-ref")).to_have_text("model churn-model")

    def test_the_pipeline_graph_names_the_model_on_its_edge(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        page.goto(f"{ui_server.url}/runs/{models.dag_run}")
        edge = page.locator("#pipeline-graph g.edge")
        expect(edge).to_have_count(1)
        expect(edge.locator("a.model-ref")).to_have_text("churn-model")
        edge.locator("a.model-ref").click()
        page.wait_for_url(re.compile(f"/models/{models.model_ids[1]}$"))


class TestMlflowLinks:
    def test_mlflow_s_model_links_open_the_pages(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        model_id = models.model_ids[0]
        page.goto(f"{ui_server.url}/#/experiments/{models.experiment_id}/models/{model_id}")
        page.wait_for_url(re.compile(f"/experiments/{models.experiment_id}/models/{model_id}$"))
        expect(page.locator("#info")).to_contain_text(model_id)
        page.goto(f"{ui_server.url}/#/models/churn/versions/1")
        page.wait_for_url(re.compile("/models/churn#v1$"))
        expect(page.locator("#v1 td.run")).to_have_text("train 2026-11-05")
        page.goto(f"{ui_server.url}/#/models")
        page.wait_for_url(re.compile("/models$"))
        expect(page.locator("h1")).to_have_text("Registered models")


class TestHostileNames:
    def test_a_hostile_model_name_and_tag_are_text(
        self, page: Any, ui_server: ServerProcess, models: Models
    ) -> None:
        page.goto(f"{ui_server.url}/logged-models/{models.hostile_model}")
        expect(page.locator("h1")).to_contain_text(HOSTILE)
        expect(page.locator("#tags tr", has_text="note")).to_contain_text(HOSTILE)
        _no_script_ran(page)
        page.goto(ui_server.url + "/models")
        expect(page.locator("#registry tbody a", has_text=HOSTILE).first).to_be_visible()
        _no_script_ran(page)
        page.goto(f"{ui_server.url}/models/{quote(HOSTILE, safe='')}")
        expect(page.locator("h1")).to_have_text(HOSTILE)
        expect(page.locator("#tags")).to_contain_text(HOSTILE)
        expect(page.locator("#v1 td.model")).to_contain_text(models.hostile_model)
        _no_script_ran(page)
