"""The JWKS cache against a real HTTP server: bounded refetch, and keys kept while auth is down."""

from __future__ import annotations

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


def test_parse_ignores_private_and_foreign_keys() -> None:
    key = TestKey("k1")
    private = dict(key.jwk(), kid="k2", d="secret")
    hs = {"kty": "oct", "kid": "k3", "alg": "HS256", "k": "c2VjcmV0"}
    keys = JWKSCache.parse({"keys": [key.jwk(), private, hs]})
    assert list(keys) == ["k1"]


def test_parse_refuses_a_set_with_no_usable_key() -> None:
    with pytest.raises(Exception, match="no usable"):
        JWKSCache.parse({"keys": [{"kty": "oct", "kid": "x", "alg": "HS256", "k": "AA"}]})
