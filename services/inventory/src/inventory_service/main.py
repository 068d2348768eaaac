"""The inventory service: products, stock and the reservations of the order saga.

uvicorn inventory_service.main:create_app --factory --port 8004
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from relayshop_platform.app import create_service_app
from relayshop_platform.redis_acl import RedisConnect
from sqlmodel import SQLModel

from .config import InventorySettings, get_settings
from .expiry import sweeper
from .routes import products, reservations, system
from .stock import seed_products

TAGS = [
    {"name": "products", "description": "the catalogue and its stock"},
    {
        "name": "reservations",
        "description": "read-only audit of the reservations (admin, support)",
    },
    {
        "name": "internal",
        "description": "service-to-service operations: need a user token AND an allowed "
        "calling service's token; the /system routes (orders' reconciler) need orders' own "
        "token alone",
    },
]


async def on_startup(app: FastAPI) -> None:
    await seed_products(app.state.sessionmaker)


def create_app(
    settings: InventorySettings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    redis_connect: RedisConnect | None = None,
) -> FastAPI:
    """The app, built from ``settings`` (the environment's by default). Tests may replace the
    network for the calls out (``http_transport``) and how Redis clients are opened
    (``redis_connect``)."""
    return create_service_app(
        settings or get_settings(),
        title="relayshop inventory",
        description="Products, stock, and the stock reservations of the order saga.",
        routers=[products.router, reservations.router, system.router],
        metadata=SQLModel.metadata,
        migrations="inventory_service:migrations",
        on_startup=on_startup,
        background=[sweeper],
        http_transport=http_transport,
        redis_connect=redis_connect,
        openapi_tags=TAGS,
    )
