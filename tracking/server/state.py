"""What every request handler needs: the store, a validating client, the artifact proxy.

The API's handlers are ``async def`` and hand blocking store calls to
:meth:`ServerState.run` (a worker thread) or, for the small hot calls (the log
calls, creating, reading and ending a run), :meth:`ServerState.quick` (on the
event loop for SQLite, where such a call takes tens to hundreds of microseconds
and the threadpool round trip would cost more than the call itself; in a worker
thread for server databases, whose network round trips must not block the loop).
The web UI's handlers are plain ``def``: FastAPI runs them, page building included,
in its threadpool, off the event loop.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from tracking.client import TrackingClient
from tracking.server.artifacts import ArtifactProxy
from tracking.server.settings import ServerSettings
from tracking.store.sql.store import SqlTrackingStore

__all__ = ["ServerState", "StateDep", "get_state"]

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class ServerState:
    """The server's long-lived objects, built once by :func:`tracking.server.create_app`."""

    settings: ServerSettings
    store: SqlTrackingStore
    client: TrackingClient
    proxy: ArtifactProxy
    inline_writes: bool

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking call in a worker thread."""
        return await run_in_threadpool(functools.partial(fn, *args, **kwargs))

    async def quick(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a small call: inline on SQLite, else in a worker thread."""
        if self.inline_writes:
            return fn(*args, **kwargs)
        return await self.run(fn, *args, **kwargs)


async def get_state(request: Request) -> ServerState:
    """The state of the app serving ``request`` (async: a sync dependency would cost a
    threadpool round trip per request)."""
    state: ServerState = request.app.state.trackflow
    return state


#: Handler parameter that receives the :class:`ServerState`.
StateDep = Annotated[ServerState, Depends(get_state)]
