"""The gateway: the single public entry point (port 8000).

    RequestIdMiddleware -> Proxy     /auth/..., /api/... : token check at the edge, then streamed
    GatewayASGI ---------|                                  to the service (proxy.py)
                         `-> FastAPI  /healthz, /readyz, /docs, /redoc,
                                      GET /api/orders/{id}/summary,
                                      the console: / and /static (page), /bff/* (its session),
                                      /console/oidc/* (its sign-in at a trusted issuer)

The FastAPI app (create_service_app: errors, request ids, tracing, verifier, revocation mirror)
serves the gateway's own routes and owns the lifespan; the proxy path bypasses the framework for
speed (see proxy.py) but reads the same verifier from app.state. Run it with
``uvicorn gateway_service.main:create_app --factory``.
"""

from __future__ import annotations

import re

import httpx
from fastapi import APIRouter, FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from relayshop_platform.app import RequestIdMiddleware, create_service_app
from relayshop_platform.redis_acl import RedisConnect
from relayshop_platform.tracing import UNTRACED_PATHS
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import GatewaySettings, get_settings
from .edge import Edge
from .federation import EdgeFederation, start_federation, stop_federation
from .proxy import Proxy, upstream_session_lifespan
from .routes import bff, console, health, oidc, summary

# The one /api path the gateway answers itself instead of proxying.
_SUMMARY = re.compile(r"/api/orders/[^/]+/summary")
_ids = RandomIdGenerator()
# W3C Trace Context headers (the propagator is W3C only: tracing.setup_tracing).
_TRACE_CONTEXT = frozenset({b"traceparent", b"tracestate"})


def is_own_api(method: str, path: str) -> bool:
    """The /api route the gateway answers itself (routes/summary.py)."""
    return method in ("GET", "HEAD") and _SUMMARY.fullmatch(path) is not None


def is_proxied(method: str, path: str) -> bool:
    if not path.startswith(("/api/", "/auth/")) and path not in ("/api", "/auth"):
        return False
    return not is_own_api(method, path)


class GatewayASGI:
    """Sends /auth and /api requests to the proxy and everything else (lifespan included) to
    the FastAPI app. Each request passes through exactly one RequestIdMiddleware: the proxy's
    here, or the one create_service_app installed inside FastAPI."""

    def __init__(self, app: FastAPI, settings: GatewaySettings) -> None:
        self.app = app
        # The one token check at the edge (edge.py): the proxy's, and the console relay's.
        edge = app.state.edge = Edge(settings, app.state)
        self.proxy: ASGIApp = RequestIdMiddleware(Proxy(settings, app.state, edge))
        self.trust_client_trace_context = settings.trust_client_trace_context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.trust_client_trace_context:
            # The edge is a trust boundary for trace context too (W3C Trace Context, "Security
            # considerations"): a client's traceparent would choose the trace id and, with its
            # sampled flag, whether every service pays to record the request, whatever sampling
            # rate was configured. So each request starts a new trace here, sampled by our own
            # setting; X-Trace-Id tells the client its id.
            headers = scope["headers"]
            if any(name in _TRACE_CONTEXT for name, _ in headers):
                scope = {
                    **scope,
                    "headers": [(n, v) for n, v in headers if n not in _TRACE_CONTEXT],
                }
        if scope["type"] == "http" and is_own_api(scope["method"], scope["path"]):
            # A trusted issuer's token becomes relayshop's here, as the proxy does (federation.py).
            federation: EdgeFederation | None = getattr(self.app.state, "federation", None)
            if federation is not None:
                scope = await federation.federate_scope(scope)
        if scope["type"] == "http" and is_proxied(scope["method"], scope["path"]):
            await self.proxy(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] in UNTRACED_PATHS:
            # X-Trace-Id belongs on every response (docs/api.md, section 4), probes too. A
            # non-recording span gives them a trace id without exporting a span per probe every
            # few seconds.
            context = trace.SpanContext(_ids.generate_trace_id(), _ids.generate_span_id(), False)
            with trace.use_span(trace.NonRecordingSpan(context)):
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(
    settings: GatewaySettings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    redis_connect: RedisConnect | None = None,
) -> GatewayASGI:
    """The app, built from ``settings`` (the environment's by default). Tests may replace the
    network for the calls out (``http_transport``) and how Redis clients are opened
    (``redis_connect``)."""
    settings = settings or get_settings()
    app = create_service_app(
        settings,
        title="relayshop gateway",
        description=(
            "The single public entry point. `/auth/*` goes to auth; `/api/orders`, "
            "`/api/payments` and `/api/inventory` go to their services after the gateway "
            "checked the bearer token and its coarse route rules. This page documents only the "
            "gateway's own routes; each service documents its API at its own `/docs`."
        ),
        routers=[
            health.router,  # before the platform's /readyz, so this one answers
            summary.router,
            bff.router,  # the browser console's session (/bff/*)
            oidc.router,  # its sign-in at a trusted identity provider (/console/oidc/*)
            console.router,  # and its page (/; /static is mounted below)
            APIRouter(lifespan=upstream_session_lifespan(settings)),
        ],
        # RELAYSHOP_TRUSTED_ISSUERS: other identity providers' tokens accepted at the edge.
        on_startup=start_federation,
        on_shutdown=stop_federation,
        http_transport=http_transport,
        redis_connect=redis_connect,
    )
    console.mount_static(app)
    return GatewayASGI(app, settings)
