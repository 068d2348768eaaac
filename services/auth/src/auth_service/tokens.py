"""Minting tokens: RFC 9068 JWT access tokens and opaque refresh tokens.

Access token (docs/api.md, section 3):
    header  {"alg": "RS256", "typ": "at+jwt", "kid": <current key>}
    claims  iss, sub, aud, exp, iat, jti, roles, scope, client_id, and sid for user sessions;
            an exchanged token (RFC 8693) adds act and derived_from (grants.py)
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
from typing import Any

import jwt
from relayshop_platform.relay import ACCESS_TOKEN_TYPE_URI

from .keys import ALGORITHM, KeyStore
from .models import TokenResponse

ACCESS_TOKEN_TYPE = "at+jwt"
# RFC 9068 section 2.2: client_id of the first-party app that users sign in through.
USER_CLIENT_ID = "relayshop"


@dataclass(frozen=True)
class MintedToken:
    token: str
    jti: str
    exp: int


def mint_access_token(
    keys: KeyStore,
    *,
    issuer: str,
    audience: str | list[str],
    ttl_seconds: int,
    sub: str,
    roles: list[str],
    scope: str,
    client_id: str,
    sid: str | None = None,
    act: dict[str, Any] | None = None,
    derived_from: list[str] | None = None,
    not_after: int | None = None,
) -> MintedToken:
    """``not_after``: an exp this token may not outlive (an exchanged token's subject's)."""
    now = int(time.time())
    exp = now + ttl_seconds if not_after is None else min(now + ttl_seconds, not_after)
    jti = uuid.uuid4().hex
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": sub,
        "aud": audience,
        "exp": exp,
        "iat": now,
        "jti": jti,
        "roles": roles,
        "scope": scope,
        "client_id": client_id,
    }
    if sid is not None:
        claims["sid"] = sid
    if act is not None:
        claims["act"] = act
    if derived_from:
        claims["derived_from"] = derived_from
    key = keys.current
    token = jwt.encode(
        claims,
        key.private_key,
        algorithm=ALGORITHM,
        headers={"typ": ACCESS_TOKEN_TYPE, "kid": key.kid},
    )
    return MintedToken(token, jti, exp)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def exchanged(access: MintedToken, scope: str) -> TokenResponse:
    """The RFC 8693 section 2.2.1 answer for a token issued by exchange."""
    return TokenResponse(
        access_token=access.token,
        issued_token_type=ACCESS_TOKEN_TYPE_URI,
        expires_in=max(0, access.exp - int(time.time())),
        scope=scope,
    )
