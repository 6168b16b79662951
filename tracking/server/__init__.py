"""The trackflow tracking server: MLflow's REST API 2.0 on FastAPI and uvicorn.

Start it with ``trackflow server`` or build the ASGI app yourself::

    from tracking.server import ServerSettings, create_app

    app = create_app(ServerSettings(backend_store_uri="sqlite:///runs.db"))

Importing this package imports FastAPI; ``import tracking`` never does.
"""

from __future__ import annotations

from tracking.server.app import create_app, create_app_from_env
from tracking.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "create_app_from_env"]
