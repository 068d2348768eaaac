"""Calling the next hop: a token addressed to it, and this service's own token beside it.

Every token is for one audience (RFC 9068 section 4), so a call needs tokens for its callee:

    the user's token   exchange mode: the token this hop received, exchanged at auth for one
                       addressed to the callee (RFC 8693), with ``act`` naming this service;
                       relay mode: the received token itself, which carries every audience.
    our own token      client_credentials (RFC 6749 section 4.4) with ``resource`` naming the
                       callee (RFC 8707): it proves which service calls, and only there.

ServiceTokens fetches both and reuses them until shortly before they expire: per callee for our
own, per (received token, callee, scope) for exchanged ones, so the steady state costs no round
trip to auth. Hops is the per-request view a handler uses: ``await hops.to("inventory")`` gives
the httpx.Auth for one call (BearerRelay: set the headers, yield, like httpx's BasicAuth).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Generator
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from httpx_aiohttp import AiohttpTransport

from .catalogue import audience_of
from .errors import InvalidToken, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .metrics import EXCHANGE_LATENCY, TOKEN_EXCHANGES
from .security import SERVICE_TOKEN_HEADER, bearer_token
from .settings import PlatformSettings

# What a service uses; the rest is this module's own business.
__all__ = [
    "ACCESS_TOKEN_TYPE_URI",
    "EXCHANGE_GRANT",
    "BearerRelay",
    "Hops",
    "HttpClient",
    "NextHops",
    "ServiceAuth",
    "ServiceTokens",
    "create_http_client",
    "never_sent",
    "upstream_error",
]

EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 section 2.1
ACCESS_TOKEN_TYPE_URI = "urn:ietf:params:oauth:token-type:access_token"  # RFC 8693 section 3


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
    """This service's tokens for its callees, from auth's token endpoint, cached."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_margin_seconds: float = 30.0,
        exchange_margin_seconds: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self._client = client
        self._token_url = token_url
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self._margin = refresh_margin_seconds
        self._exchange_margin = exchange_margin_seconds
        # callee -> (token, expires at, monotonic); one lock per callee: a burst costs one request
        self._own: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # (received token, callee, scope) -> (exchanged token, expires at): bounded, LRU
        self._exchanged: OrderedDict[tuple[str, str, str | None], tuple[str, float]] = OrderedDict()
        self._cache_size = cache_size
        self._pending: dict[tuple[str, str, str | None], asyncio.Future[str]] = {}

    async def token(self, callee: str) -> str:
        """Our own token for ``callee``: ``aud`` is the callee alone."""
        cached = self._own.get(callee)
        if cached and time.monotonic() < cached[1] - self._margin:
            return cached[0]
        async with self._locks.setdefault(callee, asyncio.Lock()):
            cached = self._own.get(callee)
            if cached and time.monotonic() < cached[1] - self._margin:
                return cached[0]
            body = await self._request(
                {"grant_type": "client_credentials", "resource": audience_of(callee)}
            )
            if body is None:
                raise UpstreamUnavailable("This service could not obtain its own token.")
            token = str(body["access_token"])
            self._own[callee] = (token, time.monotonic() + float(body["expires_in"]))
            return token

    async def exchange(self, subject_token: str, callee: str, scope: str | None = None) -> str:
        """``subject_token`` (the one this service received) exchanged for ``callee`` (RFC 8693
        section 2.1), narrowed to ``scope`` when given. Cached until shortly before it expires;
        a revocation of the subject token reaches the exchanged one anyway (its derived_from)."""
        key = (subject_token, callee, scope)
        cached = self._exchanged.get(key)
        if cached is not None and time.monotonic() < cached[1] - self._exchange_margin:
            self._exchanged.move_to_end(key)
            TOKEN_EXCHANGES.labels(callee, "hit").inc()
            return cached[0]
        # A burst of requests with one new token (a user's first page load) shares one exchange.
        pending = self._pending.get(key)
        if pending is not None:
            TOKEN_EXCHANGES.labels(callee, "hit").inc()
            return await asyncio.shield(pending)
        task = asyncio.ensure_future(self._exchange(key, subject_token, callee, scope))
        self._pending[key] = task
        task.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(task)

    async def _exchange(
        self, key: tuple[str, str, str | None], subject_token: str, callee: str, scope: str | None
    ) -> str:
        form = {
            "grant_type": EXCHANGE_GRANT,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN_TYPE_URI,
            "audience": audience_of(callee),
        }
        if scope is not None:
            form["scope"] = scope
        started = time.perf_counter()
        try:
            body = await self._request(form)
        except UpstreamError:
            TOKEN_EXCHANGES.labels(callee, "error").inc()
            raise
        EXCHANGE_LATENCY.observe(time.perf_counter() - started)
        if body is None:
            # Auth refused (invalid_grant: revoked or expired meanwhile): the user's token is
            # no good any more, so the request fails as if it had been refused here.
            TOKEN_EXCHANGES.labels(callee, "refused").inc()
            raise InvalidToken("exchange_refused", "The token could not be exchanged.")
        TOKEN_EXCHANGES.labels(callee, "miss").inc()
        token = str(body["access_token"])
        self._exchanged[key] = (token, time.monotonic() + float(body["expires_in"]))
        if len(self._exchanged) > self._cache_size:
            self._exchanged.popitem(last=False)
        return token

    async def _request(self, form: dict[str, str]) -> dict[str, Any] | None:
        """The token endpoint's answer; None for a 4xx refusal; UpstreamError otherwise."""
        try:
            response = await self._client.post(self._token_url, data=form, auth=self._auth)
        except httpx.HTTPError as exc:
            raise upstream_error(exc, "auth") from exc
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        if response.status_code == 400:
            return None
        raise UpstreamUnavailable("Auth did not issue a token for the next hop.")

    def invalidate(self) -> None:
        """Forget every cached token (their signing key was retired)."""
        self._own.clear()
        self._exchanged.clear()


class Hops:
    """The current request's way to each neighbour (``NextHops`` in a handler's signature)."""

    def __init__(self, tokens: ServiceTokens, received: str, mode: str) -> None:
        self._tokens = tokens
        self._received = received
        self._mode = mode

    async def user_token(self, callee: str, scope: str | None = None) -> str:
        """The user's token to send to ``callee``: exchanged for it, or relayed as received."""
        if self._mode == "relay":
            return self._received
        return await self._tokens.exchange(self._received, callee, scope)

    async def to(self, callee: str, scope: str | None = None) -> BearerRelay:
        """Both tokens for a call to ``callee``: the user's for it, and our own for it."""
        return BearerRelay(await self.user_token(callee, scope), await self._tokens.token(callee))


def get_hops(request: Request) -> Hops:
    settings: PlatformSettings = request.app.state.settings
    return Hops(request.app.state.service_tokens, bearer_token(request), settings.token_mode)


NextHops = Annotated[Hops, Depends(get_hops)]


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


def upstream_error(exc: BaseException, service: str) -> UpstreamError:
    """503 when ``service`` is down, 504 when it is too slow: the one mapping of a failed call,
    for httpx (the services' calls) and aiohttp (the gateway's proxy) alike.

    httpx-aiohttp reports every aiohttp connection error as ``httpx.ConnectTimeout``, a refused
    connection included, so the real cause decides, not the httpx class alone. aiohttp's own
    connect and total timeouts are TimeoutErrors.
    """
    if isinstance(exc, httpx.TimeoutException):
        cause = exc.__cause__ or exc.__context__
        timed_out = cause is None or isinstance(cause, TimeoutError)
    else:
        timed_out = isinstance(exc, TimeoutError)
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
