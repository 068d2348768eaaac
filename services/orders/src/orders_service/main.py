"""The orders service: places orders through the saga (saga.py) and serves them to their owners.

Started as ``uvicorn orders_service.main:create_app --factory`` (port 8002 under ``make run``).
"""

from __future__ import annotations

from fastapi import FastAPI
from relayshop_platform.app import create_service_app
from sqlmodel import SQLModel

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
        openapi_tags=[{"name": "orders", "description": "Customers' orders."}],
    )
