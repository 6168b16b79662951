"""What the model pages and a run page's Models section read, and their links.

Each function is a fixed number of batched reads, however many models, versions, runs
or pipeline runs it returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from tracking.entities import LoggedModel, ModelVersion
from tracking.store.sql.store import SqlTrackingStore

__all__ = ["RunModels", "VersionRow", "model_path", "registry_path", "run_models", "version_rows"]


def registry_path(name: str, version: str | None = None) -> str:
    """The page of registered model ``name`` (root-relative), at ``version``'s row."""
    return f"/models/{quote(name, safe='')}" + (f"#v{version}" if version else "")


def model_path(model: LoggedModel) -> str:
    """The page of a logged model (root-relative)."""
    return f"/experiments/{model.experiment_id}/models/{model.model_id}"


# -- a run's models --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunModels:
    """What a run page's Models section shows: the models the run produced and used,
    the registry's versions made from them (by model id), and the versions registered
    from the run's own files (``runs:/<run_id>/...``, no logged model)."""

    produced: list[LoggedModel]
    used: list[LoggedModel]
    versions: dict[str, list[ModelVersion]]
    from_files: list[ModelVersion]

    @property
    def shown(self) -> bool:
        """Whether the run has anything for the section to show."""
        return bool(self.produced or self.used or self.from_files)


def _by_model(versions: Iterable[ModelVersion], ids: set[str]) -> dict[str, list[ModelVersion]]:
    found: dict[str, list[ModelVersion]] = {}
    for v in versions:
        if v.model_id in ids:
            found.setdefault(v.model_id, []).append(v)
    return found


def run_models(store: SqlTrackingStore, run_id: str) -> RunModels:
    """The run's logged models and the versions registered from them or from the run's
    files: two reads."""
    produced, used = store.ui_run_models(run_id)
    ids = {m.model_id for m in (*produced, *used)}
    versions = store.ui_model_versions(run_ids=[run_id], model_ids=sorted(ids))
    from_files = [v for v in versions if v.run_id == run_id and v.model_id is None]
    return RunModels(produced, used, _by_model(versions, ids), from_files)


@dataclass(frozen=True, slots=True)
class VersionRow:
    """A version on its registered model's page, with where it came from:
    ``run`` and ``pipeline`` as ``(experiment_id, run_id, name)``."""

    version: ModelVersion
    run: tuple[str, str, str] | None
    pipeline: tuple[str, str, str] | None


def version_rows(store: SqlTrackingStore, versions: list[ModelVersion]) -> list[VersionRow]:
    """The versions, newest first, with their source runs and pipeline runs: one read."""
    origins = store.ui_run_origins(sorted({v.run_id for v in versions if v.run_id}))
    rows = []
    for v in sorted(versions, key=lambda v: -int(v.version)):
        origin = origins.get(v.run_id or "")
        run = pipeline = None
        if origin is not None:
            run = (origin[0], v.run_id or "", origin[1])
            if origin[2] is not None and origin[2] in origins:
                p = origins[origin[2]]
                pipeline = (p[0], origin[2], p[1])
        rows.append(VersionRow(v, run, pipeline))
    return rows
