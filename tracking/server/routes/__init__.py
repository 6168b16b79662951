"""The HTTP routes, one module per resource: parse the request, call the store, render."""

from __future__ import annotations
