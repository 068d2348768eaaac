"""The token relay as an httpx.Auth, and this service's own client_credentials token."""

from __future__ import annotations

import httpx
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
        first = await tokens.token()
        assert await tokens.token() == first
        assert fake_auth.token_requests - before == 1
        tokens._expires_at = 0  # as if it were about to expire
        await tokens.token()
        assert fake_auth.token_requests - before == 2
