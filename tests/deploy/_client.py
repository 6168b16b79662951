"""A client process of the topology test: one run through a tracking server.

    python _client.py <experiment> <run name> <steps> <pause seconds> <out file>

Logs a param, ``steps`` points of ``loss`` one call each (``pause`` apart, so a
server can be killed meanwhile), a batch of 1,000 points, and two artifacts; writes
the run id to ``<out file>`` first thing, so the test knows which run to follow.
The server and token come from TRACKFLOW_TRACKING_URI and TRACKFLOW_TRACKING_TOKEN.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import tracking


def main() -> None:
    experiment, name, steps, pause, out = sys.argv[1:6]
    tracking.set_experiment(experiment)
    with tracking.start_run(run_name=name) as run:
        Path(out).write_text(run.info.run_id)
        tracking.log_param("name", name)
        tracking.set_tag("client", "topology")
        for step in range(int(steps)):
            tracking.log_metric("loss", 1.0 / (step + 1), step=step)
            time.sleep(float(pause))
        tracking.log_metrics({f"m{i}": float(i) for i in range(10)})
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / "model.bin"
            model.write_bytes(name.encode() * 1000)
            tracking.log_artifact(str(model), "model")
            report = Path(tmp) / "report.txt"
            report.write_text(f"report of {name}\n")
            tracking.log_artifact(str(report))


if __name__ == "__main__":
    main()
