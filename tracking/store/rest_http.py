"""The HTTP seam between trackflow's clients and a tracking server.

:class:`RestSession` owns one keep-alive :class:`httpx.Client` per process and
does what every call to the server needs: the bearer token, timeouts, retries
with exponential backoff and jitter, and the translation of whatever goes
wrong into :mod:`tracking.errors`. The REST store and the artifact repository
both sit on it; nothing above this module sees an httpx exception.

Retries cover connection errors, timeouts and the statuses 429, 502, 503 and
504 (a ``Retry-After`` header is honoured), with exponential backoff and
jitter, for up to ``retry_timeout`` seconds a call (120 by default): a server
restarting, or a server whose database is down (it answers 503 then), is
waited for rather than reported. That is safe because every call
trackflow makes is idempotent: metric points are deduplicated by the server,
a param logged again with the same value is a no-op, runs are created with a
run id the client chose, and artifact uploads replace the file.

Errors the server reports as ``{"error_code", "message", "error_class"}`` are
raised as the class named by ``error_class`` (falling back to the class of
``error_code``), with the server's message, so a caller catches the same
:class:`~tracking.errors.RunNotFoundError` whether its store is local or
behind a server::

    session = RestSession("http://127.0.0.1:5000", token=None, timeout=30.0, retry_timeout=120)
    payload = session.call("GET", session.url("api/2.0/mlflow/runs/get"),
                           params={"run_id": run_id})
"""

from __future__ import annotations

import copy
import email.utils
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
from pydantic_core import from_json, to_json

from tracking import errors
from tracking.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    NotFoundError,
    RequestLimitExceededError,
    StoreError,
    StoreUnavailableError,
    TrackingError,
    UnauthenticatedError,
    error_class_for_code,
)

__all__ = [
    "DEFAULT_RETRY_TIMEOUT",
    "RETRY_STATUSES",
    "Body",
    "EndpointNotFoundError",
    "RestSession",
    "dumps",
]

#: Statuses worth another try: the server or a proxy in front of it is busy or restarting.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Seconds a failing call is retried by default: a database or server restart fits.
DEFAULT_RETRY_TIMEOUT = 120.0

#: What a request body can be: bytes, or chunks of bytes streamed as they come.
Body = bytes | Iterable[bytes]

# Errors that say nothing about the request itself: the next attempt may work.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_JSON_HEADERS = {"Content-Type": "application/json"}
_MAX_RETRY_AFTER = 60.0
_BY_STATUS: dict[int, type[TrackingError]] = {
    400: InvalidParameterError,
    401: UnauthenticatedError,
    403: UnauthenticatedError,
    404: NotFoundError,
    409: AlreadyExistsError,
    422: InvalidParameterError,
    429: RequestLimitExceededError,
    503: StoreUnavailableError,
}


def dumps(payload: Any) -> bytes:
    """JSON for a request body; NaN and the infinities go as bare tokens, like the server's.

    pydantic-core's encoder: a 1000-point batch in a quarter of ``json.dumps``'s time.
    """
    return to_json(payload, inf_nan_mode="constants")


def _error_class(name: object) -> type[TrackingError] | None:
    """The class of :mod:`tracking.errors` called ``name``, if there is one."""
    if not isinstance(name, str) or name not in errors.__all__:
        return None
    found = getattr(errors, name, None)
    if isinstance(found, type) and issubclass(found, TrackingError):
        return found
    return None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


class EndpointNotFoundError(StoreError):
    """The server has no such route: the wrong address, or a server older than the client."""


