"""The orders service: places orders through the saga (saga.py) and serves them to their owners.

Started as ``uvicorn orders_service.main:create_app --factory`` (port 8002 under ``make run``).
The reconciler (reconciler.py) runs beside it and finishes orders a crash left PENDING.
"""

from __future__ import annotations

from fastapi import FastAPI
from relayshop_platform.app import create_service_app
from sqlmodel import SQLModel

from . import reconciler
from .config import get_settings
from .routes import orders


def create_app() -> FastAPI:
    return create_service_app(
        get_settings(),
        title="relayshop orders",
        description=(
            "Places orders (reserve stock at inventory, charge at payments, compensate on "
            "failure) relaying the customer's token, and serves them to their owners."
        ),
        routers=[orders.router],
        metadata=SQLModel.metadata,
        migrations="orders_service:migrations",
        on_startup=reconciler.start,
        on_shutdown=reconciler.stop,
        openapi_tags=[{"name": "orders", "description": "Customers' orders."}],
    )
