"""Property-based requests generated from the committed OpenAPI document, as an operator
and as a viewer, against the running API: none gets a 500, and every answer fits the error
body or the documented schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
import schemathesis.specs.openapi.checks as openapi_checks
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.api.conftest import Api

OPENAPI = Path(__file__).resolve().parents[2] / "api" / "openapi.json"
schema = schemathesis.openapi.from_dict(json.loads(OPENAPI.read_text(encoding="utf-8")))


@pytest.mark.parametrize("person", ["ana", "vic"])
@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_gets_a_server_error(case: schemathesis.Case, api: Api, person: str) -> None:
    """Whatever the body, path or query, the answer is below 500 and matches its schema."""
    response = case.call(
        base_url=api.url, headers={"Authorization": f"Bearer {api.tokens[person]}"}
    )
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    # The answer's own conformance: no server error, a documented status, the documented
    # content type and schema. Whether a request is refused is the domain's business (an
    # unknown command, a viewer's action, a body refused as too large before it is read).
    checks = [
        not_a_server_error,
        openapi_checks.status_code_conformance,
        openapi_checks.content_type_conformance,
        openapi_checks.response_schema_conformance,
    ]
    case.validate_response(response, checks=checks)
