"""The revocation channel, attacked: a service's Redis user trying to forge or erase revocations,
and malformed messages on the channel trying to switch revocation off.

Only auth may write the revocations or publish on their channel (Redis ACL users, one per
service: relayshop_platform/redis_acl.py); every other service may only read and follow them. So
a compromised orders (or its leaked Redis password) cannot un-revoke a stolen token or forge a
"keys changed" message (OWASP, least privilege). And whatever reaches the channel is validated:
a malformed message is refused and the mirror reloads, it never stops the mirror silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from relayshop_devtools.devstack import PASSWORDS, Stack
from relayshop_platform.redis_acl import service_url
from relayshop_platform.revocation import CHANNEL, JTI_KEY, NBF_KEY

READERS = ("gateway", "orders", "payments", "inventory")
# What a compromised reader would try: forge a revocation or a key change, erase or shorten the
# revocations, clear a user's not-before, take Redis down or its persistence off.
FORGERIES: dict[str, Callable[[redis.Redis], Any]] = {
    "publish_keys_changed": lambda r: r.publish(CHANNEL, '{"type": "keys"}'),
    "publish_bad_message": lambda r: r.publish(CHANNEL, '{"type": "jti"}'),
    "add_revoked_jti": lambda r: r.zadd(JTI_KEY, {"forged": 1}),
    "remove_revoked_jti": lambda r: r.zrem(JTI_KEY, "any"),
    "expire_revocations": lambda r: r.expire(JTI_KEY, 1),
    "reset_not_before": lambda r: r.hset(NBF_KEY, "alice", 0),
    "delete_not_before": lambda r: r.hdel(NBF_KEY, "alice"),
    "delete_everything": lambda r: r.delete(JTI_KEY, NBF_KEY),
    "flushall": lambda r: r.flushall(),
    "rename_key": lambda r: r.rename(JTI_KEY, "elsewhere"),
    "lua_delete": lambda r: r.eval("return redis.call('DEL', KEYS[1])", 1, JTI_KEY),
    "persistence_off": lambda r: r.config_set("appendonly", "no"),
    "acl_widen": lambda r: r.execute_command("ACL", "SETUSER", "orders", "+@all"),
    "write_throttle": lambda r: r.delete("relayshop:auth:fail:addr:198.51.100.1"),
}
MALFORMED = (b'{"type": "jti"}', b"[]", b'{"type": "nbf", "sub": "x", "nbf": "soon"}', b"\xff")


def redis_as(stack: Stack, user: str, service: str) -> redis.Redis:
    url = service_url(stack.env(service)["REDIS_URL"], user, stack.redis_passwords[service])
    return redis.Redis.from_url(url)


@pytest.mark.parametrize("user", [*READERS, "gateway-console"])
def test_a_service_cannot_forge_or_erase_revocations(stack: Stack, tally: Any, user: str) -> None:
    client = redis_as(stack, user, user.partition("-")[0])
    try:
        assert client.ping()
        for name, forge in FORGERIES.items():
            tally.add("redis")
            with pytest.raises(redis.exceptions.NoPermissionError):
                forge(client)
                pytest.fail(f"{user} could {name}")
    finally:
        client.close()


def test_malformed_messages_never_switch_revocation_off(
    stack: Stack, http: httpx.Client, attacker: httpx.Client, tally: Any, received: Any
) -> None:
    """Malformed messages first, then a real revocation: every hop still refuses the token. Each
    hop gets carol's token as it receives it (in exchange mode the token exchanged for it, which
    it accepts before the revocation): its 401 afterwards is the revocation reaching it through
    the token's derived_from, not a token addressed to another service."""
    form = {"grant_type": "password", "username": "carol", "password": PASSWORDS["carol"]}
    token = http.post(f"{stack.url('gateway')}/auth/token", data=form).json()["access_token"]
    hops = {
        "gateway": f"{stack.url('gateway')}/api/orders",
        "orders": f"{stack.url('orders')}/api/orders",
        "inventory": f"{stack.url('inventory')}/api/inventory/products",
        "auth": f"{stack.url('auth')}/auth/userinfo",
    }
    bearers = {name: {"Authorization": f"Bearer {received(token, name)}"} for name in hops}
    for name, url in hops.items():
        assert http.get(url, headers=bearers[name]).status_code == 200, name
    admin = redis.Redis.from_url(stack.redis_url)
    try:
        for message in MALFORMED:
            tally.add("redis")
            admin.publish(CHANNEL, message)
    finally:
        admin.close()
    assert http.post(f"{stack.url('gateway')}/auth/revoke", data={"token": token}).is_success
    deadline = time.monotonic() + 1.0
    for name, url in hops.items():
        while (answer := attacker.get(url, headers=bearers[name])).status_code != 401:
            assert time.monotonic() < deadline, f"{name} still accepts a revoked token"
            time.sleep(0.05)
        assert 'error="invalid_token"' in answer.headers["www-authenticate"], name
    for name in ("gateway", "orders", "inventory", "payments"):
        ready = http.get(f"{stack.url(name)}/readyz").json()
        assert ready["checks"]["redis"] == "ok", (name, ready)  # the mirror is alive and in sync
