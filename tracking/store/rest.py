"""``RestTrackingStore``: the tracking store behind a ``trackflow server``, over HTTP.

With ``TRACKFLOW_TRACKING_URI=http://host:5000`` (or ``https://``) every
:class:`~tracking.client.TrackingClient` call becomes one call to the
server's MLflow REST API 2.0 (``/api/2.0/mlflow/...``) or to trackflow's own
endpoints (``/api/2.0/trackflow/...``: idempotent run creation, children,
heartbeats, reaping)::

    client = TrackingClient("http://127.0.0.1:5000")
    run = client.create_run("0")
    client.log_metric(run.info.run_id, "auc", 0.91)

Transport, retries and error mapping live in :mod:`tracking.store.rest_http`;
the JSON shapes in :mod:`tracking.store.rest_json`; writes of many threads go
together, and writes nobody waits for (a step's end, through
:meth:`RestTrackingStore.deferring`) go in the background, in
:mod:`tracking.store.rest_batch`. Retrying is safe because
the store always picks the run id itself (``os.urandom(16).hex()`` unless the
caller chose one): a ``runs/create`` sent twice returns the same run.

Settings (read when the store is opened): ``TRACKFLOW_TRACKING_TOKEN`` is
sent as a bearer token, ``TRACKFLOW_HTTP_TIMEOUT`` bounds each attempt and
``TRACKFLOW_RETRY_TIMEOUT`` how long a failing call is retried (120 s: an
outage of the server or of its database is ridden out), and
``TRACKFLOW_HTTP_MAX_RETRIES`` how many times at most (default: no count limit).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import httpx

from tracking.entities import (
    DatasetInput,
    Experiment,
    Lineage,
    LineageEdge,
    Metric,
    PagedList,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from tracking.errors import NotFoundError, StoreError
from tracking.settings import TrackingSettings, get_settings
from tracking.store.base import TrackingStore
from tracking.store.rest_batch import BatchCall, Coalescer, DeferredWriteError
from tracking.store.rest_http import EndpointNotFoundError, RestSession
from tracking.store.rest_json import (
    compact_run_from_json,
    dataset_input_json,
    experiment_from_json,
    lineage_edge_json,
    lineage_from_json,
    metric_from_json,
    metrics_json,
    pairs_json,
    run_from_json,
    run_info_from_json,
)
from tracking.store.rest_models import RestModelsMixin

__all__ = ["MLFLOW_API", "TRACKFLOW_API", "DeferredWriteError", "RestTrackingStore"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

_HEARTBEAT_CHUNK = 1000
#: The columns of trackflow's log-batch, in Metric's field order.
_METRIC_COLUMNS = ("key", "value", "timestamp", "step")

#: Where MLflow's REST API lives on the server.
MLFLOW_API = "api/2.0/mlflow"
#: Where trackflow's own endpoints live on the server.
TRACKFLOW_API = "api/2.0/trackflow"


class RestTrackingStore(RestModelsMixin, TrackingStore):
    """Experiments and runs kept by a tracking server, reached through httpx.

    ``uri`` is the server's base address (``http://host:5000``, or with a path
    prefix behind a proxy). ``artifact_root`` is ignored: the server decides
    where artifacts go. ``token``, ``timeout``, ``max_retries`` and
    ``retry_timeout`` default to the ``TRACKFLOW_TRACKING_TOKEN``,
    ``TRACKFLOW_HTTP_TIMEOUT``, ``TRACKFLOW_HTTP_MAX_RETRIES`` and
    ``TRACKFLOW_RETRY_TIMEOUT`` settings; ``transport`` replaces the network
    (tests), ``backoff`` scales the waits between retries.
    """

    def __init__(
        self,
        uri: str,
        artifact_root: str | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_timeout: float | None = None,
        backoff: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        settings = get_settings()
        self.uri = uri
        self.artifact_root = artifact_root or ""
        self.http = RestSession(
            uri.split("?", 1)[0].split("#", 1)[0],
            token=token if token is not None else settings.tracking_token,
            timeout=timeout if timeout is not None else settings.http_timeout,
            max_retries=max_retries if max_retries is not None else _max_retries(settings),
            retry_timeout=retry_timeout if retry_timeout is not None else settings.retry_timeout,
            backoff=backoff,
            transport=transport,
        )
        url = self.http.endpoint
        # Prebuilt: the hot calls format nothing but their body.
        self._mlflow = {
            name: url(f"{MLFLOW_API}/{name}")
            for name in (
                "experiments/create",
                "experiments/get",
                "experiments/get-by-name",
                "experiments/search",
                "experiments/update",
                "experiments/delete",
                "experiments/restore",
                "experiments/set-experiment-tag",
                "experiments/delete-experiment-tag",
                "runs/get",
                "runs/update",
                "runs/delete",
                "runs/restore",
                "runs/log-batch",
                "runs/log-metric",
                "runs/log-parameter",
                "runs/set-tag",
                "runs/delete-tag",
                "runs/log-inputs",
                "runs/search",
                "metrics/get-history",
            )
        }
        self._trackflow = {
            name: url(f"{TRACKFLOW_API}/{name}")
            for name in (
                "batch",
                "runs/create",
                "runs/log-batch",
                "runs/search",
                "runs/children",
                "runs/heartbeat",
                "runs/reap-stale",
                "lineage/record",
                "lineage/get",
                "metrics/get-history-sampled",
            )
        }
        #: Whether the server has trackflow's lean log-batch and search (an older one
        #: answers 404, and MLflow's endpoints serve from then on).
        self._lean = True
        self._health_url = url("health")
        #: Idempotent writes of concurrent threads, sent together (see rest_batch).
        self._writes = Coalescer(self._send_one, self._send_many)
        self._batches = True
        #: The run whose ending writes this store defers (see :meth:`deferring`).
        self._deferred_run: RunInfo | None = None
        self._on_deferred_error: Callable[[BaseException], None] | None = None
        #: The session of a patient view's calls (see :meth:`patient`); None in others.
        self._via: RestSession | None = None

    def __repr__(self) -> str:
        return f"RestTrackingStore({self.http.base_url!r})"

    def close(self) -> None:
        """Deliver the deferred writes (see :meth:`flush`), then close the connections."""
        try:
            self.flush()
        finally:
            self.http.close()

    # -- deferred writes ------------------------------------------------------

    def deferring(
        self, run: RunInfo, on_error: Callable[[BaseException], None] | None = None
    ) -> RestTrackingStore:
        """This store, except that its writes to ``run`` that need no answer (its status
        and end, its tags) are deferred: queued, and sent ahead of the store's next
        call or within ``Coalescer.linger`` seconds in the background, while the caller
        goes on. An orchestrator's hook ends a step's run so without waiting for the
        server. ``update_run_info`` answers ``run`` as it will be once the write is in.
        ``on_error(error)`` hears of a deferred write the server refused, or could not
        be reached for (the first time: the write waits for the next try); without
        it :meth:`flush` raises the refused ones.

        Every call of the store (and of its other views) goes after the deferred
        writes queued before it, so the process reads its own writes; :meth:`flush`
        waits for them and raises those the server refused::

            view = store.deferring(run.info)
            view.update_run_info(run.info.run_id, RunStatus.FINISHED, now_ms, None)
            ...
            store.flush()  # before ending what the run belongs to
        """
        view = copy.copy(self)
        view._deferred_run = run
        view._on_deferred_error = on_error
        return view

    def patient(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_timeout: float | None = None,
    ) -> RestTrackingStore:
        """This store, except that its calls retry with the full budget (``timeout``,
        ``max_retries`` and ``retry_timeout`` default to the ``TRACKFLOW_HTTP_TIMEOUT``,
        ``TRACKFLOW_HTTP_MAX_RETRIES`` and ``TRACKFLOW_RETRY_TIMEOUT`` settings), so a
        server restart is waited out; the store itself keeps its own budget.

        An orchestrator's hooks use a store that gives up at once (the pipeline must not
        wait for tracking), while the user code of a step logs through the same store's
        patient view: one store, so every call still goes after the deferred writes
        queued before it (read-your-writes), and the coalesced writes of the view (with
        whatever travels in the same request, deferred writes included) go with the
        patient budget too::

            hooks = RestTrackingStore(uri, max_retries=1, timeout=10.0)
            user = hooks.patient()
        """
        settings = get_settings()
        view = copy.copy(self)
        view.http = view._via = self.http.with_budget(
            timeout=timeout if timeout is not None else settings.http_timeout,
            max_retries=max_retries if max_retries is not None else _max_retries(settings),
            retry_timeout=retry_timeout if retry_timeout is not None else settings.retry_timeout,
        )
        return view

    def flush(self) -> None:
        """Deliver the deferred writes queued so far and wait for them: those the server
        refused since the last flush raise :class:`DeferredWriteError` (once); an
        unreachable server raises StoreUnavailableError (they are sent again later)."""
        self._writes.flush(via=self._via)

    def _defers(self, run_id: str) -> bool:
        return self._deferred_run is not None and self._deferred_run.run_id == run_id

    def _direct(self, method: str, url: httpx.URL, **kwargs: Any) -> Any:
        """A call that is not a coalesced write: after the deferred writes queued so far
        (their errors are the flush's to report, not this caller's)."""
        if self._writes.pending:
            self._writes.flush(report=False, via=self._via)
        return self.http.call(method, url, **kwargs)

    @contextlib.contextmanager
    def _lean_or_mlflow(self) -> Iterator[None]:
        """Around a call to a lean endpoint: a server without it (404, nothing done)
        turns them off for this store, and the caller goes on with MLflow's."""
        try:
            yield
        except EndpointNotFoundError:
            _log.warning(
                "%s has no lean log-batch/search endpoints (an older trackflow server?); "
                "using MLflow's",
                self.http.base_url,
            )
            self._lean = False

    # -- coalesced writes -----------------------------------------------------

    #: The endpoint of each coalesced write when it goes alone.
    _WRITES = {"runs/create": "trackflow", "runs/update": "mlflow", "runs/log-batch": "mlflow"}

    def _write(self, name: str, body: dict[str, Any]) -> Any:
        """An idempotent write, sent with those other threads send meanwhile."""
        return self._writes.call(name, body, via=self._via)

    def _session(self, calls: Sequence[BatchCall]) -> RestSession:
        """The session a request of coalesced writes goes with: a patient view's if one
        of them came from one (see :meth:`patient`), else the store's own."""
        for call in calls:
            if isinstance(call.via, RestSession):
                return call.via
        return self.http

    def _send_one(self, call: BatchCall, http: RestSession | None = None) -> Any:
        http = http or self._session((call,))
        return http.call("POST", self._send_url(call), body=call.body)

    def _send_many(self, calls: Sequence[BatchCall]) -> None:
        http = self._session(calls)
        if not self._batches:
            for call in calls:
                try:
                    call.answer = self._send_one(call, http)
                except Exception as exc:
                    call.error = exc
            return
        url = self._trackflow["batch"]
        body = {"calls": [{"call": call.name, "body": call.body} for call in calls]}
        try:
            answer = http.call("POST", url, body=body)
        except EndpointNotFoundError:
            _log.warning(
                "%s has no batch endpoint (an older trackflow server?); writes go one by one",
                self.http.base_url,
            )
            self._batches = False
            self._send_many(calls)
            return
        answers = answer.get("answers") if isinstance(answer, dict) else None
        if not isinstance(answers, list) or len(answers) != len(calls):
            raise StoreError(f"POST {url} answered {len(calls)} calls with {answer!r:.200}")
        for call, one in zip(calls, answers, strict=True):
            status, payload = one.get("status", 500), one.get("body", {})
            if status < 400:
                call.answer = payload
            else:
                response = httpx.Response(status, json=payload)
                call.error = self.http.error_for(response, "POST", self._send_url(call))

    def _send_url(self, call: BatchCall) -> httpx.URL:
        urls = self._trackflow if self._WRITES[call.name] == "trackflow" else self._mlflow
        return urls[call.name]

    def _post(self, name: str, body: dict[str, Any], parse: bool = True) -> Any:
        return self._direct("POST", self._mlflow[name], body=body, parse=parse)

    def _get(self, name: str, **params: str | int) -> Any:
        return self._direct("GET", self._mlflow[name], params=params)

    def health(self) -> Any:
        """The server's ``/health`` answer (StoreUnavailableError if it cannot be reached)."""
        return self.http.call("GET", self._health_url)

    # -- experiments ------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: Sequence[tuple[str, str]] = (),
    ) -> str:
        body: dict[str, Any] = {"name": name, "tags": pairs_json(tags)}
        if artifact_location:
            body["artifact_location"] = artifact_location
        answer = self._post("experiments/create", body)
        return str(_field(answer, "experiment_id"))

    def get_experiment(self, experiment_id: str) -> Experiment:
        answer = self._get("experiments/get", experiment_id=experiment_id)
        return _parsed(experiment_from_json, answer, "experiment")

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        try:
            answer = self._get("experiments/get-by-name", experiment_name=name)
        except NotFoundError:
            return None
        return _parsed(experiment_from_json, answer, "experiment")

    def search_experiments(
        self,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        body: dict[str, Any] = {
            "view_type": ViewType(view_type).name,
            "max_results": max_results,
            "filter": filter_string,
            "order_by": list(order_by or ()),
        }
        if page_token:
            body["page_token"] = page_token
        answer = self._post("experiments/search", body)
        return _page(answer, "experiments", experiment_from_json)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        self._post(
            "experiments/update",
            {"experiment_id": experiment_id, "new_name": new_name},
            parse=False,
        )

    def delete_experiment(self, experiment_id: str) -> None:
        self._post("experiments/delete", {"experiment_id": experiment_id}, parse=False)

    def restore_experiment(self, experiment_id: str) -> None:
        self._post("experiments/restore", {"experiment_id": experiment_id}, parse=False)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._post(
            "experiments/set-experiment-tag",
            {"experiment_id": experiment_id, "key": key, "value": value},
            parse=False,
        )

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self._post(
            "experiments/delete-experiment-tag",
            {"experiment_id": experiment_id, "key": key},
            parse=False,
        )

    # -- runs -------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: Sequence[RunTag],
        run_name: str | None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        status: RunStatus = RunStatus.RUNNING,
    ) -> Run:
        # Chosen here, never by the server: a retried create must find the run it made.
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            "run_id": run_id or os.urandom(16).hex(),
            "user_id": user_id,
            "start_time": start_time,
            "tags": pairs_json(tags),
            "status": RunStatus(status).value,
        }
        if run_name is not None:
            body["run_name"] = run_name
        if parent_run_id is not None:
            body["parent_run_id"] = parent_run_id
        return _parsed(run_from_json, self._write("runs/create", body), "run")

    def get_run(self, run_id: str) -> Run:
        return _parsed(run_from_json, self._get("runs/get", run_id=run_id), "run")

    def update_run_info(
        self,
        run_id: str,
        status: RunStatus | None,
        end_time: int | None,
        run_name: str | None,
    ) -> RunInfo:
        body: dict[str, Any] = {"run_id": run_id}
        if status is not None:
            body["status"] = RunStatus(status).value
        if end_time is not None:
            body["end_time"] = end_time
        if run_name is not None:
            body["run_name"] = run_name
        known = self._deferred_run
        if known is not None and known.run_id == run_id:
            self._writes.defer("runs/update", body, self._on_deferred_error)
            # What the server will answer once the write is in (the view's own copy).
            self._deferred_run = dataclasses.replace(
                known,
                status=known.status if status is None else RunStatus(status),
                end_time=known.end_time if end_time is None else end_time,
                run_name=known.run_name if run_name is None else run_name,
            )
            return self._deferred_run
        return _parsed(run_info_from_json, self._write("runs/update", body), "run_info")

    def delete_run(self, run_id: str) -> None:
        self._post("runs/delete", {"run_id": run_id}, parse=False)

    def restore_run(self, run_id: str) -> None:
        self._post("runs/restore", {"run_id": run_id}, parse=False)

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        body: dict[str, Any] = {"run_id": run_id}
        if params:
            body["params"] = pairs_json(params)
        if tags:
            body["tags"] = pairs_json(tags)
        if not metrics:  # params and tags: idempotent, so coalesced
            if not params and self._defers(run_id):
                self._writes.defer("runs/log-batch", body, self._on_deferred_error)
                return
            self._write("runs/log-batch", body)
            return
        if self._lean:
            # trackflow's log-batch: the points as four columns, under half MLflow's JSON.
            if metrics:
                columns = zip(*metrics, strict=True)
                body["metrics"] = dict(zip(_METRIC_COLUMNS, columns, strict=True))
            with self._lean_or_mlflow():
                self._direct("POST", self._trackflow["runs/log-batch"], body=body, parse=False)
                return
        body["metrics"] = metrics_json(metrics)
        self._post("runs/log-batch", body, parse=False)

    def log_metric(self, run_id: str, metric: Metric) -> None:
        key, value, timestamp, step = metric
        body = {"run_id": run_id, "key": key, "value": value, "timestamp": timestamp, "step": step}
        self._post("runs/log-metric", body, parse=False)

    def log_param(self, run_id: str, param: Param) -> None:
        # A batch of one (coalesced with other threads' writes): the same validation.
        self._write("runs/log-batch", {"run_id": run_id, "params": pairs_json([param])})

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        body = {"run_id": run_id, "tags": pairs_json([tag])}
        if self._defers(run_id):
            self._writes.defer("runs/log-batch", body, self._on_deferred_error)
            return
        self._write("runs/log-batch", body)

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        body = {"run_id": run_id, "datasets": [dataset_input_json(item) for item in inputs]}
        self._post("runs/log-inputs", body, parse=False)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._post("runs/delete-tag", {"run_id": run_id, "key": key}, parse=False)

    def get_metric_history(
        self,
        run_id: str,
        key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        params: dict[str, str | int] = {"run_id": run_id, "metric_key": key}
        if max_results is not None:
            params["max_results"] = max_results
        if page_token:
            params["page_token"] = page_token
        page = _page(self._get("metrics/get-history", **params), "metrics", metric_from_json)
        if max_results is not None:
            return page
        # Everything was asked for: follow the pages the server cut.
        points = list(page)
        while page.token:
            params["page_token"] = page.token
            page = _page(self._get("metrics/get-history", **params), "metrics", metric_from_json)
            points.extend(page)
        return PagedList(points)

    def get_metric_history_sampled(
        self, run_id: str, key: str, max_points: int = 1000
    ) -> list[Metric]:
        answer = self._direct(
            "GET",
            self._trackflow["metrics/get-history-sampled"],
            params={"run_id": run_id, "metric_key": key, "max_points": max_points},
        )
        return list(_page(answer, "metrics", metric_from_json))

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        body: dict[str, Any] = {
            "experiment_ids": list(experiment_ids),
            "filter": filter_string,
            "run_view_type": ViewType(run_view_type).name,
            "max_results": max_results,
            "order_by": list(order_by or ()),
        }
        if page_token:
            body["page_token"] = page_token
        if self._lean:
            with self._lean_or_mlflow():
                answer = self._direct("POST", self._trackflow["runs/search"], body=body)
                return _page(answer, "runs", compact_run_from_json)
        return _page(self._post("runs/search", body), "runs", run_from_json)

    # -- trackflow additions ------------------------------------------------

    def get_children(self, run_id: str, recursive: bool = False) -> list[Run]:
        answer = self._direct(
            "GET",
            self._trackflow["runs/children"],
            params={"run_id": run_id, "recursive": "true" if recursive else "false"},
        )
        return list(_page(answer, "runs", run_from_json))

    def record_lineage(self, edge: LineageEdge) -> None:
        self._direct(
            "POST", self._trackflow["lineage/record"], body=lineage_edge_json(edge), parse=False
        )

    def get_lineage(self, run_id: str) -> Lineage:
        answer = self._direct("GET", self._trackflow["lineage/get"], params={"run_id": run_id})
        try:
            return lineage_from_json(answer)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise _malformed("lineage", answer, exc) from exc

    def heartbeat(self, run_ids: Sequence[str], timestamp: int) -> None:
        ids = list(run_ids)
        # The server takes at most 1000 ids per call.
        for start in range(0, len(ids), _HEARTBEAT_CHUNK):
            self._direct(
                "POST",
                self._trackflow["runs/heartbeat"],
                body={"run_ids": ids[start : start + _HEARTBEAT_CHUNK], "timestamp": timestamp},
                parse=False,
            )

    def reap_stale_runs(self, older_than_ms: int, now: int, reason: str) -> list[str]:
        """Reap on the server, by the server's clock (``now`` and ``reason`` are its own)."""
        answer = self._direct(
            "POST", self._trackflow["runs/reap-stale"], body={"older_than_ms": older_than_ms}
        )
        return [str(run_id) for run_id in _field(answer, "run_ids")]


def _max_retries(settings: TrackingSettings) -> int | None:
    """``TRACKFLOW_HTTP_MAX_RETRIES``: a cap on top of the retry timeout (None by
    default: a handful of retries would not outlast a database restart)."""
    return settings.http_max_retries


def _malformed(what: str, answer: Any, exc: Exception) -> StoreError:
    return StoreError(
        f"the tracking server sent a malformed {what}: {type(exc).__name__}: {exc} "
        f"(in {str(answer)[:200]})"
    )


def _field(answer: Any, name: str) -> Any:
    try:
        return answer[name]
    except (KeyError, TypeError) as exc:
        raise _malformed(f"answer (no {name!r})", answer, exc) from exc


def _parsed(parse: Callable[[Any], T], answer: Any, name: str) -> T:
    try:
        return parse(answer[name])
    except (KeyError, TypeError, ValueError) as exc:
        raise _malformed(name, answer, exc) from exc


def _page(answer: Any, name: str, parse: Callable[[Any], T]) -> PagedList[T]:
    try:
        items = [parse(item) for item in answer.get(name) or ()]
        token = answer.get("next_page_token") or None
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise _malformed(f"list of {name}", answer, exc) from exc
    return PagedList(items, token)
