"""Opaque page tokens: offsets for searches, keys for the web UI's tables.

A token is URL-safe base64 of a small JSON object holding where the next page
starts (an offset, or the sort key of the last row for keyset paging) and a
fingerprint of the query that produced it, so a token handed to a different
query (other experiments, filter, view or order) is refused instead of
silently returning the wrong page::

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
from typing import Any

from tracking.errors import InvalidParameterError

__all__ = [
    "TokenError",
    "decode_page_token",
    "encode_page_token",
    "pack_token",
    "search_fingerprint",
    "unpack_token",
]

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


class TokenError(ValueError):
    """A token that is not one; ``other_query`` when it is, but of another query."""

    def __init__(self, other_query: bool = False) -> None:
        super().__init__("another query's token" if other_query else "not a token")
        self.other_query = other_query


def pack_token(payload: dict[str, Any], fingerprint: str) -> str:
    """``payload`` and the query's fingerprint as an opaque URL-safe token."""
    body = json.dumps({"v": _VERSION, **payload, "f": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")


def unpack_token(token: str, fingerprint: str) -> dict[str, Any]:
    """The payload of a :func:`pack_token` token of the query ``fingerprint``; TokenError
    for garbage or another query's token."""
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise TokenError from None
    if not isinstance(payload, dict) or payload.get("v") != _VERSION:
        raise TokenError
    if payload.get("f") != fingerprint:
        raise TokenError(other_query=True)
    return payload


def encode_page_token(offset: int, fingerprint: str) -> str:
    """The token that fetches the page starting at ``offset`` of the query ``fingerprint``."""
    return pack_token({"o": offset}, fingerprint)


def decode_page_token(token: str | None, fingerprint: str) -> int:
    """The offset a token points to (0 for no token).

    Raises InvalidParameterError for garbage or a token of another query.
    """
    if not token:
        return 0
    try:
        payload = unpack_token(token, fingerprint)
    except TokenError as exc:
        if exc.other_query:
            raise InvalidParameterError(
                f"invalid page_token {token!r}: it belongs to another query (the experiments, "
                "filter, view type and order_by must stay the same from page to page)"
            ) from None
        raise InvalidParameterError(f"invalid page_token {token!r}: not a page token") from None
    offset = payload.get("o")
    if type(offset) is not int or offset < 0:
        raise InvalidParameterError(f"invalid page_token {token!r}: not a page token")
    return offset
