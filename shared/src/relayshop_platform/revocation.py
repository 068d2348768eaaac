"""Revocations: written by auth to Redis, mirrored in memory by every verifying service.

Redis layout (one place, used by both sides):
    relayshop:revoked:jti   sorted set, member = jti, score = the token's exp (pruned after it)
    relayshop:revoked:nbf   hash, field = sub, value = "not before" unix time: every token of that
                            user issued before it is revoked (logout-all, password change)
    relayshop:revocations   pub/sub channel, one JSON message per revocation or key change

The mirror subscribes first and loads the full set second, so a revocation published in between
is never missed; it does the same again after every reconnect. For that, every dropped connection
must reach the mirror's own loop: a redis-py client that retries (``redis.Redis()`` does, ten times,
by default) silently reconnects and re-subscribes a pub/sub connection, and whatever was published
while it was down is lost without a trace. So the mirror's client never retries on its own.

Policy while Redis is unreachable (README, "When Redis is down"): a service keeps answering from
its mirror for ``max_staleness_seconds``, then refuses authenticated requests with 503 until it is
back in sync. Fail closed: we would rather be down than honour a token we were told to revoke.
A service that has never synced refuses authenticated requests (503) too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .errors import InvalidToken, UpstreamUnavailable
from .tokens import Principal

JTI_KEY = "relayshop:revoked:jti"
NBF_KEY = "relayshop:revoked:nbf"
CHANNEL = "relayshop:revocations"
# A user's not-before outlives every access token issued before it (max lifetime + margin).
log = logging.getLogger("relayshop.revocation")


class RevocationStore:
    """The write side, used by auth. Raises RedisError when it cannot record (never fakes it)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def revoke_jti(self, jti: str, exp: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(JTI_KEY, {jti: exp})
            pipe.zremrangebyscore(JTI_KEY, "-inf", time.time() - 60)
            pipe.publish(CHANNEL, json.dumps({"type": "jti", "jti": jti, "exp": exp}))
            await pipe.execute()

    async def revoke_user(self, sub: str, not_before: int | None = None) -> int:
        nbf = int(not_before if not_before is not None else time.time())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(NBF_KEY, sub, nbf)
            pipe.publish(CHANNEL, json.dumps({"type": "nbf", "sub": sub, "nbf": nbf}))
            await pipe.execute()
        return nbf

    async def announce_keys_changed(self) -> None:
        await self.redis.publish(CHANNEL, json.dumps({"type": "keys"}))


class RevocationMirror:
    """The read side: an in-memory copy, checked on every request at dictionary speed."""

    def __init__(
        self,
        redis_url: str,
        *,
        max_staleness_seconds: float = 30.0,
        on_keys_changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._redis_url = redis_url
        self._max_staleness = max_staleness_seconds
        self._on_keys_changed = on_keys_changed
        self.revoked_jti: dict[str, float] = {}
        self.not_before: dict[str, int] = {}
        self.synced = False
        self._lost_at: float | None = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._keys_tasks: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        # Named connections (CLIENT LIST shows which process holds which subscription).
        self.client_name = f"relayshop-mirror-{uuid.uuid4().hex[:12]}"

    # -- the per-request check -------------------------------------------------------------
    def check(self, principal: Principal) -> None:
        # What the mirror knows is revoked stays revoked (401), however stale the mirror is.
        if principal.jti in self.revoked_jti:
            raise InvalidToken("revoked", "The access token has been revoked.")
        nbf = self.not_before.get(principal.sub)
        if nbf is not None and principal.iat < nbf:
            raise InvalidToken("revoked", "The access token has been revoked.")
        # Anything else passes only while the mirror may be trusted to be complete.
        if self._lost_at is not None:
            if not self.synced or time.monotonic() - self._lost_at > self._max_staleness:
                raise UpstreamUnavailable(
                    "Revocation state is unavailable; refusing tokens until it is back."
                )

    @property
    def healthy(self) -> bool:
        return self.synced and self._lost_at is None

    # -- keeping the mirror current --------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def wait_synced(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        for task in [self._task, *self._keys_tasks]:
            if task is None:
                continue
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: S110 - shutting down
                pass

    async def _run(self) -> None:
        delay = 0.1
        while True:
            # health_check_interval: redis-py pings the idle subscription, so a silently dead
            # connection is noticed within seconds. (Not get_message(timeout=...): in redis-py
            # that swallows task cancellation.)
            # No retries, said explicitly: a dropped connection must come back here to be marked
            # lost and reloaded, not be silently reconnected by redis-py (module docstring).
            client = aioredis.from_url(
                self._redis_url,
                socket_connect_timeout=1.0,
                health_check_interval=5,
                retry=Retry(NoBackoff(), 0),
                client_name=self.client_name,
            )
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self._load(client)
                    delay = 0.1
                    async for message in pubsub.listen():
                        await self._apply(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._lost_at is None:
                    self._lost_at = time.monotonic()
                    log.warning("lost Redis (%s); serving from the mirror", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                await client.aclose()

    async def _load(self, client: aioredis.Redis) -> None:
        now = time.time()
        jtis = await client.zrangebyscore(JTI_KEY, now - 60, "+inf", withscores=True)
        nbfs = await client.hgetall(NBF_KEY)
        self.revoked_jti = {_text(pair[0]): float(pair[1]) for pair in jtis}  # type: ignore[arg-type]
        self.not_before = {_text(sub): int(value) for sub, value in nbfs.items()}
        if self._lost_at is not None and self.synced:
            log.info("Redis is back; revocation mirror reloaded")
        self.synced = True
        self._lost_at = None
        self._ready.set()
        self._keys_changed()  # a rotation may have happened while we were away

    async def _apply(self, data: Any) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            return
        kind = event.get("type")
        if kind == "jti":
            self.revoked_jti[str(event["jti"])] = float(event["exp"])
            self._prune()
        elif kind == "nbf":
            sub = str(event["sub"])
            self.not_before[sub] = max(int(event["nbf"]), self.not_before.get(sub, 0))
        elif kind == "keys":
            self._keys_changed()

    def _keys_changed(self) -> None:
        """Refetch the keys in the background: a slow or unreachable auth (the JWKS fetch)
        must never hold up the revocations queued behind this message."""
        if self._on_keys_changed is None:
            return
        # Keep a reference (asyncio holds tasks weakly). Concurrent refetches are serialised by
        # JWKSCache's lock, so a change announced during a refetch still gets its own.
        task = asyncio.create_task(self._run_keys_changed())
        self._keys_tasks.add(task)
        task.add_done_callback(self._keys_tasks.discard)

    async def _run_keys_changed(self) -> None:
        assert self._on_keys_changed is not None
        try:
            await self._on_keys_changed()
        except Exception:  # never let a failed refetch end the task silently unlogged
            log.exception("refreshing the signing keys after a change failed")

    def _prune(self) -> None:
        if len(self.revoked_jti) % 1024 == 0:
            cutoff = time.time() - 60
            self.revoked_jti = {j: e for j, e in self.revoked_jti.items() if e > cutoff}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
