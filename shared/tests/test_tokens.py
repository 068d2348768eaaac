"""The platform verifier, attacked: each bad token is a 401 with the RFC 6750 header, not a 500."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI
from fastapi.testclient import TestClient
from relayshop_devtools.testing import DROP, TestKey
from relayshop_platform.errors import InvalidToken, install_error_handlers
from relayshop_platform.security import CurrentUser, require_roles
from relayshop_platform.tokens import TokenVerifier


class StaticKeys:
    def __init__(self, *keys: TestKey) -> None:
        self.keys = {key.kid: key.public_key for key in keys}

    async def get(self, kid: str) -> Any | None:
        return self.keys.get(kid)


@pytest.fixture(scope="module")
def key() -> TestKey:
    return TestKey("test-key-1")


@pytest.fixture(scope="module")
def client(key: TestKey) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.state.verifier = TokenVerifier(
        StaticKeys(key), issuer="http://localhost:8000/auth", audience="urn:relayshop:orders"
    )

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"sub": user.sub, "roles": list(user.roles)}

    @app.get("/stock", dependencies=[__import__("fastapi").Depends(require_roles("warehouse"))])
    async def stock() -> dict[str, str]:
        return {"ok": "yes"}

    return TestClient(app)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{b64(header)}.{b64(claims)}.{signature}"


def assert_invalid(client: TestClient, token: str) -> None:
    response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert response.headers["content-type"].startswith("application/problem+json")


def test_verify_accepts_a_good_token(client: TestClient, key: TestKey) -> None:
    response = client.get("/me", headers={"Authorization": f"Bearer {key.mint(sub='alice')}"})
    assert response.status_code == 200
    assert response.json() == {"sub": "alice", "roles": ["customer"]}


def test_verify_without_token_has_no_error_attribute(client: TestClient) -> None:
    response = client.get("/me")
    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_verify_rejects_alg_none_in_any_case(
    client: TestClient, key: TestKey, alg: str, signature: str
) -> None:
    header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    assert_invalid(client, unsigned(header, key.claims(), signature))


def test_verify_rejects_hs256_signed_with_the_public_key(client: TestClient, key: TestKey) -> None:
    pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    signing_input = f"{b64(header)}.{b64(key.claims())}".encode()
    import hashlib
    import hmac

    mac = hmac.new(pem, signing_input, hashlib.sha256).digest()
    assert_invalid(client, f"{signing_input.decode()}.{b64(mac)}")


def test_verify_rejects_a_token_signed_by_an_unknown_key(client: TestClient, key: TestKey) -> None:
    stranger = TestKey(key.kid)  # same kid, different key: the signature must fail
    assert_invalid(client, stranger.mint())


def test_verify_rejects_an_unknown_kid(client: TestClient) -> None:
    assert_invalid(client, TestKey("nobody-knows-me").mint())


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example/auth"},
        {"iss": "http://localhost:8000/auth/evil"},
        {"aud": "somebody-else"},
        {"aud": ["relayshop", "other"]},
        {"aud": "urn:relayshop:inventory"},  # another service's token (RFC 9068 section 4)
        {"aud": ["urn:relayshop:gateway", "urn:relayshop:payments"]},
        {"aud": []},
        {"aud": [12]},
        {"act": {"sub": "gateway", "act": "nobody"}},  # RFC 8693 4.1: act is a JSON object
        {"act": {"client": "gateway"}},
        {"derived_from": "jti-1"},
        {"derived_from": ["jti 1"]},
        {"aud": DROP},
        {"exp": int(time.time()) - 60},
        {"nbf": int(time.time()) + 600},
        {"iat": int(time.time()) + 600},
        {"exp": DROP},
        {"sub": DROP},
        {"jti": DROP},
        {"iss": DROP},
        {"roles": "admin"},
        {"sub": 12},
        {"exp": "tomorrow"},
        # Shapes, not just types: a signed claim is still input (RFC 8725 section 3.10).
        {"client_id": DROP},
        {"client_id": None},
        {"sub": "x' OR '1'='1"},
        {"jti": "a\r\nforged log line"},
        {"sid": None},
        {"sid": ""},
        {"scope": ""},
        {"scope": 'openid "quoted"'},
        {"roles": ["Admin; DROP TABLE"]},
        {"nbf": True},
        {"iat": 0},
        # Validly signed, but living far longer than any token auth issues (max 3600 s here).
        {"exp": int(time.time()) + 365 * 24 * 3600},
        {"iat": int(time.time()) - 3000, "exp": int(time.time()) + 3000},
    ],
    # Times as "<number>", not their value: ids must be the same in every pytest-xdist worker.
    ids=lambda c: ",".join(
        f"{k}=<number>" if k in ("exp", "nbf", "iat") and isinstance(v, int) else f"{k}={v!r}"[:40]
        for k, v in c.items()
    ),
)
def test_verify_rejects_bad_claims(
    client: TestClient, key: TestKey, claims: dict[str, Any]
) -> None:
    assert_invalid(client, key.mint(**claims))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "id+jwt", None])
def test_verify_rejects_a_type_other_than_at_jwt(
    client: TestClient, key: TestKey, typ: str | None
) -> None:
    token = jwt.encode(key.claims(), key.private_key, algorithm="RS256", headers={"kid": key.kid})
    if typ is not None:
        token = key.mint(headers={"typ": typ})
    assert_invalid(client, token)


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "crit"])
def test_verify_refuses_key_references_and_unknown_critical_headers(
    client: TestClient, key: TestKey, name: str
) -> None:
    value: Any = ["exp"] if name == "crit" else "http://127.0.0.1:9/keys"
    assert_invalid(client, key.mint(headers={name: value}))


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b", "a.b.c.d", "....", "eyJ.eyJ.sig", "x" * 9000, "é.é.é"],
    ids=["garbage", "two-parts", "four-parts", "dots", "bad-base64", "oversized", "non-ascii"],
)
def test_verify_rejects_malformed_and_oversized_tokens(client: TestClient, token: str) -> None:
    response = client.get("/me", headers={"Authorization": f"Bearer {token}".encode()})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")


def test_verify_rejects_a_tampered_payload(client: TestClient, key: TestKey) -> None:
    header, _, signature = key.mint(roles=["customer"]).split(".")
    forged = b64(key.claims(roles=["admin"]))
    assert_invalid(client, f"{header}.{forged}.{signature}")


def test_require_roles_answers_403_with_insufficient_scope(
    client: TestClient, key: TestKey
) -> None:
    response = client.get("/stock", headers={"Authorization": f"Bearer {key.mint()}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    ok = client.get("/stock", headers={"Authorization": f"Bearer {key.mint(roles=['warehouse'])}"})
    assert ok.status_code == 200


def test_service_token_cannot_act_as_a_user(client: TestClient, key: TestKey) -> None:
    response = client.get("/me", headers={"Authorization": f"Bearer {key.service_token('orders')}"})
    assert response.status_code == 403


async def test_cached_token_still_expires_and_reasons_are_named(key: TestKey) -> None:
    verifier = TokenVerifier(
        StaticKeys(key),
        issuer="http://localhost:8000/auth",
        audience="urn:relayshop:orders",
        leeway_seconds=0,
    )
    token = key.mint(exp=int(time.time()) + 1)
    assert (await verifier.verify(token)).sub
    time.sleep(1.1)
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token)
    assert info.value.reason == "expired"


class CountingKeys(StaticKeys):
    lookups = 0

    async def get(self, kid: str) -> Any | None:
        self.lookups += 1
        return await super().get(kid)


async def test_token_living_longer_than_the_maximum_is_refused(key: TestKey) -> None:
    verifier = TokenVerifier(
        StaticKeys(key),
        issuer="http://localhost:8000/auth",
        audience="urn:relayshop:orders",
        leeway_seconds=5,
        max_lifetime_seconds=300,
    )
    now = int(time.time())
    assert (await verifier.verify(key.mint(iat=now, exp=now + 305))).sub  # max + leeway
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(key.mint(iat=now, exp=now + 306))
    assert info.value.reason == "lifetime"


async def test_cache_keeps_no_entry_past_the_maximum_lifetime(key: TestKey) -> None:
    keys = CountingKeys(key)
    verifier = TokenVerifier(
        keys,
        issuer="http://localhost:8000/auth",
        audience="urn:relayshop:orders",
        leeway_seconds=5,
        max_lifetime_seconds=1,
    )
    now = int(time.time())
    token = key.mint(iat=now, exp=now + 6)  # within 1 s + 5 s of leeway; exp is 6 s away
    await verifier.verify(token)
    await verifier.verify(token)
    assert keys.lookups == 1  # the second sight was a cache hit
    time.sleep(1.1)
    await verifier.verify(token)  # still valid, but the entry is past the bound: verified again
    assert keys.lookups == 2


async def test_an_audience_array_containing_ours_is_accepted_and_read(key: TestKey) -> None:
    verifier = TokenVerifier(
        StaticKeys(key), issuer="http://localhost:8000/auth", audience="urn:relayshop:orders"
    )
    token = key.mint(
        aud=["urn:relayshop:gateway", "urn:relayshop:orders"],
        act={"sub": "gateway"},
        derived_from=["a1b2"],
    )
    principal = await verifier.verify(token)
    assert principal.audience == ("urn:relayshop:gateway", "urn:relayshop:orders")
    assert principal.actors == ("gateway",)
    assert principal.derived_from == ("a1b2",)
    # The same verified token, asked for another audience (auth checking a subject token).
    with pytest.raises(InvalidToken) as info:
        await verifier.verify(token, audience="urn:relayshop:payments")
    assert info.value.reason == "audience"
    assert (await verifier.verify(token, audience="urn:relayshop:gateway")).sub


def test_a_missing_scope_is_403_naming_the_scope(key: TestKey) -> None:
    app = FastAPI()
    install_error_handlers(app)
    app.state.verifier = TokenVerifier(
        StaticKeys(key), issuer="http://localhost:8000/auth", audience="urn:relayshop:orders"
    )

    @app.post(
        "/orders",
        dependencies=[
            __import__("fastapi").Depends(require_roles("customer", scope="orders:write"))
        ],
    )
    async def place() -> dict[str, str]:
        return {"ok": "yes"}

    client = TestClient(app)
    narrow = key.mint(roles=["customer"], scope="openid orders:read")
    response = client.post("/orders", headers={"Authorization": f"Bearer {narrow}"})
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="orders:write"' in challenge
    wide = key.mint(roles=["customer"], scope="orders:read orders:write")
    assert client.post("/orders", headers={"Authorization": f"Bearer {wide}"}).status_code == 200
    # The scope does not replace the role: warehouse with orders:write is still refused.
    other = key.mint(roles=["warehouse"], scope="orders:write")
    refused = client.post("/orders", headers={"Authorization": f"Bearer {other}"})
    assert refused.status_code == 403
    assert "scope=" not in refused.headers["www-authenticate"]
