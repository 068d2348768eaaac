"""Calls to inventory and payments: one auth, one deadline, and retries only where safe.

Every call has a timeout: the HTTP client's own (create_http_client: connect and read limits),
cut down to what is left of the saga's lease, so that no call of ours is still in flight when the
lease runs out and the reconciler may take the order over (leases.py).

    once()        reserve and charge: sent once. Both are idempotent per order id at the
                  neighbours, but after a lost answer we ask what happened instead of resending.
    idempotent()  look-ups by order id, release, refund: repeating them cannot hold stock twice,
                  give stock back twice or refund twice, so lost connections and 5xx are retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import httpx
from relayshop_platform.errors import UpstreamTimeout
from relayshop_platform.relay import upstream_error

ATTEMPTS = 3
BACKOFF_SECONDS = 0.2


class OutOfTime(UpstreamTimeout):
    """The lease ran out before the call could be made: it was not sent."""


class Calls:
    def __init__(
        self, http: httpx.AsyncClient, auth: Mapping[str, httpx.Auth], *, deadline: float
    ) -> None:
        """``auth``: per callee, the tokens to send it (each token is for that callee alone)."""
        self._http = http
        self._auth = auth
        self.deadline = deadline  # time.monotonic() after which nothing more is sent

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def once(self, service: str, method: str, url: str, json: Any = None) -> httpx.Response:
        """One attempt. Raises httpx.HTTPError as is (the caller decides what a lost answer
        means), or OutOfTime (an UpstreamError) without sending anything."""
        return await self._http.request(
            method, url, json=json, auth=self._auth[service], timeout=self._timeout(service)
        )

    async def idempotent(self, service: str, method: str, url: str) -> httpx.Response:
        """An idempotent call, retried on a lost connection or a 5xx answer while time is left.
        Raises UpstreamError (503/504) when every attempt failed."""
        attempt = 1
        while True:
            try:
                response = await self.once(service, method, url)
                if response.status_code < 500 or attempt >= ATTEMPTS:
                    return response
            except httpx.HTTPError as exc:
                if attempt >= ATTEMPTS:
                    raise upstream_error(exc, service) from exc
            pause = BACKOFF_SECONDS * attempt
            if self.remaining() <= pause:
                raise OutOfTime(f"No time was left to ask the {service} service again.")
            await asyncio.sleep(pause)
            attempt += 1

    def _timeout(self, service: str) -> httpx.Timeout:
        left = self.remaining()
        if left <= 0:
            raise OutOfTime(f"No time was left to call the {service} service.")
        base = self._http.timeout

        def cut(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx.Timeout(
            connect=cut(base.connect),
            read=cut(base.read),
            write=cut(base.write),
            pool=cut(base.pool),
        )
