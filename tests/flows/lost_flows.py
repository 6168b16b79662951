"""A flow for the lost-process test: run as a script, killed with SIGKILL mid-task."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from flows import tracked_flow, tracked_task


@tracked_task
def stuck(marker: str) -> None:
    Path(marker).touch()
    time.sleep(300)


@tracked_flow
def doomed(marker: str) -> None:
    stuck(marker)


if __name__ == "__main__":
    doomed(sys.argv[1])
