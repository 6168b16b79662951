"""Champion and challenger: compare this DAG run's model with the experiment's best,
and move the ``trackflow.champion`` tag to the one that wins.

The champion of an experiment is the run tagged ``trackflow.champion=true``;
:class:`PromoteRunOperator` keeps exactly one such run per experiment::

    decide = ChampionChallengerOperator(
        task_id="decide",
        challenger_task_id="evaluate",          # that task's run, in this DAG run
        metric="holdout_auc",
        direction="max",
        min_improvement=0.002,
        promote_task_ids="promote",
        keep_task_ids="keep",
    )
    promote = PromoteRunOperator(
        task_id="promote", run_task_id="evaluate", registered_model="churn"
    )
    decide >> [promote, keep]

With ``registered_model`` the promoted run's logged model (``tracking.log_model``)
also becomes the next version of that registered model and the ``champion`` alias
(``alias=``) moves to it: serving code loads ``models:/churn@champion``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator
from airflow.providers.standard.operators.branch import BaseBranchOperator

from operators._tracking import pipeline_for
from operators.hooks import TrackflowHook
from operators.links import TrackflowRunLink
from tracking.champions import (
    CHAMPION_ALIAS,
    CHAMPION_TAG,
    champion_of,
    metric_of,
    promote_model,
    promote_run,
)
from tracking.entities import Run
from tracking.errors import InvalidParameterError, RunNotFoundError
from tracking.pipelines import Step

__all__ = [
    "CHAMPION_TAG",
    "ChampionChallengerOperator",
    "PromoteRunOperator",
    "champion_of",
    "promote_run",
]


def _run_of_task(context: Any, task_id: str) -> str:
    ti = context["ti"]
    return Step(pipeline_for(ti.dag_id, ti.run_id), task_id).run_id


def _resolve_run(client: Any, context: Any, run_id: str | None, task_id: str | None) -> Run:
    if bool(run_id) == bool(task_id):
        raise AirflowFailException("give exactly one of run_id and run_task_id")
    target = run_id or _run_of_task(context, str(task_id))
    try:
        return client.get_run(target)  # type: ignore[no-any-return]
    except RunNotFoundError:
        which = f"task {task_id!r} of this DAG run" if task_id else f"id {run_id!r}"
        raise AirflowFailException(
            f"no trackflow run for {which}: was it tracked (a trackflow DAG tag, decorator "
            "or operator)?"
        ) from None


_DIRECTIONS = {"max": "max", "maximize": "max", "min": "min", "minimize": "min"}


def _metric(run: Run, metric: str, role: str) -> float:
    try:
        return metric_of(run, metric, role)
    except InvalidParameterError as exc:
        raise AirflowFailException(str(exc)) from None


class ChampionChallengerOperator(BaseBranchOperator):
    """Follows ``promote_task_ids`` when the challenger beats the champion on ``metric``
    by at least ``min_improvement`` (``direction`` ``max`` or ``min``), else
    ``keep_task_ids``. With no champion yet ``if_no_champion`` decides: ``"promote"``
    (the default: the first model becomes champion) or ``"fail"``.

    The decision is tagged on the challenger run (``trackflow.decision`` and the two
    values) and returned through XCom.
    """

    template_fields: Sequence[str] = ("challenger_run_id", "metric", "min_improvement")
    _trackflow_tracked: ClassVar[bool] = True
    operator_extra_links = (TrackflowRunLink(),)

    def __init__(
        self,
        *,
        metric: str,
        promote_task_ids: str | Iterable[str],
        keep_task_ids: str | Iterable[str],
        challenger_task_id: str | None = None,
        challenger_run_id: str | None = None,
        direction: str = "max",
        min_improvement: float = 0.0,
        if_no_champion: str = "promote",
        trackflow_conn_id: str = TrackflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.metric = metric
        self.promote_task_ids = promote_task_ids
        self.keep_task_ids = keep_task_ids
        self.challenger_task_id = challenger_task_id
        self.challenger_run_id = challenger_run_id
        self.direction = direction
        self.min_improvement = min_improvement
        self.if_no_champion = if_no_champion
        self.trackflow_conn_id = trackflow_conn_id

    def choose_branch(self, context: Any) -> Any:
        """Compare, tag the decision on the challenger, and pick the branch."""
        direction = _DIRECTIONS.get(str(self.direction).lower())
        if direction is None:
            raise AirflowFailException(f"direction must be 'max' or 'min', got {self.direction!r}")
        if self.if_no_champion not in ("promote", "fail"):
            raise AirflowFailException(
                f"if_no_champion must be 'promote' or 'fail', got {self.if_no_champion!r}"
            )
        try:
            min_improvement = float(self.min_improvement)
        except (TypeError, ValueError):
            raise AirflowFailException(
                f"min_improvement must be a number, got {self.min_improvement!r}"
            ) from None
        if not min_improvement >= 0:
            raise AirflowFailException(f"min_improvement must be >= 0, got {min_improvement}")
        client = TrackflowHook(self.trackflow_conn_id).get_client()
        challenger = _resolve_run(client, context, self.challenger_run_id, self.challenger_task_id)
        value = _metric(challenger, self.metric, "challenger")
        champion = champion_of(client, challenger.info.experiment_id)
        tags = {f"trackflow.challenger.{self.metric}": repr(value)}
        if champion is None:
            if self.if_no_champion == "fail":
                raise AirflowFailException(
                    f"experiment {challenger.info.experiment_id} has no champion yet (no run "
                    f"tagged {CHAMPION_TAG}=true): promote one first, or use "
                    "if_no_champion='promote'"
                )
            promote, why = True, "no champion yet"
        elif champion.info.run_id == challenger.info.run_id:
            promote, why = False, "the challenger is the champion already"
        else:
            best = _metric(champion, self.metric, "champion")
            tags[f"trackflow.champion.{self.metric}"] = repr(best)
            tags["trackflow.championRunId"] = champion.info.run_id
            gain = value - best if direction == "max" else best - value
            promote = gain > 0 and gain >= min_improvement
            why = (
                f"{self.metric} {value:g} vs champion's {best:g}: improvement {gain:g}, "
                f"needed > 0 and >= {min_improvement:g}"
            )
        decision = "promote" if promote else "keep"
        tags["trackflow.decision"] = decision
        tags["trackflow.decisionReason"] = why
        for key, text in tags.items():
            client.set_tag(challenger.info.run_id, key, text)
        self.log.info("trackflow: %s the challenger %s: %s", decision, challenger.info.run_id, why)
        context["ti"].xcom_push(key="decision", value=decision)
        return self.promote_task_ids if promote else self.keep_task_ids


class PromoteRunOperator(BaseOperator):
    """Moves the ``trackflow.champion`` tag of the run's experiment to the run (by id,
    or the run of ``run_task_id`` in this DAG run), so exactly one run holds it; with
    ``registered_model``, registers the run's logged model as that model's next version
    and moves ``alias`` (``champion``) to it. Returns the promoted run's id."""

    template_fields: Sequence[str] = ("run_id", "registered_model", "alias")
    _trackflow_tracked: ClassVar[bool] = True
    operator_extra_links = (TrackflowRunLink(),)

    def __init__(
        self,
        *,
        run_id: str | None = None,
        run_task_id: str | None = None,
        registered_model: str | None = None,
        alias: str = CHAMPION_ALIAS,
        trackflow_conn_id: str = TrackflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.run_task_id = run_task_id
        self.registered_model = registered_model
        self.alias = alias
        self.trackflow_conn_id = trackflow_conn_id

    def execute(self, context: Any) -> str:
        """Promote, and log which runs lost the tag."""
        client = TrackflowHook(self.trackflow_conn_id).get_client()
        run = _resolve_run(client, context, self.run_id, self.run_task_id)
        if run.info.status.value in ("FAILED", "KILLED"):
            raise AirflowFailException(
                f"run {run.info.run_id} ended {run.info.status.value}: a failed run cannot "
                "become champion"
            )
        dethroned = promote_run(client, run)
        self.log.info(
            "trackflow: run %s is the champion of experiment %s (was: %s)",
            run.info.run_id,
            run.info.experiment_id,
            ", ".join(dethroned) or "none",
        )
        if self.registered_model:
            try:
                version = promote_model(client, run, self.registered_model, self.alias)
            except InvalidParameterError as exc:
                raise AirflowFailException(str(exc)) from None
            self.log.info(
                "trackflow: models:/%s@%s is version %s (logged model %s)",
                version.name,
                self.alias,
                version.version,
                version.model_id,
            )
        return run.info.run_id
