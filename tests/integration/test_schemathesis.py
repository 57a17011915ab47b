"""Property-based fuzzing of the whole REST API from its OpenAPI document: never a 5xx."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from edgecloud.client import Client
from tests.support.frontend import RunningFrontEnd

# Calls that would lock the fuzzer out of the API it is fuzzing (new password, revoked token),
# and the event stream, which answers by never ending (tested in test_events.py).
LOCKOUTS = {
    ("POST", "/api/v1/users/{obj_id}/password"),
    ("POST", "/api/v1/logout"),
    ("GET", "/api/v1/events"),
}
EXAMPLES_PER_OPERATION = 12


def _has_message(response: Any) -> bool:
    try:
        return bool(response.json().get("message"))
    except ValueError:
        return False


def _fuzz(operation: Any, headers: dict[str, str], failures: list[str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        where = f"{case.method} {case.formatted_path}"
        if response.status_code >= 500:
            failures.append(f"{where}: {response.status_code} {response.text[:300]}")
        elif response.status_code >= 400 and not _has_message(response):
            failures.append(f"{where}: error without a message: {response.text[:300]}")

    run()


def test_api_never_answers_5xx(frontend: RunningFrontEnd, admin: Client) -> None:
    headers = {"Authorization": admin.http.headers["Authorization"]}
    schema = schemathesis.openapi.from_url(frontend.url + "/openapi.json", headers=headers)
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in LOCKOUTS:
            continue
        _fuzz(operation, headers, failures)
        tested += 1
    print(f"fuzzed {tested} operations")
    assert tested >= 50, f"only {tested} operations found in the OpenAPI document"
    assert not failures, "\n".join(failures[:20])
