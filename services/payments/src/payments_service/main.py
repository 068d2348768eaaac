"""The payments service: charges orders once, commits their stock, refunds them.

uvicorn payments_service.main:create_app --factory --port 8003
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from relayshop_platform.app import create_service_app
from relayshop_platform.redis_acl import RedisConnect
from sqlmodel import SQLModel

from .config import PaymentsSettings, get_settings
from .provider import SimulatedProvider
from .routes import charges, payments, system

TAGS = [
    {"name": "payments", "description": "reading and refunding payments"},
    {
        "name": "internal",
        "description": "service-to-service operations: need a user token AND an allowed "
        "calling service's token; the /system routes (orders' reconciler) need orders' own "
        "token alone",
    },
]


async def on_startup(app: FastAPI) -> None:
    app.state.provider = SimulatedProvider()


def create_app(
    settings: PaymentsSettings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    redis_connect: RedisConnect | None = None,
) -> FastAPI:
    """The app, built from ``settings`` (the environment's by default). Tests may replace the
    network for the calls out (``http_transport``) and how Redis clients are opened
    (``redis_connect``)."""
    return create_service_app(
        settings or get_settings(),
        title="relayshop payments",
        description="Charges each order once (simulated processor), then commits its stock.",
        routers=[charges.router, system.router, payments.router],
        metadata=SQLModel.metadata,
        migrations="payments_service:migrations",
        on_startup=on_startup,
        http_transport=http_transport,
        redis_connect=redis_connect,
        openapi_tags=TAGS,
    )
