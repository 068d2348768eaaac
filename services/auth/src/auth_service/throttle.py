"""Slow down password guessing: count failed sign-ins in Redis, per username and per address.

    relayshop:auth:fail:user:<sha256(username)>   failures for that username in the window
    relayshop:auth:fail:addr:<address>            failures from that client address

A counter starts at the first failure and expires ``window`` seconds later, so a victim whose
name an attacker hammers is locked out for at most one window, never forever (OWASP
Authentication Cheat Sheet, "account lockout"). While a counter is at its limit every attempt is
refused with 429 and ``Retry-After`` = what is left of the window, before any password is hashed.
A successful sign-in clears the username's counter (not the address's).

Shared by every auth replica because it lives in Redis. If Redis is down the throttle cannot be
enforced, and sign-in fails closed (503) rather than silently dropping the brute-force defence.
"""

from __future__ import annotations

import hashlib
import ipaddress

import redis.asyncio as aioredis
from fastapi import Request

PREFIX = "relayshop:auth:fail:"


class LoginThrottle:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_per_username: int,
        max_per_address: int,
        window_seconds: int,
    ) -> None:
        self._redis = redis
        self._max_user = max_per_username
        self._max_addr = max_per_address
        self._window = window_seconds

    async def retry_after(self, username: str, address: str) -> int:
        """0 if an attempt may go ahead, else the seconds until it may. Raises RedisError."""
        user_key, addr_key = _user_key(username), _addr_key(address)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(user_key)
            pipe.ttl(user_key)
            pipe.get(addr_key)
            pipe.ttl(addr_key)
            user_count, user_ttl, addr_count, addr_ttl = await pipe.execute()
        waits = [
            max(int(ttl), 1)
            for count, ttl, limit in (
                (user_count, user_ttl, self._max_user),
                (addr_count, addr_ttl, self._max_addr),
            )
            if count is not None and int(count) >= limit
        ]
        return max(waits, default=0)

    async def failed(self, username: str, address: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in (_user_key(username), _addr_key(address)):
                # SET NX EX starts the window at the first failure; INCR keeps that TTL.
                pipe.set(key, 0, ex=self._window, nx=True)
                pipe.incr(key)
            await pipe.execute()

    async def succeeded(self, username: str) -> None:
        await self._redis.delete(_user_key(username))


def _user_key(username: str) -> str:
    # Hashed: a key of bounded length, and no usernames in plain text in Redis.
    return PREFIX + "user:" + hashlib.sha256(username.encode()).hexdigest()


def _addr_key(address: str) -> str:
    return PREFIX + "addr:" + address


def client_address(request: Request, trusted_proxies: list[str]) -> str:
    """The caller's address. X-Forwarded-For counts only when our direct peer is a trusted
    proxy (the gateway); then the right-most entry that is not itself a trusted proxy wins,
    because everything left of it was written by the client and can be forged."""
    peer = request.client.host if request.client else "unknown"
    if peer not in trusted_proxies:
        return peer
    forwarded = [
        part.strip()
        for part in request.headers.get("x-forwarded-for", "").split(",")
        if part.strip()
    ]
    for candidate in reversed(forwarded):
        if candidate in trusted_proxies:
            continue
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            return peer  # garbage in the header: fall back to what we know for sure
    return peer
