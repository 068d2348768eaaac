"""The JWKS cache: public keys by ``kid``, fetched from auth and kept when auth is down.

- Loaded at start in the background with retries: a service starts even while auth is starting.
- An unknown ``kid`` triggers a refetch, at most once per ``min_refetch_seconds`` (so a flood of
  tokens with random kids cannot turn into a flood of requests to auth).
- A failed fetch keeps the last good keys. Keys are parsed once into key objects.
- Refetched every ``refresh_seconds`` as well, so a retired key stops being trusted within that
  time even when its announcement on Redis never arrived; ``on_keys_removed`` is then called
  (the verifier forgets the tokens it cached under a key that is gone).
- The key URL is configuration, never read from a token (RFC 8725 section 3.10: no ``jku``/``x5u``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from jwt import PyJWK, PyJWKSet
from jwt.exceptions import PyJWKError, PyJWKSetError

from .tokens import ALLOWED_ALGORITHMS

log = logging.getLogger(__name__)


class JWKSCache:
    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        min_refetch_seconds: float = 5.0,
        refresh_seconds: float = 60.0,
        on_keys_removed: Callable[[], None] | None = None,
        rsa_keys_without_alg: bool = False,
    ) -> None:
        self.url = url
        self._rsa_keys_without_alg = rsa_keys_without_alg
        self._client = client
        self._min_refetch = min_refetch_seconds
        self._refresh_every = refresh_seconds
        self._on_keys_removed = on_keys_removed
        self._keys: dict[str, Any] = {}
        self._last_attempt = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def loaded(self) -> bool:
        return bool(self._keys)

    def kids(self) -> list[str]:
        return list(self._keys)

    def start(self) -> None:
        """Load the keys in the background, retrying until auth answers; then refresh them
        every ``refresh_seconds``."""
        self._task = asyncio.create_task(self._keep_fresh())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _keep_fresh(self) -> None:
        delay = 0.2
        while not self._keys:
            await self.refresh(force=True)
            if not self._keys:
                await asyncio.sleep(delay)
                # At most a second apart: a service started before auth (make run starts them
                # together) is ready within a second of auth, and one request a second is no load.
                delay = min(delay * 2, 1.0)
        while True:
            await asyncio.sleep(self._refresh_every)
            await self.refresh(force=True)

    async def get(self, kid: str) -> Any | None:
        """The key object for ``kid``, refetching once if unknown; None if still unknown."""
        key = self._keys.get(kid)
        if key is None:
            await self.refresh()
            key = self._keys.get(kid)
        return key

    async def refresh(self, force: bool = False) -> None:
        async with self._lock:
            now = time.monotonic()
            if not force and now - self._last_attempt < self._min_refetch:
                return
            self._last_attempt = now
            try:
                response = await self._client.get(self.url)
                response.raise_for_status()
                keys = self.parse(response.json(), self._rsa_keys_without_alg)
            except (httpx.HTTPError, ValueError, PyJWKError, PyJWKSetError) as exc:
                # Keep the last good keys: auth being down must not take every service down.
                log.warning("JWKS fetch from %s failed: %s", self.url, type(exc).__name__)
                return
            removed = self._keys.keys() - keys.keys()
            self._keys = keys
            if removed and self._on_keys_removed is not None:
                self._on_keys_removed()

    @staticmethod
    def parse(document: dict[str, Any], rsa_keys_without_alg: bool = False) -> dict[str, Any]:
        """The usable signing keys by kid. ``rsa_keys_without_alg``: also take an RSA key whose
        JWK names no ``alg`` (optional, RFC 7517 section 4.4), as some identity providers publish
        them (Microsoft Entra ID); the verifier fixes the algorithm, RS256, whatever the key says
        (RFC 8725 section 3.1). Auth's own keys always name theirs."""
        keys: dict[str, Any] = {}
        for jwk in document.get("keys", []):
            alg = jwk.get("alg")
            if alg is None and rsa_keys_without_alg and jwk.get("kty") == "RSA":
                alg = "RS256"
            if jwk.get("use", "sig") != "sig" or alg not in ALLOWED_ALGORITHMS:
                continue
            if "d" in jwk:  # a private key in a JWKS is a misconfiguration: never use it
                continue
            keys[str(jwk["kid"])] = PyJWK(jwk).key
        if not keys and document.get("keys"):
            raise PyJWKSetError("no usable signing key in the JWKS")
        return keys


__all__ = ["JWKSCache", "PyJWKSet"]
