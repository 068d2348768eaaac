"""The roles of relayshop's users: what a user may do (scopes.py says what a token may do).

A route names the roles it allows with these members, never with bare strings, so a typo is an
AttributeError at import time and not a rule that quietly lets nobody in:

    dependencies=[Depends(require_roles(Role.WAREHOUSE, Role.ADMIN, scope="inventory:write"))]

``Role`` is a StrEnum: each member is the very string a token's ``roles`` claim carries. A
service's own client_credentials token has the role "service" (tokens.SERVICE_ROLE), which is
not a user's role and not listed here.
"""

from __future__ import annotations

from enum import StrEnum

# What a service uses; the rest is this module's own business.
__all__ = ["ROLES", "STAFF_READERS", "Role"]


class Role(StrEnum):
    CUSTOMER = "customer"
    SUPPORT = "support"
    WAREHOUSE = "warehouse"
    ADMIN = "admin"


# Every user role, in a stable order.
ROLES: tuple[Role, ...] = tuple(Role)
# Who may read every order, payment and reservation, not only their own (read only for support).
STAFF_READERS: frozenset[Role] = frozenset({Role.SUPPORT, Role.ADMIN})
