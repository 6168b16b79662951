"""Plain ASGI middleware: Host checks and security headers, bearer tokens, body limits.

Each runs before routing and costs a few dictionary lookups per request, which
matters on the log-metric path (hundreds of calls a second from one client).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracking.errors import (
    PermissionDeniedError,
    RequestLimitExceededError,
    UnauthenticatedError,
)
from tracking.server.errors import (
    RequestTooLargeError,
    too_large_response,
    tracking_error_response,
)
from tracking.ui.auth import SessionSigner, TokenThrottle

__all__ = [
    "ARTIFACT_PROXY_PREFIX",
    "DOCS_PATHS",
    "OPEN_PATHS",
    "PAGE_POLICY",
    "BearerAuthMiddleware",
    "BodyLimitMiddleware",
    "HostCheckMiddleware",
    "HostMatcher",
    "PageConcurrencyMiddleware",
]

#: Paths that answer without a token: the health check.
OPEN_PATHS = frozenset({"/health"})
#: The API's description, open too when the server is started with ``--open-docs``.
DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/redoc"})
#: Where the APIs live: a refused call there gets JSON, never the login page.
API_PATH_PREFIXES = ("/api/", "/ajax-api/", "/openapi.json")
#: Artifact uploads stream through this prefix and have their own (optional) limit.
ARTIFACT_PROXY_PREFIX = "/api/2.0/mlflow-artifacts/"
#: The Content-Security-Policy of every HTML answer that sets none of its own (the UI's
#: pages and fragments, the API docs, error pages): scripts only from this server's files,
#: never inline, so a string that slipped through unescaped still cannot run. Styles may
#: be inline (htmx's indicator styles, a row's indent as a custom property).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'"
)


class BearerAuthMiddleware:
    """Refuses requests without ``Authorization: Bearer <token>`` (401 UNAUTHENTICATED).

    The token is compared in constant time; paths in :data:`OPEN_PATHS` stay open.
    Nothing behind this middleware runs for a refused request.

    With a ``sessions`` signer the web UI's session cookie
    (:mod:`tracking.ui.auth`) stands in for the header: any method but GET and
    HEAD then needs the session's CSRF token too (403 otherwise), and a browser
    asking for a page without either is sent to ``/ui/login``. Paths under
    ``open_prefixes`` (the UI's static files and its login page) stay open.

    With a ``throttle``, a wrong bearer token counts against the client's address
    (:class:`~tracking.ui.auth.TokenThrottle`); a locked-out address gets 429
    REQUEST_LIMIT_EXCEEDED whatever it sends. A missing header is not a guess.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        open_paths: Iterable[str] = OPEN_PATHS,
        *,
        sessions: SessionSigner | None = None,
        open_prefixes: tuple[str, ...] = (),
        throttle: TokenThrottle | None = None,
    ) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._open = frozenset(open_paths)
        self._open_prefixes = open_prefixes
        self._sessions = sessions
        self._throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self._open or path.startswith(self._open_prefixes):
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                supplied = value
                break
        client = _client_key(scope)
        if supplied and self._throttle is not None:
            wait = self._throttle.retry_after(client)
            if wait:
                await _locked_out(wait)(scope, receive, send)
                return
        if hmac.compare_digest(supplied, self._expected):
            await self.app(scope, receive, send)
            return
        if supplied and self._throttle is not None:
            self._throttle.failed(client, "Authorization header")
        # Not the API's way in: look for the UI's (the log calls never get here).
        cookie_header = csrf = accept = b""
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie_header = value
            elif name == b"x-csrf-token":
                csrf = value
            elif name == b"accept":
                accept = value
        session = self._session(cookie_header, scope) if not supplied else None
        if session is not None and self._sessions is not None:
            if scope["method"] in ("GET", "HEAD") or self._sessions.csrf_matches(
                session, csrf.decode("latin-1")
            ):
                await self.app(scope, receive, send)
                return
            response: Response = tracking_error_response(
                PermissionDeniedError(
                    "CSRF check failed: a write made with the UI's session cookie needs the "
                    "session's token in the X-CSRF-Token header"
                )
            )
        elif (
            self._sessions is not None
            and not supplied
            and scope["method"] == "GET"
            and b"text/html" in accept
            and not path.startswith(API_PATH_PREFIXES)
        ):
            target = path + (
                "?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else ""
            )
            response = RedirectResponse(
                f"{scope.get('root_path', '')}/ui/login?next={quote(target, safe='')}",
                status_code=303,
            )
        else:
            reason = "wrong bearer token" if supplied else "missing Authorization: Bearer header"
            response = tracking_error_response(
                UnauthenticatedError(f"authentication required: {reason}")
            )
        await response(scope, receive, send)

    def _session(self, cookie_header: bytes, scope: Scope) -> str | None:
        """The session cookie's value if it is one the signer issued and still valid."""
        if self._sessions is None or not cookie_header:
            return None
        cookies = SimpleCookie()
        try:
            cookies.load(cookie_header.decode("latin-1"))
        except CookieError:
            return None
        server = scope.get("server")
        name = self._sessions.cookie_name(
            server[1] if server else None, scope.get("scheme") == "https"
        )
        morsel = cookies.get(name)
        if morsel is None or not self._sessions.valid(morsel.value):
            return None
        return morsel.value


