"""End to end, in one process: payments commits a reservation at a real inventory app.

Both apps run in this test's event loop (relayshop_devtools.testing.running), payments' HTTP
client pointed at inventory's ASGI app, with the root conftest's fake auth and test tokens: the
real hop without the real stack. Payments relays the user's token, exchanged for inventory, and
its own service token; inventory checks both (require_caller) and commits the reservation.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from inventory_service.main import create_app as create_inventory_app
from payments_service.main import create_app as create_payments_app
from relayshop_devtools.testing import Caller, running

CHARGES = "/api/payments/charges"


async def test_charge_commits_reservation_at_real_inventory(
    service_env: dict[str, str], caller: Caller
) -> None:
    inventory_app, payments_app = create_inventory_app(), create_payments_app()
    async with AsyncExitStack() as stack:
        inventory = await stack.enter_async_context(running(inventory_app))
        payments = await stack.enter_async_context(running(payments_app))
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
