"""Logged models and the model registry over HTTP, mixed into ``RestTrackingStore``.

Each call is the one the stock MLflow client makes (``logged-models``,
``registered-models/...``, ``model-versions/...``); the JSON is read back into
:mod:`tracking.entities` here. A run's logged models come from trackflow's
``runs/models`` endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tracking.entities import (
    LifecycleStage,
    LoggedModel,
    LoggedModelStatus,
    ModelMetric,
    ModelVersion,
    PagedList,
    RegisteredModel,
)
from tracking.errors import StoreError
from tracking.store.model_search import OrderBy

if TYPE_CHECKING:
    from tracking.store.rest_http import RestSession

__all__ = [
    "RestModelsMixin",
    "logged_model_from_json",
    "model_version_from_json",
    "registered_model_from_json",
]

_MLFLOW = "api/2.0/mlflow"
_STATUS = {
    "LOGGED_MODEL_PENDING": LoggedModelStatus.PENDING,
    "LOGGED_MODEL_READY": LoggedModelStatus.READY,
    "LOGGED_MODEL_UPLOAD_FAILED": LoggedModelStatus.FAILED,
}
_STATUS_OUT = {v: k for k, v in _STATUS.items()}


def _kv(items: Any) -> dict[str, str]:
    return {i["key"]: str(i.get("value", "")) for i in items or ()}


def _pairs(items: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in items]


def _float(value: Any) -> float:
    return float(value)


def logged_model_from_json(data: Any) -> LoggedModel:
    """MLflow's ``LoggedModel`` JSON as a :class:`LoggedModel`."""
    info, body = data["info"], data.get("data") or {}
    return LoggedModel(
        model_id=info["model_id"],
        experiment_id=str(info["experiment_id"]),
        name=info.get("name", ""),
        artifact_location=info.get("artifact_uri", ""),
        creation_timestamp=int(info.get("creation_timestamp_ms", 0)),
        last_updated_timestamp=int(info.get("last_updated_timestamp_ms", 0)),
        status=_STATUS.get(info.get("status", ""), LoggedModelStatus.PENDING),
        status_message=info.get("status_message"),
        model_type=info.get("model_type"),
        source_run_id=info.get("source_run_id"),
        lifecycle_stage=LifecycleStage.ACTIVE,
        tags=_kv(info.get("tags")),
        params=_kv(body.get("params")),
        metrics=tuple(
            ModelMetric(
                m["key"],
                _float(m["value"]),
                int(m.get("timestamp", 0)),
                int(m.get("step", 0)),
                m.get("run_id"),
                m.get("dataset_name"),
                m.get("dataset_digest"),
            )
            for m in body.get("metrics") or ()
        ),
    )


def model_version_from_json(data: Any) -> ModelVersion:
    """MLflow's ``ModelVersion`` JSON as a :class:`ModelVersion`."""
    return ModelVersion(
        name=data["name"],
        version=str(data["version"]),
        creation_timestamp=int(data.get("creation_timestamp", 0)),
        last_updated_timestamp=int(data.get("last_updated_timestamp", 0)),
        source=data.get("source", ""),
        current_stage=data.get("current_stage", "None"),
        description=data.get("description"),
        user_id=data.get("user_id"),
        run_id=data.get("run_id"),
        run_link=data.get("run_link"),
        model_id=data.get("model_id"),
        status=data.get("status", "READY"),
        status_message=data.get("status_message"),
        tags=_kv(data.get("tags")),
        aliases=tuple(data.get("aliases") or ()),
    )


def registered_model_from_json(data: Any) -> RegisteredModel:
    """MLflow's ``RegisteredModel`` JSON as a :class:`RegisteredModel`."""
    return RegisteredModel(
        name=data["name"],
        creation_timestamp=int(data.get("creation_timestamp", 0)),
        last_updated_timestamp=int(data.get("last_updated_timestamp", 0)),
        description=data.get("description"),
        tags=_kv(data.get("tags")),
        aliases={a["alias"]: str(a["version"]) for a in data.get("aliases") or ()},
        latest_versions=tuple(
            model_version_from_json(v) for v in data.get("latest_versions") or ()
        ),
    )


def _read(parse: Any, answer: Any, name: str) -> Any:
    try:
        return parse(answer[name])
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(
            f"the tracking server sent a malformed {name}: {type(exc).__name__}: {exc} "
            f"(in {str(answer)[:200]})"
        ) from exc


