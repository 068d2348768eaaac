"""Password hashing with argon2id (pwdlib), off the event loop.

Parameters are the OWASP Password Storage Cheat Sheet's argon2id minimum: 19 MiB of memory,
2 iterations, 1 lane (about 20-40 ms per hash on one core). Hashing is deliberately slow, so it
runs in a worker thread: one sign-in must not stall every other request on this event loop.

``verify_or_dummy`` verifies against a dummy hash when the account does not exist, so "no such
user" takes as long as "wrong password" and the timing does not reveal which usernames exist.
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import secrets
import sys

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

MAX_PASSWORD_LENGTH = 1024  # refused before hashing: a 1 MB "password" must cost us nothing
_M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter number (malloc.h)


def _give_hash_memory_back() -> None:
    """Make each hash's 19 MiB go back to the system when the hash is done.

    glibc serves a block that big with mmap(), but after the first free() it raises its mmap
    threshold to that size (the "dynamic threshold"), so every later hash takes its block from
    the worker thread's heap, and each worker thread keeps 19 MiB for good: measured, 20 MB more
    resident memory after one sign-in, up to 19 MiB per thread under load. A fixed threshold
    keeps big blocks on mmap(). No effect (and no need) on other C libraries.
    """
    if sys.platform != "linux":
        return
    try:
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
        pass


_give_hash_memory_back()

_hasher = PasswordHash((Argon2Hasher(memory_cost=19 * 1024, time_cost=2, parallelism=1),))


class Passwords:
    def __init__(self, dummy_hash: str) -> None:
        self._dummy_hash = dummy_hash
        # SHA-256 of (stored hash, client secret) pairs that verified: see verify_client_secret.
        self._verified_clients: set[bytes] = set()

    @classmethod
    async def create(cls) -> Passwords:
        return cls(await hash_password(secrets.token_urlsafe(16)))

    async def verify_or_dummy(self, password: str, password_hash: str | None) -> bool:
        """True only if the account exists and the password matches; same cost either way."""
        matches = await verify_password(password, password_hash or self._dummy_hash)
        return matches and password_hash is not None

    # A service authenticates at every token request, a token exchange on each new user token
    # included: argon2 each time would cost a core for nothing. A client secret is a long random
    # value, not a human's password, so a fast hash of it is safe to keep (the reason refresh
    # tokens are stored as SHA-256, tokens.py). The stored hash is part of the key, so a changed
    # secret is verified afresh. Only successes are remembered, in memory only.
    def remembered_client(self, secret: str, secret_hash: str) -> bool:
        """True when this very secret already verified against this stored hash."""
        return _pair(secret, secret_hash) in self._verified_clients

    async def verify_client_secret(self, secret: str, secret_hash: str | None) -> bool:
        """verify_or_dummy for a service's client secret, remembered once it matched."""
        valid = await self.verify_or_dummy(secret, secret_hash)
        if valid and secret_hash is not None and len(self._verified_clients) < 1024:
            self._verified_clients.add(_pair(secret, secret_hash))
        return valid


def _pair(secret: str, secret_hash: str) -> bytes:
    return hashlib.sha256(f"{secret_hash}\n{secret}".encode()).digest()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    return await asyncio.to_thread(_hasher.verify, password, password_hash)
