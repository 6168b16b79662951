"""Hatchling build hook: fetch the web UI's pinned npm assets (tracking/ui/vendoring.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class VendorAssetsHook(BuildHookInterface):  # type: ignore[type-arg]
    """Runs before every wheel or editable build; a no-op when the assets are current."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        path = Path(self.root) / "tracking" / "ui" / "vendoring.py"
        spec = importlib.util.spec_from_file_location("_trackflow_vendoring", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        written = module.fetch()
        if written:
            self.app.display_info(f"trackflow: fetched UI assets {', '.join(written)}")
