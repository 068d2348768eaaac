"""The inventory service: products, stock and the reservations of the order saga.

uvicorn inventory_service.main:create_app --factory --port 8004
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from relayshop_platform.app import create_service_app
from sqlmodel import SQLModel

from .config import get_settings
from .expiry import start_sweeper, stop_sweeper
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
    start_sweeper(app)


def create_app() -> FastAPI:
    app = create_service_app(
        get_settings(),
        title="relayshop inventory",
        description="Products, stock, and the stock reservations of the order saga.",
        routers=[products.router, reservations.router, system.router],
        metadata=SQLModel.metadata,
        migrations="inventory_service:migrations",
        on_startup=on_startup,
        openapi_tags=TAGS,
    )
    _stop_sweeper_on_shutdown(app)
    return app


def _stop_sweeper_on_shutdown(app: FastAPI) -> None:
    """create_service_app has no shutdown hook, so wrap its lifespan: the sweeper is cancelled
    first, while the database engine it uses is still open."""
    platform_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with platform_lifespan(app):
            try:
                yield
            finally:
                await stop_sweeper(app)

    app.router.lifespan_context = lifespan
