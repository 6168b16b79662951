"""Every failure leaves the server as MLflow's error JSON, never as a bare 500.

The body is ``{"error_code": ..., "message": ..., "error_class": ...}``:
``error_code`` and ``message`` are what MLflow's clients read; ``error_class``
(the :mod:`tracking.errors` class name) lets trackflow's own client raise the
very class the store raised. The mapping::

    TrackingError subclass          its http_status and error_code
    RequestValidationError          400 INVALID_PARAMETER_VALUE, naming the field
    unknown path                    404 ENDPOINT_NOT_FOUND
    known path, wrong method        405 BAD_REQUEST
    body over the limit             413 INVALID_PARAMETER_VALUE
    StoreUnavailableError           503 TEMPORARILY_UNAVAILABLE (one warning line)
    SQLAlchemyError left untranslated  as the store translates it (503 if unreachable)
    anything else                   500 INTERNAL_ERROR (logged with its traceback)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tracking.errors import (
    InvalidParameterError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    TrackingError,
    UnauthenticatedError,
)
from tracking.server.responses import MlflowJSONResponse
from tracking.store.sql.engine import translate_db_error

__all__ = [
    "ErrorBody",
    "RequestTooLargeError",
    "error_response",
    "install_error_handlers",
    "too_large_response",
    "tracking_error_response",
    "validation_message",
]

_log = logging.getLogger("tracking.server")


class ErrorBody(BaseModel):
    """What every failed request returns."""

    error_code: str = Field(description="MLflow's error code, e.g. RESOURCE_DOES_NOT_EXIST.")
    message: str = Field(description="What went wrong, naming the offending field or object.")
    error_class: str = Field(
        description="The tracking.errors class to raise on the client, e.g. RunNotFoundError."
    )


class RequestTooLargeError(StarletteHTTPException):
    """A request body went over the server's limit (raised while it is being read)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_too_large(limit))


def _too_large(limit: int) -> str:
    return f"the request body is larger than the limit of {limit} bytes"


def error_response(
    status: int,
    error_code: str,
    message: str,
    error_class: str,
    headers: Mapping[str, str] | None = None,
) -> MlflowJSONResponse:
    """The JSON error response."""
    body = {"error_code": error_code, "message": message, "error_class": error_class}
    return MlflowJSONResponse(body, status_code=status, headers=headers)


def too_large_response(limit: int) -> MlflowJSONResponse:
    """413 for a body over ``limit`` bytes."""
    return error_response(
        413, InvalidParameterError.error_code, _too_large(limit), InvalidParameterError.__name__
    )


def tracking_error_response(exc: TrackingError) -> MlflowJSONResponse:
    """The response for a TrackingError: its own status, code and class."""
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthenticatedError) else None
    return error_response(exc.http_status, exc.error_code, str(exc), type(exc).__name__, headers)


def _field_path(loc: Sequence[int | str]) -> str:
    """``("body", "metrics", 0, "value")`` -> ``metrics[0].value``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _shown(value: Any) -> str:
    try:
        shown = json.dumps(value, allow_nan=True, default=repr)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= 100 else shown[:100] + "..."


def validation_message(errors: Sequence[Any]) -> str:
    """One readable sentence per error, each naming the field (MLflow's wording)."""
    sentences = []
    for error in errors:
        kind = error.get("type", "")
        loc = error.get("loc", ())
        field = _field_path(loc)
        if kind == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "invalid JSON")
            sentences.append(
                f"Malformed JSON in the request body: {detail} "
                f"(at character {loc[-1] if loc else 0})."
            )
        elif kind == "missing" or (error.get("input", "") is None and field):
            if field:
                sentences.append(f"Missing value for required parameter '{field}'.")
            else:
                sentences.append("Missing request body: expected a JSON object.")
        else:
            shown = _shown(error.get("input"))
            where = f"parameter '{field}'" if field else "the request body"
            reason = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
            sentences.append(f"Invalid value {shown} for {where} supplied: {reason}.")
    return " ".join(sentences) or "Invalid request."


async def _on_tracking_error(request: Request, exc: Exception) -> MlflowJSONResponse:
    assert isinstance(exc, TrackingError)
    if isinstance(exc, StoreUnavailableError):
        # Expected while the database restarts, once per request: one line, no traceback.
        _log.warning("%s %s: %s", request.method, request.url.path, exc)
    elif exc.http_status >= 500:
        _log.error("request failed: %s", exc, exc_info=exc)
    return tracking_error_response(exc)


_JSON_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _body_shape_message(request: Request, errors: Sequence[Any]) -> str | None:
    """What is wrong when the body as a whole is not a JSON object, or None."""
    for error in errors:
        if tuple(error.get("loc", ())) != ("body",) or error.get("type") not in (
            "model_attributes_type",
            "dict_type",
        ):
            continue
        body = error.get("input")
        content_type = request.headers.get("content-type", "")
        if isinstance(body, bytes | bytearray) or "json" not in content_type.lower():
            given = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
            return (
                "The request body must be a JSON object sent with Content-Type: "
                f"application/json; this request has {given}. With curl, add "
                "-H 'Content-Type: application/json' (curl -d alone sends a form)."
            )
        kind = _JSON_NAMES.get(type(body), "number")
        return f"The request body must be a JSON object, not a JSON {kind}."
    return None


async def _on_validation_error(request: Request, exc: Exception) -> MlflowJSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    message = _body_shape_message(request, errors) or validation_message(errors)
    return error_response(
        400, InvalidParameterError.error_code, message, InvalidParameterError.__name__
    )


async def _on_http_error(request: Request, exc: Exception) -> MlflowJSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 404:
        return error_response(
            404,
            "ENDPOINT_NOT_FOUND",
            f"No API endpoint {request.method} {request.url.path}",
            NotFoundError.__name__,
        )
    if status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(
            405,
            "BAD_REQUEST",
            f"Method {request.method} is not allowed for {request.url.path}"
            + (f"; allowed: {allowed}" if allowed else ""),
            InvalidParameterError.__name__,
            headers=exc.headers,
        )
    if status == 413:
        return error_response(
            413, InvalidParameterError.error_code, str(exc.detail), InvalidParameterError.__name__
        )
    if status == 401:
        return tracking_error_response(UnauthenticatedError(str(exc.detail)))
    if status < 500:
        return error_response(
            status,
            "BAD_REQUEST",
            str(exc.detail),
            InvalidParameterError.__name__,
            headers=exc.headers,
        )
    return error_response(status, StoreError.error_code, str(exc.detail), StoreError.__name__)


async def _on_unexpected(request: Request, exc: Exception) -> MlflowJSONResponse:
    if isinstance(exc, SQLAlchemyError):
        # A database error no store method translated: still a 503 when the database
        # is away, so that clients wait for it instead of giving up.
        return await _on_tracking_error(request, translate_db_error(exc))
    _log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        500,
        "INTERNAL_ERROR",
        f"internal server error ({type(exc).__name__}); see the server log",
        TrackingError.__name__,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every exception into MLflow's error JSON."""
    app.add_exception_handler(TrackingError, _on_tracking_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
