"""The gateway's coarse rules agree with the services' own, read from each service's OpenAPI
(``x-relayshop-access``, written by relayshop_platform.security.document_access):
- an internal operation (a user token plus an allowed calling service) or a system operation (a
  service's own token) is never reachable through the gateway, whatever the roles;
- where the gateway names the roles of a public operation, they are the service's roles exactly.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from gateway_service.rules import RULES, check_route
from relayshop_platform.catalogue import CATALOGUE
from relayshop_platform.errors import InsufficientScope
from relayshop_platform.roles import ROLES
from relayshop_platform.tokens import Principal

BEHIND = [s for s in CATALOGUE if s.prefix is not None and s.prefix.startswith("/api/")]


def everyone() -> Principal:
    return Principal(sub="u-1", roles=ROLES, scope="", jti="j", exp=2**31, iat=0)


def is_public(access: dict[str, Any]) -> bool:
    """A user's operation (roles and scope), not an internal or a system one."""
    return "via" not in access and "service_token_of" not in access


def operations(package: str) -> list[tuple[str, str, dict[str, Any]]]:
    app = importlib.import_module(f"{package}.main").create_app()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x-1", path), operation["x-relayshop-access"])
        for path, methods in app.openapi()["paths"].items()
        for method, operation in methods.items()
        if "x-relayshop-access" in operation
    ]


@pytest.mark.parametrize("service", BEHIND, ids=lambda s: s.name)
def test_every_operation_says_who_may_call_it(service: Any) -> None:
    found = operations(service.package)
    assert found, f"{service.name} documents no access rule"
    assert all(path.startswith(service.prefix) for _, path, _ in found)


@pytest.mark.parametrize("service", BEHIND, ids=lambda s: s.name)
def test_every_user_operation_requires_a_scope_of_its_design(service: Any) -> None:
    """Public operations need the service's own read or write scope; internal ones a scope too
    (the saga's steps need orders:write), so no user operation is reachable on roles alone."""
    for method, path, access in operations(service.package):
        if "service_token_of" in access:
            continue  # a system operation: the calling service's own token, no user
        assert "scope" in access, f"{method} {path} declares no scope"
        if is_public(access):
            action = "read" if method == "GET" else "write"
            assert access["scope"] == f"{service.name}:{action}", (method, path, access)


@pytest.mark.parametrize("service", BEHIND, ids=lambda s: s.name)
def test_internal_and_system_operations_are_never_reachable_through_the_gateway(
    service: Any,
) -> None:
    hidden = [(m, p) for m, p, access in operations(service.package) if not is_public(access)]
    for method, path in hidden:
        with pytest.raises(InsufficientScope) as refused:
            check_route(method, path, everyone())
        assert refused.value.reason == "internal", (method, path)


@pytest.mark.parametrize("service", BEHIND, ids=lambda s: s.name)
def test_a_gateway_role_rule_is_the_service_rule(service: Any) -> None:
    for method, path, access in operations(service.package):
        if not is_public(access):
            continue
        rule = next((r for r in RULES if r.matches(method, path)), None)
        if rule is None or not rule.roles:
            continue  # no rule at the edge (any signed-in user), or internal (tested above)
        allowed = set(ROLES) if access["roles"] == "any" else set(access["roles"])
        assert set(rule.roles) == allowed, f"{method} {path}: gateway {rule.roles}, {allowed}"


def test_every_role_rule_at_the_gateway_matches_a_service_operation() -> None:
    public = [
        (method, path)
        for service in BEHIND
        for method, path, access in operations(service.package)
        if is_public(access)
    ]
    for rule in (r for r in RULES if r.roles):
        assert any(rule.matches(m, p) for m, p in public), f"a stale rule: {rule}"
