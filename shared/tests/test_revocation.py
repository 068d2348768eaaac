"""The revocation mirror against a real Redis: load at start, follow pub/sub, fail closed."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis
from relayshop_devtools.testing import TestKey
from relayshop_platform.errors import InvalidToken, UpstreamUnavailable
from relayshop_platform.revocation import (
    CHANNEL,
    JTI_KEY,
    NBF_KEY,
    RevocationMirror,
    RevocationStore,
)
from relayshop_platform.tokens import principal_from_claims


async def wait_for(predicate, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def principal(key: TestKey, **claims):
    return principal_from_claims(key.claims(**claims))


@pytest.fixture
async def store(redis_url: str):
    client = aioredis.from_url(redis_url)
    await client.delete(JTI_KEY, NBF_KEY)
    yield RevocationStore(client)
    await client.delete(JTI_KEY, NBF_KEY)
    await client.aclose()


async def test_mirror_loads_revocations_made_before_it_started(
    store: RevocationStore, redis_url: str, test_key: TestKey
) -> None:
    revoked = principal(test_key)
    await store.revoke_jti(revoked.jti, revoked.exp)
    mirror = RevocationMirror(redis_url)
    mirror.start()
    try:
        assert await mirror.wait_synced(5)
        with pytest.raises(InvalidToken, match="revoked"):
            mirror.check(revoked)
        mirror.check(principal(test_key))  # another token still passes
    finally:
        await mirror.stop()


async def test_mirror_follows_published_revocations(
    store: RevocationStore, redis_url: str, test_key: TestKey
) -> None:
    mirror = RevocationMirror(redis_url)
    mirror.start()
    try:
        assert await mirror.wait_synced(5)
        token = principal(test_key, sub="alice")
        mirror.check(token)
        await store.revoke_jti(token.jti, token.exp)
        await wait_for(lambda: token.jti in mirror.revoked_jti)
        with pytest.raises(InvalidToken):
            mirror.check(token)
        older = principal(test_key, sub="bob", iat=int(time.time()) - 10)
        await store.revoke_user("bob")
        await wait_for(lambda: "bob" in mirror.not_before)
        with pytest.raises(InvalidToken):
            mirror.check(older)
    finally:
        await mirror.stop()


async def test_mirror_that_never_synced_fails_closed(test_key: TestKey) -> None:
    mirror = RevocationMirror("redis://127.0.0.1:9/0", max_staleness_seconds=30)
    mirror.start()
    try:
        await asyncio.sleep(0.2)
        with pytest.raises(UpstreamUnavailable):
            mirror.check(principal(test_key))
    finally:
        await mirror.stop()


async def test_store_raises_when_redis_is_unreachable() -> None:
    client = aioredis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    with pytest.raises(Exception) as info:
        await RevocationStore(client).revoke_jti("x", int(time.time()) + 60)
    assert "Error" in type(info.value).__name__
    await client.aclose()


async def test_mirror_resyncs_after_its_connection_drops(
    store: RevocationStore, redis_url: str, test_key: TestKey
) -> None:
    """A revocation recorded while the subscription was down (written, never published to this
    mirror) is picked up by the full reload after the reconnect."""
    mirror = RevocationMirror(redis_url)
    mirror.start()
    try:
        assert await mirror.wait_synced(5)
        missed = principal(test_key)
        await store.redis.zadd(JTI_KEY, {missed.jti: missed.exp})  # recorded, no message
        mirror.check(missed)  # the mirror cannot know yet
        # Drop the mirror's connections (and only those: they carry their own client name).
        for info in await store.redis.client_list():
            if info.get("name") == mirror.client_name:
                await store.redis.client_kill_filter(_id=info["id"])
        await wait_for(lambda: missed.jti in mirror.revoked_jti, timeout=5)
        with pytest.raises(InvalidToken, match="revoked"):
            mirror.check(missed)
    finally:
        await mirror.stop()


@pytest.mark.parametrize(
    "message",
    [
        b'{"type": "jti"}',
        b"[]",
        b'{"type": "nbf", "sub": "bob", "nbf": "soon"}',
        b'{"type": "jti", "jti": ["a"], "exp": 1}',
        b'"keys"',
        b"\xff\xfe not json",
        b'{"type": "nbf", "sub": "", "nbf": 1}',
    ],
)
async def test_mirror_refuses_malformed_message_and_resyncs(
    store: RevocationStore, redis_url: str, test_key: TestKey, message: bytes
) -> None:
    """A malformed message is refused, the mirror reloads (picking up a revocation recorded
    without a message) and keeps following the channel afterwards."""
    mirror = RevocationMirror(redis_url)
    mirror.start()
    try:
        assert await mirror.wait_synced(5)
        unannounced, announced = principal(test_key), principal(test_key)
        await store.redis.zadd(JTI_KEY, {unannounced.jti: unannounced.exp})
        await store.redis.publish(CHANNEL, message)
        await wait_for(lambda: unannounced.jti in mirror.revoked_jti)
        await store.revoke_jti(announced.jti, announced.exp)
        await wait_for(lambda: announced.jti in mirror.revoked_jti)
        assert mirror.healthy
    finally:
        await mirror.stop()


async def test_mirror_whose_task_ended_counts_as_lost(redis_url: str, test_key: TestKey) -> None:
    mirror = RevocationMirror(redis_url, max_staleness_seconds=0)
    mirror.start()
    try:
        assert await mirror.wait_synced(5)
        mirror.check(principal(test_key))
        assert mirror._task is not None
        mirror._task.cancel()  # however it ends (a bug, a cancellation), it never comes back
        await wait_for(lambda: not mirror.healthy)
        with pytest.raises(UpstreamUnavailable):
            mirror.check(principal(test_key))
    finally:
        await mirror.stop()
