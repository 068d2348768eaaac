"""make bench-revocation: how long a revoked token keeps working, at each of the four services.

    .venv/bin/python tools/bench_revocation.py                    # 100 revocations, ~30 s
    .venv/bin/python tools/bench_revocation.py --revocations 50

It starts its own stack (relayshop_devtools.devstack, in a temporary directory), then, for each
revocation: signs alice in, gets the token each service receives for her (the gateway takes hers
as signed in; in exchange mode, the default, orders, payments and inventory each get it exchanged
for them, as the gateway would; in relay mode, RELAYSHOP_TEST_TOKEN_MODE=relay, her token itself),
uses each once at its service (so that every verifier holds it in its cache: the revocation must
beat a cache hit), sends POST /auth/logout with her token straight to auth and, at the same
moment, starts polling the gateway, orders, payments and inventory (directly, each on its own
port, each with its own token) every millisecond until each answers 401. In exchange mode the
401 at orders, payments and inventory is the revocation of a token derived from hers: the logout
names her token's jti alone, and each verifier refuses every token whose derived_from holds it.

Two clocks per service: from the moment the logout request is sent (what a user sees: it
includes auth's own work before it publishes), and from the moment the revocation message is
published on Redis (seen by a subscriber in this process: the propagation itself, Redis pub/sub
to every mirror). Target: p99 under 100 ms, from the logout, at every service.
The machine's other load counts: close other stacks for a clean figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jwt
import redis.asyncio as aioredis
from httpx_aiohttp import AiohttpTransport
from relayshop_devtools.devstack import PASSWORDS, Client, Stack, make_stack
from relayshop_platform.revocation import CHANNEL

SERVICES = ("gateway", "orders", "payments", "inventory")
# A GET any signed-in user may make on each service (payments: an unknown id is a 404 to a valid
# token and a 401 to a revoked one).
PROBES = {
    "gateway": "/api/inventory/products",
    "orders": "/api/orders",
    "payments": "/api/payments/no-such-payment",
    "inventory": "/api/inventory/products",
}
TARGET_P99_MS = 100.0
POLL_INTERVAL = 0.001
GIVE_UP_SECONDS = 5.0


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of values <= it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def sign_in(http: httpx.AsyncClient, stack: Stack, username: str) -> str:
    response = await http.post(
        f"{stack.url('gateway')}/auth/token",
        data={"grant_type": "password", "username": username, "password": PASSWORDS[username]},
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


async def poll_until_refused(
    http: httpx.AsyncClient, url: str, token: str, started: float
) -> float:
    """Seconds from ``started`` until ``url`` refuses ``token`` with 401 because it is revoked
    (any other 401, an audience one say, would measure nothing: it stops the bench)."""
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        response = await http.get(url, headers=headers)
        if response.status_code == 401:
            if "revoked" not in response.text:
                raise RuntimeError(f"{url} refused the token, but not as revoked: {response.text}")
            return time.perf_counter() - started
        if response.status_code not in (200, 404):
            raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
        if time.perf_counter() - started > GIVE_UP_SECONDS:
            raise RuntimeError(f"{url} still accepts a revoked token after {GIVE_UP_SECONDS}s")
        await asyncio.sleep(POLL_INTERVAL)


class PublishClock:
    """Subscribes to the revocation channel and notes when each jti's message arrives."""

    def __init__(self, redis_url: str) -> None:
        self._redis = aioredis.from_url(redis_url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self.seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._pubsub.subscribe(CHANNEL)
        self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for message in self._pubsub.listen():
            arrived = time.perf_counter()
            event = json.loads(message["data"])
            if event.get("type") == "jti":
                self.seen.setdefault(str(event["jti"]), arrived)  # the first publish counts

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.aclose()
        await self._redis.aclose()


async def one_revocation(
    http: httpx.AsyncClient,
    stack: Stack,
    client: Client,
    urls: dict[str, str],
    clock: PublishClock,
) -> tuple[dict[str, float], float, float]:
    """Seconds from sending the logout: to each service's 401, to its answer, to the publish."""
    token = await sign_in(http, stack, "alice")
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    headers = {"Authorization": f"Bearer {token}"}
    # The token each service receives for alice: exchanged for it at auth in exchange mode (a
    # blocking call of the devstack client, in a thread: setup, before the clock starts).
    received = {name: await asyncio.to_thread(client.as_received_by, name, token) for name in urls}
    for name, url in urls.items():  # warm every verifier's cache with its token
        warm = await http.get(url, headers={"Authorization": f"Bearer {received[name]}"})
        assert warm.status_code in (200, 404), (url, warm.status_code, warm.text)

    started = time.perf_counter()
    logout = asyncio.create_task(http.post(f"{stack.url('auth')}/auth/logout", headers=headers))
    pollers = {
        name: asyncio.create_task(poll_until_refused(http, url, received[name], started))
        for name, url in urls.items()
    }
    answer = await logout
    logout_seconds = time.perf_counter() - started
    if answer.status_code != 204:
        raise RuntimeError(f"logout answered {answer.status_code}: {answer.text[:200]}")
    times = {name: await task for name, task in pollers.items()}
    for _ in range(1000):  # the subscriber may lag the services by a hair: wait for it
        if jti in clock.seen:
            break
        await asyncio.sleep(0.001)
    return times, logout_seconds, clock.seen[jti] - started


async def measure(stack: Stack, revocations: int) -> None:
    urls = {name: f"{stack.url(name)}{PROBES[name]}" for name in SERVICES}
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    from_logout: dict[str, list[float]] = {name: [] for name in SERVICES}
    from_publish: dict[str, list[float]] = {name: [] for name in SERVICES}
    logouts: list[float] = []
    published: list[float] = []
    clock = PublishClock(stack.redis_url)
    await clock.start()
    client = Client(stack)  # devstack's: the token each service receives, in the stack's mode
    transport = AiohttpTransport(limits=limits)  # httpx's own pool costs more CPU per request
    try:
        async with httpx.AsyncClient(transport=transport, timeout=10.0, limits=limits) as http:
            for _ in range(revocations):
                times, logout_seconds, publish_seconds = await one_revocation(
                    http, stack, client, urls, clock
                )
                for name, seconds in times.items():
                    from_logout[name].append(seconds * 1000)
                    from_publish[name].append((seconds - publish_seconds) * 1000)
                logouts.append(logout_seconds * 1000)
                published.append(publish_seconds * 1000)
    finally:
        client.http.close()
        await clock.stop()
    report(from_logout, from_publish, logouts, published, revocations, client.mode)


def report(
    from_logout: dict[str, list[float]],
    from_publish: dict[str, list[float]],
    logouts: list[float],
    published: list[float],
    revocations: int,
    mode: str,
) -> None:
    def every(samples: dict[str, list[float]]) -> list[float]:
        return [value for values in samples.values() for value in values]

    def cells(values: list[float]) -> str:
        return f"{percentile(values, 0.50):>8.1f}{percentile(values, 0.99):>8.1f}"

    print()
    print(f"Revocation propagation, {revocations} revocations, ms until the first 401")
    print("(each service called directly, polled every 1 ms; tokens cached in every verifier)")
    if mode == "exchange":
        print("(exchange mode: orders, payments and inventory each hold alice's token exchanged")
        print(" for them; the logout revokes hers, and with it each token derived from it)")
    else:
        print("(relay mode: every service holds alice's token itself)")
    print()
    print(f"{'':<14}{'from the logout':>16}  {'from the publish':>16}")
    print(f"{'service':<14}{'p50':>8}{'p99':>8}  {'p50':>8}{'p99':>8}")
    for name in SERVICES:
        print(f"{name:<14}{cells(from_logout[name])}  {cells(from_publish[name])}")
    print(f"{'all four':<14}{cells(every(from_logout))}  {cells(every(from_publish))}")
    print()
    print(f"{'auth published':<14}{cells(published)}   (logout sent -> message on Redis)")
    print(f"{'logout 204':<14}{cells(logouts)}   (logout sent -> its answer)")
    p99 = percentile(every(from_logout), 0.99)
    verdict = "met" if p99 < TARGET_P99_MS else "MISSED"
    print()
    print(f"target: p99 < {TARGET_P99_MS:.0f} ms from the logout -> {verdict} (p99 {p99:.1f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revocations", type=int, default=100, help="at least 50")
    options = parser.parse_args()
    if options.revocations < 50:
        parser.error("--revocations must be at least 50 (p99 needs the samples)")
    with tempfile.TemporaryDirectory(prefix="relayshop-bench-revocation-") as directory:
        print("starting a stack of its own ...", flush=True)
        started = time.monotonic()
        with contextlib.contextmanager(make_stack)(Path(directory)) as stack:
            print(f"ready in {time.monotonic() - started:.1f}s; measuring ...", flush=True)
            asyncio.run(measure(stack, options.revocations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
