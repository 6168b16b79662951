"""MLflow 3 logged models and the model registry in SQL, mixed into ``SqlTrackingStore``.

Logged models live in ``logged_models`` (with tags, params, linked metrics and
the runs that used or produced them); the registry in ``registered_models``,
``model_versions``, their tags and ``registered_model_aliases``. Searches
filter with :mod:`tracking.store.model_search` on the rows of the experiments
(or names) asked for, a page at a time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from tracking.entities import (
    LifecycleStage,
    LoggedModel,
    LoggedModelStatus,
    ModelMetric,
    ModelVersion,
    PagedList,
    RegisteredModel,
)
from tracking.errors import (
    AlreadyExistsError,
    ExperimentNotFoundError,
    InvalidParameterError,
    InvalidStateError,
    NotFoundError,
    RunNotFoundError,
)
from tracking.store import model_search
from tracking.store.sql.hotpath import decode_value
from tracking.store.sql.models import (
    ExperimentModel,
    LoggedModelMetricModel,
    LoggedModelModel,
    LoggedModelParamModel,
    LoggedModelTagModel,
    ModelVersionModel,
    ModelVersionTagModel,
    RegisteredModelAliasModel,
    RegisteredModelModel,
    RegisteredModelTagModel,
    RegistryRequestModel,
    RunModel,
    RunModelIOModel,
    table_of,
)

__all__ = ["ModelStoreMixin"]

T = TypeVar("T")

_exp = table_of(ExperimentModel)
_runs = table_of(RunModel)
_lm = table_of(LoggedModelModel)
_lm_tags = table_of(LoggedModelTagModel)
_lm_params = table_of(LoggedModelParamModel)
_lm_metrics = table_of(LoggedModelMetricModel)
_run_io = table_of(RunModelIOModel)
_rm = table_of(RegisteredModelModel)
_rm_tags = table_of(RegisteredModelTagModel)
_mv = table_of(ModelVersionModel)
_mv_tags = table_of(ModelVersionTagModel)
_aliases = table_of(RegisteredModelAliasModel)
_requests = table_of(RegistryRequestModel)

#: Filter attributes that are columns of ``logged_models`` (by the same name).
_COLUMNS = {
    "name": "name",
    "model_id": "model_id",
    "model_type": "model_type",
    "source_run_id": "source_run_id",
}
#: How long a registry create's request id is remembered: far beyond a client's retries.
_REQUEST_TTL_MS = 24 * 3600 * 1000
#: The tag MLflow's server keeps on a logged model: the versions registered from it.
MODEL_VERSIONS_TAG = "mlflow.modelVersions"
#: Run ids per ``IN (...)`` of a bulk read (well under every backend's bound-parameter limit).
_IN_CHUNK = 500
_STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}


def _now() -> int:
    return time.time_ns() // 1_000_000


def _join(base: str, *parts: str) -> str:
    from tracking.artifacts import join_uri

    return join_uri(base, *parts)


def _encode(value: float) -> tuple[float, int]:
    if value != value:
        return 0.0, 1
    if value == float("inf"):
        return 0.0, 2
    if value == float("-inf"):
        return 0.0, 3
    return float(value), 0


def _version_number(version: str | int) -> int:
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or number > 2**31 - 1:
        raise InvalidParameterError(
            f"Invalid value {version!r} for parameter 'version' supplied: expected a model "
            "version number such as '1'"
        )
    return number


def stage_name(stage: str) -> str:
    """MLflow's spelling of a (deprecated) stage: None, Staging, Production, Archived."""
    try:
        return _STAGES[stage.lower()]
    except KeyError:
        raise InvalidParameterError(
            f"Invalid Model Version stage: {stage}. Value must be one of None, Staging, "
            "Production, Archived."
        ) from None


