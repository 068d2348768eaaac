"""Coarse route rules at the edge: who may reach which /api path at all.

This is the first RBAC layer (docs/architecture.md, "RBAC in layers"). Each service still declares
the fine rule on every endpoint (roles and ownership), so these rules are defence in depth: they
turn an obviously forbidden request away before it costs an upstream call, and they never grant
more than the service would.

Read the table top to bottom; the first rule whose method and path match decides. A path that no
rule names is open to any signed-in user (a valid, unrevoked, non-service token, checked before
the rules run). ``NOBODY`` marks internal service-to-service operations: they are never reachable
from outside, whatever the token says (the services would refuse a user token alone anyway, since
they also demand the calling service's own token; RFC 6750 section 3.1 ``insufficient_scope``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relayshop_platform.errors import InsufficientScope
from relayshop_platform.roles import Role
from relayshop_platform.tokens import Principal

ANY_METHOD = "*"
NOBODY: frozenset[str] = frozenset()
ID = r"[^/]+"  # one path segment, such as {sku} or {id}


@dataclass(frozen=True, slots=True)
class Rule:
    method: str  # an HTTP method, or ANY_METHOD
    pattern: re.Pattern[str]  # matched against the whole (percent-decoded) path
    roles: frozenset[str]  # the roles allowed; NOBODY for internal operations

    def matches(self, method: str, path: str) -> bool:
        return (self.method == ANY_METHOD or self.method == method) and (
            self.pattern.fullmatch(path) is not None
        )


def rule(method: str, path: str, roles: frozenset[str]) -> Rule:
    # "/?": a trailing slash must not slip past a rule ("/api/orders/" is "/api/orders").
    return Rule(method, re.compile(path + "/?"), roles)


def internal(prefix: str) -> Rule:
    """Every method on ``prefix`` and on everything below it."""
    return Rule(ANY_METHOD, re.compile(re.escape(prefix) + "(?:/.*)?"), NOBODY)


RULES: tuple[Rule, ...] = (
    # Internal operations (OpenAPI tag "internal"): service to service only.
    internal("/api/inventory/reservations"),
    internal("/api/payments/charges"),
    internal("/api/payments/by-order"),
    # System operations (orders' reconciler, with its own token alone): never from outside.
    internal("/api/inventory/system"),
    internal("/api/payments/system"),
    # The rules of docs/api.md, section 5, that say more than "any signed-in role".
    rule("PUT", rf"/api/inventory/products/{ID}/stock", frozenset({Role.WAREHOUSE, Role.ADMIN})),
    rule("POST", rf"/api/payments/{ID}/refund", frozenset({Role.ADMIN})),
    rule("POST", r"/api/orders", frozenset({Role.CUSTOMER})),
)


def check_route(method: str, path: str, principal: Principal) -> None:
    """Raise InsufficientScope (403) unless ``principal`` may call ``method path``."""
    for entry in RULES:
        if entry.matches(method, path):
            if not entry.roles:
                raise InsufficientScope(
                    "This is an internal operation; it is not reachable from outside.",
                    reason="internal",
                )
            if not principal.has_any_role(entry.roles):
                raise InsufficientScope(
                    f"This needs one of the roles: {', '.join(sorted(entry.roles))}.",
                    reason="role",
                )
            return
