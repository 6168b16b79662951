"""Browser sessions for a server started with ``--auth-token``.

The UI asks for the token once (``/ui/login``) and then keeps a session cookie:
HttpOnly, ``SameSite=Strict``, ``Secure`` behind https. The cookie is signed
with a key derived from the token, so it needs no server-side storage, works
across worker processes and dies with a changed token. Writes made with the
cookie (rather than a bearer header) must carry the session's CSRF token in
the ``X-CSRF-Token`` header; pages put it in ``<meta name="csrf-token">``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

__all__ = ["CSRF_HEADER", "SESSION_COOKIE", "SESSION_SECONDS", "SessionSigner"]

SESSION_COOKIE = "trackflow_session"
CSRF_HEADER = "x-csrf-token"
#: How long a session lasts.
SESSION_SECONDS = 7 * 24 * 3600


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens for one bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._key = hashlib.sha256(b"trackflow-ui-session\0" + self._token).digest()

    def token_matches(self, supplied: str) -> bool:
        """Whether ``supplied`` is the server's token (constant time)."""
        return hmac.compare_digest(supplied.encode(), self._token)

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        """A new session cookie value."""
        body = f"{int(now if now is not None else time.time())}.{secrets.token_urlsafe(18)}"
        return f"{body}.{self._sign(body)}"

    def valid(self, cookie: str | None, now: float | None = None) -> bool:
        """Whether ``cookie`` is a session this signer issued that has not expired."""
        if not cookie or cookie.count(".") != 2:
            return False
        issued, nonce, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(f"{issued}.{nonce}")):
            return False
        try:
            age = (now if now is not None else time.time()) - int(issued)
        except ValueError:
            return False
        return 0 <= age < SESSION_SECONDS

    def csrf_token(self, cookie: str) -> str:
        """The CSRF token that goes with a session."""
        return self._sign(f"csrf:{cookie}")

    def csrf_matches(self, cookie: str, supplied: str) -> bool:
        """Whether ``supplied`` is the session's CSRF token (constant time)."""
        return hmac.compare_digest(supplied, self.csrf_token(cookie))
