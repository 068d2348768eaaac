"""The proxy path: a plain ASGI app that checks the token at the edge and streams to a service.

    /auth/...           -> auth       (no token check here: auth authenticates its own endpoints)
    /api/orders/...     -> orders     \\
    /api/payments/...   -> payments    > a valid user token first, then the rules of rules.py
    /api/inventory/...  -> inventory  /
    /api/<other>        -> 404

The token check itself (verify, federate a trusted issuer's token, the route rules, the token
for the upstream) is edge.py's, the same the console's relay runs.

Why plain ASGI and not a FastAPI route: measured on 2 cores (services/gateway/README.md), a FastAPI
route proxying with httpx reached 0.10 of calling the service directly, this shape on aiohttp 0.80.
So the hot path does only what it must: one prefix match, one token check (a cache hit after the
first sight of a token), one rule scan, header filtering, and bytes streamed both ways through
ONE long-lived aiohttp session. No request object, no dependency injection.

Observability, at the same low cost: one SERVER span per request with the edge's authorization
decision on it (relayshop_platform.security), its traceparent injected upstream, one access-log
line and one metrics observation (route label: the upstream prefix, never the raw path).

The path is never rewritten (each service serves the same paths on its own port); the raw,
still percent-encoded path and the query string go upstream byte for byte.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import aiohttp
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from relayshop_platform.catalogue import AUTH, CATALOGUE
from relayshop_platform.errors import (
    BadRequest,
    ContentTooLarge,
    HeaderFieldsTooLarge,
    NotFound,
    RelayshopError,
    send_problem,
)
from relayshop_platform.limits import MAX_HEADER_BYTES, header_section_too_large
from relayshop_platform.logs import log_request
from relayshop_platform.metrics import observe_request
from relayshop_platform.relay import upstream_error
from starlette.datastructures import Headers, State
from starlette.types import Receive, Scope, Send
from yarl import URL

from .config import GatewaySettings
from .edge import Edge, bearer_token
from .headers import downstream_headers, upstream_headers

log = logging.getLogger(__name__)
tracer = trace.get_tracer("relayshop.gateway")

# Upstream bodies up to this size are read whole and sent in one ASGI message; larger ones stream.
_SMALL_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    prefix: str  # matched on whole path segments: "/api/orders" is not "/api/ordersX"
    base_url: str
    needs_token: bool


def routing_table(settings: GatewaySettings) -> tuple[Upstream, ...]:
    """One route per service of the catalogue that has a prefix. Only auth's is open without a
    token (it is where tokens come from); everything under /api needs one before it goes on."""
    return tuple(
        Upstream(s.name, s.prefix, settings.url(s.name), needs_token=s.name != AUTH)
        for s in CATALOGUE
        if s.prefix is not None
    )


def upstream_session_lifespan(
    settings: GatewaySettings,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan of the proxy's one aiohttp session (a router lifespan, so FastAPI runs it
    after the platform's startup and closes it before the platform's shutdown)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with create_upstream_session(settings) as session:
            app.state.upstream = session
            yield

    return lifespan


def create_upstream_session(settings: GatewaySettings) -> aiohttp.ClientSession:
    per_upstream = settings.max_connections_per_upstream
    connector = aiohttp.TCPConnector(
        limit=per_upstream * 4,
        limit_per_host=per_upstream,
        # Below uvicorn's default keep-alive (5 s), so we drop an idle connection before the
        # service does, instead of racing its close with a new request.
        keepalive_timeout=settings.upstream_keepalive_seconds,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(
            total=settings.upstream_timeout_seconds,
            connect=settings.upstream_connect_timeout_seconds,
        ),
        # One session serves every user: it must never keep one user's cookies for the next.
        cookie_jar=aiohttp.DummyCookieJar(),
        # Bytes pass through untouched (Content-Encoding and all), and only the client's own
        # headers go up: no Accept-Encoding, User-Agent or Content-Type invented on the way.
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
    )


class _Body:
    """The request body streamed from ASGI receive() to aiohttp, cut off past ``limit`` bytes.

    aiohttp wraps any error raised while it sends the body, so the reason is kept here."""

    __slots__ = ("_limit", "_receive", "client_gone", "received", "too_large")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self.received = 0
        self.too_large = False
        self.client_gone = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                raise ConnectionResetError("the client went away mid-request")
            chunk: bytes = message.get("body", b"")
            self.received += len(chunk)
            if self.received > self._limit:
                self.too_large = True
                raise ContentTooLarge()
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class Proxy:
    """ASGI app for the /auth and /api paths. Wrap it in RequestIdMiddleware (main.py)."""

    def __init__(self, settings: GatewaySettings, state: State, edge: Edge) -> None:
        self._state = state  # verifier and upstream session, filled in at startup
        self._routes = routing_table(settings)
        self._max_body = settings.max_body_bytes
        self._edge = edge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        started = time.perf_counter()
        # A trace context in the request (only when the gateway trusts its clients' one, see
        # main.GatewayASGI) is continued, as FastAPI's telemetry does for the gateway's own
        # routes; X-Trace-Id (RequestIdMiddleware) reads this span's trace id.
        with tracer.start_as_current_span(
            f"proxy {method}",
            context=extract(Headers(scope=scope)),
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:
            route = "unmatched"
            status = 500  # if the client went away mid-answer
            try:
                route, status = await self._handle(scope, receive, send, method, span)
            finally:
                span.set_attribute("http.response.status_code", status)
                seconds = time.perf_counter() - started
                observe_request(method, route, status, seconds)
                request_id = scope.get("state", {}).get("request_id", "")
                log_request(method, scope["path"], status, seconds, request_id)

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, method: str, span: trace.Span
    ) -> tuple[str, int]:
        """Answer the request; return the route label for the metrics and the status."""
        path: str = scope["path"]
        route = "unmatched"
        try:
            # The same header budget as every service (relayshop_platform.limits), checked before
            # the token is even read: a huge header section costs neither a verify nor a hop.
            if header_section_too_large(scope["headers"]):
                raise HeaderFieldsTooLarge(
                    f"The request's headers exceed {MAX_HEADER_BYTES} bytes."
                )
            upstream = self._route(path)
            route = upstream.prefix
            span.set_attribute("relayshop.upstream", upstream.name)
            authorization = None
            if upstream.needs_token:
                token = bearer_token(scope["headers"], span)
                _, sent = await self._edge.admit(method, path, token, upstream.name, span)
                if sent != token:  # exchanged: it replaces the client's header upstream
                    authorization = f"Bearer {sent}"
            return route, await self._forward(upstream, scope, receive, send, method, authorization)
        except RelayshopError as exc:  # raised only before the response started
            if exc.status >= 500:
                span.set_status(trace.StatusCode.ERROR, exc.detail)
            await send_problem(send, exc)
            return route, exc.status

    def _route(self, path: str) -> Upstream:
        # Refuse dot segments and empty segments rather than guess how each hop would read them:
        # the rules must judge exactly the path the service will route on.
        if "//" in path or ("/." in path and any(s in (".", "..") for s in path.split("/"))):
            raise BadRequest("The path must not contain '.', '..' or empty segments.")
        for upstream in self._routes:
            prefix = upstream.prefix
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return upstream
        raise NotFound("No service serves this path.")

    async def _forward(
        self,
        upstream: Upstream,
        scope: Scope,
        receive: Receive,
        send: Send,
        method: str,
        authorization: str | None,
    ) -> int:
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        body: _Body | None = None
        for name, value in raw_headers:
            if name == b"content-length":
                length = int(value) if value.isdigit() else 0  # uvicorn already refused junk
                if length > self._max_body:
                    raise ContentTooLarge(f"The body is larger than {self._max_body} bytes.")
                if length:
                    body = _Body(receive, self._max_body)
            elif name == b"transfer-encoding":
                body = _Body(receive, self._max_body)

        client = scope.get("client")
        request_id = scope.get("state", {}).get("request_id") or uuid.uuid4().hex
        headers = upstream_headers(
            raw_headers,
            client_ip=client[0] if client else None,
            scheme=scope.get("scheme", "http"),
            request_id=request_id,
            authorization=authorization,
        )
        trace_context: dict[str, str] = {}
        inject(trace_context)  # W3C traceparent: the service's spans join this trace
        headers.extend(trace_context.items())

        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        target = upstream.base_url + raw_path.decode("latin-1")
        if query:
            target += "?" + query.decode("latin-1")

        session: aiohttp.ClientSession = self._state.upstream
        try:
            response = await session.request(
                method,
                URL(target, encoded=True),  # encoded=True: no re-quoting, no dot normalising
                headers=headers,
                data=body.chunks() if body is not None else None,
                allow_redirects=False,  # a redirect is the client's to follow, not ours
            )
        except Exception as exc:
            raise _upstream_error(upstream, body, exc) from exc

        async with response:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": downstream_headers(response.raw_headers),
                }
            )
            # Past this point the status line is sent: a failure can only cut the response
            # short (uvicorn closes the connection), never turn it into a problem document.
            if response.content_length is not None and response.content_length <= _SMALL_BODY:
                await send({"type": "http.response.body", "body": await response.read()})
            else:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
        return response.status


def _upstream_error(upstream: Upstream, body: _Body | None, exc: Exception) -> RelayshopError:
    """Why the upstream call failed, as the one HTTP answer for it."""
    if body is not None and body.too_large:
        return ContentTooLarge("The request body is larger than the gateway accepts.")
    if body is not None and body.client_gone:
        return BadRequest("The request body ended early.")  # nobody is left to read this
    log.debug("upstream %s failed: %r", upstream.name, exc)
    return upstream_error(exc, upstream.name)
