"""Pydantic models of the server's request and response bodies (the OpenAPI schema)."""

from __future__ import annotations
