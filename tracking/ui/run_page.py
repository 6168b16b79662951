"""A run's page (``/experiments/{id}/runs/{run_id}``), its artifacts browser, previews and
downloads.

The page shows the run's info, params, latest metrics, tags, note, parent
breadcrumb and children, an orchestrator panel for pipeline runs (links back
into Airflow or Prefect from the run's tags), lineage both ways, the logged models
it produced and used (with their registered versions), and charts of each metric
drawn from the sampled-history endpoint by ``static/app.js``.

A run may hold tens of thousands of params and tags of thousands of characters:
the page reads and shows the first :data:`KV_PAGE` of each kind (and the tags
it always needs by name), and ``/ui/run-values`` brings the rest a page at a
time. The run itself is read without its data (:func:`run_record`). A preview
that cannot be made (a CSV field over the csv module's limit, JSON nested too
deeply) falls back to download-only with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import mimetypes
import posixpath
from typing import IO, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from tracking.entities import FileInfo, Run
from tracking.errors import TrackingError
from tracking.server.routes.artifacts import attachment_header, stream_chunks
from tracking.server.state import ServerState, StateDep
from tracking.store.sql.browse import (
    ancestors,
    available_keys,
    browse_runs,
    is_pipeline_run,
    logged_model_refs,
    pipeline_steps,
    run_names,
    run_record,
    run_tags,
    run_values,
)
from tracking.ui.model_reads import model_path, registry_path, run_models
from tracking.ui.pipeline import pipeline_of, pipeline_view
from tracking.ui.render import page, safe_url
from tracking.ui.runs import table_view

__all__ = [
    "KV_PAGE",
    "NOTE_TAG",
    "PREVIEW_LIMITS",
    "artifact_preview",
    "orchestrator_panel",
    "preview_kind",
    "router",
]

router = APIRouter(include_in_schema=False)

NOTE_TAG = "mlflow.note.content"
#: Params, tags, system tags and metrics shown per page of a run's page.
KV_PAGE = 100
#: Tags the run page reads by name, however many others the run has.
_NAMED_TAGS = (
    NOTE_TAG,
    "trackflow.failureReason",
    "trackflow.orchestrator",
    *(
        f"airflow.{k}"
        for k in (
            "dag_id",
            "run_id",
            "task_id",
            "try_number",
            "map_index",
            "operator",
            "run_type",
            "logical_date",
            "url",
        )
    ),
    *(
        f"prefect.{k}"
        for k in (
            "flow_name",
            "flow_run_name",
            "flow_run_id",
            "task_run_name",
            "task_run_id",
            "map_index",
            "run_count",
            "deployment_id",
            "url",
        )
    ),
)
#: The largest file each kind of preview reads; anything bigger is offered as a download.
PREVIEW_LIMITS = {
    "text": 1 << 20,
    "json": 1 << 20,
    "table": 2 << 20,
    "image": 10 << 20,
    "html": 2 << 20,
}
#: The most rows and columns a CSV/TSV preview shows.
TABLE_ROWS, TABLE_COLUMNS = 500, 50
_CHILDREN_SHOWN = 100
_TEXT = {
    ".txt",
    ".log",
    ".md",
    ".py",
    ".yaml",
    ".yml",
    ".toml",
    ".cfg",
    ".ini",
    ".sql",
    ".sh",
    ".r",
    ".xml",
    ".ipynb",
    ".jsonl",
    ".out",
    ".err",
    ".mlmodel",
    "",
}
_IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".bmp"}
_KINDS = {".json": "json", ".csv": "table", ".tsv": "table", ".html": "html", ".htm": "html"}


def preview_kind(path: str) -> str | None:
    """How a file is previewed: text, json, table, image, html, or None (download only)."""
    name = posixpath.basename(path).lower()
    ext = posixpath.splitext(name)[1]
    if name in ("mlmodel", "requirements.txt", "conda.yaml", "license", "readme"):
        return "text"
    if ext in _KINDS:
        return _KINDS[ext]
    if ext in _IMAGES:
        return "image"
    if ext in _TEXT:
        return "text"
    return None


def orchestrator_panel(tags: dict[str, str]) -> dict[str, Any] | None:
    """What the orchestrator panel shows for a pipeline run, from its tags (None: not one)."""
    if "airflow.dag_id" in tags:
        fields = [
            ("DAG", tags.get("airflow.dag_id")),
            ("DAG run", tags.get("airflow.run_id")),
            ("Task", tags.get("airflow.task_id")),
            ("Try", tags.get("airflow.try_number")),
            ("Map index", tags.get("airflow.map_index")),
            ("Operator", tags.get("airflow.operator")),
            ("Run type", tags.get("airflow.run_type")),
            ("Logical date", tags.get("airflow.logical_date")),
        ]
        return {
            "name": "Airflow",
            "kind": "task instance" if "airflow.task_id" in tags else "DAG run",
            "fields": [(k, v) for k, v in fields if v not in (None, "", "-1")],
            "url": safe_url(tags.get("airflow.url")),
        }
    if "prefect.flow_run_id" in tags:
        fields = [
            ("Flow", tags.get("prefect.flow_name")),
            ("Flow run", tags.get("prefect.flow_run_name")),
            ("Flow run id", tags.get("prefect.flow_run_id")),
            ("Task run", tags.get("prefect.task_run_name")),
            ("Task run id", tags.get("prefect.task_run_id")),
            ("Map index", tags.get("prefect.map_index")),
            ("Run count", tags.get("prefect.run_count")),
            ("Deployment", tags.get("prefect.deployment_id")),
        ]
        return {
            "name": "Prefect",
            "kind": "task run" if "prefect.task_run_id" in tags else "flow run",
            "fields": [(k, v) for k, v in fields if v not in (None, "", "-1")],
            "url": safe_url(tags.get("prefect.url")),
        }
    return None


def _run(request: Request, state: ServerState, experiment_id: str, run_id: str) -> Run | Response:
    try:
        run = run_record(state.store, run_id)
    except TrackingError as exc:
        return page(request, "error.html", status_code=404, title="Run not found", error=str(exc))
    if run.info.experiment_id != experiment_id:
        return page(
            request,
            "error.html",
            status_code=404,
            title="Run not found",
            error=f"Run {run_id} is in experiment {run.info.experiment_id}, not {experiment_id}",
            link=f"/experiments/{run.info.experiment_id}/runs/{run_id}",
        )
    return run


@router.get("/experiments/{experiment_id}/runs/{run_id}")
def run_page(
    request: Request, state: StateDep, experiment_id: str, run_id: str, sort: str = ""
) -> Response:
    """Everything about one run (the first :data:`KV_PAGE` of its params, tags and metrics);
    ``sort`` orders its children table (``metrics.`loss` ASC``, as the runs table's)."""
    found = _run(request, state, experiment_id, run_id)
    if isinstance(found, Response):
        return found
    run = found
    store = state.store
    experiment = store.get_experiment(experiment_id)
    chain = ancestors(store, run_id)
    keys = available_keys(store, [experiment_id])
    # A sweep's point: the children's params beside their metrics.
    metric_columns = [f"m:{k}" for k in keys["metrics"][:5]]
    param_columns = [f"p:{k}" for k in keys["params"][:5]]
    try:
        child_table = table_view(
            [experiment_id], "", sort, ["_", *param_columns, *metric_columns], "active"
        )
    except TrackingError as exc:
        return page(request, "error.html", status_code=400, title="Bad sort", error=str(exc))
    children = browse_runs(
        store,
        [experiment_id],
        parent_run_id=run_id,
        sort=child_table.sort,
        limit=_CHILDREN_SHOWN,
        columns=child_table.columns,
        count=True,
    )
    lineage = store.get_lineage(run_id)
    linked = [e.producer_run_id for e in lineage.consumed]
    linked += [e.consumer_run_id for e in lineage.produced]
    names = run_names(store, linked)
    tags = run_tags(store, run_id, _NAMED_TAGS)
    pipe = None
    history_link = history_name = None
    paths = [e.artifact_path for e in (*lineage.consumed, *lineage.produced)]
    steps = pipeline_steps(store, run_id) if is_pipeline_run(store, run_id) else None
    if steps is not None:
        paths += [path for _producer, _consumer, path in steps.edges]
    # models:/<id> edges (a logged model handed between tasks) link to the model's page.
    model_refs = logged_model_refs(store, paths)
    if steps is not None:
        pipe = pipeline_view(steps)
        named = pipeline_of(tags) if "trackflow.orchestrator" in tags else None
        if named is not None:
            history_name = named[1]
            history_link = (
                f"/experiments/{experiment_id}/pipelines/{named[0]}/{quote(named[1], safe='')}"
            )
    values = {
        kind: run_values(store, run_id, kind, limit=KV_PAGE, count=True)
        for kind in ("params", "metrics", "tags", "system")
    }
    return page(
        request,
        "run.html",
        run=run,
        experiment=experiment,
        chain=chain,
        children=children,
        child_table=child_table,
        lineage=lineage,
        names=names,
        model_refs=model_refs,
        note=tags.get(NOTE_TAG, ""),
        note_tag=NOTE_TAG,
        failure=tags.get("trackflow.failureReason"),
        panel=orchestrator_panel(tags),
        pipe=pipe,
        history_link=history_link,
        history_name=history_name,
        values=values,
        metric_keys=[item[0] for item in values["metrics"].items],
        models=run_models(store, run_id),
        model_path=model_path,
        registry_path=registry_path,
    )


@router.get("/ui/note")
def note_fragment(request: Request, state: StateDep, run_id: str) -> Response:
    """A run's note, rendered (what the page shows after the note is saved)."""
    try:
        tags = run_tags(state.store, run_id, [NOTE_TAG])
    except TrackingError as exc:
        return page(request, "rows_error.html", status_code=400, error=str(exc))
    return page(request, "note.html", note=tags.get(NOTE_TAG, ""))


@router.get("/ui/run-values")
def run_values_fragment(
    request: Request, state: StateDep, run_id: str, kind: str, after: str | None = None
) -> Response:
    """The next page of a run's params, tags, system tags or metrics, as ``<tr>`` rows."""
    try:
        found = run_values(state.store, run_id, kind, after=after, limit=KV_PAGE)
    except TrackingError as exc:
        return page(request, "rows_error.html", status_code=400, error=str(exc))
    return page(
        request,
        "run_values.html",
        fragment=True,
        kind=kind,
        values=found,
        run_id=run_id,
        note_tag=NOTE_TAG,
    )


def _listing(state: ServerState, run: Run, path: str) -> list[FileInfo]:
    return sorted(
        state.proxy.list_run_artifacts(run, path or None), key=lambda f: (not f.is_dir, f.path)
    )


@router.get("/experiments/{experiment_id}/runs/{run_id}/artifacts")
def artifacts_page(
    request: Request, state: StateDep, experiment_id: str, run_id: str, path: str = ""
) -> Response:
    """The run's artifacts: a directory listing, or a file with its preview."""
    found = _run(request, state, experiment_id, run_id)
    if isinstance(found, Response):
        return found
    run = found
    files = browse_files(state, run, path, f"No artifact {path.strip('/')!r} in run {run_id}")
    return page(
        request,
        "artifacts.html",
        status_code=404 if files["error"] else 200,
        run=run,
        experiment=state.store.get_experiment(run.info.experiment_id),
        **files,
    )


def browse_files(state: ServerState, owner: Run, path: str, missing: str) -> dict[str, Any]:
    """The files of ``owner`` (a run, or a logged model's files as a run) under ``path``
    (a directory), or ``path``'s directory with the file and its preview: the template
    values of a file browser. ``missing`` is the error when ``path`` names nothing."""
    path = path.strip("/")
    parent = posixpath.dirname(path)
    error = None
    entries: list[FileInfo] = []
    selected: FileInfo | None = None
    try:
        if path:
            siblings = _listing(state, owner, parent)
            selected = next((f for f in siblings if f.path == path), None)
        listing_dir = selected is None or selected.is_dir
        entries = _listing(state, owner, path) if listing_dir else siblings
    except TrackingError as exc:
        error = str(exc)
    if path and selected is None and error is None:
        error = missing
    preview = None
    if selected is not None and not selected.is_dir:
        try:
            preview = artifact_preview(state, owner, selected)
        except TrackingError as exc:
            error = str(exc)
    parts = path.split("/") if path else []
    # The directory whose entries are listed: the file's own when a file is shown.
    listed = parent if selected is not None and not selected.is_dir else path
    return {
        "path": path,
        "entries": entries,
        "selected": selected,
        "preview": preview,
        "crumbs": [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)],
        "up": posixpath.dirname(listed) if listed else None,
        "error": error,
    }


