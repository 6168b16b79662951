"""Eight processes writing to one SQLite file: no "database is locked", no lost point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tracking.client import TrackingClient
from tracking.ids import run_id_for
from tracking.store.registry import clear_store_cache

PROCESSES = 8
SINGLES = 400
BATCHES = 20
BATCH_SIZE = 100

WORKER = textwrap.dedent(
    """
    import sys
    import tracking
    from tracking import Metric, TrackingClient

    url, worker = sys.argv[1], int(sys.argv[2])
    tracking.set_tracking_uri(url)
    experiment = tracking.set_experiment("concurrency")   # every worker races to create it
    client = TrackingClient(url)
    shared = client.create_run(experiment.experiment_id,
                               run_id=tracking.run_id_for("shared-run"), run_name="shared")
    with tracking.start_run(run_name=f"worker-{{worker}}") as run:
        tracking.log_param("worker", worker)
        for i in range({singles}):
            tracking.log_metric("single", float(i), step=i)
        for b in range({batches}):
            points = [Metric("batch", float(b * {size} + i), 1_000 + b * {size} + i,
                             b * {size} + i) for i in range({size})]
            client.log_batch(run.info.run_id, metrics=points)
            # Everyone also writes into one shared run, each worker its own steps.
            client.log_metric(shared.info.run_id, "shared", float(worker), step=worker * 1000 + b)
    print("done", run.info.run_id)
    """
).format(singles=SINGLES, batches=BATCHES, size=BATCH_SIZE)


def test_eight_writers_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(w)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for w in range(PROCESSES)
    ]
    outputs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert "locked" not in err.lower(), err
        assert proc.returncode == 0, err
        assert out.startswith("done"), out
    clear_store_cache()
    client = TrackingClient(url, str(tmp_path / "artifacts"))
    experiment = client.get_experiment_by_name("concurrency")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "params.worker != ''", max_results=100)
    assert sorted(r.data.params["worker"] for r in runs) == [str(w) for w in range(PROCESSES)]
    for run in runs:
        assert run.info.status.value == "FINISHED"
        singles = client.get_metric_history(run.info.run_id, "single")
        assert [m.value for m in singles] == [float(i) for i in range(SINGLES)]
        batch = client.get_metric_history(run.info.run_id, "batch")
        assert len(batch) == BATCHES * BATCH_SIZE
        assert run.data.metrics == {"single": SINGLES - 1.0, "batch": BATCHES * BATCH_SIZE - 1.0}
    shared_id = run_id_for("shared-run")
    shared = client.get_metric_history(shared_id, "shared")
    assert len(shared) == PROCESSES * BATCHES
    assert client.get_run(shared_id).data.metrics["shared"] == float(PROCESSES - 1)
    assert len(client.search_runs([experiment.experiment_id], max_results=100)) == PROCESSES + 1
