"""``/ui/login`` and ``/ui/logout``: trade the server's token for a session cookie."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from tracking.ui.auth import SESSION_COOKIE, SESSION_SECONDS, SessionSigner
from tracking.ui.render import page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_MAX_FORM = 64 * 1024


def _safe_next(target: str | None) -> str:
    """Only a path on this server: never ``//evil`` or ``https://evil``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/ui/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    """The token form (or, without ``--auth-token``, straight on)."""
    if request.app.state.ui_sessions is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return page(request, "login.html", next=_safe_next(next), error=None)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    """Check the token; on success set the session cookie and go on to ``next``."""
    signer: SessionSigner | None = request.app.state.ui_sessions
    body = await request.body()
    form = parse_qs(body[:_MAX_FORM].decode("utf-8", "replace"))
    target = _safe_next((form.get("next") or ["/"])[0])
    if signer is None:
        return RedirectResponse(target, status_code=303)
    token = (form.get("token") or [""])[0]
    if not token or not signer.token_matches(token):
        reason = "wrong token" if token else "enter the server's token"
        return page(request, "login.html", status_code=401, next=target, error=reason)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signer.issue(),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/ui/logout")
async def logout() -> Response:
    """End the session (the cookie is dropped; a copy of it stays valid until it expires)."""
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