def _read_limited(stream: IO[bytes], limit: int) -> bytes:
    try:
        return stream.read(limit + 1)
    finally:
        stream.close()


def artifact_preview(state: ServerState, run: Run, info: FileInfo) -> dict[str, Any]:
    """What the artifacts page shows of a file: its preview kind and content, or why not."""
    kind = preview_kind(info.path)
    result: dict[str, Any] = {"kind": kind, "limit": None, "too_large": False}
    if kind is None:
        return result
    limit = PREVIEW_LIMITS[kind]
    result["limit"] = limit
    if info.file_size is not None and info.file_size > limit:
        result["too_large"] = True
        return result
    if kind in ("image", "html"):
        return result  # the browser loads these from the raw URL
    data = _read_limited(state.proxy.open_run_artifact(run, info.path), limit)
    if len(data) > limit:
        result["too_large"] = True
        return result
    text = data.decode("utf-8", "replace")
    try:
        return _parsed(result, kind, text, info.path)
    except RecursionError:
        reason = "nested too deeply to show (Python's recursion limit)"
    except csv.Error as exc:
        reason = f"not a table the preview can read ({exc})"
    return {**result, "kind": None, "reason": reason}


def _parsed(result: dict[str, Any], kind: str, text: str, path: str) -> dict[str, Any]:
    if kind == "json":
        try:
            result["text"] = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError as exc:
            result.update(kind="text", text=text, note=f"not valid JSON ({exc}); shown as text")
        return result
    if kind == "table":
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
        rows = []
        for i, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter)):
            if i > TABLE_ROWS:
                result["truncated"] = True
                break
            rows.append(row[:TABLE_COLUMNS])
        result["header"], result["rows"] = (rows[0], rows[1:]) if rows else ([], [])
        return result
    result["text"] = text
    return result


@router.get("/ui/artifact/{run_id}/{path:path}")
def raw_artifact(
    request: Request, state: StateDep, run_id: str, path: str, download: bool = False
) -> Response:
    """A file of a run: inline for previews (HTML sandboxed by CSP), or as a download."""
    try:
        run = run_record(state.store, run_id)
        stream = state.proxy.open_run_artifact(run, path)
    except TrackingError as exc:
        return page(
            request, "error.html", status_code=404, title="No such artifact", error=str(exc)
        )
    return user_file_response(stream, path, download)


def user_file_response(stream: IO[bytes], path: str, download: bool) -> StreamingResponse:
    """A run's or a model's file, raw: sandboxed, and an attachment unless it is an image
    or HTML shown in the preview frame."""
    name = posixpath.basename(path)
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = {
        # User data: it may not run scripts with the UI's origin, or at all.
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src data: 'self'; "
        "style-src 'unsafe-inline'",
    }
    if download or preview_kind(path) not in ("image", "html"):
        headers["Content-Disposition"] = attachment_header(name)
    return StreamingResponse(stream_chunks(stream), media_type=media, headers=headers)
