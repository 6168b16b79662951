"""``/ui/login`` and ``/ui/logout``: trade the server's token for a session cookie.

Wrong tokens count against the client's address (:class:`~tracking.ui.auth.TokenThrottle`):
after a few, that address is answered 429 for a while, the right token included.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from tracking.ui.auth import SESSION_SECONDS, SessionSigner, TokenThrottle
from tracking.ui.render import page, session_cookie_name

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_MAX_FORM = 64 * 1024


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never ``//evil`` or ``https://evil``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def _form(request: Request) -> dict[str, str]:
    """The posted form's fields (the first value of each), read on the event loop so the
    handler itself can run in a worker thread."""
    body = await request.body()
    fields = parse_qs(body[:_MAX_FORM].decode("utf-8", "replace"))
    return {k: v[0] for k, v in fields.items() if v}


FormDep = Annotated[dict[str, str], Depends(_form)]


@router.get("/ui/login")
def login_form(request: Request, next: str | None = None) -> Response:
    """The token form (or, without ``--auth-token``, straight on)."""
    if request.app.state.ui_sessions is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return page(request, "login.html", next=_safe_next(next), error=None)


@router.post("/ui/login")
def login(request: Request, form: FormDep) -> Response:
    """Check the token; on success set the session cookie and go on to ``next``."""
    signer: SessionSigner | None = request.app.state.ui_sessions
    throttle: TokenThrottle | None = request.app.state.ui_throttle
    target = _safe_next(form.get("next") or "/")
    if signer is None:
        return RedirectResponse(target, status_code=303)
    client = request.client.host if request.client else "unknown"
    wait = throttle.retry_after(client) if throttle is not None else 0
    if wait:
        refused = page(
            request,
            "login.html",
            status_code=429,
            next=target,
            error=f"Too many wrong tokens from your address: try again in {wait} s",
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    token = form.get("token", "")
    if not token or not signer.token_matches(token):
        if token and throttle is not None:
            throttle.failed(client, "login form")
        reason = "wrong token" if token else "enter the server's token"
        return page(request, "login.html", status_code=401, next=target, error=reason)
    if throttle is not None:
        throttle.succeeded(client)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        session_cookie_name(request, signer),
        signer.issue(),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/ui/logout")
def logout(request: Request) -> Response:
    """End the session (the cookie is dropped; a copy of it stays valid until it expires)."""
    response = RedirectResponse("/ui/login", status_code=303)
    signer: SessionSigner | None = request.app.state.ui_sessions
    if signer is not None:
        response.delete_cookie(
            session_cookie_name(request, signer),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return response
