"""The auth service: issues, refreshes and revokes relayshop's tokens, and publishes its keys.

    uvicorn auth_service.main:create_app --factory --port 8001

Auth verifies bearer tokens (userinfo, logout, admin) with the same platform TokenVerifier as
every other service, but reads the public keys straight from its own KeyStore (``local_keys``)
instead of fetching its own JWKS over HTTP.
"""

from __future__ import annotations

import logging

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from relayshop_platform.app import create_service_app
from relayshop_platform.redis_acl import RedisConnect
from relayshop_platform.revocation import RevocationStore
from sqlmodel import SQLModel

from .config import AuthSettings, get_settings
from .federation import create_external_verifier
from .keys import KeyStore
from .oauth import install_oauth_error_handler
from .passwords import Passwords
from .revoker import Revoker
from .routes import discovery, keys, revocation, token, userinfo
from .seed import seed
from .throttle import LoginThrottle

log = logging.getLogger(__name__)


def create_app(
    settings: AuthSettings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    redis_connect: RedisConnect | None = None,
) -> FastAPI:
    """The app, built from ``settings`` (the environment's by default). Tests may replace the
    network for the calls out (``http_transport``) and how Redis clients are opened
    (``redis_connect``)."""
    settings = settings or get_settings()
    key_store = KeyStore(
        settings.key_directory,
        grace_seconds=settings.access_token_ttl_seconds + settings.leeway_seconds,
    )

    async def on_startup(app: FastAPI) -> None:
        await key_store.load()
        redis = app.state.redis_connect(
            socket_connect_timeout=settings.redis_timeout_seconds,
            socket_timeout=settings.redis_timeout_seconds,
        )
        app.state.redis = redis
        app.state.keys = key_store
        app.state.revoker = Revoker(RevocationStore(redis), app.state.revocations)
        app.state.throttle = LoginThrottle(
            redis,
            max_per_account=settings.login_max_failures_per_username,
            max_per_address=settings.login_max_failures_per_address,
            window_seconds=settings.login_failure_window_seconds,
        )
        app.state.passwords = await Passwords.create()
        # RELAYSHOP_TRUSTED_ISSUERS: whose tokens the gateway may exchange here (federation.py).
        app.state.external_issuers = create_external_verifier(settings, app.state.http)
        async with app.state.sessionmaker() as db:
            await seed(db, settings)
        # Answer bearer requests only once the revocation mirror is in sync (it refuses with
        # 503 until then); do not hang forever if Redis is down: /readyz reports it.
        if not await app.state.revocations.wait_synced(3.0):
            log.warning("revocation mirror not in sync yet (Redis unreachable?)")

    async def on_shutdown(app: FastAPI) -> None:
        external = getattr(app.state, "external_issuers", None)
        if external is not None:
            await external.stop()
        redis = getattr(app.state, "redis", None)
        if redis is not None:
            await redis.aclose()

    app = create_service_app(
        settings,
        title="relayshop auth",
        description="Issues and revokes relayshop's tokens (OAuth 2.0, RFC 9068 JWTs).",
        routers=[token.router, revocation.router, userinfo.router, discovery.router, keys.router],
        metadata=SQLModel.metadata,
        migrations="auth_service:migrations",
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        http_transport=http_transport,
        redis_connect=redis_connect,
        local_keys=key_store,
        openapi_tags=[
            {"name": "auth", "description": "Tokens, sessions and revocation."},
            {"name": "discovery", "description": "Public metadata and signing keys."},
            {"name": "admin", "description": "Key rotation (admin role)."},
        ],
    )
    install_oauth_error_handler(app)
    # Swagger UI on each service's port posts to /auth/token: a cross-origin request. No
    # credentials (cookies) are involved, so allow_credentials stays off.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        allow_credentials=False,
    )
    return app
