"""Audiences, scopes and RFC 8693 token exchange at POST /auth/token.

Each test drives the real token endpoint: a user signs in (password grant), then a service
exchanges the token it "received" for the next hop, exactly as the gateway, orders and payments
do in exchange mode (relay.ServiceTokens). Every refusal is the RFC's error code.
"""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from auth_service.tokens import mint_access_token
from relayshop_platform.catalogue import CATALOGUE, audience_of, exchange_targets
from relayshop_platform.relay import ACCESS_TOKEN_TYPE_URI, EXCHANGE_GRANT

SECRETS = {name: f"{name}-demo-secret" for name in ("gateway", "orders", "payments")}
# Every (client, callee) pair of the catalogue's policy, and every pair outside it.
ALLOWED = [(client, callee) for client in SECRETS for callee in exchange_targets(client)]
SERVICES = [s.name for s in CATALOGUE]
FORBIDDEN = [
    (client, callee)
    for client in SECRETS
    for callee in SERVICES
    if callee not in exchange_targets(client)
]


def exchange(api: Any, client: str, subject: str, target: str, **form: str) -> Any:
    data = {
        "grant_type": EXCHANGE_GRANT,
        "subject_token": subject,
        "subject_token_type": ACCESS_TOKEN_TYPE_URI,
        "audience": audience_of(target),
        **form,
    }
    return api.client.post("/auth/token", data=data, auth=(client, SECRETS[client]))


def claims_of(api: Any, token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(
        token, api.jwks_key(token), algorithms=["RS256"], options={"verify_aud": False}
    )
    return decoded


def chain_to(api: Any, user_token: str, *hops: str) -> str:
    """The token as it reaches the last of ``hops``: gateway -> hops[0] -> hops[1] ..."""
    token, holder = user_token, "gateway"
    for hop in hops:
        answer = exchange(api, holder, token, hop)
        assert answer.status_code == 200, answer.text
        token, holder = answer.json()["access_token"], hop
    return token


def test_a_signed_in_user_token_is_for_the_gateway_alone(api) -> None:
    body = api.login("alice")
    claims = claims_of(api, body["access_token"])

    assert claims["aud"] == "urn:relayshop:gateway"
    assert "act" not in claims
    # Every scope a customer can use, and no write scope of a service customers cannot change.
    assert body["scope"] == claims["scope"]
    granted = set(body["scope"].split())
    assert {"orders:read", "orders:write", "payments:read", "inventory:read"} <= granted
    assert not {"payments:write", "inventory:write"} & granted


@pytest.mark.parametrize(
    ("user", "writes"),
    [
        ("alice", {"orders:write"}),
        ("carol", set()),
        ("walt", {"inventory:write"}),
        ("admin", {"orders:write", "payments:write", "inventory:write"}),
    ],
)
def test_the_password_grant_issues_the_scopes_the_roles_can_use(api, user, writes) -> None:
    scope = set(api.login(user)["scope"].split())

    assert {s for s in scope if s.endswith(":write")} == writes
    assert {"orders:read", "payments:read", "inventory:read"} <= scope


def test_a_scope_parameter_narrows_the_grant(api) -> None:
    body = api.login("alice", scope="orders:read")
    assert body["scope"] == "orders:read"
    assert claims_of(api, body["access_token"])["scope"] == "orders:read"

    # A scope the user's roles cannot use is not granted; nothing grantable at all is refused.
    assert api.login("alice", scope="orders:read inventory:write")["scope"] == "orders:read"
    refused = api.sign_in("alice", scope="inventory:write")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(("client", "callee"), ALLOWED)
def test_each_allowed_pair_exchanges_for_the_next_hop(api, client, callee) -> None:
    user_token = api.login("alice")["access_token"]
    # The subject is a token addressed to the exchanging client, as it would have received it.
    subject = user_token if client == "gateway" else chain_to(api, user_token, client)
    answer = exchange(api, client, subject, callee)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE_URI
    assert body["token_type"] == "Bearer"
    assert answer.headers["cache-control"] == "no-store"
    issued, original = claims_of(api, body["access_token"]), claims_of(api, subject)
    assert issued["aud"] == audience_of(callee)
    assert issued["sub"] == original["sub"]
    assert issued["sid"] == original["sid"]
    assert issued["roles"] == original["roles"]
    assert issued["scope"] == original["scope"] == body["scope"]
    assert issued["exp"] <= original["exp"]
    # RFC 8693 4.1: the exchanging client acts, with the earlier actors nested inside.
    expected_act: dict[str, Any] = {"sub": client}
    if "act" in original:
        expected_act["act"] = original["act"]
    assert issued["act"] == expected_act
    assert issued["derived_from"] == [*original.get("derived_from", []), original["jti"]]
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"


def test_the_act_chain_nests_along_the_longest_path(api) -> None:
    user_token = api.login("alice")["access_token"]
    at_inventory = chain_to(api, user_token, "orders", "payments", "inventory")

    claims = claims_of(api, at_inventory)
    assert claims["aud"] == "urn:relayshop:inventory"
    assert claims["act"] == {"sub": "payments", "act": {"sub": "orders", "act": {"sub": "gateway"}}}
    assert len(claims["derived_from"]) == 3


@pytest.mark.parametrize(("client", "callee"), FORBIDDEN)
def test_every_pair_outside_the_policy_is_invalid_target(api, client, callee) -> None:
    user_token = api.login("alice")["access_token"]
    subject = user_token if client == "gateway" else chain_to(api, user_token, client)
    answer = exchange(api, client, subject, callee)

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_target"


def test_an_unknown_audience_is_invalid_target(api) -> None:
    user_token = api.login("alice")["access_token"]
    answer = exchange(api, "gateway", user_token, "orders", audience="https://evil.example")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_target"


def test_a_subject_token_not_addressed_to_the_client_is_invalid_grant(api) -> None:
    user_token = api.login("alice")["access_token"]  # aud: the gateway
    # orders presents a token it was never sent (addressed to the gateway).
    answer = exchange(api, "orders", user_token, "inventory")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"

    # inventory's token, replayed by payments to reach inventory again: not addressed to payments.
    at_inventory = chain_to(api, user_token, "orders", "inventory")
    answer = exchange(api, "payments", at_inventory, "inventory")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_a_revoked_subject_token_is_invalid_grant(api) -> None:
    body = api.login("alice")
    at_orders = chain_to(api, body["access_token"], "orders")
    assert api.post("/auth/logout", body["access_token"]).status_code == 204

    for client, subject in (("gateway", body["access_token"]), ("orders", at_orders)):
        target = "orders" if client == "gateway" else "inventory"
        answer = exchange(api, client, subject, target)
        assert answer.status_code == 400, (client, answer.text)
        assert answer.json()["error"] == "invalid_grant"


def _forged(api: Any, **claims: Any) -> str:
    """A token signed with auth's own current key (what only a compromised auth could mint)."""
    defaults: dict[str, Any] = {
        "issuer": api.app.state.settings.issuer,
        "audience": audience_of("orders"),
        "ttl_seconds": 60,
        "sub": "user-forged",
        "roles": ["customer"],
        "scope": "orders:read orders:write",
        "client_id": "relayshop",
        "sid": "s-forged",
    }
    return mint_access_token(api.app.state.keys, **{**defaults, **claims}).token


def test_an_expired_subject_token_is_invalid_grant(api) -> None:
    expired = _forged(api, ttl_seconds=1, not_after=1)  # exp long past
    answer = exchange(api, "orders", expired, "inventory")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "act",
    [
        {"sub": "payments"},  # payments may never exchange for orders
        {"sub": "inventory"},  # inventory exchanges for nobody
        {"sub": "gateway", "act": {"sub": "payments"}},  # payments may not exchange for gateway
        {"sub": "mallory"},  # not a service at all
    ],
)
def test_a_forged_act_chain_in_the_subject_is_invalid_grant(api, act) -> None:
    answer = exchange(api, "orders", _forged(api, act=act), "inventory")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_a_policy_consistent_act_chain_is_accepted(api) -> None:
    answer = exchange(api, "orders", _forged(api, act={"sub": "gateway"}), "inventory")
    assert answer.status_code == 200, answer.text


