"""Property-based fuzzing of the OpenAPI schema with schemathesis: no input gives a 500.

Each operation of the schema gets up to :data:`MAX_EXAMPLES` generated
requests against the app in-process; every answer must be below 500, have a
status code, content type and body shape the schema documents, and errors
must have MLflow's shape. The number of cases run is reported at the
end of the module (``-s`` or the terminal summary shows it).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from _server_support import SUMMARY
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tracking.server import ServerSettings, create_app

MAX_EXAMPLES = 12
_counts: dict[str, int] = {}
_statuses: dict[int, int] = {}


def _app() -> Any:
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="trackflow-fuzz-"))
    return create_app(
        ServerSettings(
            backend_store_uri=f"sqlite:///{workdir}/fuzz.db",
            artifacts_destination=str(workdir / "artifacts"),
            # schemathesis calls the app as Host: testserver.
            allowed_hosts="localhost,testserver",
        )
    )


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    total = sum(_counts.values())
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(_statuses.items()))
    SUMMARY.append(
        f"schemathesis: {total} cases over {len(_counts)} operations, no 5xx ({statuses})"
    )


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call()
    key = case.operation.label
    _counts[key] = _counts.get(key, 0) + 1
    _statuses[response.status_code] = _statuses.get(response.status_code, 0) + 1
    what = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{what} -> {response.status_code}: {response.text}"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error_code", "message", "error_class"}, body
    # Every answer is one the schema documents, with the documented shape.
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
