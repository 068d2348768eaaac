"""Redis ACL users against a real (embedded) Redis: services read and follow the revocations,
only auth writes or publishes them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError
from relayshop_devtools.testing import embedded_redis
from relayshop_platform.redis_acl import (
    HEALTH_CHECK,
    RULES,
    redis_server_args,
    service_of,
    service_url,
)
from relayshop_platform.revocation import (
    CHANNEL,
    JTI_KEY,
    NBF_KEY,
    RevocationMirror,
    RevocationStore,
)

PASSWORDS = {name: f"{name}-test-password" for name in map(service_of, RULES)}


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis with one ACL user per service; the default user may only PING (health checks)."""
    acl = redis_server_args(PASSWORDS, default_password="ping-only", default_rules=HEALTH_CHECK)
    with embedded_redis(tmp_path_factory.mktemp("acl-redis"), acl, password="ping-only") as url:
        yield url


def as_user(url: str, name: str) -> redis.Redis:
    return redis.Redis.from_url(service_url(url, name, PASSWORDS[service_of(name)]))


@pytest.mark.parametrize(
    "service", ["gateway", "gateway-console", "orders", "payments", "inventory"]
)
def test_a_service_reads_revocations_but_cannot_write_or_publish_them(
    acl_redis: str, service: str
) -> None:
    client = as_user(acl_redis, service)
    try:
        if service != "gateway-console":
            client.zrangebyscore(JTI_KEY, 0, "+inf")
            client.hgetall(NBF_KEY)
        for forbidden in (
            lambda: client.publish(CHANNEL, '{"type": "keys"}'),
            lambda: client.zadd(JTI_KEY, {"forged": 1}),
            lambda: client.zrem(JTI_KEY, "a-revoked-jti"),
            lambda: client.hset(NBF_KEY, "alice", 0),
            lambda: client.delete(JTI_KEY, NBF_KEY),
            lambda: client.flushall(),
            lambda: client.config_set("appendonly", "no"),
            lambda: client.eval("return redis.call('DEL', KEYS[1])", 1, JTI_KEY),
            lambda: client.set("relayshop:auth:fail:user:x", 0),
        ):
            with pytest.raises(NoPermissionError):
                forbidden()
    finally:
        client.close()


def test_the_default_user_may_only_ping(acl_redis: str) -> None:
    anonymous = redis.Redis.from_url(acl_redis)
    with pytest.raises(AuthenticationError):
        anonymous.ping()
    anonymous.close()
    health = redis.Redis.from_url(acl_redis, password="ping-only")
    assert health.ping()
    with pytest.raises(NoPermissionError):
        health.zrangebyscore(JTI_KEY, 0, "+inf")
    health.close()


def test_a_wrong_password_is_refused(acl_redis: str) -> None:
    client = redis.Redis.from_url(service_url(acl_redis, "orders", "guess"))
    with pytest.raises((AuthenticationError, ResponseError)):
        client.ping()
    client.close()


async def test_auth_revokes_and_a_service_mirror_follows(acl_redis: str) -> None:
    """The real write side as auth and the real read side as orders, each with its own user."""
    writer = aioredis.from_url(service_url(acl_redis, "auth", PASSWORDS["auth"]))
    mirror = RevocationMirror(service_url(acl_redis, "orders", PASSWORDS["orders"]))
    mirror.start()
    try:
        assert await mirror.wait_synced(5)
        await RevocationStore(writer).revoke_jti("jti-revoked-by-auth", int(time.time()) + 60)
        await RevocationStore(writer).revoke_user("bob")
        deadline = time.monotonic() + 5
        while "jti-revoked-by-auth" not in mirror.revoked_jti or "bob" not in mirror.not_before:
            assert time.monotonic() < deadline, "the mirror did not follow"
            await asyncio.sleep(0.01)
        assert mirror.healthy
    finally:
        await mirror.stop()
        await writer.aclose()


async def test_auth_runs_the_throttle_and_the_gateway_its_sessions(acl_redis: str) -> None:
    from auth_service.throttle import LoginThrottle, user_account
    from gateway_service.session import SessionStore

    auth = aioredis.from_url(service_url(acl_redis, "auth", PASSWORDS["auth"]))
    gateway = aioredis.from_url(service_url(acl_redis, "gateway-console", PASSWORDS["gateway"]))
    try:
        throttle = LoginThrottle(auth, max_per_account=1, max_per_address=5, window_seconds=60)
        assert await throttle.reserve(user_account("acl-test"), "198.51.100.1") == 0
        assert await throttle.reserve(user_account("acl-test"), "198.51.100.1") > 0
        await throttle.succeeded(user_account("acl-test"), "198.51.100.1")
        sessions = SessionStore(gateway, ttl_seconds=60)
        async with sessions.refresh_lock("acl-test-session"):  # SET NX, then a Lua release
            await sessions.delete("acl-test-session")
        await sessions.remember_order("order-1", "alice")
        assert await sessions.order_of_someone_else("bob") == "order-1"
        with pytest.raises(NoPermissionError):
            await gateway.zadd(JTI_KEY, {"forged": 1})
    finally:
        await auth.aclose()
        await gateway.aclose()
