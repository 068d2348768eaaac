"""Server-side browser sessions for the backend-for-frontend (routes/bff.py), kept in Redis.

The browser holds one random session id in an HttpOnly cookie; everything else stays here:

    relayshop:bff:session:<sha256(id)>   JSON: user, roles, the access and refresh tokens, the
                                         access token's expiry, the CSRF token. TTL = the refresh
                                         token's lifetime (a dead refresh token is a dead session)
    relayshop:bff:lock:<sha256(id)>      held while one request refreshes the tokens
    relayshop:bff:revoked:<sha256(id)>   after logout, the revoked access token, for a few minutes,
                                         so the console can show it refused at every hop
    relayshop:bff:oidc:<sha256(state)>   a sign-in at a trusted issuer under way (routes/oidc.py):
                                         the issuer, nonce and PKCE verifier, for 10 minutes
    relayshop:bff:logout:<sha256(id)>    the issuer's logout URL for one browser, once, 5 minutes
    relayshop:bff:orders                 the last orders placed through the console (id, owner),
                                         so the "someone else's order" button has a real target

Keys hold a SHA-256 of the session id, never the id itself: whoever can read Redis (a backup, a
monitoring tool) still cannot replay a browser's cookie. The id has 256 random bits, so an
unsalted hash is enough (nothing to brute-force).

Why a lock: refresh tokens are single use (docs/api.md, section 3) and reusing a spent one revokes
the whole session. Two browser tabs refreshing at once would do exactly that, so one request
refreshes while the others wait, then re-read the session and use the new access token.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis

PREFIX = "relayshop:bff:"
ORDERS_KEY = PREFIX + "orders"
ORDERS_KEPT = 50
REVOKED_DEMO_SECONDS = 300


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def new_secret() -> str:
    """256 bits from the OS CSPRNG, URL-safe (RFC 6265 cookie-octets, no quoting needed)."""
    return secrets.token_urlsafe(32)


@dataclass
class BffSession:
    username: str
    sub: str
    roles: list[str]
    access_token: str
    access_expires_at: float  # unix time
    refresh_token: str  # "" for a sign-in at a trusted issuer: there is none (routes/oidc.py)
    csrf_token: str
    # A sign-in at a trusted issuer (routes/oidc.py): its issuer, the access token relayshop's
    # was exchanged from (exchanged again when relayshop's expires) and its expiry, and the ID
    # token (the id_token_hint of the logout at the issuer). None for a relayshop password.
    idp: str | None = None
    idp_access_token: str | None = None
    idp_expires_at: float | None = None
    idp_id_token: str | None = None

    def expires_within(self, seconds: float) -> bool:
        return self.access_expires_at - time.time() < seconds


class SessionStore:
    def __init__(self, redis: aioredis.Redis, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    async def create(self, session: BffSession, ttl_seconds: int | None = None) -> str:
        """Store a new session for ``ttl_seconds`` (at most, and by default, the store's)."""
        session_id = new_secret()
        ttl = min(ttl_seconds or self.ttl_seconds, self.ttl_seconds)
        await self.redis.set(
            PREFIX + "session:" + _digest(session_id),
            json.dumps(asdict(session)),
            ex=max(ttl, 1),
        )
        return session_id

    async def get(self, session_id: str) -> BffSession | None:
        raw = await self.redis.get(PREFIX + "session:" + _digest(session_id))
        if raw is None:
            return None
        try:
            return BffSession(**json.loads(raw))
        except (TypeError, ValueError):
            return None  # written by another version: treat as signed out

    async def save(self, session_id: str, session: BffSession) -> None:
        """Overwrite after a refresh; the session keeps its original end (KEEPTTL)."""
        await self.redis.set(
            PREFIX + "session:" + _digest(session_id), json.dumps(asdict(session)), keepttl=True
        )

    async def delete(self, session_id: str) -> None:
        await self.redis.delete(PREFIX + "session:" + _digest(session_id))

    async def put_once(self, kind: str, key: str, value: dict[str, Any], ttl_seconds: int) -> None:
        """Keep ``value`` under a secret ``key`` for one take_once (a sign-in under way, say)."""
        await self.redis.set(PREFIX + kind + ":" + _digest(key), json.dumps(value), ex=ttl_seconds)

    async def take_once(self, kind: str, key: str) -> dict[str, Any] | None:
        """The value put_once kept under ``key``, deleted in the same transaction: a second
        take (a replayed callback) finds nothing."""
        name = PREFIX + kind + ":" + _digest(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(name)
            pipe.delete(name)
            raw, _ = await pipe.execute()
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    @asynccontextmanager
    async def refresh_lock(self, session_id: str) -> AsyncIterator[None]:
        # timeout: a crashed holder cannot block the session for longer than one auth call.
        lock = self.redis.lock(PREFIX + "lock:" + _digest(session_id), timeout=15, sleep=0.05)
        async with lock:
            yield

    # -- demo helpers for the console -------------------------------------------------------
    async def remember_revoked(self, tokens: dict[str, str]) -> str:
        """Keep just-revoked tokens (server-side) for the revocation demo, per hop: the one each
        hop received. The browser gets an opaque id for them, never a token."""
        demo_id = new_secret()
        await self.redis.set(
            PREFIX + "revoked:" + _digest(demo_id), json.dumps(tokens), ex=REVOKED_DEMO_SECONDS
        )
        return demo_id

    async def revoked_tokens(self, demo_id: str) -> dict[str, str] | None:
        raw = await self.redis.get(PREFIX + "revoked:" + _digest(demo_id))
        if raw is None:
            return None
        tokens: dict[str, str] = json.loads(raw)
        return tokens

    async def remember_order(self, order_id: str, owner: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lpush(ORDERS_KEY, json.dumps({"id": order_id, "owner": owner}))
            pipe.ltrim(ORDERS_KEY, 0, ORDERS_KEPT - 1)
            await pipe.execute()

    async def order_of_someone_else(self, sub: str) -> str | None:
        for raw in await self.redis.lrange(ORDERS_KEY, 0, ORDERS_KEPT - 1):
            try:
                entry: dict[str, Any] = json.loads(raw)
            except ValueError:
                continue
            if entry.get("owner") != sub and isinstance(entry.get("id"), str):
                return str(entry["id"])
        return None
