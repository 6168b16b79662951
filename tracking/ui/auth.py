"""Browser sessions for a server started with ``--auth-token``.

The UI asks for the token once (``/ui/login``) and then keeps a session cookie:
HttpOnly, ``SameSite=Strict``, ``Secure`` behind https. The cookie is signed
with a key derived from the token, so it needs no server-side storage, works
across worker processes and dies with a changed token. Writes made with the
cookie (rather than a bearer header) must carry the session's CSRF token in
the ``X-CSRF-Token`` header; pages put it in ``<meta name="csrf-token">``.

The cookie's name is specific to the server instance
(:meth:`SessionSigner.cookie_name`): ``trackflow_session_<port>_<mark>``, where
the mark is 8 hex digits of an HMAC of the token-derived key, and with the
``__Host-`` prefix over https. Browsers do not keep cookies apart by port, so
two servers on one host (or another service there) would otherwise read and
overwrite one ``trackflow_session`` cookie.

Guessing the token is throttled (:class:`TokenThrottle`): after
:data:`LOGIN_ATTEMPTS` wrong tokens from one client address, on the login form
or in an ``Authorization`` header, that address gets 429 for a while, whatever
it sends, and the lock-out is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "CSRF_HEADER",
    "LOCKOUT_SECONDS",
    "LOGIN_ATTEMPTS",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "SessionSigner",
    "TokenThrottle",
]

#: The start of every session cookie's name (see :meth:`SessionSigner.cookie_name`).
SESSION_COOKIE = "trackflow_session"
CSRF_HEADER = "x-csrf-token"
#: How long a session lasts.
SESSION_SECONDS = 7 * 24 * 3600
#: Wrong tokens a client may send (within :data:`ATTEMPT_WINDOW_SECONDS`) before a lock-out.
LOGIN_ATTEMPTS = 5
#: How far back wrong tokens are counted.
ATTEMPT_WINDOW_SECONDS = 300.0
#: The first lock-out; each further one of the same client doubles, up to 15 minutes.
LOCKOUT_SECONDS = 60.0
_MAX_LOCKOUT_SECONDS = 900.0
#: Clients remembered at most (the oldest are forgotten first).
_MAX_CLIENTS = 10_000
_log = logging.getLogger("tracking.server")


class SessionSigner:
    """Issues and checks session cookies and their CSRF tokens for one bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._key = hashlib.sha256(b"trackflow-ui-session\0" + self._token).digest()

    def cookie_name(self, port: int | None, https: bool) -> str:
        """The session cookie's name on a server listening on ``port``: stable for the
        instance, different for another port or another token. Example::

            signer.cookie_name(5000, https=False)  # 'trackflow_session_5000_3f9a0c1b'
        """
        mark = hmac.new(self._key, b"cookie-name", hashlib.sha256).hexdigest()[:8]
        name = f"{SESSION_COOKIE}_{port or 0}_{mark}"
        # __Host-: only over https, Path=/ and no Domain, so no subdomain can plant it.
        return f"__Host-{name}" if https else name

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


@dataclass
class _Client:
    failures: list[float]
    locked_until: float = 0.0
    lockouts: int = 0


class TokenThrottle:
    """Counts wrong tokens per client address and locks a client out after
    :data:`LOGIN_ATTEMPTS` of them within :data:`ATTEMPT_WINDOW_SECONDS`.

    A locked-out client is refused (429) whatever it sends, the right token
    included, so it cannot go on guessing; other clients are not affected. The
    first lock-out lasts :data:`LOCKOUT_SECONDS`, each further one twice as long
    (at most 15 minutes). Per process: with ``--workers N`` each worker counts
    its own. Thread-safe. Example::

        throttle = TokenThrottle()
        if throttle.retry_after("10.0.0.7"):
            ...  # answer 429
        elif not signer.token_matches(token):
            throttle.failed("10.0.0.7", "login form")
    """

    def __init__(self, attempts: int = LOGIN_ATTEMPTS) -> None:
        self.attempts = attempts
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try again (0: it may now)."""
        if not self._clients:  # the common case: nobody has guessed wrong
            return 0
        now = time.monotonic() if now is None else now
        with self._lock:
            state = self._clients.get(client)
            if state is None or state.locked_until <= now:
                return 0
            return max(1, round(state.locked_until - now))

    def failed(self, client: str, where: str, now: float | None = None) -> None:
        """Count a wrong token from ``client`` (``where``: for the log)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            state = self._clients.pop(client, None) or _Client([])
            self._clients[client] = state  # most recent last
            while len(self._clients) > _MAX_CLIENTS:
                self._clients.popitem(last=False)
            state.failures = [t for t in state.failures if now - t < ATTEMPT_WINDOW_SECONDS]
            state.failures.append(now)
            if len(state.failures) < self.attempts:
                return
            seconds = min(LOCKOUT_SECONDS * 2**state.lockouts, _MAX_LOCKOUT_SECONDS)
            state.locked_until = now + seconds
            state.lockouts += 1
            state.failures = []
        _log.warning(
            "locked out %s for %d s after %d wrong tokens (%s)",
            client,
            seconds,
            self.attempts,
            where,
        )

    def succeeded(self, client: str) -> None:
        """Forget ``client``'s wrong tokens (its lock-out history stays)."""
        if not self._clients:
            return
        with self._lock:
            state = self._clients.get(client)
            if state is not None:
                state.failures = []
