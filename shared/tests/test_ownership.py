"""security.owned_or_staff: a row's owner, or a user with one of the staff roles; any other
user is refused, and the refusal is counted (the 404 a stranger gets is a denial, not a miss)."""

from __future__ import annotations

from prometheus_client import REGISTRY
from relayshop_platform.roles import STAFF_READERS, Role
from relayshop_platform.security import owned_or_staff
from relayshop_platform.tokens import Principal


def user(sub: str, *roles: Role) -> Principal:
    return Principal(sub=sub, roles=tuple(roles), scope="", jti="j", exp=2**31, iat=0)


def not_owner_denials() -> float:
    labels = {"check": "service", "reason": "not_owner"}
    return REGISTRY.get_sample_value("relayshop_access_denials_total", labels) or 0.0


def test_the_owner_and_staff_pass_without_a_denial() -> None:
    before = not_owner_denials()
    assert owned_or_staff("alice", user("alice", Role.CUSTOMER), staff=STAFF_READERS)
    assert owned_or_staff("alice", user("carol", Role.SUPPORT), staff=STAFF_READERS)
    assert owned_or_staff("alice", user("root", Role.ADMIN), staff={Role.ADMIN})
    assert not_owner_denials() == before


def test_anyone_else_is_refused_and_counted() -> None:
    before = not_owner_denials()
    assert not owned_or_staff("alice", user("bob", Role.CUSTOMER), staff=STAFF_READERS)
    assert not owned_or_staff("alice", user("walt", Role.WAREHOUSE), staff=STAFF_READERS)
    # support reads every row, but changes none: not staff where the rule says admin only
    assert not owned_or_staff("alice", user("carol", Role.SUPPORT), staff={Role.ADMIN})
    assert not_owner_denials() == before + 3
