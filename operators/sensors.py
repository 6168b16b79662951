"""``TrackflowRunSensor``: wait for a run to end, by id or by search filter;
``ModelAliasSensor``: wait for a registered model's alias (``champion``) to move
to another version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException, BaseSensorOperator

from operators.hooks import TrackflowHook
from tracking.champions import CHAMPION_ALIAS
from tracking.entities import Run, RunStatus
from tracking.errors import NotFoundError, RunNotFoundError

__all__ = ["ModelAliasSensor", "TrackflowRunSensor"]


class TrackflowRunSensor(BaseSensorOperator):
    """Waits until a run reaches a terminal status (FINISHED, FAILED, KILLED).

    Name the run by ``run_id``, or by ``filter_string`` (MLflow's search syntax) in
    ``experiment`` (a name): the newest matching run is the one waited for, and
    until one matches the sensor keeps waiting (``experiment`` defaults to the
    connection's ``experiment`` extra). A run that ends FAILED or KILLED
    fails the task (no retry) unless ``fail_on_failure=False``. Returns the run id;
    ``mode="reschedule"`` frees the worker slot between pokes::

        TrackflowRunSensor(task_id="wait", run_id="{{ params.upstream_run }}",
                           poke_interval=30, timeout=3600, mode="reschedule")
    """

    template_fields: Sequence[str] = ("run_id", "filter_string", "experiment")
    _trackflow_tracked: ClassVar[bool] = True

    def __init__(
        self,
        *,
        run_id: str | None = None,
        filter_string: str | None = None,
        experiment: str | None = None,
        fail_on_failure: bool = True,
        trackflow_conn_id: str = TrackflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.filter_string = filter_string
        self.experiment = experiment
        self.fail_on_failure = fail_on_failure
        self.trackflow_conn_id = trackflow_conn_id

    def _find(self, client: Any) -> Run | None:
        if bool(self.run_id) == bool(self.filter_string):
            raise AirflowFailException("give exactly one of run_id and filter_string")
        if self.run_id:
            try:
                return client.get_run(self.run_id)  # type: ignore[no-any-return]
            except RunNotFoundError:
                raise AirflowFailException(f"no trackflow run has id {self.run_id!r}") from None
        experiment = (
            self.experiment or TrackflowHook(self.trackflow_conn_id).get_config().experiment
        )
        if not experiment:
            raise AirflowFailException(
                "filter_string needs the experiment to search in: give experiment=, or an "
                "'experiment' extra on the connection"
            )
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise AirflowFailException(f"no trackflow experiment is named {experiment!r}")
        runs = client.search_runs(
            [found.experiment_id],
            filter_string=self.filter_string,
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        return runs[0] if runs else None

    def poke(self, context: Any) -> Any:
        """True (with the run id as the return value) once the run has ended."""
        from airflow.sdk.bases.sensor import PokeReturnValue

        client = TrackflowHook(self.trackflow_conn_id).get_client()
        run = self._find(client)
        if run is None:
            self.log.info("trackflow: no run matches %s yet", self.filter_string)
            return False
        status = run.info.status
        self.log.info("trackflow: run %s is %s", run.info.run_id, status.value)
        if not status.is_terminated:
            return False
        if self.fail_on_failure and status in (RunStatus.FAILED, RunStatus.KILLED):
            reason = run.data.tags.get("trackflow.failureReason", "no reason recorded")
            raise AirflowFailException(
                f"trackflow run {run.info.run_id} ended {status.value}: {reason}"
            )
        return PokeReturnValue(is_done=True, xcom_value=run.info.run_id)


class ModelAliasSensor(BaseSensorOperator):
    """Waits until the alias ``alias`` of the registered model ``registered_model``
    points at another version than ``from_version``, or, without ``from_version``,
    than at the sensor's first poke (the alias missing then counts as no version).

    Returns ``{"name", "alias", "version", "model_id", "previous"}`` (the version it
    moved to, its logged model, the version it left): a deployment DAG picks up a
    newly promoted champion this way::

        ModelAliasSensor(task_id="new_champion", registered_model="retrain",
                         poke_interval=60, timeout=24 * 3600)

    With ``mode="reschedule"`` the sensor keeps no state between pokes: give
    ``from_version`` (templated, ``"{{ params.deployed_version }}"`` say).
    """

    template_fields: Sequence[str] = ("registered_model", "alias", "from_version")

    def __init__(
        self,
        *,
        registered_model: str,
        alias: str = CHAMPION_ALIAS,
        from_version: str | int | None = None,
        trackflow_conn_id: str = TrackflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model = registered_model
        self.alias = alias
        self.from_version = from_version
        self.trackflow_conn_id = trackflow_conn_id
        self._baseline: tuple[str | None] | None = None  # the version at the first poke

    def execute(self, context: Any) -> Any:
        """Refuse ``mode="reschedule"`` without ``from_version`` (nothing remembers the
        first poke), then poke."""
        if self.reschedule and self.from_version in (None, ""):
            raise AirflowFailException(
                "ModelAliasSensor in mode='reschedule' keeps nothing between pokes: give "
                "from_version, the version the alias must move away from"
            )
        return super().execute(context)

    def _current(self, client: Any) -> tuple[str | None, str | None]:
        """The version the alias points at and its logged model (None, None if unset)."""
        try:
            version = client.get_model_version_by_alias(self.registered_model, self.alias)
        except NotFoundError:  # no alias, or no model yet: the first promotion makes both
            return None, None
        return str(version.version), version.model_id

    def poke(self, context: Any) -> Any:
        """True (with the new version as the return value) once the alias has moved."""
        from airflow.sdk.bases.sensor import PokeReturnValue

        client = TrackflowHook(self.trackflow_conn_id).get_client()
        current, model_id = self._current(client)
        if self.from_version not in (None, ""):
            previous: str | None = str(self.from_version)
        else:
            if self._baseline is None:
                self._baseline = (current,)
                self.log.info(
                    "trackflow: %s@%s is at version %s; waiting for it to move",
                    self.registered_model,
                    self.alias,
                    current or "(none)",
                )
                return False
            previous = self._baseline[0]
        if current is None or current == previous:
            self.log.info(
                "trackflow: %s@%s is still at version %s",
                self.registered_model,
                self.alias,
                current or "(none)",
            )
            return False
        self.log.info(
            "trackflow: %s@%s moved from version %s to %s",
            self.registered_model,
            self.alias,
            previous or "(none)",
            current,
        )
        return PokeReturnValue(
            is_done=True,
            xcom_value={
                "name": self.registered_model,
                "alias": self.alias,
                "version": current,
                "model_id": model_id,
                "previous": previous,
            },
        )
