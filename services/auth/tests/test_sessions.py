"""Refresh tokens: rotated on every use, single use, and a reuse ends the whole session."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
from auth_service.models import RefreshToken
from sqlmodel import select

# Runs on SQLite and on PostgreSQL (the root conftest's database_url).
pytestmark = pytest.mark.databases


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_refresh_returns_new_tokens_in_the_same_session(api) -> None:
    first = api.login("alice")

    response = api.refresh(first["refresh_token"])

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert claims(second["access_token"])["sid"] == claims(first["access_token"])["sid"]
    assert claims(second["access_token"])["jti"] != claims(first["access_token"])["jti"]
    assert api.userinfo(second["access_token"]).json()["preferred_username"] == "alice"


def test_refresh_reuse_fails_and_ends_the_session(api) -> None:
    first = api.login("alice")
    second = api.refresh(first["refresh_token"]).json()

    reuse = api.refresh(first["refresh_token"])

    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    # RFC 9700 4.14.2: the newest refresh token and access token of that session die too.
    assert api.refresh(second["refresh_token"]).status_code == 400
    assert api.userinfo(second["access_token"]).status_code == 401
    # Another session of the same user is untouched.
    other = api.login("alice")
    assert api.refresh(other["refresh_token"]).status_code == 200


def test_refresh_refuses_unknown_token(api) -> None:
    response = api.refresh("not-a-refresh-token")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_refresh_may_narrow_but_not_widen_scope(api) -> None:
    first = api.login("alice", scope="orders:read orders:write")
    narrowed = api.client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "scope": "orders:read",
        },
    )
    assert narrowed.json()["scope"] == "orders:read"

    widened = api.client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": narrowed.json()["refresh_token"],
            "scope": "payments:read",  # never granted to this session
        },
    )
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"


def test_refresh_lets_only_one_of_two_concurrent_uses_win(api) -> None:
    token = api.login("alice")["refresh_token"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        statuses = sorted(pool.map(lambda _: api.refresh(token).status_code, range(2)))

    assert statuses == [200, 400]


async def read_refresh_rows(api) -> list[RefreshToken]:
    async with api.app.state.sessionmaker() as db:
        return list((await db.exec(select(RefreshToken))).all())


def test_refresh_tokens_are_stored_only_as_hashes(api) -> None:
    token = api.login("alice")["refresh_token"]

    rows = api.client.portal.call(read_refresh_rows, api)

    assert [row.token_hash for row in rows] == [hashlib.sha256(token.encode()).hexdigest()]
