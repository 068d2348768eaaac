"""The edge with RELAYSHOP_TRUSTED_ISSUERS: a Keycloak token is verified, exchanged, replaced.

KeycloakIssuer is a real HTTP server (discovery and keys, as Keycloak serves them); the fake auth
answers the gateway's exchange with a relayshop token minted by test_key, as auth's federation
would. The whole flow with the real auth is the e2e test (tests/e2e/test_federation.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client import REGISTRY
from relayshop_devtools.fakes import Fakes
from relayshop_devtools.oidc_issuer import KeycloakIssuer
from relayshop_devtools.testing import StartGateway, TestKey, bearer
from relayshop_platform.issuers import stable_sub

GATEWAY = "urn:relayshop:gateway"


@pytest.fixture(scope="module")
def keycloak() -> Iterator[KeycloakIssuer]:
    with KeycloakIssuer() as issuer:
        yield issuer


def trusting(keycloak: KeycloakIssuer) -> str:
    entry = {
        "issuer": keycloak.issuer,
        "audience": GATEWAY,
        "roles_claim": "realm_access.roles",
        "allowed_azp": ["relayshop-console"],
        "token_types": ["JWT"],
    }
    return json.dumps([entry])


def keycloak_token(keycloak: KeycloakIssuer, **claims: Any) -> str:
    arguments: dict[str, Any] = {"roles": ["customer"], "audience": [GATEWAY]}
    arguments.update(claims)
    return keycloak.mint(**arguments)


def ours_for(keycloak: KeycloakIssuer, token: str, key: TestKey, **claims: Any) -> str:
    """What auth's federation answers for ``token``: its user, for the gateway."""
    external = jwt.decode(token, options={"verify_signature": False})
    values: dict[str, Any] = {
        "sub": stable_sub(keycloak.issuer, external["sub"]),
        "aud": GATEWAY,
        "act": {"sub": "gateway"},
        "client_id": "gateway",
    }
    values.update(claims)
    return key.mint(**values)


def rejections(reason: str) -> float:
    labels = {"check": "edge", "reason": reason}
    return REGISTRY.get_sample_value("relayshop_token_rejections_total", labels) or 0.0


@pytest.fixture(params=["exchange", "relay"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(
    mode: str, start_gateway: StartGateway, keycloak: KeycloakIssuer
) -> AsyncIterator[httpx.AsyncClient]:
    gateway = await start_gateway(
        RELAYSHOP_TRUSTED_ISSUERS=trusting(keycloak), RELAYSHOP_TOKEN_MODE=mode
    )
    async with gateway.client() as http:
        yield http


async def test_a_keycloak_token_goes_upstream_as_a_relayshop_token(
    client: httpx.AsyncClient,
    mode: str,
    fakes: Fakes,
    keycloak: KeycloakIssuer,
    test_key: TestKey,
) -> None:
    external = keycloak_token(keycloak)
    external_sub = jwt.decode(external, options={"verify_signature": False})["sub"]
    user = stable_sub(keycloak.issuer, external_sub)
    ours = ours_for(keycloak, external, test_key)
    fakes.auth.canned["exchange"] = (
        200,
        {"access_token": ours, "token_type": "Bearer", "expires_in": 300},
    )
    for _ in range(2):
        response = await client.get("/api/orders", headers=bearer(external))
        assert response.status_code == 200, response.text

    # The first exchange is the federation one: the Keycloak token, for the gateway itself.
    first = fakes.auth.exchanges[0]
    assert (first["subject_token"], first["audience"]) == (external, GATEWAY)
    # Upstream never sees the Keycloak token: relayshop's goes (relayed, or exchanged again).
    for seen in fakes.orders.requests:
        (sent,) = seen.header_all("authorization")
        assert sent != f"Bearer {external}"
        claims = jwt.decode(sent.removeprefix("Bearer "), options={"verify_signature": False})
        assert claims["sub"] == user
    # Exchange mode exchanges once more, for orders; the second request is served from caches.
    assert len(fakes.auth.exchanges) == (2 if mode == "exchange" else 1)


async def test_the_route_rules_judge_the_mapped_roles(
    client: httpx.AsyncClient, fakes: Fakes, keycloak: KeycloakIssuer, test_key: TestKey
) -> None:
    external = keycloak_token(keycloak, roles=[])
    ours = ours_for(keycloak, external, test_key, roles=[])
    fakes.auth.canned["exchange"] = (
        200,
        {"access_token": ours, "token_type": "Bearer", "expires_in": 300},
    )
    response = await client.post("/api/orders", headers=bearer(external), json={})
    assert response.status_code == 403
    assert fakes.orders.requests == []


async def test_refusals_are_401_at_the_edge_and_counted_by_reason(
    client: httpx.AsyncClient, fakes: Fakes, keycloak: KeycloakIssuer
) -> None:
    cases = {
        "issuer": keycloak_token(KeycloakIssuer(realm="elsewhere")),
        "audience": keycloak_token(keycloak, audience=[]),
        "azp": keycloak_token(keycloak, azp="another-client"),
        "type": keycloak_token(keycloak, headers={"typ": "at+jwt"}),
    }
    for reason, token in cases.items():
        before = rejections(reason)
        response = await client.get("/api/orders", headers=bearer(token))
        assert response.status_code == 401, reason
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert rejections(reason) == before + 1, reason
    assert fakes.auth.exchanges == [] and fakes.request_count() == 0


async def test_a_refused_federation_exchange_is_401(
    client: httpx.AsyncClient, fakes: Fakes, keycloak: KeycloakIssuer
) -> None:
    fakes.auth.canned["exchange"] = (400, {"error": "invalid_grant"})
    response = await client.get("/api/orders", headers=bearer(keycloak_token(keycloak)))
    assert response.status_code == 401
    assert fakes.orders.requests == []


async def test_an_answer_for_another_user_is_never_forwarded(
    client: httpx.AsyncClient, fakes: Fakes, keycloak: KeycloakIssuer, test_key: TestKey
) -> None:
    external = keycloak_token(keycloak)
    fakes.auth.canned["exchange"] = (
        200,
        {"access_token": test_key.mint(sub="someone-else"), "expires_in": 300},
    )
    response = await client.get("/api/orders", headers=bearer(external))
    assert response.status_code == 401
    assert fakes.orders.requests == []
