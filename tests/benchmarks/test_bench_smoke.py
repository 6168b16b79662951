"""The benchmark script runs end to end on trackflow (a smoke run: nothing is timed here).

MLflow is left out (``--no-mlflow``): installing it is the benchmark's business,
not the test suite's. What is checked is that every workload runs, that the
bulk loader still fits trackflow's schema (the searches and histories find
what was loaded) and that the table is printed. The server section runs too,
trackflow's server with trackflow's client only: every workload gets a figure
and the concurrent clients lose no point.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "bench_tracking.py"


def _quick_sizes() -> Any:
    spec = importlib.util.spec_from_file_location("bench_workloads", HERE / "workloads.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.QUICK


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    raw = tmp_path_factory.mktemp("bench") / "results.json"
    server_raw = raw.with_name("servers.json")
    proc = subprocess.run(
        [
            *(sys.executable, str(SCRIPT), "--quick", "--no-mlflow"),
            *("--no-airflow", "--no-prefect", "--no-ui"),
            *("--json", str(raw), "--server-json", str(server_raw)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = {entry["workload"]: entry["trackflow"] for entry in json.loads(raw.read_text())}
    # The server section's workloads (sa..se2), by pairing of server and client.
    for entry in json.loads(server_raw.read_text()):
        results[entry["workload"]] = entry["results"]
    return proc.stdout, results


@pytest.mark.slow
class TestBenchmarkSmoke:
    def test_prints_the_table(self, run: tuple[str, dict[str, Any]]) -> None:
        stdout, _ = run
        for column in ("workload", "MLflow", "trackflow", "ratio", "target", "result"):
            assert column in stdout
        titles = ("log_metric", "log_batch", "fluent runs", "search_runs", "get_metric_history")
        for title in titles:
            assert title in stdout

    def test_every_workload_has_a_figure(self, run: tuple[str, dict[str, Any]]) -> None:
        _, results = run
        embedded = {k: v for k, v in results.items() if not k.startswith("s")}
        assert sorted(embedded) == ["a", "b", "c", "d1", "d2", "e1", "e2"]
        for result in embedded.values():
            assert "error" not in result
            assert result["value"] > 0

    def test_answers_match_what_was_logged(self, run: tuple[str, dict[str, Any]]) -> None:
        _, results = run
        quick = _quick_sizes()
        assert results["a"]["check"] == {"points": quick.log_metric_calls}
        assert results["b"]["check"] == {"points_k0": quick.batches * quick.batch_steps}
        assert results["d2"]["check"]["count"] == 100
        assert len(results["d2"]["check"]["top_ids"]) == 3
        assert results["e1"]["check"]["points"] == quick.history_small
        assert results["e2"]["check"] == {
            "points": quick.history_large,
            "first_last_step": [0, quick.history_large - 1],
        }

    def test_server_section(self, run: tuple[str, dict[str, Any]]) -> None:
        """trackflow's server with trackflow's client: every workload, no point lost."""
        stdout, results = run
        assert "Tracking servers over HTTP" in stdout
        quick = _quick_sizes()
        server = {
            k: v["trackflow server / trackflow client"]
            for k, v in results.items()
            if k.startswith("s")
        }
        assert {"sa", "sb", "sc", "sd", "se1"} <= set(server)
        for key, result in server.items():
            assert "error" not in result, (key, result)
            assert result["value"] > 0
        assert server["sa"]["check"] == {"points": quick.log_metric_calls}
        assert server["sb"]["check"] == {"points_k0": quick.batches * quick.batch_steps}
        assert server["sd"]["check"]["count"] > 0
        for key in ("se1", "se2"):
            if key in server:  # se2 only with a PostgreSQL server
                assert server[key]["errors"] == 0
                assert server[key]["lost"] == 0
                assert server[key]["points_stored"] == server[key]["points_expected"] > 0


@pytest.mark.slow
@pytest.mark.airflow
def test_airflow_section(tmp_path: Path) -> None:
    """The Airflow section on its smallest DAG: every variant runs, the tracked ones
    tracked every task instance, the import probe answers."""
    raw = tmp_path / "airflow.json"
    proc = subprocess.run(
        [
            *(sys.executable, str(HERE / "airflow_bench.py"), "--quick", "--no-mlflow"),
            *("--dags", "bench_chain", "--json", str(raw)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "what tracking adds" in proc.stdout
    figures = json.loads(raw.read_text())
    chain = figures["dags"]["bench_chain"]
    assert set(chain) == {"untracked", "embedded", "server"}
    assert chain["untracked"]["finished_runs"] is None
    for variant in ("embedded", "server"):
        assert chain[variant]["finished_runs"] == chain[variant]["tasks"] == figures["chain"]
    assert figures["import"]["all_names_ms"] > 0


@pytest.mark.slow
@pytest.mark.prefect
def test_prefect_section(tmp_path: Path) -> None:
    """The Prefect section at its quick sizes: every variant runs, every mapped task run
    of the tracked flows was tracked to FINISHED."""
    raw = tmp_path / "prefect.json"
    proc = subprocess.run(
        [sys.executable, str(HERE / "prefect_bench.py"), "--quick", "--json", str(raw)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "what tracking adds" in proc.stdout
    figures = json.loads(raw.read_text())
    assert set(figures["flows"]) == {"chain", "mapped"}
    for shape in ("chain", "mapped"):
        assert set(figures["flows"][shape]) == {"untracked", "embedded", "server"}
    assert figures["mapped_runs_finished"] == figures["mapped_runs_expected"] > 0


@pytest.mark.slow
@pytest.mark.ui
def test_ui_section(tmp_path: Path) -> None:
    """The web UI section at its quick sizes on trackflow alone: the table pages and the
    chart are reached in Chromium and their times reported."""
    chromium = Path(os.environ.get("TRACKFLOW_CHROMIUM", "/usr/lib/chromium/chromium"))
    if not chromium.exists():
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"no chromium at {chromium} (CI=true)", pytrace=False)
        pytest.skip(f"no chromium at {chromium}")
    raw = tmp_path / "ui.json"
    proc = subprocess.run(
        [
            *(sys.executable, str(HERE / "ui_bench.py"), "--quick", "--no-mlflow"),
            *("--reps", "1", "--json", str(raw)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "Web UI in headless Chromium" in proc.stdout, proc.stdout + proc.stderr
    samples = json.loads(raw.read_text())["trackflow"]
    assert len(samples["ui1"]) == 1 and len(samples["ui3"]) == 1
    assert len(samples["ui2"]) == 3  # three further pages of 100 rows
    assert all(v > 0 for key in ("ui1", "ui2", "ui3") for v in samples[key])
