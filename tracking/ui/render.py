"""The UI's Jinja2 environment and the filters its templates use."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tracking.entities import ViewType
from tracking.store.sql.browse import CELL_CHARS
from tracking.ui.auth import SessionSigner

__all__ = [
    "VIEWS",
    "duration",
    "environment",
    "markdown",
    "page",
    "query_string",
    "safe_url",
    "session_cookie_name",
    "timestamp",
    "ui_context",
]

#: The lifecycle views a page offers, by their name in the URL.
VIEWS = {"active": ViewType.ACTIVE_ONLY, "deleted": ViewType.DELETED_ONLY, "all": ViewType.ALL}


def timestamp(ms: int | None) -> str:
    """``2026-12-02 04:22:01`` (UTC) for epoch milliseconds; empty for None."""
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: int | None) -> str:
    """A short human duration: ``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if ms is None or ms < 0:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def number(value: float | None) -> str:
    """A metric value with four significant digits (``nan``, ``inf`` as such)."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def cell(value: str | None) -> str:
    """A table cell's text: cut at :data:`~tracking.store.sql.browse.CELL_CHARS` with an
    ellipsis (the store reads one character more, so a cut value shows as cut)."""
    if value is None:
        return ""
    return value if len(value) <= CELL_CHARS else value[:CELL_CHARS] + "…"


_HEADING = re.compile(r"<(/?)h([1-6])>")


@lru_cache(maxsize=1)
def _markdown_parser() -> Any:
    from markdown_it import MarkdownIt

    # CommonMark with raw HTML off: a note's HTML is shown as text, never run; links of
    # unsafe schemes (javascript:, vbscript:, file:, data:) are refused by markdown-it.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str | None) -> markupsafe.Markup:
    """A note's markdown as HTML: sanitised (raw HTML escaped, unsafe links dropped)."""
    if not text:
        return markupsafe.Markup("")
    rendered = _markdown_parser().render(text)
    # A note's headings sit under the page's own: # is <h4>, ## <h5>, the rest <h6>.
    rendered = _HEADING.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + 3, 6)}>", rendered)
    return markupsafe.Markup(rendered)


def safe_url(url: str | None) -> str | None:
    """``url`` if it is http(s), else None: tags are user data and must not become
    ``javascript:`` links."""
    if url and url.startswith(("http://", "https://")):
        return url
    return None


#: Points per chart series asked of the sampled-history endpoint: 400 buckets, each its
#: lowest and highest point, at least one bucket per pixel of a chart in the grid.
CHART_POINTS = 800


def history_url(root: str, run_ids: list[str], key: str) -> str:
    """The URL the chart script fetches for one chart, byte for byte (a preload must match
    it): quoted as ``encodeURIComponent`` does."""
    safe = "-_.!~*'()"
    runs = "".join(f"&run_id={quote(r, safe=safe)}" for r in run_ids)
    return (
        f"{root}/api/2.0/trackflow/metrics/get-history-sampled-bulk"
        f"?metric_key={quote(key, safe=safe)}&max_points={CHART_POINTS}{runs}"
    )


def preloads(root: str, run_ids: list[str], keys: list[str], charts: int = 6) -> list[str]:
    """The URLs of the first charts, for ``<link rel=preload>``: fetched while the page's
    scripts load."""
    return [history_url(root, run_ids, k) for k in keys[:charts]]


def _query(base: dict[str, Any], **changes: Any) -> str:
    merged = {**base, **changes}
    items = []
    for key, value in merged.items():
        if value is None or value == "":
            continue
        if isinstance(value, list | tuple):
            items += [(key, v) for v in value]
        else:
            items.append((key, value))
    return urlencode(items)


def query_string(base: dict[str, Any], **changes: Any) -> str:
    """``base`` updated with ``changes`` as a URL query (lists repeat their key; empty
    values are left out)."""
    return _query(base, **changes)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates of ``tracking/ui/templates``, HTML-escaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tracking.ui", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        timestamp=timestamp,
        duration=duration,
        number=number,
        safe_url=safe_url,
        cell=cell,
        markdown=markdown,
        tojson_attr=lambda v: json.dumps(v),
    )
    env.globals["query"] = _query
    env.globals["preloads"] = preloads
    env.globals["CHART_POINTS"] = CHART_POINTS
    env.globals["CELL_CHARS"] = CELL_CHARS
    return env


def session_cookie_name(request: Request, signer: SessionSigner) -> str:
    """The session cookie's name on the server instance that got ``request``."""
    server = request.scope.get("server")
    return signer.cookie_name(server[1] if server else None, request.url.scheme == "https")


def ui_context(request: Request) -> dict[str, Any]:
    """What every template gets: the root path, and the session's CSRF token."""
    signer: SessionSigner | None = getattr(request.app.state, "ui_sessions", None)
    csrf = ""
    if signer is not None:
        cookie = request.cookies.get(session_cookie_name(request, signer))
        if cookie and signer.valid(cookie):
            csrf = signer.csrf_token(cookie)
    return {
        "root": request.scope.get("root_path", "").rstrip("/"),
        "csrf": csrf,
        "auth": signer is not None,
        "request": request,
    }


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with the request's UI context (root path, CSRF token).

    Called from the UI's handlers, which FastAPI runs in worker threads: never on the
    event loop.
    """
    html = environment().get_template(template).render(**ui_context(request), **context)
    return HTMLResponse(html, status_code=status_code)
