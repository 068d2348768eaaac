"""GET /api/orders/{id}/summary: the gateway gathers one order from three services."""

from __future__ import annotations

import time

import jwt
from relayshop_devtools.devstack import free_port

ORDER = {
    "id": "o-1",
    "status": "CONFIRMED",
    "items": [
        {"sku": "KB-001", "quantity": 1},
        {"sku": "MS-002", "quantity": 2},
        {"sku": "KB-001", "quantity": 1},
    ],
    "total_cents": 14700,
    "payment_id": "p-1",
}
PAYMENT = {"id": "p-1", "order_id": "o-1", "status": "CAPTURED", "amount_cents": 14700}
KEYBOARD = {"sku": "KB-001", "name": "Mechanical keyboard", "price_cents": 8900, "stock": 99}
MOUSE = {"sku": "MS-002", "name": "Wireless mouse", "price_cents": 2900, "stock": 198}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def can_the_three_answers(fakes, order=ORDER) -> None:
    fakes.orders.canned["/api/orders/o-1"] = (200, order)
    fakes.payments.canned["/api/payments/p-1"] = (200, PAYMENT)
    fakes.inventory.canned["/api/inventory/products/KB-001"] = (200, KEYBOARD)
    fakes.inventory.canned["/api/inventory/products/MS-002"] = (200, MOUSE)


def subject_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def test_summary_gathers_order_payment_and_products(client, fakes, test_key) -> None:
    can_the_three_answers(fakes)
    token = test_key.mint()
    response = await client.get("/api/orders/o-1/summary", headers=auth(token))
    assert response.status_code == 200
    assert response.json() == {"order": ORDER, "payment": PAYMENT, "products": [KEYBOARD, MOUSE]}
    calls = [*fakes.orders.requests, *fakes.payments.requests, *fakes.inventory.requests]
    assert len(calls) == 4  # the order, its payment, two distinct products
    # Each service got the user's token exchanged for it alone (exchange mode, the default).
    for fake in (fakes.orders, fakes.payments, fakes.inventory):
        for seen in fake.requests:
            (sent,) = seen.header_all("authorization")
            claims = jwt.decode(sent.removeprefix("Bearer "), options={"verify_signature": False})
            assert claims["aud"] == f"urn:relayshop:{fake.name}"
            assert claims["sub"] == subject_of(token)
            assert seen.header("x-service-token") is None
    assert response.headers["x-trace-id"]


async def test_summary_asks_payment_and_products_at_once(client, fakes, test_key) -> None:
    can_the_three_answers(fakes)
    fakes.payments.delay = fakes.inventory.delay = 0.3
    started = time.monotonic()
    response = await client.get("/api/orders/o-1/summary", headers=auth(test_key.mint()))
    assert response.status_code == 200
    assert time.monotonic() - started < 0.55  # three 0.3 s calls, side by side


async def test_summary_without_payment_has_null_payment(client, fakes, test_key) -> None:
    can_the_three_answers(fakes, order={**ORDER, "payment_id": None})
    response = await client.get("/api/orders/o-1/summary", headers=auth(test_key.mint()))
    assert response.status_code == 200
    assert response.json()["payment"] is None
    assert fakes.payments.requests == []


async def test_summary_of_unknown_order_gets_404(client, fakes, test_key) -> None:
    fakes.orders.canned["/api/orders/o-404"] = (404, {"status": 404})
    response = await client.get("/api/orders/o-404/summary", headers=auth(test_key.mint()))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert fakes.inventory.requests == []


async def test_summary_without_token_gets_401_and_calls_nothing(client, fakes) -> None:
    response = await client.get("/api/orders/o-1/summary")
    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]
    assert fakes.request_count() == 0


async def test_summary_with_service_token_gets_403(client, fakes, test_key) -> None:
    response = await client.get(
        "/api/orders/o-1/summary", headers=auth(test_key.service_token("orders"))
    )
    assert response.status_code == 403
    assert fakes.request_count() == 0


async def test_summary_with_orders_down_gets_503(start_gateway, test_key) -> None:
    gateway = await start_gateway(RELAYSHOP_ORDERS_URL=f"http://127.0.0.1:{free_port()}")
    async with gateway.client() as client:
        response = await client.get("/api/orders/o-1/summary", headers=auth(test_key.mint()))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "orders" in response.json()["detail"]


async def test_summary_with_inventory_failing_gets_503(client, fakes, test_key) -> None:
    can_the_three_answers(fakes)
    fakes.inventory.canned["/api/inventory/products/MS-002"] = (500, {"boom": True})
    response = await client.get("/api/orders/o-1/summary", headers=auth(test_key.mint()))
    assert response.status_code == 503
    assert "inventory" in response.json()["detail"]


async def test_summary_with_slow_payments_gets_504(start_gateway, fakes, test_key) -> None:
    gateway = await start_gateway(RELAYSHOP_HTTP_TIMEOUT_SECONDS="0.5")
    can_the_three_answers(fakes)
    fakes.payments.delay = 5.0
    async with gateway.client() as client:
        response = await client.get("/api/orders/o-1/summary", headers=auth(test_key.mint()))
    assert response.status_code == 504
    assert "payments" in response.json()["detail"]
