"""The JWKS cache against a real HTTP server: bounded refetch, and keys kept while auth is down."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from relayshop_devtools.testing import TestKey
from relayshop_platform.jwks import JWKSCache


async def test_get_loads_known_kid_and_rate_limits_unknown_kids(fake_auth) -> None:
    async with httpx.AsyncClient() as client:
        cache = JWKSCache(
            f"{fake_auth.url}/auth/.well-known/jwks.json", client, min_refetch_seconds=60
        )
        before = fake_auth.jwks_requests
        assert await cache.get(fake_auth.key.kid) is not None
        for index in range(20):
            assert await cache.get(f"random-kid-{index}") is None
        # one fetch for the known kid; the unknown kids share the same bounded window
        assert fake_auth.jwks_requests - before == 1


async def test_refresh_keeps_last_good_keys_when_auth_is_down(fake_auth) -> None:
    async with httpx.AsyncClient() as client:
        cache = JWKSCache(f"{fake_auth.url}/auth/.well-known/jwks.json", client)
        await cache.refresh(force=True)
        assert cache.loaded
        cache.url = "http://127.0.0.1:9/auth/.well-known/jwks.json"  # nothing listens on port 9
        await cache.refresh(force=True)
        assert await cache.get(fake_auth.key.kid) is not None


async def test_keys_are_refreshed_periodically_and_removals_reported(
    fake_auth, monkeypatch
) -> None:
    """A key auth stopped publishing (retired, announcement lost) is dropped at the next periodic
    refresh, and whoever cached tokens under it is told."""
    removals: list[bool] = []
    async with httpx.AsyncClient() as client:
        cache = JWKSCache(
            f"{fake_auth.url}/auth/.well-known/jwks.json",
            client,
            refresh_seconds=0.2,
            on_keys_removed=lambda: removals.append(True),
        )
        cache.start()
        try:
            deadline = time.monotonic() + 5
            while not cache.loaded:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            retired = fake_auth.key.kid
            replacement = TestKey("replacement-kid")
            monkeypatch.setattr(fake_auth, "key", replacement)
            while cache.kids() != [replacement.kid]:
                assert time.monotonic() < deadline, "the JWKS was not refreshed on schedule"
                await asyncio.sleep(0.02)
            assert retired not in cache.kids()
            assert removals == [True]
        finally:
            await cache.stop()


def test_parse_ignores_private_and_foreign_keys() -> None:
    key = TestKey("k1")
    private = dict(key.jwk(), kid="k2", d="secret")
    hs = {"kty": "oct", "kid": "k3", "alg": "HS256", "k": "c2VjcmV0"}
    keys = JWKSCache.parse({"keys": [key.jwk(), private, hs]})
    assert list(keys) == ["k1"]


def test_parse_refuses_a_set_with_no_usable_key() -> None:
    with pytest.raises(Exception, match="no usable"):
        JWKSCache.parse({"keys": [{"kty": "oct", "kid": "x", "alg": "HS256", "k": "AA"}]})