class RestModelsMixin:
    """Logged models and the registry for :class:`~tracking.store.rest.RestTrackingStore`."""

    http: RestSession

    def _call(self, method: str, path: str, body: Any = None, **params: str | int) -> Any:
        return self.http.call(
            method, self.http.url(f"{_MLFLOW}/{path}"), body=body, params=params or None
        )

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
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            "name": name,
            "tags": _pairs(tags),
            "params": _pairs(params),
        }
        if source_run_id is not None:
            body["source_run_id"] = source_run_id
        if model_type is not None:
            body["model_type"] = model_type
        model: LoggedModel = _read(
            logged_model_from_json, self._call("POST", "logged-models", body), "model"
        )
        return model

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        extra = {"allow_deleted": "true"} if allow_deleted else {}
        answer = self._call("GET", f"logged-models/{quote(model_id)}", **extra)
        model: LoggedModel = _read(logged_model_from_json, answer, "model")
        return model

    def finalize_logged_model(
        self, model_id: str, status: LoggedModelStatus, status_message: str | None = None
    ) -> LoggedModel:
        body = {"model_id": model_id, "status": _STATUS_OUT[status]}
        answer = self._call("PATCH", f"logged-models/{quote(model_id)}", body)
        model: LoggedModel = _read(logged_model_from_json, answer, "model")
        return model

    def delete_logged_model(self, model_id: str) -> None:
        self._call("DELETE", f"logged-models/{quote(model_id)}", {"model_id": model_id})

    def set_logged_model_tags(self, model_id: str, tags: Sequence[tuple[str, str]]) -> None:
        self._call("PATCH", f"logged-models/{quote(model_id)}/tags", {"tags": _pairs(tags)})

    def delete_logged_model_tag(self, model_id: str, key: str) -> None:
        self._call("DELETE", f"logged-models/{quote(model_id)}/tags/{quote(key, safe='')}")

    def log_logged_model_params(self, model_id: str, params: Sequence[tuple[str, str]]) -> None:
        self._call("POST", f"logged-models/{quote(model_id)}/params", {"params": _pairs(params)})

    def log_logged_model_metrics(self, metrics: Sequence[tuple[str, ModelMetric]]) -> None:
        """Sent as ``log-batch`` calls of the runs that measured them, as MLflow's
        client does; a point without a run cannot travel over MLflow's API."""
        by_run: dict[str, list[dict[str, Any]]] = {}
        for model_id, m in metrics:
            if m.run_id is None:
                raise StoreError(
                    f"a metric linked to logged model {model_id} over HTTP needs the run that "
                    "measured it (run_id)"
                )
            point: dict[str, Any] = {
                "key": m.key,
                "value": m.value,
                "timestamp": m.timestamp,
                "step": m.step,
                "model_id": model_id,
            }
            if m.dataset_name is not None:
                point["dataset_name"] = m.dataset_name
            if m.dataset_digest is not None:
                point["dataset_digest"] = m.dataset_digest
            by_run.setdefault(m.run_id, []).append(point)
        for run_id, points in by_run.items():
            self._call("POST", "runs/log-batch", {"run_id": run_id, "metrics": points})

    def log_run_models(
        self, run_id: str, inputs: Sequence[str] = (), outputs: Sequence[tuple[str, int]] = ()
    ) -> None:
        if inputs:
            self._call(
                "POST",
                "runs/log-inputs",
                {"run_id": run_id, "models": [{"model_id": m} for m in inputs]},
            )
        if outputs:
            self._call(
                "POST",
                "runs/outputs",
                {"run_id": run_id, "models": [{"model_id": m, "step": s} for m, s in outputs]},
            )

    def get_run_models(self, run_id: str) -> tuple[list[str], list[tuple[str, int]]]:
        answer = self.http.call(
            "GET", self.http.url("api/2.0/trackflow/runs/models"), params={"run_id": run_id}
        )
        try:
            return (
                [str(m) for m in answer["inputs"]],
                [(str(o["model_id"]), int(o["step"])) for o in answer["outputs"]],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"the tracking server sent a malformed runs/models: {exc}") from exc

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        datasets: Sequence[tuple[str, str | None]] = (),
        max_results: int = 100,
        order_by: Sequence[OrderBy] = (),
        page_token: str | None = None,
    ) -> PagedList[LoggedModel]:
        body: dict[str, Any] = {
            "experiment_ids": list(experiment_ids),
            "filter": filter_string,
            "datasets": [
                {"dataset_name": n, **({"dataset_digest": d} if d else {})} for n, d in datasets
            ],
            "max_results": max_results,
            "order_by": [
                {
                    "field_name": o.field,
                    "ascending": o.ascending,
                    **({"dataset_name": o.dataset_name} if o.dataset_name else {}),
                    **({"dataset_digest": o.dataset_digest} if o.dataset_digest else {}),
                }
                for o in order_by
            ],
        }
        if page_token:
            body["page_token"] = page_token
        answer = self._call("POST", "logged-models/search", body)
        models = _read(lambda ms: [logged_model_from_json(m) for m in ms or ()], answer, "models")
        return PagedList(models, answer.get("next_page_token") or None)

    # -- registry -----------------------------------------------------------------

    def create_registered_model(
        self,
        name: str,
        tags: Sequence[tuple[str, str]] = (),
        description: str | None = None,
        request_id: str | None = None,
    ) -> RegisteredModel:
        # One id for every attempt: a retry after a lost answer gets the model, not
        # "already exists" (the id is chosen here, as runs/create's run id is).
        body: dict[str, Any] = {
            "name": name,
            "tags": _pairs(tags),
            "request_id": request_id or os.urandom(16).hex(),
        }
        if description is not None:
            body["description"] = description
        answer = self._call("POST", "registered-models/create", body)
        model: RegisteredModel = _read(registered_model_from_json, answer, "registered_model")
        return model

    def get_registered_model(self, name: str) -> RegisteredModel:
        answer = self._call("GET", "registered-models/get", name=name)
        model: RegisteredModel = _read(registered_model_from_json, answer, "registered_model")
        return model

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        answer = self._call(
            "POST", "registered-models/rename", {"name": name, "new_name": new_name}
        )
        model: RegisteredModel = _read(registered_model_from_json, answer, "registered_model")
        return model

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        answer = self._call(
            "PATCH", "registered-models/update", {"name": name, "description": description}
        )
        model: RegisteredModel = _read(registered_model_from_json, answer, "registered_model")
        return model

    def delete_registered_model(self, name: str) -> None:
        self._call("DELETE", "registered-models/delete", {"name": name})

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        self._call("POST", "registered-models/set-tag", {"name": name, "key": key, "value": value})

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._call("DELETE", "registered-models/delete-tag", {"name": name, "key": key})

    def search_registered_models(
        self,
        filter_string: str = "",
        max_results: int = 100,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        body: dict[str, Any] = {
            "filter": filter_string,
            "max_results": max_results,
            "order_by": list(order_by),
        }
        if page_token:
            body["page_token"] = page_token
        answer = self._call("POST", "registered-models/search", body)
        models = _read(
            lambda ms: [registered_model_from_json(m) for m in ms or ()],
            {"registered_models": answer.get("registered_models") or []},
            "registered_models",
        )
        return PagedList(models, answer.get("next_page_token") or None)

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
        # One id for every attempt: a retry after a lost answer gets the version the
        # first attempt made instead of registering another.
        body: dict[str, Any] = {
            "name": name,
            "source": source,
            "tags": _pairs(tags),
            "request_id": request_id or os.urandom(16).hex(),
        }
        for key, value in (
            ("run_id", run_id),
            ("run_link", run_link),
            ("description", description),
            ("model_id", model_id),
        ):
            if value is not None:
                body[key] = value
        answer = self._call("POST", "model-versions/create", body)
        version: ModelVersion = _read(model_version_from_json, answer, "model_version")
        return version

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        answer = self._call("GET", "model-versions/get", name=name, version=version)
        found: ModelVersion = _read(model_version_from_json, answer, "model_version")
        return found

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        answer = self._call("GET", "model-versions/get-download-uri", name=name, version=version)
        uri: str = _read(str, answer, "artifact_uri")
        return uri

    def update_model_version(
        self, name: str, version: str, description: str | None
    ) -> ModelVersion:
        answer = self._call(
            "PATCH",
            "model-versions/update",
            {"name": name, "version": version, "description": description},
        )
        found: ModelVersion = _read(model_version_from_json, answer, "model_version")
        return found

    def transition_model_version_stage(
        self, name: str, version: str, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        answer = self._call(
            "POST",
            "model-versions/transition-stage",
            {
                "name": name,
                "version": version,
                "stage": stage,
                "archive_existing_versions": archive_existing_versions,
            },
        )
        found: ModelVersion = _read(model_version_from_json, answer, "model_version")
        return found

    def delete_model_version(self, name: str, version: str) -> None:
        self._call("DELETE", "model-versions/delete", {"name": name, "version": version})

    def get_latest_versions(self, name: str, stages: Sequence[str] = ()) -> list[ModelVersion]:
        answer = self._call(
            "POST", "registered-models/get-latest-versions", {"name": name, "stages": list(stages)}
        )
        return [model_version_from_json(v) for v in answer.get("model_versions") or ()]

    def search_model_versions(
        self,
        filter_string: str = "",
        max_results: int = 10000,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        body: dict[str, Any] = {
            "filter": filter_string,
            "max_results": max_results,
            "order_by": list(order_by),
        }
        if page_token:
            body["page_token"] = page_token
        answer = self._call("POST", "model-versions/search", body)
        versions = [model_version_from_json(v) for v in answer.get("model_versions") or ()]
        return PagedList(versions, answer.get("next_page_token") or None)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self._call(
            "POST",
            "model-versions/set-tag",
            {"name": name, "version": version, "key": key, "value": value},
        )

    def delete_model_version_tag(self, name: str, version: str, key: str) -> None:
        self._call(
            "DELETE",
            "model-versions/delete-tag",
            {"name": name, "version": version, "key": key},
        )

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._call(
            "POST", "registered-models/alias", {"name": name, "alias": alias, "version": version}
        )

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", "registered-models/alias", {"name": name, "alias": alias})

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        answer = self._call("GET", "registered-models/alias", name=name, alias=alias)
        found: ModelVersion = _read(model_version_from_json, answer, "model_version")
        return found
