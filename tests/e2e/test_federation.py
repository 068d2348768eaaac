"""End to end: a Keycloak user shops through the gateway, as a relayshop user with a stable id.

The identity provider is KeycloakIssuer (relayshop_devtools.oidc_issuer), a real HTTP server
minting tokens exactly as Keycloak 26 does; the stack's gateway and auth trust it through
RELAYSHOP_TRUSTED_ISSUERS, the other services do not. The gateway checks the Keycloak token at
the edge, exchanges it at auth for a relayshop token (RFC 8693), and from then on the request is
a local user's: route rules, per-hop audiences and scopes, ownership, revocation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from relayshop_devtools.devstack import Client, Stack, make_stack
from relayshop_devtools.oidc_issuer import KeycloakIssuer
from relayshop_devtools.testing import TestKey
from relayshop_platform.issuers import TrustedIssuer, stable_sub

GATEWAY_AUDIENCE = "urn:relayshop:gateway"
CONSOLE = "relayshop-console"
ORDER = {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": "pm_card_visa"}


@pytest.fixture(scope="module")
def keycloak() -> Iterator[KeycloakIssuer]:
    with KeycloakIssuer() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, keycloak: KeycloakIssuer) -> Iterator[Stack]:
    # deploy/keycloak/README.md's entry for the realm, pointed at this one.
    trusted = TrustedIssuer(
        issuer=keycloak.issuer,
        audience=GATEWAY_AUDIENCE,
        roles_claim="realm_access.roles",
        allowed_azp=[CONSOLE],
        token_types=["JWT", "at+jwt"],
    )
    yield from make_stack(tmp_path_factory.mktemp("e2e-federation"), trusted_issuers=[trusted])


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return Client(stack)


def keycloak_token(keycloak: KeycloakIssuer, **claims: Any) -> str:
    """A token for a user of the realm, as the console client would hold it."""
    arguments: dict[str, Any] = {"roles": ["customer"], "audience": [GATEWAY_AUDIENCE]}
    arguments.update(claims)
    return keycloak.mint(**arguments)


def sub_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def test_a_keycloak_customer_places_and_lists_an_order(
    client: Client, keycloak: KeycloakIssuer
) -> None:
    token = keycloak_token(keycloak)
    placed = client.request("POST", "/api/orders", token, json=ORDER)
    assert placed.status_code == 201, placed.text
    order = placed.json()
    assert order["status"] == "CONFIRMED"

    listed = client.request("GET", "/api/orders", token)
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()] == [order["id"]]
    # The owner is relayshop's stable id for (issuer, Keycloak sub): never Keycloak's own sub.
    owner = stable_sub(keycloak.issuer, sub_of(token))
    seen = client.request("GET", f"/api/orders/{order['id']}", token).json()
    assert seen["owner"] == owner
    # The same user with a new token (a refresh at Keycloak) is the same relayshop user...
    again = keycloak_token(keycloak, sub=sub_of(token))
    assert client.request("GET", f"/api/orders/{order['id']}", again).status_code == 200
    # ...and another Keycloak user is someone else: ownership holds.
    stranger = keycloak_token(keycloak)
    assert client.request("GET", f"/api/orders/{order['id']}", stranger).status_code == 404
    # Staff of relayshop's own see the order as they see any other.
    admin = client.access("admin")
    assert client.request("GET", f"/api/orders/{order['id']}", admin).status_code == 200


def test_the_gateways_own_summary_route_federates_too(
    client: Client, keycloak: KeycloakIssuer
) -> None:
    token = keycloak_token(keycloak)
    placed = client.request("POST", "/api/orders", token, json=ORDER)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    summary = client.request("GET", f"/api/orders/{order_id}/summary", token)
    assert summary.status_code == 200, summary.text
    assert summary.json()["order"]["id"] == order_id
    # Another Keycloak user gets orders' 404, as through the proxy.
    stranger = keycloak_token(keycloak)
    assert client.request("GET", f"/api/orders/{order_id}/summary", stranger).status_code == 404
    # A token the edge refuses (aud only "account") is a 401 here too.
    refused = keycloak_token(keycloak, audience=["account"])
    answer = client.request("GET", f"/api/orders/{order_id}/summary", refused)
    assert answer.status_code == 401, answer.text


def test_no_personal_data_reaches_the_services(client: Client, keycloak: KeycloakIssuer) -> None:
    token = keycloak_token(keycloak, username="dora")
    placed = client.request("POST", "/api/orders", token, json=ORDER)
    assert placed.status_code == 201, placed.text
    body = placed.text.lower()
    assert "dora" not in body and "example.com" not in body


def test_default_roles_alone_allow_nothing_at_the_route(
    client: Client, keycloak: KeycloakIssuer
) -> None:
    token = keycloak_token(keycloak, roles=[])  # offline_access, uma_authorization, default-roles
    refused = client.request("POST", "/api/orders", token, json=ORDER)
    assert refused.status_code == 403, refused.text  # the gateway's route rule
    listed = client.request("GET", "/api/orders", token)
    assert listed.status_code == 403, listed.text  # orders' own rule
    # Signed in all the same: what any signed-in user may do still works.
    assert client.request("GET", "/api/inventory/products", token).status_code == 200


def refusals(keycloak: KeycloakIssuer) -> dict[str, str]:
    now = int(time.time())
    stranger = KeycloakIssuer(realm="elsewhere")  # never started: nobody trusts it
    return {
        "unknown issuer": keycloak_token(stranger),
        "aud only account": keycloak_token(keycloak, audience=[]),
        "azp not allowed": keycloak_token(keycloak, azp="someone-else"),
        "typ not listed": keycloak.mint(
            keycloak.claims(roles=["customer"], audience=[GATEWAY_AUDIENCE]),
            headers={"typ": "id+jwt"},
        ),
        # Signed by another key under the realm's kid: the signature does not verify.
        "bad signature": keycloak.mint(
            keycloak.claims(roles=["customer"], audience=[GATEWAY_AUDIENCE]),
            key=TestKey(),
            headers={"kid": keycloak.key.kid},
        ),
        "expired": keycloak_token(keycloak, iat=now - 400, exp=now - 100),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown issuer",
        "aud only account",
        "azp not allowed",
        "typ not listed",
        "bad signature",
        "expired",
    ],
)
def test_every_refusal_is_401_at_the_edge(
    client: Client, keycloak: KeycloakIssuer, case: str
) -> None:
    token = refusals(keycloak)[case]
    for method, path in (("GET", "/api/orders"), ("POST", "/api/orders")):
        response = client.request(method, path, token, json=ORDER if method == "POST" else None)
        assert response.status_code == 401, (case, response.text)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_services_behind_the_gateway_refuse_a_keycloak_token(
    client: Client, keycloak: KeycloakIssuer
) -> None:
    token = keycloak_token(keycloak)
    assert client.request("GET", "/api/orders", token).status_code == 200  # fine at the edge
    for service, path in (
        ("orders", "/api/orders"),
        ("inventory", "/api/inventory/products"),
        ("payments", "/api/payments/no-such-payment"),
    ):
        direct = client.request("GET", path, token, service=service)
        assert direct.status_code == 401, (service, direct.text)


def test_an_admin_revokes_a_keycloak_user_everywhere_within_a_second(
    client: Client, keycloak: KeycloakIssuer
) -> None:
    token = keycloak_token(keycloak)
    owner = stable_sub(keycloak.issuer, sub_of(token))
    # Used first: the gateway now holds its exchanged relayshop token in its caches.
    assert client.request("POST", "/api/orders", token, json=ORDER).status_code == 201
    assert client.request("GET", "/api/orders", token).status_code == 200

    admin = client.access("admin")
    revoked = client.request("POST", f"/auth/admin/users/{owner}/revoke", admin)
    assert revoked.status_code == 204, revoked.text
    deadline = time.monotonic() + 1.0
    while client.request("GET", "/api/orders", token).status_code != 401:
        assert time.monotonic() < deadline, "the revoked user's token still works after 1 s"
        time.sleep(0.05)
    assert client.request("POST", "/api/orders", token, json=ORDER).status_code == 401
    # Auth will not exchange that Keycloak token again either, whatever the gateway holds.
    exchanged = client.exchange(token, GATEWAY_AUDIENCE)
    assert exchanged.status_code == 400 and exchanged.json()["error"] == "invalid_grant"

    # Signing in again at Keycloak (a token issued after the revocation) works again.
    time.sleep(1.1)
    fresh = keycloak_token(keycloak, sub=sub_of(token))
    assert client.request("GET", "/api/orders", fresh).status_code == 200


def test_auth_exchanges_a_keycloak_token_for_the_gateway_only(
    client: Client, keycloak: KeycloakIssuer
) -> None:
    token = keycloak_token(keycloak)
    answer = client.exchange(token, GATEWAY_AUDIENCE)
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == stable_sub(keycloak.issuer, sub_of(token))
    assert claims["roles"] == ["customer"]
    assert claims["act"] == {"sub": "gateway"}
    assert claims["exp"] <= jwt.decode(token, options={"verify_signature": False})["exp"]
    assert not {"email", "name", "preferred_username"} & set(claims)
    # A service behind the gateway may not federate, nor may the gateway ask for another hop.
    assert client.exchange(token, "urn:relayshop:payments", by="orders").status_code == 400
    assert client.exchange(token, "urn:relayshop:orders").status_code == 400
