"""Charges under pressure and against a real inventory, both apps in this test's event loop.

Concurrency: twenty identical charges at once still capture once (unique order_id plus the
processor's idempotency key). The real neighbour: payments relays the user's token and its own
service token to a real inventory app, which checks both and commits the reservation.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI
from inventory_service.main import create_app as create_inventory_app
from payments_service.main import create_app as create_payments_app

from .conftest import Caller, FakeInventory

CHARGES = "/api/payments/charges"


@asynccontextmanager
async def running(app: FastAPI, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app's lifespan entered here, requests through ASGITransport, ready before use."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{name}") as client:
            deadline = time.monotonic() + 15
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, f"{name} never became ready"
                await asyncio.sleep(0.05)
            yield client


async def test_charge_concurrently_same_order_captures_once(
    service_env: dict[str, str], caller: Caller
) -> None:
    app = create_payments_app()
    inventory = FakeInventory()
    async with running(app, "payments") as client:
        app.state.http = httpx.AsyncClient(transport=httpx.MockTransport(inventory.handle))
        headers = caller.user("customer", via="orders")
        body = {"order_id": "o-1", "amount_cents": 8900, "payment_method": "pm_card_visa"}
        responses = await asyncio.gather(
            *(client.post(CHARGES, json=body, headers=headers) for _ in range(20))
        )
        assert Counter(r.status_code for r in responses) == {201: 1, 200: 19}
        assert len({r.json()["id"] for r in responses}) == 1
        assert app.state.provider.captures == 1


async def test_charge_commits_reservation_at_real_inventory(
    service_env: dict[str, str], caller: Caller
) -> None:
    inventory_app, payments_app = create_inventory_app(), create_payments_app()
    async with AsyncExitStack() as stack:
        inventory = await stack.enter_async_context(running(inventory_app, "inventory"))
        payments = await stack.enter_async_context(running(payments_app, "payments"))
        # Payments' one HTTP client now reaches the inventory app in-process.
        payments_app.state.http = inventory

        via_orders = caller.user("customer", sub="alice-id", via="orders")
        reservation = {"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": 2}]}
        reserved = await inventory.post(
            "/api/inventory/reservations", json=reservation, headers=via_orders
        )
        assert reserved.status_code == 201
        body = {"order_id": "o-1", "amount_cents": 17800, "payment_method": "pm_card_visa"}
        paid = await payments.post(CHARGES, json=body, headers=via_orders)
        assert paid.status_code == 201, paid.text
        assert paid.json()["status"] == "CAPTURED"
        state = await inventory.get("/api/inventory/reservations/o-1", headers=via_orders)
        assert state.json()["status"] == "COMMITTED"

        # No reservation for this order: inventory says 404, so the capture is voided (409).
        missing = {"order_id": "o-2", "amount_cents": 100, "payment_method": "pm_card_visa"}
        voided = await payments.post(CHARGES, json=missing, headers=via_orders)
        assert voided.status_code == 409
        assert voided.json()["payment_status"] == "VOIDED"
