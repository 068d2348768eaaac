"""Calling the next hop: the user's token relayed, this service's own token beside it.

BearerRelay is the two-line shape of httpx's BasicAuth.auth_flow: set the headers, yield.
ServiceTokens fetches this service's client_credentials token (RFC 6749 section 4.4) and reuses
it until shortly before it expires, so a burst of calls costs one token request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator
from typing import Annotated

import httpx
from fastapi import Depends, Request
from httpx_aiohttp import AiohttpTransport

from .errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .security import SERVICE_TOKEN_HEADER, bearer_token
from .settings import PlatformSettings

# What a service uses; the rest is this module's own business.
__all__ = [
    "BearerRelay",
    "HttpClient",
    "Relay",
    "ServiceAuth",
    "ServiceTokens",
    "create_http_client",
    "never_sent",
    "relay_auth",
    "upstream_error",
]


class BearerRelay(httpx.Auth):
    def __init__(self, user_token: str, service_token: str | None = None) -> None:
        self._user_token = user_token
        self._service_token = service_token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._user_token}"
        if self._service_token:
            request.headers[SERVICE_TOKEN_HEADER] = self._service_token
        yield request


class ServiceTokens:
    def __init__(
        self,
        client: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_margin_seconds: float = 30.0,
    ) -> None:
        self._client = client
        self._token_url = token_url
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._margin = refresh_margin_seconds
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        if self._token and time.monotonic() < self._expires_at - self._margin:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._expires_at - self._margin:
                return self._token
            try:
                response = await self._client.post(
                    self._token_url, data={"grant_type": "client_credentials"}, auth=self._auth
                )
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable("The auth service is unreachable.") from exc
            if response.status_code != 200:
                raise UpstreamUnavailable("This service could not obtain its own token.")
            body = response.json()
            self._token = body["access_token"]
            self._expires_at = time.monotonic() + float(body["expires_in"])
            return self._token

    def invalidate(self) -> None:
        self._token = None


def create_http_client(
    settings: PlatformSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """One long-lived client per service. httpx API on aiohttp: httpx's own pool is slow under
    concurrency (encode/httpx#3215). Explicit limits and timeouts, never the defaults. A test
    passes its own ``transport`` (an httpx.MockTransport for the neighbours, say)."""
    limits = httpx.Limits(
        max_connections=settings.http_max_connections,
        max_keepalive_connections=settings.http_max_connections,
        keepalive_expiry=30,
    )
    timeout = httpx.Timeout(
        settings.http_timeout_seconds, connect=settings.http_connect_timeout_seconds
    )
    return httpx.AsyncClient(
        transport=transport or AiohttpTransport(limits=limits), timeout=timeout, limits=limits
    )


def get_http_client(request: Request) -> httpx.AsyncClient:
    http: httpx.AsyncClient = request.app.state.http
    return http


# The service's one long-lived HTTP client, for a handler that calls a neighbour.
HttpClient = Annotated[httpx.AsyncClient, Depends(get_http_client)]


async def relay_auth(request: Request) -> BearerRelay:
    """The relay for the current request: the caller's user token plus our service token."""
    service_tokens: ServiceTokens = request.app.state.service_tokens
    return BearerRelay(bearer_token(request), await service_tokens.token())


Relay = Annotated[BearerRelay, Depends(relay_auth)]


def upstream_error(exc: httpx.HTTPError, service: str) -> UpstreamError:
    """503 when ``service`` is down, 504 when it is too slow.

    httpx-aiohttp reports every aiohttp connection error as ``httpx.ConnectTimeout``, a refused
    connection included, so the real cause decides, not the httpx class alone.
    """
    cause = exc.__cause__ or exc.__context__
    timed_out = isinstance(exc, httpx.TimeoutException) and (
        cause is None or isinstance(cause, TimeoutError)
    )
    if timed_out:
        return UpstreamTimeout(f"The {service} service did not answer in time.")
    return UpstreamUnavailable(f"The {service} service is unavailable.")


class ServiceAuth(httpx.Auth):
    """This service's own token as the bearer, for system operations (security.require_service):
    work done for no user, so there is no user token to relay."""

    def __init__(self, service_token: str) -> None:
        self._service_token = service_token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._service_token}"
        yield request


def never_sent(exc: httpx.HTTPError) -> bool:
    """True when the request certainly never reached the other service (no connection was ever
    made), so it cannot have done anything. A dropped connection or a timeout is not such a
    case: the other side may have acted before the answer was lost.

    httpx-aiohttp raises ``httpx.ConnectTimeout`` for a refused connection too, and also for a
    connection the server dropped mid-request; the aiohttp cause tells them apart.
    """
    import aiohttp

    cause = exc.__cause__
    return isinstance(cause, aiohttp.ClientConnectorError | ConnectionRefusedError) or (
        isinstance(exc, httpx.ConnectError) and cause is None
    )
