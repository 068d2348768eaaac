"""Signing keys: private files locked down, kept across restarts, rotated and retired by admins.

Old-key tokens are checked the way every other service checks them: the platform's JWKSCache
fetching auth's served JWKS, and the platform's TokenVerifier.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import stat
import time
from pathlib import Path

import httpx
import jwt
import pytest
import redis.asyncio as aioredis
from auth_service.revoker import Revoker
from relayshop_platform.errors import InvalidToken
from relayshop_platform.jwks import JWKSCache
from relayshop_platform.revocation import RevocationStore
from relayshop_platform.tokens import Principal, TokenVerifier


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def verify_like_a_service(api, token: str) -> Principal:
    async def verify() -> Principal:
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport) as http:
            jwks = JWKSCache("http://auth/auth/.well-known/jwks.json", http)
            await jwks.refresh(force=True)
            verifier = TokenVerifier(
                jwks, issuer="http://localhost:8000/auth", audience="urn:relayshop:gateway"
            )
            return await verifier.verify(token)

    return asyncio.run(verify())


def rotate(api, admin_token: str) -> dict:
    response = api.post("/auth/admin/keys/rotate", admin_token)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_key_files_are_private_to_the_service(api, service_env) -> None:
    keys_dir = Path(service_env["RELAYSHOP_DATA_DIR"]) / "keys"
    pem_files = list(keys_dir.glob("*.pem"))

    assert mode(keys_dir) == 0o700
    assert [path.stem for path in pem_files] == api.kids()
    for path in [*pem_files, keys_dir / "keys.json"]:
        assert mode(path) == 0o600


def test_keys_survive_a_restart(make_api) -> None:
    first = make_api()
    token = first.login("alice")["access_token"]

    second = make_api()  # same data dir

    assert second.kids() == first.kids()
    assert second.userinfo(token).status_code == 200


def test_kid_is_the_rfc7638_thumbprint(api) -> None:
    jwk = api.jwks()["keys"][0]

    # RFC 7638 section 3.1: the required members in lexicographic order, no whitespace.
    members = {"kty": jwk["kty"], "n": jwk["n"], "e": jwk["e"]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    assert jwk["kid"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_rotate_publishes_both_keys_and_signs_with_the_new_one(api) -> None:
    admin = api.login("admin")["access_token"]
    old_token = api.login("alice")["access_token"]
    old_kid = kid_of(old_token)

    answer = rotate(api, admin)

    new_token = api.login("alice")["access_token"]
    assert answer["current_kid"] == kid_of(new_token) != old_kid
    assert sorted(api.kids()) == sorted([old_kid, answer["current_kid"]])
    # Both verify everywhere: old tokens keep working until they expire.
    assert verify_like_a_service(api, old_token).sub == verify_like_a_service(api, new_token).sub
    assert api.userinfo(old_token).status_code == 200


def test_retire_drops_the_old_key_and_its_tokens(api) -> None:
    admin = api.login("admin")["access_token"]
    old_token = api.login("alice")["access_token"]
    new_kid = rotate(api, admin)["current_kid"]
    assert api.userinfo(old_token).status_code == 200  # now cached by auth's verifier

    response = api.post(f"/auth/admin/keys/{kid_of(old_token)}/retire", admin)

    assert response.status_code == 200
    assert api.kids() == [new_kid]
    assert api.userinfo(old_token).status_code == 401
    with pytest.raises(InvalidToken, match="unknown key"):
        verify_like_a_service(api, old_token)


def test_retire_says_so_when_the_services_cannot_be_told(api) -> None:
    admin = api.login("admin")["access_token"]
    old_kid = api.kids()[0]
    new_kid = rotate(api, admin)["current_kid"]
    # Redis goes away for auth's publisher (nothing listens on port 9).
    state = api.app.state
    unreachable = aioredis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    state.revoker = Revoker(RevocationStore(unreachable), state.revocations)

    response = api.post(f"/auth/admin/keys/{old_kid}/retire", admin)

    assert response.status_code == 503, response.text
    assert "announcement to the services failed" in response.json()["detail"]
    assert "60 s" in response.json()["detail"]
    assert api.kids() == [new_kid]  # retired at auth all the same


def test_retire_refuses_current_and_unknown_keys(api) -> None:
    admin = api.login("admin")["access_token"]
    current = api.kids()[0]

    assert api.post(f"/auth/admin/keys/{current}/retire", admin).status_code == 409
    assert api.post("/auth/admin/keys/no-such-kid/retire", admin).status_code == 404
    assert api.kids() == [current]


def test_key_admin_needs_the_admin_role(api) -> None:
    alice = api.login("alice")["access_token"]
    kids = api.kids()

    assert api.post("/auth/admin/keys/rotate", alice).status_code == 403
    assert api.post("/auth/admin/keys/rotate").status_code == 401
    assert api.kids() == kids


def test_rotated_key_leaves_the_jwks_after_token_lifetime(monkeypatch, make_api) -> None:
    # iat is whole seconds: a 1 s token issued late in a second may live only milliseconds, so
    # the admin token gets 2 s + 1 s leeway to make the rotate call; the grace is then 3 s.
    monkeypatch.setenv("RELAYSHOP_ACCESS_TOKEN_TTL_SECONDS", "2")
    monkeypatch.setenv("RELAYSHOP_LEEWAY_SECONDS", "1")
    api = make_api()
    admin = api.login("admin")["access_token"]
    old_kid = api.kids()[0]
    new_kid = rotate(api, admin)["current_kid"]
    assert old_kid in api.kids()

    deadline = time.monotonic() + 8
    while old_kid in api.kids():
        assert time.monotonic() < deadline, "the old key stayed published past its grace"
        time.sleep(0.1)
    assert api.kids() == [new_kid]
