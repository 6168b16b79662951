"""``@task.trackflow``: a TaskFlow task whose body runs in the task's run.

Registered through the provider's ``task-decorators`` (so ``@task.trackflow``
works), and importable as ``operators.tracked_task``::

    @task.trackflow(log_params=True, retries=2)
    def train(lr: float, data: ArtifactRef) -> ArtifactRef:
        path = tracking.use_artifact(data)          # downloads, checks, lineage
        ...
        tracking.log_metric("loss", loss, step=epoch)
        return tracking.log_artifact("model.json")  # handed downstream by reference

    train.partial(data=extract()).expand(lr=[0.1, 0.01])

Everything ``@task`` takes works (``retries``, ``.partial().expand()``,
``multiple_outputs`` ...), plus ``experiment``, ``run_name`` and
``log_params``. ``ArtifactRef`` return values go through XCom as small
records (the files stay in the artifact store); ``ArtifactRef`` arguments
record lineage edges on the task's run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import DecoratedOperator, task_decorator_factory

from operators import _serde  # noqa: F401  (allows ArtifactRef through XCom)
from operators.python import TrackedPythonOperator

__all__ = ["tracked_task"]


class _TrackflowDecoratedOperator(DecoratedOperator, TrackedPythonOperator):
    """The operator behind ``@task.trackflow``."""

    custom_operator_name: str = "@task.trackflow"
    template_fields = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "templates_dict": "json",
        "op_args": "py",
        "op_kwargs": "py",
    }

    def __init__(
        self, *, python_callable: Callable[..., Any], op_args: Any, op_kwargs: Any, **kwargs: Any
    ) -> None:
        kwargs_to_upstream = {
            "python_callable": python_callable,
            "op_args": op_args,
            "op_kwargs": op_kwargs,
        }
        super().__init__(
            kwargs_to_upstream=kwargs_to_upstream,
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            **kwargs,
        )


def tracked_task(
    python_callable: Callable[..., Any] | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Make a function an Airflow task that runs in its own trackflow run.

    :param experiment: the experiment of the task's run (default: the DAG run's).
    :param run_name: the run's name (default: the task id, ``task_id[i]`` when mapped).
    :param log_params: log the call's arguments as params of the run.
    """
    return task_decorator_factory(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_TrackflowDecoratedOperator,
        **kwargs,
    )