def test_a_scope_wider_than_the_subjects_is_invalid_scope(api) -> None:
    subject = api.login("alice", scope="orders:read")["access_token"]
    answer = exchange(api, "gateway", subject, "orders", scope="orders:read orders:write")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_scope"


def test_a_narrower_scope_is_granted(api) -> None:
    subject = api.login("alice")["access_token"]
    answer = exchange(api, "gateway", subject, "orders", scope="orders:read")
    assert answer.status_code == 200
    assert claims_of(api, answer.json()["access_token"])["scope"] == "orders:read"


def test_a_service_token_cannot_be_exchanged(api) -> None:
    own = api.client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "resource": audience_of("orders")},
        auth=("gateway", SECRETS["gateway"]),
    ).json()["access_token"]
    answer = exchange(api, "orders", own, "inventory")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "auth",
    [
        None,
        ("orders", "wrong-secret"),
        ("relayshop", "anything-at-all"),
        ("alice", "alice-password"),
    ],
)
def test_a_client_that_is_not_an_authenticated_service_is_invalid_client(api, auth) -> None:
    user_token = api.login("alice")["access_token"]
    data = {
        "grant_type": EXCHANGE_GRANT,
        "subject_token": user_token,
        "subject_token_type": ACCESS_TOKEN_TYPE_URI,
        "audience": audience_of("orders"),
    }
    answer = api.client.post("/auth/token", data=data, auth=auth)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "form",
    [
        {"subject_token_type": "urn:ietf:params:oauth:token-type:id_token"},
        {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
        {"actor_token": "x"},
    ],
)
def test_malformed_exchange_requests_are_invalid_request(api, form) -> None:
    user_token = api.login("alice")["access_token"]
    answer = exchange(api, "gateway", user_token, "orders", **form)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"


def test_client_credentials_binds_the_token_to_one_callee(api) -> None:
    for parameter in ("resource", "audience"):
        answer = api.client.post(
            "/auth/token",
            data={"grant_type": "client_credentials", parameter: audience_of("inventory")},
            auth=("payments", SECRETS["payments"]),
        )
        assert answer.status_code == 200, answer.text
        assert claims_of(api, answer.json()["access_token"])["aud"] == "urn:relayshop:inventory"


@pytest.mark.parametrize(
    "form",
    [
        {},  # no callee named
        {"resource": audience_of("orders")},  # payments does not call orders
        {"resource": audience_of("auth")},  # auth is not a resource
        {"resource": "urn:relayshop:nowhere"},
        {"resource": audience_of("inventory"), "audience": audience_of("orders")},
    ],
)
def test_client_credentials_for_a_callee_the_client_does_not_call_is_invalid_target(
    api, form
) -> None:
    answer = api.client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", **form},
        auth=("payments", SECRETS["payments"]),
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_target"


def test_discovery_lists_the_exchange_grant_and_the_scopes(api) -> None:
    document = api.client.get("/auth/.well-known/openid-configuration").json()
    assert EXCHANGE_GRANT in document["grant_types_supported"]
    assert "orders:write" in document["scopes_supported"]
