"""The exceptions trackflow raises.

Every error that reaches a user is a :class:`TrackingError`; the store, the
client and the server translate third-party errors (SQLAlchemy, fsspec, httpx)
at their boundary, so callers never see a driver traceback. Each class knows
the HTTP status and the MLflow ``error_code`` it maps to, and the server maps
them back to the same class on the client side::

    TrackingError                       500 INTERNAL_ERROR
    ├── InvalidParameterError           400 INVALID_PARAMETER_VALUE  (also ValueError)
    │   └── SearchSyntaxError           400 INVALID_PARAMETER_VALUE
    ├── NotFoundError                   404 RESOURCE_DOES_NOT_EXIST  (also LookupError)
    │   ├── ExperimentNotFoundError
    │   ├── RunNotFoundError
    │   └── ArtifactNotFoundError
    ├── AlreadyExistsError              400 RESOURCE_ALREADY_EXISTS
    ├── InvalidStateError               400 INVALID_STATE
    │   └── ArtifactIntegrityError      (an artifact's content is not what was logged)
    ├── UnauthenticatedError            401 UNAUTHENTICATED
    ├── PermissionDeniedError           403 PERMISSION_DENIED
    ├── RequestLimitExceededError       429 REQUEST_LIMIT_EXCEEDED
    ├── NotSupportedError               400 NOT_IMPLEMENTED
    └── StoreError                      500 INTERNAL_ERROR
        ├── StoreUnavailableError       503 TEMPORARILY_UNAVAILABLE
        ├── StoreNotConfiguredError     (a process that must be told where its store is)
        └── SchemaOutOfDateError        500 INTERNAL_ERROR

Example::

    try:
        client.get_run("0" * 32)
    except tracking.RunNotFoundError as exc:
        print(exc.http_status, exc.error_code)  # 404 RESOURCE_DOES_NOT_EXIST
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlreadyExistsError",
    "ArtifactIntegrityError",
    "ArtifactNotFoundError",
    "ExperimentNotFoundError",
    "InvalidParameterError",
    "InvalidStateError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "RequestLimitExceededError",
    "RunNotFoundError",
    "SchemaOutOfDateError",
    "SearchSyntaxError",
    "StoreError",
    "StoreNotConfiguredError",
    "StoreUnavailableError",
    "TrackingError",
    "UnauthenticatedError",
    "error_class_for_code",
]


class TrackingError(Exception):
    """Base of every error trackflow raises."""

    http_status: ClassVar[int] = 500
    error_code: ClassVar[str] = "INTERNAL_ERROR"

    @property
    def message(self) -> str:
        """The human-readable message (what ``str(error)`` gives)."""
        return str(self)


class InvalidParameterError(TrackingError, ValueError):
    """A value given by the caller breaks a rule: a limit, a name, a type."""

    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class SearchSyntaxError(InvalidParameterError):
    """A search filter or ``order_by`` clause could not be parsed.

    ``position`` is the 0-based column where the problem was found and
    ``expected`` what the parser would have accepted there.
    """

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        position: int | None = None,
        expected: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.text = text
        self.position = position
        self.expected = expected


class NotFoundError(TrackingError, LookupError):
    """The thing asked for does not exist."""

    http_status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


class ExperimentNotFoundError(NotFoundError):
    """No experiment with that id or name."""


class RunNotFoundError(NotFoundError):
    """No run with that id."""


class ArtifactNotFoundError(NotFoundError):
    """No artifact at that path."""


class AlreadyExistsError(TrackingError):
    """Something with that name or id exists already."""

    http_status = 400
    error_code = "RESOURCE_ALREADY_EXISTS"


class InvalidStateError(TrackingError):
    """The operation does not fit the object's state (a deleted run, say)."""

    http_status = 400
    error_code = "INVALID_STATE"


class ArtifactIntegrityError(InvalidStateError):
    """An artifact's content no longer has the sha256 recorded when it was logged."""


class UnauthenticatedError(TrackingError):
    """The tracking server wants a valid bearer token."""

    http_status = 401
    error_code = "UNAUTHENTICATED"


class PermissionDeniedError(TrackingError):
    """The server refuses the request whoever sends it (a Host it does not serve, say)."""

    http_status = 403
    error_code = "PERMISSION_DENIED"


class NotSupportedError(TrackingError):
    """trackflow does not implement this part of MLflow (logged models, say).

    A 400, not a 501: the server works, the request asks for what it does not offer.
    """

    http_status = 400
    error_code = "NOT_IMPLEMENTED"


class RequestLimitExceededError(TrackingError):
    """The server asked the client to slow down."""

    http_status = 429
    error_code = "REQUEST_LIMIT_EXCEEDED"


class StoreError(TrackingError):
    """The backend failed in a way that is not the caller's fault."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached right now; retrying later may work."""

    http_status = 503
    error_code = "TEMPORARILY_UNAVAILABLE"


class StoreNotConfiguredError(StoreError):
    """A process that must be told which store to use (an orchestrator's scheduler or
    worker) was not, or its configuration could not be read: it writes nowhere rather
    than to a local default that its other processes would not see."""


class SchemaOutOfDateError(StoreError):
    """The database schema is older than this trackflow; run ``trackflow db upgrade``."""


_BY_CODE: dict[str, type[TrackingError]] = {
    "INVALID_PARAMETER_VALUE": InvalidParameterError,
    "BAD_REQUEST": InvalidParameterError,
    "MALFORMED_REQUEST": InvalidParameterError,
    "RESOURCE_DOES_NOT_EXIST": NotFoundError,
    "ENDPOINT_NOT_FOUND": NotFoundError,
    "RESOURCE_ALREADY_EXISTS": AlreadyExistsError,
    "INVALID_STATE": InvalidStateError,
    "UNAUTHENTICATED": UnauthenticatedError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_IMPLEMENTED": NotSupportedError,
    "REQUEST_LIMIT_EXCEEDED": RequestLimitExceededError,
    "TEMPORARILY_UNAVAILABLE": StoreUnavailableError,
    "INTERNAL_ERROR": StoreError,
}


def error_class_for_code(error_code: str) -> type[TrackingError]:
    """The error class for an MLflow ``error_code`` (``TrackingError`` if unknown)."""
    return _BY_CODE.get(error_code, TrackingError)
