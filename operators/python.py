"""``TrackedPythonOperator``: a PythonOperator whose callable runs in the task's run.

With the plugin's listener loaded (the usual case) the listener owns the run's
lifecycle and this operator only adds what it was asked for (params from the
call's arguments, lineage from the ``ArtifactRef`` arguments); without it, the
operator starts and ends the run itself. Unlike the listener it fails loudly:
a tracking store that cannot be reached fails the task.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

from airflow.providers.standard.operators.python import PythonOperator

from operators._tracking import airflow_tracking
from operators.links import TrackflowRunLink
from tracking import fluent
from tracking.entities import Param
from tracking.pipelines import artifact_refs
from tracking.validation import MAX_BATCH_PARAMS, MAX_PARAM_VALUE_LENGTH

__all__ = ["TrackedPythonOperator", "artifact_refs"]


def _listener_loaded() -> bool:
    try:
        from airflow.sdk.listener import get_listener_manager

        from operators import listener

        return bool(get_listener_manager().pm.is_registered(listener))
    except Exception:  # pragma: no cover - an Airflow without the SDK listener manager
        return False


class TrackedPythonOperator(PythonOperator):
    """Runs ``python_callable`` with the task's run as the active run::

        TrackedPythonOperator(
            task_id="train",
            python_callable=train,        # calls tracking.log_metric(...)
            op_kwargs={"lr": 0.01},
            log_params=True,              # lr becomes a param of the run
        )

    :param experiment: the experiment of the task's run (default: the DAG run's).
    :param run_name: the run's name (default: the task id, ``task_id[i]`` when mapped).
    :param log_params: log the callable's keyword (and positional) arguments as params.
    """

    _trackflow_tracked: ClassVar[bool] = True
    operator_extra_links = (TrackflowRunLink(),)

    def __init__(
        self,
        *,
        experiment: str | None = None,
        run_name: str | None = None,
        log_params: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.experiment = experiment
        self.run_name = run_name
        self.log_params = log_params

    def execute(self, context: Any) -> Any:
        """Run the callable inside the task's run."""
        tracking_ = airflow_tracking()
        ti = context["ti"]
        own = not _listener_loaded()
        active = tracking_.ensure_started(ti, experiment=self.experiment, run_name=self.run_name)
        try:
            self._record_inputs(active)
            result = super().execute(context)
        except BaseException as exc:
            if own:
                retrying = int(ti.try_number or 1) <= int(self.retries or 0)
                tracking_.task_ended(ti, "up_for_retry" if retrying else "failed", exc, strict=True)
            raise
        if own:
            tracking_.task_ended(ti, "success", strict=True)
        return result

    def _arguments(self) -> dict[str, Any]:
        """The call's arguments by parameter name (``arg<i>`` where it has none)."""
        op_args, op_kwargs = list(self.op_args or ()), dict(self.op_kwargs or {})
        try:
            bound = inspect.signature(self.python_callable).bind_partial(*op_args, **op_kwargs)
        except (TypeError, ValueError):
            args = {f"arg{i}": v for i, v in enumerate(op_args)}
            args.update(op_kwargs)
            return args
        bound.apply_defaults()
        args = {}
        for name, value in bound.arguments.items():
            kind = bound.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                args.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                args.update({f"{name}{i}": v for i, v in enumerate(value)})
            elif name not in _CONTEXT_KEYS or name in op_kwargs:
                args[name] = value
        return args

    def _record_inputs(self, active: fluent.ActiveRun) -> None:
        client, run_id = active.client, active.info.run_id
        args = self._arguments()
        for ref in {r for v in args.values() for r in artifact_refs(v)}:
            if ref.sha256 and ref.run_id != run_id:
                client.record_lineage(run_id, ref.run_id, ref.path, ref.sha256)
        if self.log_params:
            params = [
                Param(str(k), _param_text(v))
                for k, v in args.items()
                if not any(True for _ in artifact_refs(v))
            ]
            params = [p for p in params if len(p.value) <= MAX_PARAM_VALUE_LENGTH]
            for start in range(0, len(params), MAX_BATCH_PARAMS):
                client.log_batch(run_id, params=params[start : start + MAX_BATCH_PARAMS])


#: What Airflow passes a callable from its context, by parameter name: not params.
_CONTEXT_KEYS = frozenset(
    {"ti", "task_instance", "dag_run", "dag", "task", "params", "context", "conf", "macros"}
    | {"run_id", "logical_date", "data_interval_start", "data_interval_end", "ds", "ts"}
)


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        value = list(value)  # a lazy XCom sequence of a mapped upstream, say
    return str(value)
