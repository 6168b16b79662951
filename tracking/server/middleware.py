"""Plain ASGI middleware: Host checks and security headers, bearer tokens, body limits.

Each runs before routing and costs a few dictionary lookups per request, which
matters on the log-metric path (hundreds of calls a second from one client).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracking.errors import PermissionDeniedError, UnauthenticatedError
from tracking.server.errors import (
    RequestTooLargeError,
    too_large_response,
    tracking_error_response,
)

__all__ = [
    "ARTIFACT_PROXY_PREFIX",
    "DOCS_PATHS",
    "OPEN_PATHS",
    "BearerAuthMiddleware",
    "BodyLimitMiddleware",
    "HostCheckMiddleware",
    "HostMatcher",
]

#: Paths that answer without a token: the health check.
OPEN_PATHS = frozenset({"/health"})
#: The API's description, open too when the server is started with ``--open-docs``.
DOCS_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
#: Artifact uploads stream through this prefix and have their own (optional) limit.
ARTIFACT_PROXY_PREFIX = "/api/2.0/mlflow-artifacts/"


class BearerAuthMiddleware:
    """Refuses requests without ``Authorization: Bearer <token>`` (401 UNAUTHENTICATED).

    The token is compared in constant time; paths in :data:`OPEN_PATHS` stay open.
    Nothing behind this middleware runs for a refused request.
    """

    def __init__(self, app: ASGIApp, token: str, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._open = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open:
            await self.app(scope, receive, send)
            return
        supplied = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                supplied = value
                break
        if hmac.compare_digest(supplied, self._expected):
            await self.app(scope, receive, send)
            return
        reason = "wrong bearer token" if supplied else "missing Authorization: Bearer header"
        response = tracking_error_response(
            UnauthenticatedError(f"authentication required: {reason}")
        )
        await response(scope, receive, send)


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
    to every response.

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

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
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
