"""Scopes: what a token lets its client do. Roles (roles.py) say what the user may do; a route
needs both.

Each domain service of the catalogue has two scopes (RFC 6749 section 3.3 scope tokens):

    <service>:read    read that service's resources      (orders:read, inventory:read, ...)
    <service>:write   change them                        (orders:write, inventory:write, ...)

A user may be granted every ``:read`` scope, and the ``:write`` scope of each service whose
catalogue entry lists one of the user's roles in ``writers``. The password grant issues all of
those, or the subset the client asks for with ``scope=``; a token exchanged for the next hop
(RFC 8693) never carries more than the token it came from. So ``scope=orders:read`` signs a user
in who can list their orders and nothing else, whatever their roles.

The internal operations of the order saga (reserve, commit, release, charge, refund on cancel)
need ``orders:write`` in the user's token: they are steps of placing or cancelling an order, and a
token that may not change orders must not move stock or money on the way. A service's own
client_credentials token carries ``internal``: it proves which service calls, it is never a
user's right to anything.
"""

from __future__ import annotations

from collections.abc import Iterable

from .catalogue import CATALOGUE

# What a service uses; the rest is this module's own business.
__all__ = [
    "OPENID",
    "SERVICE_SCOPE",
    "USER_SCOPES",
    "has_scope",
    "read",
    "scopes_for_roles",
    "write",
]

OPENID = "openid"  # OpenID Connect's own scope: /auth/userinfo
SERVICE_SCOPE = "internal"


def read(service: str) -> str:
    return f"{service}:read"


def write(service: str) -> str:
    return f"{service}:write"


# Every scope a user token may carry, in a stable order (the order of the catalogue).
USER_SCOPES: tuple[str, ...] = (
    OPENID,
    *(scope for s in CATALOGUE if s.scoped for scope in (read(s.name), write(s.name))),
)


def scopes_for_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Every scope a user with ``roles`` can use, in USER_SCOPES order."""
    held = set(roles)
    allowed = {OPENID}
    for s in CATALOGUE:
        if s.scoped:
            allowed.add(read(s.name))
            if held.intersection(s.writers):
                allowed.add(write(s.name))
    return tuple(scope for scope in USER_SCOPES if scope in allowed)


def has_scope(granted: str, needed: str) -> bool:
    """``granted`` is a token's space-separated ``scope`` claim (RFC 6749 section 3.3)."""
    return needed in granted.split(" ")
