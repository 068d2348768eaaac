"""Federation at POST /auth/token: a trusted issuer's token exchanged for a relayshop user token.

The issuer is KeycloakIssuer, a real HTTP server serving discovery and keys as Keycloak does;
auth trusts it through RELAYSHOP_TRUSTED_ISSUERS and fetches its keys over HTTP. The gateway's
side of the flow is the e2e test (tests/e2e/test_federation.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from relayshop_devtools.oidc_issuer import KeycloakIssuer
from relayshop_devtools.testing import AuthApi, bearer
from relayshop_platform.catalogue import CATALOGUE, audience_of
from relayshop_platform.issuers import federated_id, stable_sub
from relayshop_platform.relay import ACCESS_TOKEN_TYPE_URI, EXCHANGE_GRANT
from relayshop_platform.scopes import scopes_for_roles

GATEWAY = "urn:relayshop:gateway"


@pytest.fixture(scope="module")
def keycloak() -> Iterator[KeycloakIssuer]:
    with KeycloakIssuer() as issuer:
        yield issuer


def trusting(keycloak: KeycloakIssuer) -> str:
    return json.dumps(
        [
            {
                "issuer": keycloak.issuer,
                "audience": GATEWAY,
                "roles_claim": "realm_access.roles",
                "role_map": {"customer": "customer", "shop-admin": "admin"},
                "allowed_azp": ["relayshop-console"],
                "token_types": ["JWT"],
            }
        ]
    )


@pytest.fixture
def api(
    make_api: Callable[[], AuthApi], monkeypatch: pytest.MonkeyPatch, keycloak: KeycloakIssuer
) -> AuthApi:
    monkeypatch.setenv("RELAYSHOP_TRUSTED_ISSUERS", trusting(keycloak))
    return make_api()


def exchange(
    api: AuthApi, subject: str, *, client: str = "gateway", audience: str = GATEWAY, **form: str
) -> Any:
    data = {
        "grant_type": EXCHANGE_GRANT,
        "subject_token": subject,
        "subject_token_type": ACCESS_TOKEN_TYPE_URI,
        "audience": audience,
        **form,
    }
    return api.client.post("/auth/token", data=data, auth=(client, f"{client}-demo-secret"))


def claims_of(api: AuthApi, token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token, api.jwks_key(token), algorithms=["RS256"], options={"verify_aud": False}
    )
    return decoded


def unverified(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def keycloak_token(keycloak: KeycloakIssuer, **claims: Any) -> str:
    arguments: dict[str, Any] = {"roles": ["customer"], "audience": [GATEWAY]}
    arguments.update(claims)
    return keycloak.mint(**arguments)


@pytest.mark.parametrize("mode", ["exchange", "relay"])
def test_the_gateway_gets_a_relayshop_user_token(
    make_api: Callable[[], AuthApi],
    monkeypatch: pytest.MonkeyPatch,
    keycloak: KeycloakIssuer,
    mode: str,
) -> None:
    monkeypatch.setenv("RELAYSHOP_TRUSTED_ISSUERS", trusting(keycloak))
    monkeypatch.setenv("RELAYSHOP_TOKEN_MODE", mode)
    api = make_api()
    external = keycloak_token(keycloak, roles=["customer", "shop-admin", "unmapped"])
    answer = exchange(api, external)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE_URI
    claims, original = claims_of(api, body["access_token"]), unverified(external)
    assert claims["sub"] == stable_sub(keycloak.issuer, original["sub"])
    assert claims["roles"] == ["admin", "customer"]  # mapped; "unmapped" and defaults dropped
    assert claims["scope"] == body["scope"] == " ".join(scopes_for_roles(["admin", "customer"]))
    assert claims["act"] == {"sub": "gateway"}
    assert claims["client_id"] == "gateway"
    assert claims["sid"] == federated_id(keycloak.issuer, "sid", original["sid"])
    assert claims["exp"] <= original["exp"]
    assert "derived_from" not in claims
    # A signed-in user's audience: the gateway alone, or (relay mode) every service.
    if mode == "exchange":
        assert claims["aud"] == GATEWAY
    else:
        assert set(claims["aud"]) == {s.audience for s in CATALOGUE if s.name != "auth"}
    # Nothing personal is copied, whatever the external token carried.
    assert not {"email", "name", "preferred_username", "given_name", "family_name"} & set(claims)


def test_the_federated_token_travels_on_like_a_local_users(
    api: AuthApi, keycloak: KeycloakIssuer
) -> None:
    """gateway -> orders -> payments: each hop's exchange accepts the federation step at the far
    end of the act chain."""
    ours = exchange(api, keycloak_token(keycloak)).json()["access_token"]
    for_orders = exchange(api, ours, audience=audience_of("orders"))
    assert for_orders.status_code == 200, for_orders.text
    token = for_orders.json()["access_token"]
    assert claims_of(api, token)["act"] == {"sub": "gateway", "act": {"sub": "gateway"}}
    for_payments = exchange(api, token, client="orders", audience=audience_of("payments"))
    assert for_payments.status_code == 200, for_payments.text
    claims = claims_of(api, for_payments.json()["access_token"])
    assert claims["act"] == {"sub": "orders", "act": {"sub": "gateway", "act": {"sub": "gateway"}}}
    assert claims["sub"] == claims_of(api, ours)["sub"]


def test_only_the_gateway_federates_and_only_for_itself(
    api: AuthApi, keycloak: KeycloakIssuer
) -> None:
    external = keycloak_token(keycloak)
    by_orders = exchange(api, external, client="orders", audience=audience_of("payments"))
    assert by_orders.status_code == 400
    assert by_orders.json()["error"] == "invalid_grant"
    elsewhere = exchange(api, external, audience=audience_of("orders"))
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"] == "invalid_target"
    narrowed = exchange(api, external, scope="orders:read")
    assert narrowed.status_code == 400
    assert narrowed.json()["error"] == "invalid_scope"


def test_an_unacceptable_external_token_is_invalid_grant(
    api: AuthApi, keycloak: KeycloakIssuer
) -> None:
    now = int(time.time())
    cases = {
        "audience": keycloak_token(keycloak, audience=[]),
        "client": keycloak_token(keycloak, azp="another-client"),
        "type": keycloak_token(keycloak, headers={"typ": "at+jwt"}),
        "expired": keycloak_token(keycloak, iat=now - 400, exp=now - 100),
    }
    for case, token in cases.items():
        answer = exchange(api, token)
        assert answer.status_code == 400, case
        assert answer.json()["error"] == "invalid_grant", case
        assert answer.json()["error_description"].startswith("The subject token is not usable")


def test_a_revoked_external_user_cannot_exchange_again(
    api: AuthApi, keycloak: KeycloakIssuer
) -> None:
    external = keycloak_token(keycloak)
    assert exchange(api, external).status_code == 200
    sub = stable_sub(keycloak.issuer, unverified(external)["sub"])
    admin = api.login("admin")["access_token"]
    assert api.post(f"/auth/admin/users/{sub}/revoke", admin).status_code == 204

    refused = exchange(api, external)
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "The subject token has been revoked.",
    }
    # The not-before is the next second: a token the user gets after it is accepted.
    time.sleep(1.1)
    assert (
        exchange(api, keycloak_token(keycloak, sub=unverified(external)["sub"])).status_code == 200
    )


def test_admin_revocation_takes_an_external_sub_and_nothing_like_one(api: AuthApi) -> None:
    admin = api.login("admin")["access_token"]
    unknown_external = stable_sub("http://idp.example", "someone")
    assert api.post(f"/auth/admin/users/{unknown_external}/revoke", admin).status_code == 204
    lookalike = "ext-" + "a" * 51
    assert api.post(f"/auth/admin/users/{lookalike}/revoke", admin).status_code == 404
    customer = api.login("alice")["access_token"]
    forbidden = api.client.post(
        f"/auth/admin/users/{unknown_external}/revoke", headers=bearer(customer)
    )
    assert forbidden.status_code == 403


def test_without_trusted_issuers_a_foreign_token_is_refused(
    make_api: Callable[[], AuthApi], keycloak: KeycloakIssuer
) -> None:
    api = make_api()
    # Exchanged for a hop as any subject token would be: it is not relayshop's, so refused.
    answer = exchange(api, keycloak_token(keycloak), audience=audience_of("orders"))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
