"""Fuzzing: schemathesis against each service's own OpenAPI document, with a real token per role.

For every operation of every service (the internal ones too), and for each role (customer,
support, warehouse, admin), schemathesis generates valid requests and invalid ones and checks:
- not_a_server_error            no 5xx, whatever the input;
- response_schema_conformance   a documented answer has the documented body;
- content_type_conformance      ... and the documented media type (problem+json for errors).
A 401 or 403 is a fine answer (a customer at an admin route, a user token alone at an internal
operation); a 500 or a body that breaks the schema is not. Each role's requests also carry the
orders service's own token, so the internal operations are fuzzed past their caller check.

Bounded for speed: a few examples per operation, mode and role, derandomized so a failure is
reproducible and CI does not flake on a lucky seed. conftest.py runs this file last, because the
fuzzer signs out, rotates keys and sets stock with what it is given.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from relayshop_devtools.devstack import PASSWORDS
from relayshop_platform.catalogue import SERVICE_NAMES
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

ROLES = {"customer": "alice", "support": "carol", "warehouse": "walt", "admin": "admin"}
SERVICES = SERVICE_NAMES  # every service of the catalogue
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 4, schemathesis.GenerationMode.NEGATIVE: 3}


def fuzzer(strategy: Any, examples: int) -> Any:
    """A Hypothesis runner: calls ``check(case)`` for ``examples`` generated cases."""

    def fuzz(check: Any) -> None:
        @given(case=strategy)
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            check(case)

        run()

    return fuzz


def send(
    case: schemathesis.Case, base_url: str, headers: dict[str, str], service: str, tally: Any
) -> None:
    tally.add(service)
    case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)


@pytest.fixture(scope="module")
def fuzz_tokens(targets: dict[str, str], http: httpx.Client) -> dict[str, str]:
    """Fresh sign-ins of their own: the fuzzer may sign them out (POST /auth/logout)."""
    tokens = {}
    for role, username in ROLES.items():
        answer = http.post(
            f"{targets['gateway']}/auth/token",
            data={"grant_type": "password", "username": username, "password": PASSWORDS[username]},
        )
        assert answer.status_code == 200, answer.text
        tokens[role] = answer.json()["access_token"]
    return tokens


@pytest.mark.parametrize("service", SERVICES)
def test_fuzzed_requests_never_fail_or_break_the_schema(
    service: str,
    targets: dict[str, str],
    fuzz_tokens: dict[str, str],
    service_tokens: Any,
    tally: Any,
) -> None:
    base_url = targets[service]
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for role, token in fuzz_tokens.items():
            headers = {
                "Authorization": f"Bearer {token}",
                "X-Service-Token": service_tokens["orders"],
                # Failed sign-ins the fuzzer causes count against an address of its own.
                "X-Forwarded-For": "203.0.113.77",
            }
            for mode, examples in EXAMPLES.items():
                fuzz = fuzzer(operation.as_strategy(generation_mode=mode), examples)
                try:
                    fuzz(lambda case, h=headers: send(case, base_url, h, service, tally))
                except Unsatisfiable:
                    pass  # nothing to make invalid (no parameters, no body): nothing to send
                except Exception as exc:  # one report per operation, role and mode
                    failures.append(f"{operation.label} as {role} ({mode.value}):\n{exc}"[:3000])
    assert not failures, "\n\n".join(failures)
