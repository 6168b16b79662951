"""e. One of several client processes logging to a tracking server at the same time.

Run by ``server_bench.py``, never by hand, in the environment of the client it
uses (``--side mlflow``: MLflow's; ``--side trackflow``: ours)::

    python concurrent_worker.py --side mlflow --url http://127.0.0.1:5000 \\
        --experiment-id 1 --points 2000 --batch 100 --ready r0 --go go --out out0.json

The worker creates its run (untimed), touches ``--ready``, waits for ``--go``
to appear so every worker starts together, then logs ``--points`` points in
``log_batch`` calls of ``--batch``. A call that raises (after the client's own
retries) counts as an error and the worker goes on. Each point is distinct
(key ``k0``..``k9``, its own step), so the server must keep every one: the
caller counts them in the database afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

KEYS = 10
BASE_TIME_MS = 1_700_000_000_000
GO_TIMEOUT_S = 600


def points(count: int) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp, step) of each point: ``count`` distinct points."""
    return [(f"k{p % KEYS}", p * 0.5, BASE_TIME_MS + p, p // KEYS) for p in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", required=True, choices=["mlflow", "trackflow"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--experiment-id", required=True)
    parser.add_argument("--points", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--go", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    side = importlib.import_module(f"side_{args.side}").make_side(args.out.parent, args.url)
    run_id = side.create_run(args.experiment_id)
    todo = points(args.points)
    batches = [todo[i : i + args.batch] for i in range(0, len(todo), args.batch)]
    args.ready.touch()

    deadline = time.monotonic() + GO_TIMEOUT_S
    while not args.go.exists():
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        time.sleep(0.001)

    errors, sent, first_error = 0, 0, None
    cpu = time.process_time()
    start = time.time()
    for batch in batches:
        try:
            side.log_batch(run_id, batch)
        except Exception as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"[:500]
        else:
            sent += len(batch)
    end = time.time()
    cpu = time.process_time() - cpu
    side.end_run(run_id)
    args.out.write_text(
        json.dumps(
            {
                "run_id": run_id,
                "start": start,
                "end": end,
                "calls": len(batches),
                "errors": errors,
                "points_sent": sent,
                "first_error": first_error,
                "cpu_s": cpu,
                "version": side.version,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