def _client_key(scope: Scope) -> str:
    """Whom a wrong token is counted against: the peer's address (the server does not
    trust proxy headers, so behind a proxy this is the proxy)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _locked_out(seconds: int) -> Response:
    response = tracking_error_response(
        RequestLimitExceededError(
            f"Too many wrong tokens from this address: try again in {seconds} s"
        )
    )
    response.headers["Retry-After"] = str(seconds)
    return response


class BodyLimitMiddleware:
    """Answers 413 to bodies over ``limit`` bytes (``artifact_limit`` under the proxy).

    A declared ``Content-Length`` over the limit is refused before reading; a
    chunked body is counted as it arrives and the read fails at the limit,
    before the endpoint does anything with it.
    """

    def __init__(self, app: ASGIApp, limit: int, artifact_limit: int | None = None) -> None:
        self.app = app
        self.limit = limit
        self.artifact_limit = artifact_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = (
            self.artifact_limit if scope["path"].startswith(ARTIFACT_PROXY_PREFIX) else self.limit
        )
        if limit is None:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    response = too_large_response(limit)
                    await response(scope, receive, send)
                    return
                break
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLargeError(limit)
            return message

        await self.app(scope, counting_receive, send)


class PageConcurrencyMiddleware:
    """Lets at most ``limit`` web UI requests into the app at once; the others wait on the
    event loop, holding no thread.

    The UI's handlers run in the threadpool the API's handlers share (40 threads).
    A burst of page requests would otherwise take every thread, and API calls would
    queue behind pages for seconds; building pages is CPU work under one interpreter
    lock, so more than a few at once gains nothing. The API, ``/health``, the static
    files and artifact downloads are never held back.
    """

    #: Paths that are not pages: never held back.
    EXEMPT = (*API_PATH_PREFIXES, "/health", "/ui/static/", "/ui/vendor/", "/ui/artifact/")

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        # One semaphore per event loop (a test client may drive the app from several).
        self._slots: dict[int, asyncio.Semaphore] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.EXEMPT):
            await self.app(scope, receive, send)
            return
        loop = id(asyncio.get_running_loop())
        slots = self._slots.get(loop)
        if slots is None:
            slots = self._slots[loop] = asyncio.Semaphore(self.limit)
        async with slots:
            await self.app(scope, receive, send)


class HostMatcher:
    """Which ``Host`` header values a server answers.

    Patterns: a name or address (``tracking.example.com``, ``10.0.0.5``,
    ``[::1]``), a wildcard for subdomains (``*.example.com``), ``private`` for
    any loopback or private IP address, and ``*`` for any host. A port in the
    header is ignored. Example::

        matcher = HostMatcher(["localhost", "private"])
        matcher.allows("127.0.0.1:5000"), matcher.allows("evil.example:5000")  # True, False
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        cleaned = [p.strip().lower() for p in patterns if p.strip()]
        self.any = "*" in cleaned
        self.private = "private" in cleaned
        self.names = frozenset(_bare(p) for p in cleaned if not p.startswith("*"))
        self.suffixes = tuple(p[1:] for p in cleaned if p.startswith("*."))

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one matcher per app, few distinct hosts
    def allows(self, header: str) -> bool:
        """Whether a request with this ``Host`` header is served."""
        if self.any:
            return True
        host = _bare(_without_port(header.strip().lower()))
        if not host:
            return False
        if host in self.names or host.endswith(self.suffixes):
            return True
        if self.private:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            return address.is_private or address.is_loopback
        return False


_PAGE_POLICY = PAGE_POLICY.encode()


def _needs_policy(headers: list[tuple[bytes, bytes]]) -> bool:
    """An HTML response without a Content-Security-Policy of its own."""
    html = False
    for name, value in headers:
        if name.lower() == b"content-security-policy":
            return False
        if name.lower() == b"content-type" and value.lower().startswith(b"text/html"):
            html = True
    return html


def _without_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def _bare(host: str) -> str:
    """An IPv6 address without its brackets; anything else as it is."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


class HostCheckMiddleware:
    """Refuses requests whose ``Host`` the server does not serve (403), and adds the
    security headers (``X-Content-Type-Options: nosniff`` and ``X-Frame-Options``)
    to every response, and :data:`PAGE_POLICY` as the Content-Security-Policy of every
    HTML response outside the APIs that sets none of its own.

    Checking the Host header is what stops DNS rebinding: a page on
    ``evil.example`` that re-points its name at 127.0.0.1 still sends
    ``Host: evil.example``.
    """

    def __init__(self, app: ASGIApp, matcher: HostMatcher, frame_options: str | None) -> None:
        self.app = app
        self.matcher = matcher
        headers = [(b"x-content-type-options", b"nosniff")]
        if frame_options:
            headers.append((b"x-frame-options", frame_options.encode()))
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers
        # The API answers JSON: its hot paths skip looking at the response's headers.
        page = not scope["path"].startswith(API_PATH_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), *extra]
                if page and _needs_policy(headers):
                    headers.append((b"content-security-policy", _PAGE_POLICY))
                message["headers"] = headers
            await send(message)

        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if not self.matcher.allows(host):
            response = tracking_error_response(
                PermissionDeniedError(
                    f"this server does not answer for Host {host!r}; start it with "
                    "--allowed-hosts naming that host to allow it"
                )
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
