"""The wiring every service shares, so each service's main.py only names its own routers.

create_service_app() gives a FastAPI app with: the error handlers of errors.py, X-Request-ID and
X-Trace-Id on every response, /healthz (liveness) and /readyz (database, revocation mirror,
signing keys), the token verifier on app.state, the long-lived HTTP client, this service's own
client_credentials tokens, and /docs and /redoc served offline (docs.py), whose Authorize button
signs in at the public token endpoint.
Observability: JSON logs with one access line per request (logs.py), /metrics (metrics.py) and
a trace span per request, per outgoing call and per SQL statement (tracing.py).
"""

from __future__ import annotations

import gc
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .docs import install_docs
from .errors import install_error_handlers
from .jwks import JWKSCache
from .limits import RequestLimits
from .logs import AccessLogMiddleware, setup_logging
from .metrics import metrics_router
from .redis_acl import RedisConnect, redis_connector
from .relay import ServiceTokens, create_http_client
from .revocation import RevocationMirror
from .security import document_access
from .settings import PlatformSettings
from .tasks import PeriodicTask, RunningTasks
from .tokens import KeySource, TokenVerifier
from .tracing import (
    current_trace_id,
    instrument_engine,
    instrument_http_client,
    setup_tracing,
    telemetry_config,
)

# What a service uses; the rest is this module's own business.
__all__ = [
    "create_service_app",
]

if TYPE_CHECKING:
    from sqlalchemy import MetaData

_ANY_JSON = {"application/json": {"schema": {"type": "object"}}}
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
Startup = Callable[[FastAPI], Awaitable[None]]


class RequestIdMiddleware:
    """Plain ASGI (no per-request framework work): echo a sane X-Request-ID or make one, and
    add X-Trace-Id, the OpenTelemetry trace id of this request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
                break
        if not _SAFE_REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k not in (b"x-request-id", b"x-trace-id")
                ]
                headers.append((b"x-request-id", request_id.encode()))
                # Requests that are not traced (health probes) still get an id, unsampled.
                trace_id = current_trace_id() or uuid.uuid4().hex
                headers.append((b"x-trace-id", trace_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_ids)


def create_service_app(
    settings: PlatformSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    metadata: MetaData | None = None,
    migrations: str | None = None,  # "orders_service:migrations": Alembic, see migrate_on_start
    on_startup: Startup | None = None,
    on_shutdown: Startup | None = None,
    background: Sequence[PeriodicTask] = (),  # tasks.py: started when ready, stopped first
    http_transport: httpx.AsyncBaseTransport | None = None,  # tests: where calls out go
    redis_connect: RedisConnect | None = None,  # tests: how Redis clients are opened
    local_keys: KeySource | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
) -> FastAPI:
    setup_logging(settings)
    setup_tracing(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        http = create_http_client(settings, http_transport)
        instrument_http_client(http)  # a CLIENT span and traceparent on every call out
        jwks = (
            None
            if local_keys is not None
            else JWKSCache(
                settings.jwks_url,
                http,
                min_refetch_seconds=settings.jwks_min_refetch_seconds,
                refresh_seconds=settings.jwks_refresh_seconds,
                on_keys_removed=lambda: verifier.forget(),
            )
        )

        async def keys_changed() -> None:
            if jwks is not None:
                await jwks.refresh(force=True)
            verifier.forget()  # a retired key's tokens must not survive in the cache
            # Nor this service's own token: signed by a retired key, every neighbour refuses it.
            app.state.service_tokens.invalidate()

        # Every Redis client of the service is opened by this one function (app.state, for the
        # service's own clients too): its own ACL user, or the test's choice.
        connect = app.state.redis_connect = redis_connect or redis_connector(settings)
        mirror = RevocationMirror(
            connect,
            max_staleness_seconds=settings.revocation_max_staleness_seconds,
            on_keys_changed=keys_changed,
        )
        verifier = TokenVerifier(
            local_keys or jwks,  # type: ignore[arg-type]
            issuer=settings.issuer,
            audience=settings.audience,
            leeway_seconds=settings.leeway_seconds,
            max_token_bytes=settings.max_token_bytes,
            revocations=mirror,
            max_lifetime_seconds=settings.access_token_ttl_seconds,
        )
        engine = sessionmaker = None
        if metadata is not None:
            # Imported here: a service without tables (the gateway) never loads SQLAlchemy, the
            # database drivers or Alembic: measured, 119 -> 90 MB resident for the gateway.
            from .db import create_engine, create_sessionmaker

            engine = create_engine(settings.effective_database_url)
            sessionmaker = create_sessionmaker(engine)
            instrument_engine(engine)
        app.state.settings = settings
        app.state.http = http
        app.state.jwks = jwks
        app.state.revocations = mirror
        app.state.verifier = verifier
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.service_tokens = ServiceTokens(
            http,
            settings.token_url,
            settings.client_id or settings.service_name,
            settings.client_secret,
        )
        if engine is not None and migrations is not None and settings.migrate_on_start:
            from .migrate import run_migrations

            # The schema comes from the service's Alembic revisions, never from create_all:
            # the same steps then build a fresh SQLite file and upgrade a live PostgreSQL.
            await run_migrations(engine, migrations)
        mirror.start()
        if jwks is not None:
            jwks.start()
        if on_startup is not None:
            await on_startup(app)
        tasks = RunningTasks()
        tasks.start(app, list(background))
        # What exists now (modules, routes, models, pools, keys) lives as long as the process.
        # gc.freeze() takes it out of the cyclic collector's sight, so the collections that each
        # request's garbage sets off stop walking ~100 MB of objects that can never be garbage.
        # Measured with tools/bench.py (place order): about 10 % less CPU per order.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # an app built inside a test process: its objects may go again
            await tasks.stop()  # first: they use the database and the HTTP client below
            if on_shutdown is not None:
                await on_shutdown(app)
            await mirror.stop()
            if jwks is not None:
                await jwks.stop()
            await http.aclose()
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title=title,
        description=description,
        lifespan=lifespan,
        openapi_tags=openapi_tags,
        docs_url=None,  # docs.py serves /docs and /redoc with local assets instead of a CDN's
        redoc_url=None,
        swagger_ui_init_oauth={"clientId": "relayshop-docs"},
        telemetry=telemetry_config(),  # a SERVER span per request (tracing.py)
    )
    install_error_handlers(app)
    app.add_middleware(RequestLimits)  # 431 / 413 for oversized headers and bodies
    app.add_middleware(AccessLogMiddleware)  # inside RequestIdMiddleware: it logs the request id
    app.add_middleware(RequestIdMiddleware)
    for router in routers:
        app.include_router(router)
    app.include_router(health_router())
    app.include_router(metrics_router())
    install_docs(app, token_url=f"{settings.issuer}/token")
    document_access(app)  # each route's rule in its OpenAPI operation (security.py)
    return app


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # 503 is this endpoint's answer, not an error: a JSON body naming what is down.
    not_ready = {"description": "Not ready; the body names what is down", "content": _ANY_JSON}

    @router.get("/readyz", responses={503: not_ready})
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        checks: dict[str, str] = {}
        if state.engine is not None:
            from sqlalchemy import text

            try:
                async with state.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                checks["database"] = "ok"
            except Exception as exc:  # any driver error means "not ready", with its name
                checks["database"] = f"down ({type(exc).__name__})"
        checks["redis"] = "ok" if state.revocations.healthy else "down"
        if state.jwks is not None:
            checks["jwks"] = "ok" if state.jwks.loaded else "down (auth not reachable yet)"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    return router
