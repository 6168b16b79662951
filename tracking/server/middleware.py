"""Plain ASGI middleware: bearer-token checks and request body limits.

Both run before routing and cost a few dictionary lookups per request, which
matters on the log-metric path (hundreds of calls a second from one client).
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracking.errors import UnauthenticatedError
from tracking.server.errors import (
    RequestTooLargeError,
    too_large_response,
    tracking_error_response,
)

__all__ = ["ARTIFACT_PROXY_PREFIX", "OPEN_PATHS", "BearerAuthMiddleware", "BodyLimitMiddleware"]

#: Paths that answer without a token: the health check and the API's description.
OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
#: Artifact uploads stream through this prefix and have their own (optional) limit.
ARTIFACT_PROXY_PREFIX = "/api/2.0/mlflow-artifacts/"


class BearerAuthMiddleware:
    """Refuses requests without ``Authorization: Bearer <token>`` (401 UNAUTHENTICATED).

    The token is compared in constant time; paths in :data:`OPEN_PATHS` stay open.
    Nothing behind this middleware runs for a refused request.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
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
