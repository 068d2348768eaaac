"""Record revocations in Redis (for every service) and in auth's own mirror (for auth, at once).

Every service learns of a revocation from Redis pub/sub within milliseconds. Auth itself must not
wait for that round trip: once it answers "revoked", its own /auth/userinfo must refuse the token
on the very next request, so the write also goes straight into auth's local mirror.

Raises ``RedisError`` (or ``OSError``) when Redis cannot record it: callers answer 503 and never
claim a revocation that did not happen.
"""

from __future__ import annotations

from relayshop_platform.revocation import RevocationMirror, RevocationStore


class Revoker:
    def __init__(self, store: RevocationStore, mirror: RevocationMirror) -> None:
        self._store = store
        self._mirror = mirror

    async def revoke_jti(self, jti: str, exp: int) -> None:
        await self._store.revoke_jti(jti, exp)
        self._mirror.revoked_jti[jti] = float(exp)

    async def revoke_user(self, sub: str, not_before: int | None = None) -> None:
        """Every token of ``sub`` issued before ``not_before`` (default: now) stops working."""
        nbf = await self._store.revoke_user(sub, not_before)
        self._mirror.not_before[sub] = max(nbf, self._mirror.not_before.get(sub, 0))

    async def keys_changed(self) -> None:
        await self._store.announce_keys_changed()
