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

Every message is validated against a schema (``RevocationEvent``) before it touches the mirror. A
message that does not fit is refused and logged, and the mirror reloads the full set from Redis:
whatever that message meant to say is recorded there too. If the mirror's task ends for any
reason, the mirror counts as lost from that moment (same policy as a lost connection), and
``/readyz`` says so: a dead mirror must never look like a healthy one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .errors import InvalidToken, UpstreamUnavailable
from .tokens import Principal

JTI_KEY = "relayshop:revoked:jti"
NBF_KEY = "relayshop:revoked:nbf"
CHANNEL = "relayshop:revocations"
log = logging.getLogger(__name__)


# -- the messages on CHANNEL: strict, so "nbf": "soon" or a missing field is refused, not guessed
class _Event(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class JtiRevoked(_Event):
    type: Literal["jti"]
    jti: str = Field(min_length=1, max_length=255)
    exp: float


class UserRevoked(_Event):
    type: Literal["nbf"]
    sub: str = Field(min_length=1, max_length=255)
    nbf: int


class KeysChanged(_Event):
    type: Literal["keys"]


RevocationEvent = Annotated[JtiRevoked | UserRevoked | KeysChanged, Field(discriminator="type")]
_EVENT = TypeAdapter(RevocationEvent)


class RevocationStore:
    """The write side, used by auth. Raises RedisError when it cannot record (never fakes it)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def revoke_jti(self, jti: str, exp: int) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(JTI_KEY, {jti: exp})
            pipe.zremrangebyscore(JTI_KEY, "-inf", time.time() - 60)
            pipe.publish(CHANNEL, JtiRevoked(type="jti", jti=jti, exp=exp).model_dump_json())
            await pipe.execute()

    async def revoke_user(self, sub: str, not_before: int | None = None) -> int:
        nbf = int(not_before if not_before is not None else time.time())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(NBF_KEY, sub, nbf)
            pipe.publish(CHANNEL, UserRevoked(type="nbf", sub=sub, nbf=nbf).model_dump_json())
            await pipe.execute()
        return nbf

    async def announce_keys_changed(self) -> None:
        await self.redis.publish(CHANNEL, KeysChanged(type="keys").model_dump_json())


class RevocationMirror:
    """The read side: an in-memory copy, checked on every request at dictionary speed."""

    def __init__(
        self,
        redis: str | Callable[..., aioredis.Redis],
        *,
        max_staleness_seconds: float = 30.0,
        on_keys_changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``redis``: a URL, or a function that opens a new client with the options it is
        given (redis_acl.RedisConnect: create_service_app's, which a test may replace)."""
        if isinstance(redis, str):
            url = redis

            def connect(**options: Any) -> aioredis.Redis:
                return aioredis.from_url(url, **options)

            redis = connect
        self._connect = redis
        self._max_staleness = max_staleness_seconds
        self._on_keys_changed = on_keys_changed
        self.revoked_jti: dict[str, float] = {}
        self.not_before: dict[str, int] = {}
        self.synced = False
        self._lost_at: float | None = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._keys_tasks: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self._stopping = False
        # Named connections (CLIENT LIST shows which process holds which subscription).
        self.client_name = f"relayshop-mirror-{uuid.uuid4().hex[:12]}"

    # -- the per-request check -------------------------------------------------------------
    def check(self, principal: Principal) -> None:
        # What the mirror knows is revoked stays revoked (401), however stale the mirror is.
        if principal.jti in self.revoked_jti:
            raise InvalidToken("revoked", "The access token has been revoked.")
        # A token exchanged from a revoked one (RFC 8693) is revoked with it: revoking the user's
        # token at logout stops every token derived from it, at every hop, with no new message.
        if any(jti in self.revoked_jti for jti in principal.derived_from):
            raise InvalidToken("revoked", "The token it was exchanged from has been revoked.")
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
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The task only ends on stop(); ended any other way, the mirror is lost for good."""
        if self._stopping:
            return
        # Lost, as if Redis were gone (module docstring), except that it never comes back.
        if self._lost_at is None:
            self._lost_at = time.monotonic()
        error = None if task.cancelled() else task.exception()
        log.error("revocation mirror stopped for good; restart the service", exc_info=error)

    async def wait_synced(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._stopping = True
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
            client = self._connect(
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
                        if not self._apply(message["data"]):
                            await self._load(client)  # what it meant to say is in Redis too
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

    def _apply(self, data: Any) -> bool:
        """Apply one message; False (and a log line) if it does not fit the schema."""
        try:
            event = _EVENT.validate_json(data)
        except ValidationError as exc:
            # Only the error locations: the message itself is attacker-shaped input.
            where = ", ".join(".".join(map(str, e["loc"])) or e["type"] for e in exc.errors())
            log.warning("refused a malformed revocation message (%s); reloading", where)
            return False
        if isinstance(event, JtiRevoked):
            self.revoked_jti[event.jti] = event.exp
            self._prune()
        elif isinstance(event, UserRevoked):
            self.not_before[event.sub] = max(event.nbf, self.not_before.get(event.sub, 0))
        else:
            self._keys_changed()
        return True

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
