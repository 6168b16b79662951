"""Opaque page tokens for offset paging.

A token is URL-safe base64 of a small JSON object holding the offset of the
next page and a fingerprint of the query that produced it, so a token handed
to a different query (other experiments, filter, view or order) is refused
instead of silently returning the wrong page::

    fp = search_fingerprint(["1"], "metrics.acc > 0.5", 1, ["metrics.acc DESC"])
    token = encode_page_token(100, fp)
    decode_page_token(token, fp)  # 100
    decode_page_token(None, fp)   # 0: the first page
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence

from tracking.errors import InvalidParameterError

__all__ = ["decode_page_token", "encode_page_token", "search_fingerprint"]

_VERSION = 1


def search_fingerprint(
    experiment_ids: Sequence[str | int],
    filter_string: str | None,
    view: int,
    order_by: Sequence[str] | None,
) -> str:
    """A short hash identifying a search query (not the page size: that may change)."""
    ids = sorted(str(i) for i in experiment_ids)
    parts = [ids, filter_string or "", int(view), list(order_by or ())]
    digest = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode("utf-8"))
    return digest.hexdigest()[:16]


def encode_page_token(offset: int, fingerprint: str) -> str:
    """The token that fetches the page starting at ``offset`` of the query ``fingerprint``."""
    payload = json.dumps({"v": _VERSION, "o": offset, "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode("utf-8")).decode("ascii").rstrip("=")


def decode_page_token(token: str | None, fingerprint: str) -> int:
    """The offset a token points to (0 for no token).

    Raises InvalidParameterError for garbage or a token of another query.
    """
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidParameterError(f"invalid page_token {token!r}: not a page token") from None
    offset = payload.get("o") if isinstance(payload, dict) else None
    if (
        not isinstance(payload, dict)
        or payload.get("v") != _VERSION
        or type(offset) is not int
        or offset < 0
    ):
        raise InvalidParameterError(f"invalid page_token {token!r}: not a page token")
    if payload.get("f") != fingerprint:
        raise InvalidParameterError(
            f"invalid page_token {token!r}: it belongs to another query (the experiments, "
            "filter, view type and order_by must stay the same from page to page)"
        )
    return offset
