"""``TrackflowConfig``: where tracked flows log, as a Prefect block.

Save one once and name it in the decorators::

    TrackflowConfig(
        tracking_uri="http://tracking.internal:5000",
        token="...",
        ui_base_url="https://tracking.example.com",
    ).save("prod")

    @tracked_flow(config="prod")
    def retrain(): ...

Without a block the ``TRACKFLOW_*`` settings are used. A flow run's
configuration reaches its task runs, subflow runs and mapped runs; where none
was given and ``TRACKFLOW_TRACKING_URI`` is not set either, tracking raises
:class:`~tracking.StoreNotConfiguredError` rather than writing to a
``./trackflow.db`` of whatever directory the worker runs in.
"""

from __future__ import annotations

import os

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from tracking.connection import StoreConfig
from tracking.errors import InvalidParameterError, StoreNotConfiguredError
from tracking.settings import configured_tracking_uri, get_settings, resolve_tracking_uri

__all__ = ["ResolvedConfig", "TrackflowConfig", "load_block", "resolve_config"]


class TrackflowConfig(Block):
    """Where tracked flows and tasks log their runs."""

    _block_type_name = "trackflow"
    _block_type_slug = "trackflow"
    _description = "Where trackflow's tracked flows and tasks log their runs."
    _documentation_url = "https://github.com/trackflow/trackflow#prefect"  # type: ignore[assignment]

    tracking_uri: str | None = Field(
        default=None,
        description="A tracking server's http(s):// address, or a database URL; "
        "default: TRACKFLOW_TRACKING_URI.",
    )
    token: SecretStr | None = Field(
        default=None, description="The tracking server's bearer token, if it wants one."
    )
    experiment: str | None = Field(
        default=None,
        description="The experiment of flows that name none (default: the flow's name).",
    )
    ui_base_url: str | None = Field(
        default=None,
        description="Where the trackflow web UI is, for links (default: the tracking server).",
    )


#: A block's settings (or the ``TRACKFLOW_*`` ones) made concrete.
ResolvedConfig = StoreConfig


def load_block(name: str) -> TrackflowConfig:
    """The saved block ``name``; an unknown name is an error saying how to make one."""
    try:
        # Synchronous also from an async flow: the callers are.
        block = TrackflowConfig.load(name, _sync=True)  # type: ignore[call-arg]
    except ValueError as exc:
        raise InvalidParameterError(
            f"no trackflow block named {name!r}: save one with "
            f"TrackflowConfig(...).save({name!r}), or pass the block itself ({exc})"
        ) from None
    if not isinstance(block, TrackflowConfig):
        raise InvalidParameterError(f"block {name!r} is a {type(block).__name__}, not trackflow's")
    return block


def _configured_uri(explicit: str | None, what: str) -> str:
    """``explicit``, else the process's ``TRACKFLOW_TRACKING_URI``; never the embedded
    default, which would be a file of the worker's own working directory."""
    uri = explicit or configured_tracking_uri()
    if uri is None:
        raise StoreNotConfiguredError(
            f"trackflow has no store for {what}: pass config= (a TrackflowConfig block or "
            "its name) or tracking_uri= to tracked_flow, or set TRACKFLOW_TRACKING_URI for "
            f"the process that runs it (pid {os.getpid()}, in {os.getcwd()}); trackflow "
            "does not fall back to a ./trackflow.db of that process's working directory"
        )
    return resolve_tracking_uri(uri)


def resolve_config(
    config: TrackflowConfig | str | None,
    tracking_uri: str | None = None,
    *,
    what: str = "this flow",
) -> ResolvedConfig:
    """The configuration a decorator was given: a block, a block's name, a tracking URI,
    or nothing (the ``TRACKFLOW_*`` settings). An unknown block name is an error, and
    so is no store at all (:class:`~tracking.StoreNotConfiguredError`, naming ``what``)."""
    if isinstance(config, str):
        config = load_block(config)
    settings = get_settings()
    if config is None:
        return ResolvedConfig(
            tracking_uri=_configured_uri(tracking_uri, what),
            token=settings.tracking_token,
            experiment=settings.experiment_name,
            ui_base_url=settings.ui_base_url,
        )
    if not isinstance(config, TrackflowConfig):
        raise InvalidParameterError(
            f"config must be a TrackflowConfig block or a block's name, got {type(config).__name__}"
        )
    base = config.ui_base_url
    if base is not None and not base.startswith(("http://", "https://")):
        raise InvalidParameterError(
            f"TrackflowConfig.ui_base_url {base!r} must start with http:// or https://"
        )
    return ResolvedConfig(
        tracking_uri=_configured_uri(tracking_uri or config.tracking_uri, what),
        token=config.token.get_secret_value() if config.token else settings.tracking_token,
        experiment=config.experiment,
        ui_base_url=base or settings.ui_base_url,
    )
