"""POST /auth/token: the password and client_credentials grants, and every kind of bad input."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
from relayshop_platform.scopes import scopes_for_roles

DEMO_ACCOUNTS = {
    "alice": ["customer"],
    "bob": ["customer"],
    "carol": ["support"],
    "walt": ["warehouse"],
    "admin": ["admin"],
}
USER_CLAIMS = {"iss", "sub", "aud", "exp", "iat", "jti", "roles", "scope", "sid", "client_id"}
OAUTH_ERROR_KEYS = {"error", "error_description"}


@pytest.mark.parametrize("username", sorted(DEMO_ACCOUNTS))
def test_password_grant_issues_contract_token_for_demo_account(api, username) -> None:
    response = api.sign_in(username)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    # Every scope the account's roles can use (scopes.py), nothing else.
    assert body["scope"] == " ".join(scopes_for_roles(DEMO_ACCOUNTS[username]))
    assert len(body["refresh_token"]) >= 43  # 32 random bytes, base64url

    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": header["kid"]}
    assert header["kid"] in api.kids()
    claims = jwt.decode(
        token,
        api.jwks_key(token),
        algorithms=["RS256"],
        audience="urn:relayshop:gateway",
        issuer="http://localhost:8000/auth",
    )
    assert set(claims) == USER_CLAIMS
    assert claims["aud"] == "urn:relayshop:gateway"  # exchange mode: the front door alone
    assert claims["exp"] - claims["iat"] == 300
    assert claims["roles"] == DEMO_ACCOUNTS[username]
    assert claims["client_id"] == "relayshop"
    assert str(uuid.UUID(claims["sub"])) == claims["sub"]  # opaque id, not the username
    # No personal data anywhere in the readable payload (the role "admin" is not a name).
    payload = json.dumps({name: value for name, value in claims.items() if name != "roles"})
    assert username not in payload
    assert "password" not in payload


def test_password_grant_gives_each_token_a_unique_jti_and_session(api) -> None:
    first, second = api.login("alice"), api.login("alice")

    one = jwt.decode(first["access_token"], options={"verify_signature": False})
    two = jwt.decode(second["access_token"], options={"verify_signature": False})

    assert one["sub"] == two["sub"]
    assert one["jti"] != two["jti"]
    assert one["sid"] != two["sid"]


def test_password_grant_answers_identically_for_unknown_user_and_wrong_password(api) -> None:
    wrong_password = api.sign_in("alice", "not-her-password")
    unknown_user = api.sign_in("nobody-" + uuid.uuid4().hex[:8], "whatever-password")

    assert wrong_password.status_code == unknown_user.status_code == 400
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.json()["error"] == "invalid_grant"


def test_password_grant_hashes_for_unknown_users_too(api) -> None:
    """Latency must not reveal which usernames exist: both paths run one argon2 verification."""

    def median_seconds(username: str) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            api.sign_in(username, "wrong-password")
            times.append(time.perf_counter() - started)
        return sorted(times)[1]

    wrong_password = median_seconds("bob")
    unknown_user = median_seconds("ghost-" + uuid.uuid4().hex[:8])

    assert unknown_user > 0.5 * wrong_password


def test_password_grant_grants_only_known_requested_scopes(api) -> None:
    body = api.login("alice", scope="orders:read telepathy openid")

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert body["scope"] == claims["scope"] == "openid orders:read"


def test_password_grant_refuses_only_unknown_scopes(api) -> None:
    response = api.sign_in("alice", scope="telepathy")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "implicit"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "alice"}, "invalid_request"),
        ({"grant_type": "password", "password": "alice-password"}, "invalid_request"),
        (
            {"grant_type": "password", "username": "alice", "password": "x" * 2000},
            "invalid_request",
        ),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
def test_token_refuses_bad_form_with_oauth_error(api, form, error) -> None:
    response = api.client.post("/auth/token", data=form)

    assert response.status_code == 400
    assert set(response.json()) == OAUTH_ERROR_KEYS
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


def test_token_refuses_megabyte_password_quickly(api) -> None:
    started = time.perf_counter()
    response = api.sign_in("alice", "p" * 1_000_000)

    assert response.status_code == 413  # Content Too Large, in the OAuth error shape
    assert response.json()["error"] == "invalid_request"
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"grant_type": "password", "username": "alice"}', "application/json"),
        (b"grant_type=password&grant_type=client_credentials", "application/x-www-form-urlencoded"),
        (
            b"grant_type=password&username=alice&password=%ff%fe",
            "application/x-www-form-urlencoded",
        ),
        (b"grant_type=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"", "text/plain"),
        (b"&".join(b"f%d=1" % i for i in range(50)), "application/x-www-form-urlencoded"),
    ],
)
def test_token_refuses_malformed_body_with_invalid_request(api, content, content_type) -> None:
    response = api.client.post(
        "/auth/token", content=content, headers={"Content-Type": content_type}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_client_credentials_issues_service_token(api) -> None:
    response = api.client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "resource": "urn:relayshop:inventory"},
        auth=("orders", "orders-demo-secret"),
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert "refresh_token" not in body
    assert body["scope"] == "internal"
    claims = jwt.decode(
        body["access_token"],
        api.jwks_key(body["access_token"]),
        algorithms=["RS256"],
        audience="urn:relayshop:inventory",
    )
    assert claims["aud"] == "urn:relayshop:inventory"  # one callee, RFC 8707
    assert claims["sub"] == claims["client_id"] == "orders"
    assert claims["roles"] == ["service"]
    assert claims["scope"] == "internal"
    assert "sid" not in claims


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"orders:wrong-secret").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"mallory:orders-demo-secret").decode()},
        {"Authorization": "Basic !!!not-base64!!!"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Bearer something"},
    ],
)
def test_client_credentials_refuses_bad_client_with_401(api, headers) -> None:
    response = api.client.post(
        "/auth/token", data={"grant_type": "client_credentials"}, headers=headers
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


def test_service_token_cannot_read_userinfo(api) -> None:
    token = api.client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "resource": "urn:relayshop:orders"},
        auth=("gateway", "gateway-demo-secret"),
    ).json()["access_token"]

    # Addressed to orders, not to the front door auth's user endpoints belong to.
    assert api.userinfo(token).status_code == 401
