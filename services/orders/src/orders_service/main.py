"""The orders service: places orders through the saga (saga.py) and serves them to their owners.

Started as ``uvicorn orders_service.main:create_app --factory`` (port 8002 under ``make run``).
The reconciler (reconciler.py) runs beside it and finishes orders a crash left PENDING.
"""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from relayshop_platform.app import create_service_app
from relayshop_platform.redis_acl import RedisConnect
from sqlmodel import SQLModel

from .config import OrdersSettings, get_settings
from .reconciler import reconciler
from .routes import orders


def create_app(
    settings: OrdersSettings | None = None,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
    redis_connect: RedisConnect | None = None,
) -> FastAPI:
    """The app, built from ``settings`` (the environment's by default). Tests may replace the
    network for the calls out (``http_transport``) and how Redis clients are opened
    (``redis_connect``)."""
    return create_service_app(
        settings or get_settings(),
        title="relayshop orders",
        description=(
            "Places orders (reserve stock at inventory, charge at payments, compensate on "
            "failure) relaying the customer's token, and serves them to their owners."
        ),
        routers=[orders.router],
        metadata=SQLModel.metadata,
        migrations="orders_service:migrations",
        background=[reconciler],
        http_transport=http_transport,
        redis_connect=redis_connect,
        openapi_tags=[{"name": "orders", "description": "Customers' orders."}],
    )
