"""An ASGI app served by uvicorn in a thread, for tests that need real HTTP on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

__all__ = ["serving"]


@contextlib.contextmanager
def serving(
    app: Any, *, lifespan: Literal["auto", "on", "off"] = "auto", timeout: float = 30.0
) -> Iterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port in a daemon thread; yields its base URL.

    Example::

        with serving(create_app(settings)) as url:
            httpx.get(f"{url}/health")
    """
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