class RestSession:
    """A pooled HTTP connection to one tracking server, with retries and error mapping.

    ``base_url`` is the server's address (``http://host:5000``, perhaps with a
    path prefix). ``token`` is sent as ``Authorization: Bearer <token>``.
    A call that fails in a way that may pass (see above) is tried again, waiting
    about ``backoff * 2**n`` seconds (at most ``max_backoff``, with jitter)
    before retry ``n``, as long as the next attempt starts within
    ``retry_timeout`` seconds of the first and, if ``max_retries`` is given, at
    most ``max_retries`` times. ``transport`` replaces httpx's network transport
    (tests); ``sleep`` replaces :func:`time.sleep` (the waits it is asked for
    count against ``retry_timeout`` even when it returns at once).

    The session is safe to share between threads; after ``os.fork`` the child
    opens connections of its own.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        max_retries: int | None = None,
        retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
        backoff: float = 0.25,
        max_backoff: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_timeout = retry_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._timeout = httpx.Timeout(timeout)
        self._transport = transport
        self._sleep = sleep
        self._headers = {"Accept": "application/json", "User-Agent": "trackflow"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._client = self._new_client()

    def __repr__(self) -> str:
        return f"RestSession({self.base_url!r})"

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            headers=self._headers,
            timeout=self._timeout,
            transport=self._transport,
            follow_redirects=False,
            # Every request goes to base_url (no redirects are followed): a plain-HTTP
            # server needs no TLS context, whose CA bundle takes ~50-250 ms to load in
            # each new process (every Airflow task process builds a client).
            verify=not self.base_url.startswith("http://"),
        )

    @property
    def client(self) -> httpx.Client:
        """The httpx client of this process (a forked child gets a fresh one)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    # The parent's pooled sockets are shared with the parent: never reuse them.
                    self._client = self._new_client()
                    self._pid = os.getpid()
        return self._client

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` on the server."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def endpoint(self, path: str) -> httpx.URL:
        """The parsed URL of ``path``: build it once, as httpx parses a string on every call."""
        return httpx.URL(self.url(path))

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def with_budget(
        self, *, timeout: float, max_retries: int | None, retry_timeout: float
    ) -> RestSession:
        """This session (its connections, token and backoff) with another retry budget
        and attempt timeout: a caller that must fail fast and one that must ride out a
        server restart share one connection pool."""
        other = copy.copy(self)
        other.timeout = timeout
        other._timeout = httpx.Timeout(timeout)
        other.max_retries = max_retries
        other.retry_timeout = retry_timeout
        return other

    # -- calls ----------------------------------------------------------------

    def call(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        body: Any = None,
        params: Mapping[str, str | int] | None = None,
        parse: bool = True,
    ) -> Any:
        """Send a JSON call and return the decoded JSON answer (``None`` if ``parse`` is False).

        ``body`` (any JSON-able value) is sent as JSON, NaN and infinities included.
        """
        content = None if body is None else dumps(body)
        response = self.request(
            method,
            url,
            params=params,
            content=content,
            headers=_JSON_HEADERS if content is not None else None,
        )
        if not parse:
            return None
        return self.decode(response, method, url)

    def decode(self, response: httpx.Response, method: str, url: str | httpx.URL) -> Any:
        """The JSON of a successful response; StoreError if it is not JSON."""
        if not response.content:
            return {}
        try:
            return from_json(response.content)
        except ValueError as exc:
            raise StoreError(
                f"{method} {url} answered {response.status_code} with a body that is not JSON "
                f"({response.content[:200]!r}); is {self.base_url} a trackflow server?"
            ) from exc

    def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        params: Mapping[str, str | int] | None = None,
        content: bytes | None = None,
        body: Callable[[], Body] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send a request, retrying what may succeed later; raise a TrackingError otherwise.

        ``body`` builds the request body anew for every attempt (for streamed
        uploads); ``content`` is sent as is. With ``stream`` the successful
        response is returned unread: the caller must close it.
        """
        attempt = 0
        started = time.monotonic()
        waited = 0.0
        while True:
            try:
                request = self.client.build_request(
                    method,
                    url,
                    params=params,
                    content=body() if body is not None else content,
                    headers=headers,
                    timeout=self._timeout,
                )
                response = self.client.send(request, stream=stream)
            except _TRANSIENT as exc:
                delay = self._delay(attempt)
                if not self._may_retry(attempt, started, waited, delay):
                    raise StoreUnavailableError(
                        f"cannot reach the tracking server at {self.base_url} "
                        f"({method} {url} failed {attempt + 1} times in "
                        f"{max(time.monotonic() - started, waited):.0f}s; last error: "
                        f"{type(exc).__name__}: {exc or 'no detail'})"
                    ) from exc
                self._sleep(delay)
                waited += delay
                attempt += 1
                continue
            except httpx.HTTPError as exc:
                raise StoreError(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
            status = response.status_code
            if status < 400:
                return response
            if status in RETRY_STATUSES:
                asked = _retry_after(response)
                delay = self._delay(attempt) if asked is None else asked
                if self._may_retry(attempt, started, waited, delay):
                    response.close()
                    self._sleep(delay)
                    waited += delay
                    attempt += 1
                    continue
            try:
                response.read()
            except httpx.HTTPError:
                pass  # the status alone still says what went wrong
            finally:
                response.close()
            raise self.error_for(response, method, url)

    def _may_retry(self, attempt: int, started: float, waited: float, delay: float) -> bool:
        """Whether retry number ``attempt + 1``, after ``delay`` more seconds, is in budget."""
        if self.max_retries is not None and attempt >= self.max_retries:
            return False
        spent = max(time.monotonic() - started, waited)
        return spent + delay <= self.retry_timeout

    def _delay(self, attempt: int) -> float:
        # Equal jitter: half the exponential delay, plus up to as much again at random,
        # so clients that failed together do not retry together.
        delay: float = min(self.max_backoff, self.backoff * 2.0 ** min(attempt, 60))
        return delay / 2 + random.uniform(0, delay / 2)

    # -- errors ---------------------------------------------------------------

    def error_for(
        self, response: httpx.Response, method: str, url: str | httpx.URL
    ) -> TrackingError:
        """The TrackingError a failed response stands for."""
        status = response.status_code
        try:
            payload = from_json(response.content) if response.content else None
        except ValueError:
            payload = None
        cls: type[TrackingError] | None = None
        message: str | None = None
        code: object = None
        if isinstance(payload, dict):
            code = payload.get("error_code")
            cls = _error_class(payload.get("error_class"))
            if cls is None and isinstance(code, str):
                found = error_class_for_code(code)
                cls = found if found is not TrackingError else None
            if isinstance(payload.get("message"), str):
                message = payload["message"]
            elif "detail" in payload:
                message = _detail_message(payload["detail"])
        if status == 401:
            hint = (
                "the token in TRACKFLOW_TRACKING_TOKEN was refused"
                if self.token
                else "set TRACKFLOW_TRACKING_TOKEN to a token it accepts"
            )
            return UnauthenticatedError(
                f"the tracking server at {self.base_url} requires authentication: {hint}"
                + (f" ({message})" if message else "")
            )
        if code == "ENDPOINT_NOT_FOUND" or (
            status == 404 and cls is None and message in (None, "Not Found")
        ):
            # A route the server does not know: the wrong address, or an older server.
            # Never a NotFoundError, which callers read as "no such run".
            return EndpointNotFoundError(
                f"{method} {url}: 404 {message or 'Not Found'}; is {self.base_url} a trackflow "
                "server of this version?"
            )
        if cls is None:
            cls = _BY_STATUS.get(status, StoreError if status >= 500 else TrackingError)
        if message is None:
            snippet = response.content[:200].decode("utf-8", "replace").strip()
            message = f"{method} {url} failed with HTTP {status}" + (
                f": {snippet}" if snippet else ""
            )
        return cls(message)


def _detail_message(detail: Any) -> str:
    """FastAPI's own error bodies: ``{"detail": "..."}`` or a list of validation errors."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
                parts.append(f"{where}: {item.get('msg', item)}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)