class ModelStoreMixin:
    """Logged models and the registry for :class:`~tracking.store.sql.store.SqlTrackingStore`."""

    dialect: str

    if TYPE_CHECKING:  # provided by SqlTrackingStore

        def read(self, fn: Callable[[Connection], T]) -> T:
            """Run ``fn`` in a read transaction."""

        def write(self, fn: Callable[[Connection], T]) -> T:
            """Run ``fn`` in a write transaction, again on lock errors and deadlocks."""

    # -- logged models ----------------------------------------------------------

    def create_logged_model(
        self,
        experiment_id: str,
        name: str,
        source_run_id: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        params: Sequence[tuple[str, str]] = (),
        model_type: str | None = None,
    ) -> LoggedModel:
        model_id = "m-" + os.urandom(16).hex()
        try:
            eid = int(experiment_id)
        except (TypeError, ValueError):
            raise ExperimentNotFoundError(f"No Experiment with id={experiment_id} exists") from None

        def work(conn: Connection) -> LoggedModel:
            exp = conn.execute(
                select(_exp.c.lifecycle_stage, _exp.c.artifact_location).where(
                    _exp.c.experiment_id == eid
                )
            ).first()
            if exp is None:
                raise ExperimentNotFoundError(f"No Experiment with id={experiment_id} exists")
            if exp.lifecycle_stage != "active":
                raise InvalidStateError(
                    f"cannot create a logged model in experiment {experiment_id}: it is deleted"
                )
            if source_run_id is not None:
                run = conn.execute(
                    select(_runs.c.experiment_id).where(_runs.c.run_uuid == source_run_id)
                ).first()
                if run is None:
                    raise RunNotFoundError(f"Run with id={source_run_id} not found")
            now = _now()
            conn.execute(
                _lm.insert().values(
                    model_id=model_id,
                    experiment_id=eid,
                    name=name,
                    artifact_location=_join(exp.artifact_location, "models", model_id, "artifacts"),
                    creation_timestamp_ms=now,
                    last_updated_timestamp_ms=now,
                    status=LoggedModelStatus.PENDING.value,
                    status_message=None,
                    model_type=model_type,
                    source_run_id=source_run_id,
                    lifecycle_stage="active",
                )
            )
            if tags:
                conn.execute(
                    _lm_tags.insert(),
                    [{"model_id": model_id, "key": k, "value": v} for k, v in dict(tags).items()],
                )
            if params:
                self._insert_model_params(conn, model_id, params)
            return self._load_logged_models(conn, [model_id])[0]

        return self.write(work)

    def _insert_model_params(
        self, conn: Connection, model_id: str, params: Sequence[tuple[str, str]]
    ) -> None:
        wanted = dict(params)
        existing = dict(
            conn.execute(
                select(_lm_params.c.key, _lm_params.c.value).where(
                    _lm_params.c.model_id == model_id, _lm_params.c.key.in_(list(wanted))
                )
            ).all()
        )
        for key, value in wanted.items():
            if key in existing and existing[key] != value:
                raise InvalidParameterError(
                    f"Changing param values is not allowed. Param with key='{key}' was already "
                    f"logged with value='{existing[key]}' for logged model {model_id}; "
                    f"attempted logging new value '{value}'"
                )
        new = [(k, v) for k, v in wanted.items() if k not in existing]
        if new:
            conn.execute(
                _lm_params.insert(), [{"model_id": model_id, "key": k, "value": v} for k, v in new]
            )

    def _model_row(self, conn: Connection, model_id: str, allow_deleted: bool = False) -> Any:
        row = conn.execute(
            select(_lm.c.lifecycle_stage, _lm.c.experiment_id).where(_lm.c.model_id == model_id)
        ).first()
        if row is None or (row.lifecycle_stage != "active" and not allow_deleted):
            raise NotFoundError(f"Logged model with ID '{model_id}' not found")
        return row

    def _load_logged_models(self, conn: Connection, ids: Sequence[str]) -> list[LoggedModel]:
        if not ids:
            return []
        rows = {r.model_id: r for r in conn.execute(select(_lm).where(_lm.c.model_id.in_(ids)))}
        tags: dict[str, dict[str, str]] = {i: {} for i in rows}
        params: dict[str, dict[str, str]] = {i: {} for i in rows}
        metrics: dict[str, list[ModelMetric]] = {i: [] for i in rows}
        for mid, key, value in conn.execute(
            select(_lm_tags.c.model_id, _lm_tags.c.key, _lm_tags.c.value).where(
                _lm_tags.c.model_id.in_(ids)
            )
        ):
            tags[mid][key] = value
        for mid, key, value in conn.execute(
            select(_lm_params.c.model_id, _lm_params.c.key, _lm_params.c.value).where(
                _lm_params.c.model_id.in_(ids)
            )
        ):
            params[mid][key] = value
        for m in conn.execute(
            select(_lm_metrics)
            .where(_lm_metrics.c.model_id.in_(ids))
            .order_by(_lm_metrics.c.key, _lm_metrics.c.step, _lm_metrics.c.timestamp)
        ):
            metrics[m.model_id].append(
                ModelMetric(
                    m.key,
                    decode_value(m.value, m.special) if m.special else m.value,
                    m.timestamp,
                    m.step,
                    m.run_id or None,
                    m.dataset_name or None,
                    m.dataset_digest or None,
                )
            )
        return [
            LoggedModel(
                model_id=r.model_id,
                experiment_id=str(r.experiment_id),
                name=r.name,
                artifact_location=r.artifact_location,
                creation_timestamp=r.creation_timestamp_ms,
                last_updated_timestamp=r.last_updated_timestamp_ms,
                status=LoggedModelStatus(r.status),
                status_message=r.status_message,
                model_type=r.model_type,
                source_run_id=r.source_run_id,
                lifecycle_stage=LifecycleStage(r.lifecycle_stage),
                tags=tags[r.model_id],
                params=params[r.model_id],
                metrics=tuple(metrics[r.model_id]),
            )
            for r in (rows[i] for i in ids if i in rows)
        ]

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        def work(conn: Connection) -> LoggedModel:
            self._model_row(conn, model_id, allow_deleted)
            return self._load_logged_models(conn, [model_id])[0]

        return self.read(work)

    def _touch_model(self, conn: Connection, model_id: str, **values: Any) -> None:
        conn.execute(
            update(_lm)
            .where(_lm.c.model_id == model_id)
            .values(last_updated_timestamp_ms=_now(), **values)
        )

    def finalize_logged_model(
        self, model_id: str, status: LoggedModelStatus, status_message: str | None = None
    ) -> LoggedModel:
        def work(conn: Connection) -> LoggedModel:
            self._model_row(conn, model_id)
            self._touch_model(conn, model_id, status=status.value, status_message=status_message)
            return self._load_logged_models(conn, [model_id])[0]

        return self.write(work)

    def delete_logged_model(self, model_id: str) -> None:
        def work(conn: Connection) -> None:
            self._model_row(conn, model_id)
            self._touch_model(conn, model_id, lifecycle_stage="deleted")

        self.write(work)

    def set_logged_model_tags(self, model_id: str, tags: Sequence[tuple[str, str]]) -> None:
        wanted = dict(tags)

        def work(conn: Connection) -> None:
            self._model_row(conn, model_id)
            if not wanted:
                return
            conn.execute(
                delete(_lm_tags).where(
                    _lm_tags.c.model_id == model_id, _lm_tags.c.key.in_(list(wanted))
                )
            )
            conn.execute(
                _lm_tags.insert(),
                [{"model_id": model_id, "key": k, "value": v} for k, v in wanted.items()],
            )
            self._touch_model(conn, model_id)

        self.write(work)

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        def work(conn: Connection) -> None:
            self._model_row(conn, model_id)
            deleted = conn.execute(
                delete(_lm_tags).where(_lm_tags.c.model_id == model_id, _lm_tags.c.key == key)
            )
            if not deleted.rowcount:
                raise NotFoundError(f"No tag with name: {key} in logged model {model_id}")

        self.write(work)

    def log_logged_model_params(self, model_id: str, params: Sequence[tuple[str, str]]) -> None:
        def work(conn: Connection) -> None:
            self._model_row(conn, model_id)
            self._insert_model_params(conn, model_id, params)

        self.write(work)

    def log_logged_model_metrics(self, metrics: Sequence[tuple[str, ModelMetric]]) -> None:
        """Link metric points to logged models: ``(model_id, point)`` pairs; a point
        sent again is kept once."""
        if not metrics:
            return

        def work(conn: Connection) -> None:
            for model_id in {m for m, _ in metrics}:
                self._model_row(conn, model_id)
            for model_id, point in metrics:
                key = {
                    "model_id": model_id,
                    "key": point.key,
                    "step": point.step,
                    "timestamp": point.timestamp,
                    "run_id": point.run_id or "",
                    "dataset_name": point.dataset_name or "",
                    "dataset_digest": point.dataset_digest or "",
                }
                found = conn.execute(
                    select(func.count()).where(*(_lm_metrics.c[k] == v for k, v in key.items()))
                ).scalar()
                if found:
                    continue
                value, special = _encode(point.value)
                conn.execute(_lm_metrics.insert().values(**key, value=value, special=special))

        self.write(work)

    def log_run_models(
        self,
        run_id: str,
        inputs: Sequence[str] = (),
        outputs: Sequence[tuple[str, int]] = (),
    ) -> None:
        """Record that a run used the logged models ``inputs`` and produced ``outputs``
        (``(model_id, step)``); recording one again keeps the first."""

        def work(conn: Connection) -> None:
            stage = conn.execute(
                select(_runs.c.lifecycle_stage).where(_runs.c.run_uuid == run_id)
            ).scalar()
            if stage is None:
                raise RunNotFoundError(f"Run with id={run_id} not found")
            rows = [(m, "input", 0) for m in inputs] + [(m, "output", s) for m, s in outputs]
            for model_id, direction, step in rows:
                self._model_row(conn, model_id)
                exists = conn.execute(
                    select(_run_io.c.step).where(
                        _run_io.c.run_uuid == run_id,
                        _run_io.c.model_id == model_id,
                        _run_io.c.direction == direction,
                    )
                ).first()
                if exists is None:
                    conn.execute(
                        _run_io.insert().values(
                            run_uuid=run_id, model_id=model_id, direction=direction, step=step
                        )
                    )

        self.write(work)

    def get_run_models(self, run_id: str) -> tuple[list[str], list[tuple[str, int]]]:
        """The logged models a run used, and those it produced with their steps."""

        def work(conn: Connection) -> tuple[list[str], list[tuple[str, int]]]:
            rows = conn.execute(
                select(_run_io.c.model_id, _run_io.c.direction, _run_io.c.step)
                .where(_run_io.c.run_uuid == run_id)
                .order_by(_run_io.c.model_id)
            ).all()
            return (
                [r.model_id for r in rows if r.direction == "input"],
                [(r.model_id, r.step) for r in rows if r.direction == "output"],
            )

        return self.read(work)

    def get_runs_models(
        self, run_ids: Sequence[str]
    ) -> dict[str, tuple[list[str], list[tuple[str, int]]]]:
        """:meth:`get_run_models` of many runs in one read (a search page's); runs that
        used and produced no logged model are left out."""

        def work(conn: Connection) -> dict[str, tuple[list[str], list[tuple[str, int]]]]:
            found: dict[str, tuple[list[str], list[tuple[str, int]]]] = {}
            ids = list(dict.fromkeys(run_ids))
            for start in range(0, len(ids), _IN_CHUNK):
                rows = conn.execute(
                    select(
                        _run_io.c.run_uuid, _run_io.c.model_id, _run_io.c.direction, _run_io.c.step
                    )
                    .where(_run_io.c.run_uuid.in_(ids[start : start + _IN_CHUNK]))
                    .order_by(_run_io.c.run_uuid, _run_io.c.model_id)
                ).all()
                for r in rows:
                    used, produced = found.setdefault(r.run_uuid, ([], []))
                    if r.direction == "input":
                        used.append(r.model_id)
                    else:
                        produced.append((r.model_id, r.step))
            return found

        return self.read(work) if run_ids else {}

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        datasets: Sequence[tuple[str, str | None]] = (),
        max_results: int = 100,
        order_by: Sequence[model_search.OrderBy] = (),
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        clauses = model_search.parse_filter(filter_string, model_search.LOGGED_MODEL_FIELDS)
        eids = []
        for e in experiment_ids:
            try:
                eids.append(int(e))
            except (TypeError, ValueError):
                raise InvalidParameterError(
                    f"Invalid value {e!r} for parameter 'experiment_ids' supplied"
                ) from None

        # Equalities on columns narrow the rows read; every clause is checked again below.
        narrowing = [
            _lm.c[_COLUMNS[c.key]] == c.value
            for c in clauses
            if c.kind == "attribute"
            and c.op == "="
            and c.key in _COLUMNS
            and isinstance(c.value, str)
        ]

        def work(conn: Connection) -> list[LoggedModel]:
            ids = list(
                conn.execute(
                    select(_lm.c.model_id).where(
                        _lm.c.experiment_id.in_(eids), _lm.c.lifecycle_stage == "active", *narrowing
                    )
                ).scalars()
            )
            return self._load_logged_models(conn, ids)

        models = self.read(work) if eids else []
        matched = [m for m in models if model_search.logged_model_matches(m, clauses, datasets)]
        ordered = model_search.order_logged_models(matched, order_by, datasets)
        return model_search.page(
            ordered, max_results, page_token, f"logged:{sorted(eids)}:{filter_string}"
        )

    # -- registered models --------------------------------------------------------

    def _rm_row(self, conn: Connection, name: str) -> Any:
        row = conn.execute(select(_rm).where(_rm.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"Registered Model with name={name} not found")
        return row

    def _load_versions(self, conn: Connection, where: Any) -> list[ModelVersion]:
        rows = conn.execute(select(_mv).where(where).order_by(_mv.c.name, _mv.c.version)).all()
        if not rows:
            return []
        names = sorted({r.name for r in rows})
        tags: dict[tuple[str, int], dict[str, str]] = {}
        for name, version, key, value in conn.execute(
            select(_mv_tags.c.name, _mv_tags.c.version, _mv_tags.c.key, _mv_tags.c.value).where(
                _mv_tags.c.name.in_(names)
            )
        ):
            tags.setdefault((name, version), {})[key] = value
        aliases: dict[tuple[str, int], list[str]] = {}
        for name, alias, version in conn.execute(
            select(_aliases.c.name, _aliases.c.alias, _aliases.c.version)
            .where(_aliases.c.name.in_(names))
            .order_by(_aliases.c.alias)
        ):
            aliases.setdefault((name, version), []).append(alias)
        return [
            ModelVersion(
                name=r.name,
                version=str(r.version),
                creation_timestamp=r.creation_time,
                last_updated_timestamp=r.last_updated_time,
                source=r.source,
                current_stage=r.current_stage,
                description=r.description,
                user_id=r.user_id,
                run_id=r.run_id,
                run_link=r.run_link,
                model_id=r.model_id,
                storage_location=r.storage_location,
                status=r.status,
                status_message=r.status_message,
                tags=tags.get((r.name, r.version), {}),
                aliases=tuple(aliases.get((r.name, r.version), ())),
            )
            for r in rows
        ]

    def _load_registered(self, conn: Connection, names: Sequence[str]) -> list[RegisteredModel]:
        if not names:
            return []
        rows = {r.name: r for r in conn.execute(select(_rm).where(_rm.c.name.in_(names)))}
        tags: dict[str, dict[str, str]] = {n: {} for n in rows}
        for name, key, value in conn.execute(
            select(_rm_tags.c.name, _rm_tags.c.key, _rm_tags.c.value).where(
                _rm_tags.c.name.in_(names)
            )
        ):
            tags[name][key] = value
        aliases: dict[str, dict[str, str]] = {n: {} for n in rows}
        for name, alias, version in conn.execute(
            select(_aliases.c.name, _aliases.c.alias, _aliases.c.version).where(
                _aliases.c.name.in_(names)
            )
        ):
            aliases[name][alias] = str(version)
        latest: dict[str, dict[str, ModelVersion]] = {n: {} for n in rows}
        for version in self._load_versions(conn, _mv.c.name.in_(names)):
            latest[version.name][version.current_stage] = version  # ordered: newest wins
        return [
            RegisteredModel(
                name=r.name,
                creation_timestamp=r.creation_time,
                last_updated_timestamp=r.last_updated_time,
                description=r.description,
                tags=tags[r.name],
                aliases=aliases[r.name],
                latest_versions=tuple(latest[r.name].values()),
            )
            for r in (rows[n] for n in names if n in rows)
        ]

    def _request_made(self, conn: Connection, request_id: str | None, name: str) -> Any:
        """The row of an earlier attempt of the create ``request_id`` for ``name``, if any."""
        if request_id is None:
            return None
        return conn.execute(
            select(_requests).where(_requests.c.request_id == request_id, _requests.c.name == name)
        ).first()

    def _remember_request(
        self, conn: Connection, request_id: str | None, name: str, version: int | None, now: int
    ) -> None:
        if request_id is None:
            return
        conn.execute(delete(_requests).where(_requests.c.creation_time < now - _REQUEST_TTL_MS))
        conn.execute(
            _requests.insert().values(
                request_id=request_id, name=name, version=version, creation_time=now
            )
        )

    def create_registered_model(
        self,
        name: str,
        tags: Sequence[tuple[str, str]] = (),
        description: str | None = None,
        request_id: str | None = None,
    ) -> RegisteredModel:
        """Create a registered model; AlreadyExistsError if the name is taken, unless
        ``request_id`` (a client's retry of one create) names the call that took it."""

        def work(conn: Connection) -> RegisteredModel:
            if self._request_made(conn, request_id, name) is not None:
                self._rm_row(conn, name)
                return self._load_registered(conn, [name])[0]
            if conn.execute(select(_rm.c.name).where(_rm.c.name == name)).first() is not None:
                raise AlreadyExistsError(f"Registered Model (name={name}) already exists.")
            now = _now()
            conn.execute(
                _rm.insert().values(
                    name=name, creation_time=now, last_updated_time=now, description=description
                )
            )
            self._remember_request(conn, request_id, name, None, now)
            if tags:
                conn.execute(
                    _rm_tags.insert(),
                    [{"name": name, "key": k, "value": v} for k, v in dict(tags).items()],
                )
            return self._load_registered(conn, [name])[0]

        try:
            return self.write(work)
        except InvalidParameterError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                if self.read(lambda conn: self._request_made(conn, request_id, name)):
                    return self.get_registered_model(name)  # an attempt racing its retry
                raise AlreadyExistsError(f"Registered Model (name={name}) already exists.") from exc
            raise

    def get_registered_model(self, name: str) -> RegisteredModel:
        def work(conn: Connection) -> RegisteredModel:
            self._rm_row(conn, name)
            return self._load_registered(conn, [name])[0]

        return self.read(work)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        def work(conn: Connection) -> RegisteredModel:
            row = self._rm_row(conn, name)
            if name == new_name:
                return self._load_registered(conn, [name])[0]
            if conn.execute(select(_rm.c.name).where(_rm.c.name == new_name)).first():
                raise AlreadyExistsError(f"Registered Model (name={new_name}) already exists.")
            conn.execute(
                _rm.insert().values(
                    name=new_name,
                    creation_time=row.creation_time,
                    last_updated_time=_now(),
                    description=row.description,
                )
            )
            for table in (_rm_tags, _mv, _mv_tags, _aliases):
                conn.execute(update(table).where(table.c.name == name).values(name=new_name))
            conn.execute(delete(_rm).where(_rm.c.name == name))
            return self._load_registered(conn, [new_name])[0]

        return self.write(work)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        def work(conn: Connection) -> RegisteredModel:
            self._rm_row(conn, name)
            conn.execute(
                update(_rm)
                .where(_rm.c.name == name)
                .values(description=description, last_updated_time=_now())
            )
            return self._load_registered(conn, [name])[0]

        return self.write(work)

    def delete_registered_model(self, name: str) -> None:
        def work(conn: Connection) -> None:
            self._rm_row(conn, name)
            for table in (_aliases, _mv_tags, _mv, _rm_tags, _rm):
                conn.execute(delete(table).where(table.c.name == name))

        self.write(work)

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        def work(conn: Connection) -> None:
            self._rm_row(conn, name)
            conn.execute(delete(_rm_tags).where(_rm_tags.c.name == name, _rm_tags.c.key == key))
            conn.execute(_rm_tags.insert().values(name=name, key=key, value=value))

        self.write(work)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        def work(conn: Connection) -> None:
            self._rm_row(conn, name)
            deleted = conn.execute(
                delete(_rm_tags).where(_rm_tags.c.name == name, _rm_tags.c.key == key)
            )
            if not deleted.rowcount:
                raise NotFoundError(f"No tag with name: {key} in registered model {name}")

        self.write(work)

    def search_registered_models(
        self,
        filter_string: str = "",
        max_results: int = 100,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        clauses = model_search.parse_filter(filter_string, model_search.REGISTERED_MODEL_FIELDS)

        def work(conn: Connection) -> list[RegisteredModel]:
            names = list(conn.execute(select(_rm.c.name)).scalars())
            return self._load_registered(conn, names)

        found = [m for m in self.read(work) if model_search.registered_matches(m, clauses)]
        ordered = model_search.order_registered(found, order_by)
        return model_search.page(ordered, max_results, page_token, f"rm:{filter_string}")

    # -- model versions ---------------------------------------------------------

    def _mv_row(self, conn: Connection, name: str, version: int) -> Any:
        row = conn.execute(select(_mv).where(_mv.c.name == name, _mv.c.version == version)).first()
        if row is None:
            raise NotFoundError(f"Model Version (name={name}, version={version}) not found")
        return row

    def _one_version(self, conn: Connection, name: str, version: int) -> ModelVersion:
        self._mv_row(conn, name, version)
        return self._load_versions(conn, (_mv.c.name == name) & (_mv.c.version == version))[0]

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
        run_link: str | None = None,
        description: str | None = None,
        model_id: str | None = None,
        user_id: str | None = None,
        storage_location: str | None = None,
        request_id: str | None = None,
    ) -> ModelVersion:
        """The next version of ``name``; a retry of the same ``request_id`` returns the
        version its first attempt made. A logged model's ``mlflow.modelVersions`` tag
        gains the version, as MLflow's server records it."""

        def work(conn: Connection) -> ModelVersion:
            made = self._request_made(conn, request_id, name)
            if made is not None and made.version is not None:
                return self._one_version(conn, name, made.version)
            self._rm_row(conn, name)
            if model_id is not None:
                self._model_row(conn, model_id)
            last = conn.execute(select(func.max(_mv.c.version)).where(_mv.c.name == name)).scalar()
            version = (last or 0) + 1
            now = _now()
            try:
                conn.execute(
                    _mv.insert().values(
                        name=name,
                        version=version,
                        creation_time=now,
                        last_updated_time=now,
                        description=description,
                        user_id=user_id,
                        current_stage="None",
                        source=source,
                        storage_location=storage_location or source,
                        run_id=run_id,
                        run_link=run_link,
                        model_id=model_id,
                        status="READY",
                        status_message=None,
                    )
                )
            except IntegrityError as exc:
                from tracking.store.sql.hotpath import RetryTransactionError

                raise RetryTransactionError from exc  # another version won the number
            if tags:
                conn.execute(
                    _mv_tags.insert(),
                    [
                        {"name": name, "version": version, "key": k, "value": v}
                        for k, v in dict(tags).items()
                    ],
                )
            conn.execute(update(_rm).where(_rm.c.name == name).values(last_updated_time=now))
            if model_id is not None:
                self._add_version_to_model_tag(conn, model_id, name, version)
            self._remember_request(conn, request_id, name, version, now)
            return self._one_version(conn, name, version)

        return self.write(work)

    def _add_version_to_model_tag(
        self, conn: Connection, model_id: str, name: str, version: int
    ) -> None:
        """Append ``{"name", "version"}`` to the model's ``mlflow.modelVersions`` tag (a JSON
        list; the version a number, as MLflow's server writes it), once."""
        current = conn.execute(
            select(_lm_tags.c.value).where(
                _lm_tags.c.model_id == model_id, _lm_tags.c.key == MODEL_VERSIONS_TAG
            )
        ).scalar()
        entries: list[Any] = []
        if current:
            try:
                loaded = json.loads(current)
            except ValueError:
                loaded = []
            entries = loaded if isinstance(loaded, list) else []
        entry = {"name": name, "version": version}
        if entry in entries:
            return
        entries.append(entry)
        conn.execute(
            delete(_lm_tags).where(
                _lm_tags.c.model_id == model_id, _lm_tags.c.key == MODEL_VERSIONS_TAG
            )
        )
        conn.execute(
            _lm_tags.insert().values(
                model_id=model_id, key=MODEL_VERSIONS_TAG, value=json.dumps(entries)
            )
        )

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        number = _version_number(version)
        return self.read(lambda conn: self._one_version(conn, name, number))

    def update_model_version(
        self, name: str, version: str, description: str | None
    ) -> ModelVersion:
        number = _version_number(version)

        def work(conn: Connection) -> ModelVersion:
            self._mv_row(conn, name, number)
            conn.execute(
                update(_mv)
                .where(_mv.c.name == name, _mv.c.version == number)
                .values(description=description, last_updated_time=_now())
            )
            return self._one_version(conn, name, number)

        return self.write(work)

    def transition_model_version_stage(
        self, name: str, version: str, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        number = _version_number(version)
        target = stage_name(stage)

        def work(conn: Connection) -> ModelVersion:
            self._mv_row(conn, name, number)
            now = _now()
            if archive_existing_versions and target in ("Staging", "Production"):
                conn.execute(
                    update(_mv)
                    .where(
                        _mv.c.name == name, _mv.c.version != number, _mv.c.current_stage == target
                    )
                    .values(current_stage="Archived", last_updated_time=now)
                )
            conn.execute(
                update(_mv)
                .where(_mv.c.name == name, _mv.c.version == number)
                .values(current_stage=target, last_updated_time=now)
            )
            return self._one_version(conn, name, number)

        return self.write(work)

    def delete_model_version(self, name: str, version: str) -> None:
        number = _version_number(version)

        def work(conn: Connection) -> None:
            self._mv_row(conn, name, number)
            conn.execute(
                delete(_aliases).where(_aliases.c.name == name, _aliases.c.version == number)
            )
            conn.execute(
                delete(_mv_tags).where(_mv_tags.c.name == name, _mv_tags.c.version == number)
            )
            conn.execute(delete(_mv).where(_mv.c.name == name, _mv.c.version == number))

        self.write(work)

    def get_latest_versions(self, name: str, stages: Sequence[str] = ()) -> list[ModelVersion]:
        wanted = {stage_name(s) for s in stages}
        model = self.get_registered_model(name)
        return [v for v in model.latest_versions if not wanted or v.current_stage in wanted]

    def search_model_versions(
        self,
        filter_string: str = "",
        max_results: int = 10000,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        clauses = model_search.parse_filter(filter_string, model_search.MODEL_VERSION_FIELDS)
        versions = self.read(lambda conn: self._load_versions(conn, _mv.c.version > 0))
        found = [v for v in versions if model_search.version_matches(v, clauses)]
        ordered = model_search.order_versions(found, order_by)
        return model_search.page(ordered, max_results, page_token, f"mv:{filter_string}")

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        number = _version_number(version)

        def work(conn: Connection) -> None:
            self._mv_row(conn, name, number)
            conn.execute(
                delete(_mv_tags).where(
                    _mv_tags.c.name == name, _mv_tags.c.version == number, _mv_tags.c.key == key
                )
            )
            conn.execute(_mv_tags.insert().values(name=name, version=number, key=key, value=value))

        self.write(work)

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        number = _version_number(version)

        def work(conn: Connection) -> None:
            self._mv_row(conn, name, number)
            deleted = conn.execute(
                delete(_mv_tags).where(
                    _mv_tags.c.name == name, _mv_tags.c.version == number, _mv_tags.c.key == key
                )
            )
            if not deleted.rowcount:
                raise NotFoundError(
                    f"No tag with name: {key} in model version (name={name}, version={number})"
                )

        self.write(work)

    # -- aliases ----------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        number = _version_number(version)

        def work(conn: Connection) -> None:
            self._mv_row(conn, name, number)
            conn.execute(delete(_aliases).where(_aliases.c.name == name, _aliases.c.alias == alias))
            conn.execute(_aliases.insert().values(name=name, alias=alias, version=number))
            conn.execute(update(_rm).where(_rm.c.name == name).values(last_updated_time=_now()))

        self.write(work)

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        def work(conn: Connection) -> None:
            self._rm_row(conn, name)
            conn.execute(delete(_aliases).where(_aliases.c.name == name, _aliases.c.alias == alias))

        self.write(work)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        def work(conn: Connection) -> ModelVersion:
            self._rm_row(conn, name)
            version = conn.execute(
                select(_aliases.c.version).where(_aliases.c.name == name, _aliases.c.alias == alias)
            ).scalar()
            if version is None:
                raise NotFoundError(f"Registered model alias {alias} not found.")
            return self._one_version(conn, name, int(version))

        return self.read(work)

    # -- reads for the web UI's model pages (tracking.ui.models) ---------------------

    def ui_run_models(self, run_id: str) -> tuple[list[LoggedModel], list[LoggedModel]]:
        """The active logged models a run produced (its source, or recorded as an output)
        and those it used (recorded as inputs), oldest first: one read, five queries."""

        def work(conn: Connection) -> tuple[list[LoggedModel], list[LoggedModel]]:
            io = conn.execute(
                select(_run_io.c.model_id, _run_io.c.direction).where(_run_io.c.run_uuid == run_id)
            ).all()
            own = conn.execute(
                select(_lm.c.model_id).where(
                    _lm.c.source_run_id == run_id, _lm.c.lifecycle_stage == "active"
                )
            ).scalars()
            produced = {*own, *(r.model_id for r in io if r.direction == "output")}
            used = {r.model_id for r in io if r.direction == "input"} - produced
            found = [
                m
                for m in self._load_logged_models(conn, sorted(produced | used))
                if m.lifecycle_stage is LifecycleStage.ACTIVE
            ]
            found.sort(key=lambda m: (m.creation_timestamp, m.model_id))
            return (
                [m for m in found if m.model_id in produced],
                [m for m in found if m.model_id in used],
            )

        return self.read(work)

    def ui_model_versions(
        self,
        name: str | None = None,
        run_ids: Sequence[str] = (),
        model_ids: Sequence[str] = (),
    ) -> list[ModelVersion]:
        """The versions of registered model ``name``, or those registered from the runs
        ``run_ids`` or the logged models ``model_ids`` (by name, then version), with
        their tags and aliases: one read of four queries."""
        from sqlalchemy import or_

        wanted = []
        if name is not None:
            wanted.append(_mv.c.name == name)
        if run_ids:
            wanted.append(_mv.c.run_id.in_(list(run_ids)))
        if model_ids:
            wanted.append(_mv.c.model_id.in_(list(model_ids)))
        if not wanted:
            return []
        return self.read(lambda conn: self._load_versions(conn, or_(*wanted)))

    def ui_run_origins(
        self, run_ids: Sequence[str], depth: int = 5
    ) -> dict[str, tuple[str, str, str | None]]:
        """``run_id -> (experiment_id, name, pipeline_run_id)`` for the runs among
        ``run_ids`` that exist, and for the pipeline runs they came from.

        A run's pipeline run is the nearest of itself and its ancestors (up to
        ``depth`` levels up) that carries a pipeline's tag (``trackflow.orchestrator``,
        ``airflow.dag_id``, ``prefect.flow_name``) and no step's tag
        (``airflow.task_id``, ``prefect.task_run_id``, ``trackflow.attempts``): a task
        instance's is its DAG run. Each level is one batched query, whatever the
        number of runs.
        """
        from tracking.store.sql.models import TagModel

        tags = table_of(TagModel)
        pipeline_tags = ("trackflow.orchestrator", "airflow.dag_id", "prefect.flow_name")
        step_tags = ("airflow.task_id", "prefect.task_run_id", "trackflow.attempts")

        def work(conn: Connection) -> dict[str, tuple[str, str, str | None]]:
            rows: dict[str, tuple[str, str, str | None]] = {}
            todo = sorted(set(run_ids))
            for _level in range(depth + 1):
                for start in range(0, len(todo), 500):
                    for r in conn.execute(
                        select(
                            _runs.c.run_uuid,
                            _runs.c.experiment_id,
                            _runs.c.name,
                            _runs.c.parent_run_uuid,
                        ).where(_runs.c.run_uuid.in_(todo[start : start + 500]))
                    ):
                        rows[r.run_uuid] = (str(r.experiment_id), r.name or "", r.parent_run_uuid)
                todo = sorted({p for _e, _n, p in rows.values() if p and p not in rows})
                if not todo:
                    break
            marked: dict[str, set[str]] = {}
            ids = sorted(rows)
            for start in range(0, len(ids), 500):
                for rid, key in conn.execute(
                    select(tags.c.run_uuid, tags.c.key).where(
                        tags.c.run_uuid.in_(ids[start : start + 500]),
                        tags.c.key.in_([*pipeline_tags, *step_tags]),
                    )
                ):
                    marked.setdefault(rid, set()).add(key)
            pipelines = {
                rid
                for rid, keys in marked.items()
                if keys & set(pipeline_tags) and not keys & set(step_tags)
            }

            def pipeline_of(rid: str) -> str | None:
                seen = set()
                current: str | None = rid
                while current is not None and current in rows and current not in seen:
                    if current in pipelines:
                        return current
                    seen.add(current)
                    current = rows[current][2]
                return None

            found: dict[str, tuple[str, str, str | None]] = {}
            for rid in run_ids:
                if rid not in rows:
                    continue
                pipeline = pipeline_of(rid)
                found[rid] = (rows[rid][0], rows[rid][1], pipeline)
                if pipeline is not None and pipeline not in found:
                    found[pipeline] = (rows[pipeline][0], rows[pipeline][1], None)
            return found

        return self.read(work) if run_ids else {}
