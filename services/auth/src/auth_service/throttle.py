"""Slow down password guessing: count sign-in attempts in Redis, per account and per address.

    relayshop:auth:fail:user:<sha256(username)>     attempts at that username in the window
    relayshop:auth:fail:client:<sha256(client_id)>  attempts at that service client's secret
    relayshop:auth:fail:addr:<address>              attempts from that client address

Each attempt is *reserved* before any password is hashed, in one atomic step (a Lua script, one
round trip): if either counter is at its limit the attempt is refused with 429 and
``Retry-After`` = what is left of the window; otherwise both counters go up by one. Checking first
and counting after the hash would let thirty concurrent guesses all pass a limit of ten. A
success gives its reservation back: the account's counter is cleared, the address's decremented,
so only failures add up. A counter starts at the first attempt and expires ``window`` seconds
later, so a victim whose name an attacker hammers is locked out for at most one window, never
forever (OWASP Authentication Cheat Sheet, "account lockout").

Shared by every auth replica because it lives in Redis. If Redis is down the throttle cannot be
enforced, and sign-in fails closed (503) rather than silently dropping the brute-force defence.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence

import redis.asyncio as aioredis
from fastapi import Request

PREFIX = "relayshop:auth:fail:"

# KEYS: account counter, address counter. ARGV: window, account limit, address limit.
_RESERVE = """
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    wait = math.max(wait, redis.call('TTL', key), 1)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[1]) end
end
return 0
"""
# KEYS: account counter, address counter.
_RELEASE = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 0
"""


def user_account(username: str) -> str:
    return "user:" + _digest(username)


def client_account(client_id: str) -> str:
    return "client:" + _digest(client_id)


class LoginThrottle:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_per_account: int,
        max_per_address: int,
        window_seconds: int,
    ) -> None:
        self._limits = (max_per_account, max_per_address)
        self._window = window_seconds
        self._reserve = redis.register_script(_RESERVE)
        self._release = redis.register_script(_RELEASE)

    async def reserve(self, account: str, address: str) -> int:
        """Count an attempt at ``account`` (user_account() or client_account()) from ``address``:
        0 if it may go ahead, else the seconds until one may. Raises RedisError."""
        keys = [PREFIX + account, PREFIX + "addr:" + address]
        wait = await self._reserve(keys=keys, args=[self._window, *self._limits])
        return int(wait)

    async def succeeded(self, account: str, address: str) -> None:
        await self._release(keys=[PREFIX + account, PREFIX + "addr:" + address])


def _digest(name: str) -> str:
    # Hashed: a key of bounded length, and no usernames in plain text in Redis.
    return hashlib.sha256(name.encode()).hexdigest()


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: Request, trusted_proxies: Sequence[Network]) -> str:
    """The caller's address. X-Forwarded-For counts only when our direct peer is a trusted
    proxy (the gateway; in a cluster, any address of the pod range); then the right-most entry
    that is not itself a trusted proxy wins, because everything left of it was written by the
    client and can be forged (RFC 7239 section 8.1 says the same of Forwarded)."""
    peer = request.client.host if request.client else "unknown"
    if not _within(peer, trusted_proxies):
        return peer
    forwarded = [
        part.strip()
        for part in request.headers.get("x-forwarded-for", "").split(",")
        if part.strip()
    ]
    for candidate in reversed(forwarded):
        try:
            address = ipaddress.ip_address(candidate)
        except ValueError:
            return peer  # garbage in the header: fall back to what we know for sure
        if not any(address in network for network in trusted_proxies):
            return str(address)
    return peer


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
