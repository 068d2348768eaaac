"""Minting tokens: RFC 9068 JWT access tokens and opaque refresh tokens.

Access token (docs/api.md, section 3):
    header  {"alg": "RS256", "typ": "at+jwt", "kid": <current key>}
    claims  iss, sub, aud, exp, iat, jti, roles, scope, client_id, and sid for user sessions
No name, email or other personal data: a JWT is only signed, not encrypted, so anyone holding
it can read it. The username is available from /auth/userinfo for whoever needs it.

Refresh token: ``secrets.token_urlsafe(32)`` (256 bits from the OS CSPRNG). Only its SHA-256 is
stored: a leaked database cannot be replayed, and a fast hash is enough for a random secret of
that size (a slow password hash exists to protect low-entropy human choices).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

import jwt

from .keys import ALGORITHM, KeyStore

ACCESS_TOKEN_TYPE = "at+jwt"
# RFC 9068 section 2.2: client_id of the first-party app that users sign in through.
USER_CLIENT_ID = "relayshop"
SERVICE_SCOPE = "internal"


@dataclass(frozen=True)
class MintedToken:
    token: str
    jti: str
    exp: int


def mint_access_token(
    keys: KeyStore,
    *,
    issuer: str,
    audience: str,
    ttl_seconds: int,
    sub: str,
    roles: list[str],
    scope: str,
    client_id: str,
    sid: str | None = None,
) -> MintedToken:
    now = int(time.time())
    jti = uuid.uuid4().hex
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "exp": now + ttl_seconds,
        "iat": now,
        "jti": jti,
        "roles": roles,
        "scope": scope,
        "client_id": client_id,
    }
    if sid is not None:
        claims["sid"] = sid
    key = keys.current
    token = jwt.encode(
        claims,
        key.private_key,
        algorithm=ALGORITHM,
        headers={"typ": ACCESS_TOKEN_TYPE, "kid": key.kid},
    )
    return MintedToken(token, jti, now + ttl_seconds)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
