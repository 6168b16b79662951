"""Stores chosen by the tracking URI's scheme, as fsspec chooses filesystems.

``sqlite``, ``postgresql``, ``mysql`` and ``mariadb`` URLs (with or without a
``+driver``) open a :class:`~tracking.store.sql.store.SqlTrackingStore`,
``http`` and ``https`` URLs a :class:`~tracking.store.rest.RestTrackingStore`
that talks to a tracking server; other schemes can be added with
:func:`register_store`. Stores are cached per (URI, artifact root) so every
client of a process shares one connection pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tracking.errors import InvalidParameterError
from tracking.store.base import TrackingStore

__all__ = ["StoreFactory", "clear_store_cache", "get_store", "register_store"]

StoreFactory = Callable[[str, str | None], TrackingStore]

_FACTORIES: dict[str, StoreFactory] = {}
_CACHE: dict[tuple[str, str | None], TrackingStore] = {}
_LOCK = threading.Lock()


def register_store(scheme: str, factory: StoreFactory) -> None:
    """Make ``factory(uri, artifact_root)`` open URIs of ``scheme``."""
    _FACTORIES[scheme] = factory


def _sql_store(uri: str, artifact_root: str | None) -> TrackingStore:
    from tracking.settings import get_settings
    from tracking.store.sql.store import SqlTrackingStore

    # A client on the database itself waits out a restart as a server's clients do.
    return SqlTrackingStore(uri, artifact_root, wait_for_database=get_settings().retry_timeout)


def _rest_store(uri: str, artifact_root: str | None) -> TrackingStore:
    from tracking.store.rest import RestTrackingStore

    return RestTrackingStore(uri, artifact_root)


for _name in ("sqlite", "postgresql", "postgres", "mysql", "mariadb"):
    register_store(_name, _sql_store)
for _name in ("http", "https"):
    register_store(_name, _rest_store)


def _scheme(uri: str) -> str:
    if "://" not in uri:
        raise InvalidParameterError(
            f"invalid tracking URI {uri!r}: expected a URL such as sqlite:///trackflow.db, "
            "postgresql://user@host/db or http://host:5000"
        )
    return uri.split("://", 1)[0].split("+", 1)[0].lower()


def get_store(uri: str, artifact_root: str | None = None) -> TrackingStore:
    """The (shared) store for ``uri``."""
    key = (uri, artifact_root)
    store = _CACHE.get(key)
    if store is not None:
        return store
    scheme = _scheme(uri)
    factory = _FACTORIES.get(scheme)
    if factory is None:
        known = ", ".join(sorted(_FACTORIES))
        raise InvalidParameterError(
            f"unsupported tracking URI scheme {scheme!r} in {uri!r}: expected one of {known}"
        )
    with _LOCK:
        store = _CACHE.get(key)
        if store is None:
            store = _CACHE[key] = factory(uri, artifact_root)
    return store


def clear_store_cache() -> None:
    """Close and forget every cached store (tests; after fork)."""
    with _LOCK:
        for store in _CACHE.values():
            store.close()
        _CACHE.clear()
