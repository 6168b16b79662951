"""A flow for the cancellation test: a Prefect runner runs it from this file."""

from __future__ import annotations

import time
from pathlib import Path

from flows import tracked_flow, tracked_task


@tracked_task
def nap(marker: str) -> None:
    Path(marker).touch()
    time.sleep(120)


@tracked_flow
def sleepy(marker: str) -> None:
    nap(marker)
