"""What every scenario shares: its inputs, its steps and the JSON it prints.

A scenario is a script run in MLflow's environment (never in ours: it imports
MLflow, not trackflow) with ``MLFLOW_TRACKING_URI`` pointing at a server. It
takes one JSON argument (``prefix`` for unique names, ``workdir`` for local
files, plus whatever the scenario needs), runs named steps and prints one JSON
object: step name -> what the step observed, or ``{"__error__": ...}`` when
the step raised. A failing step does not stop the others, so one deviation
shows up as one failing test, not as a dead scenario::

    scenario = Scenario()

    @scenario.step("create")
    def experiment_id() -> str:
        return MlflowClient().create_experiment(scenario.name("a"))

    scenario.finish()

The test side (``tests/mlflow_compat``) asserts on the printed observations.
"""

from __future__ import annotations

import hashlib
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException

T = TypeVar("T")


class StepFailedError(RuntimeError):
    """Raised when a step uses the value of an earlier step that failed."""


class Failed:
    """The value of a failed step: any use of it fails the step using it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise StepFailedError(f"depends on step {self._name!r}, which failed")

    def __iter__(self) -> Any:
        raise StepFailedError(f"depends on step {self._name!r}, which failed")

    def __str__(self) -> str:
        raise StepFailedError(f"depends on step {self._name!r}, which failed")


class Scenario:
    """Inputs from ``sys.argv[1]`` (JSON), named steps, results printed by :meth:`finish`."""

    def __init__(self) -> None:
        self.args: dict[str, Any] = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
        self.prefix: str = self.args.get("prefix", "compat")
        self.workdir = Path(self.args.get("workdir", ".")).resolve()
        self.results: dict[str, Any] = {}

    def name(self, suffix: str) -> str:
        """A name unique to this scenario run."""
        return f"{self.prefix}-{suffix}"

    def step(self, name: str) -> Callable[[Callable[[], T]], T]:
        """Run the decorated function now; record what it returns, or how it failed."""

        def run(fn: Callable[[], T]) -> T:
            if name in self.results:
                raise ValueError(f"step {name!r} twice")
            try:
                value = fn()
            except Exception as exc:
                self.results[name] = {
                    "__error__": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=-6),
                }
                return Failed(name)  # type: ignore[return-value]
            self.results[name] = value
            return value

        return run

    def require(self, *values: object) -> None:
        """Stop here (printing what was observed) if any of ``values`` is a failed step's."""
        if any(isinstance(v, Failed) for v in values):
            self.finish()
            sys.exit(0)

    def finish(self) -> None:
        print(json.dumps(self.results, default=str))


def error_of(call: Callable[[], object]) -> dict[str, Any]:
    """How ``call`` failed: the exception type, MLflow error code and message (or no error).

    Exceptions other than ``MlflowException`` are recorded too (``error_code``
    None): a client that chokes on a response is an observation, not a crash.
    """
    try:
        value = call()
    except MlflowException as exc:
        return {"type": type(exc).__name__, "error_code": exc.error_code, "message": exc.message}
    except Exception as exc:
        return {"type": type(exc).__name__, "error_code": None, "message": str(exc)[:2000]}
    return {"type": None, "returned": repr(value)[:200]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by path relative to it."""
    return {
        p.relative_to(root).as_posix(): sha256(p) for p in sorted(root.rglob("*")) if p.is_file()
    }
