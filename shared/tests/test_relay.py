"""The token relay as an httpx.Auth, and this service's own client_credentials token."""

from __future__ import annotations

import httpx
import jwt
import pytest
from relayshop_platform.errors import InvalidToken, UpstreamUnavailable
from relayshop_platform.relay import BearerRelay, ServiceTokens
from relayshop_platform.security import SERVICE_TOKEN_HEADER


async def test_relay_sets_the_user_token_and_the_service_token() -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await client.get(
            "http://inventory/api",
            auth=BearerRelay("user-token", "service-token"),
            headers={"Authorization": "Bearer smuggled"},
        )
    assert seen[0]["authorization"] == "Bearer user-token"
    assert seen[0][SERVICE_TOKEN_HEADER] == "service-token"


async def test_service_tokens_are_cached_until_shortly_before_expiry(fake_auth) -> None:
    async with httpx.AsyncClient() as client:
        tokens = ServiceTokens(client, f"{fake_auth.url}/auth/token", "orders", "orders-secret")
        before = fake_auth.token_requests
        first = await tokens.token("inventory")
        assert await tokens.token("inventory") == first
        assert fake_auth.token_requests - before == 1
        # One token per callee, each addressed to it alone.
        assert jwt.decode(first, options={"verify_signature": False})["aud"] == (
            "urn:relayshop:inventory"
        )
        other = await tokens.token("payments")
        assert jwt.decode(other, options={"verify_signature": False})["aud"] == (
            "urn:relayshop:payments"
        )
        assert fake_auth.token_requests - before == 2
        tokens._own["inventory"] = (first, 0.0)  # as if it were about to expire
        await tokens.token("inventory")
        assert fake_auth.token_requests - before == 3


async def test_exchanged_tokens_are_cached_per_subject_callee_and_scope(
    fake_auth, test_key
) -> None:
    async with httpx.AsyncClient() as client:
        tokens = ServiceTokens(client, f"{fake_auth.url}/auth/token", "orders", "orders-secret")
        subject = test_key.mint(aud="urn:relayshop:orders")
        before = fake_auth.exchange_requests
        first = await tokens.exchange(subject, "inventory")
        assert await tokens.exchange(subject, "inventory") == first
        assert fake_auth.exchange_requests - before == 1
        claims = jwt.decode(first, options={"verify_signature": False})
        assert claims["aud"] == "urn:relayshop:inventory"
        assert claims["act"] == {"sub": "orders"}
        # Another callee, another scope or another subject token: another exchange.
        await tokens.exchange(subject, "payments")
        await tokens.exchange(subject, "inventory", scope="orders:write")
        await tokens.exchange(test_key.mint(aud="urn:relayshop:orders"), "inventory")
        assert fake_auth.exchange_requests - before == 4
        tokens.invalidate()  # a signing key was retired: nothing cached survives
        await tokens.exchange(subject, "inventory")
        assert fake_auth.exchange_requests - before == 5


async def test_a_refused_exchange_is_a_401_and_auth_down_a_503() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_grant"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        tokens = ServiceTokens(client, "http://auth/auth/token", "orders", "orders-secret")
        with pytest.raises(InvalidToken):
            await tokens.exchange("subject", "inventory")

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(down)) as client:
        tokens = ServiceTokens(client, "http://auth/auth/token", "orders", "orders-secret")
        with pytest.raises(UpstreamUnavailable):
            await tokens.exchange("subject", "inventory")
