"""End to end: real processes over real sockets, every request through the gateway
unless the test is about calling a service directly."""

from __future__ import annotations

import concurrent.futures
import uuid

import httpx
import pytest
from relayshop_devtools.devstack import Client, Stack

ORDER = {"items": [{"sku": "KB-001", "quantity": 2}], "payment_method": "pm_card_visa"}


def product(client: Client, token: str, sku: str) -> dict:
    response = client.request("GET", f"/api/inventory/products/{sku}", token)
    assert response.status_code == 200, response.text
    return response.json()


def set_stock(client: Client, sku: str, stock: int) -> None:
    walt = client.access("walt")
    response = client.request(
        "PUT", f"/api/inventory/products/{sku}/stock", walt, json={"stock": stock}
    )
    assert response.status_code == 200, response.text


def test_place_order_confirms_charges_and_shows_to_the_right_people(client: Client) -> None:
    alice = client.access("alice")
    before = product(client, alice, "KB-001")
    response = client.request("POST", "/api/orders", alice, json=ORDER)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "CONFIRMED"
    assert order["total_cents"] == 2 * before["price_cents"]
    assert product(client, alice, "KB-001")["stock"] == before["stock"] - 2

    payment = client.request("GET", f"/api/payments/{order['payment_id']}", alice)
    assert payment.status_code == 200
    assert payment.json()["status"] == "CAPTURED"
    assert payment.json()["amount_cents"] == order["total_cents"]

    for reader in ("alice", "carol", "admin"):
        token = client.access(reader)
        seen = client.request("GET", f"/api/orders/{order['id']}", token)
        assert seen.status_code == 200 and seen.json()["id"] == order["id"]
        summary = client.request("GET", f"/api/orders/{order['id']}/summary", token)
        assert summary.status_code == 200, summary.text
        assert summary.json()["payment"]["id"] == order["payment_id"]
    bob = client.access("bob")
    assert client.request("GET", f"/api/orders/{order['id']}", bob).status_code == 404
    assert client.request("GET", f"/api/orders/{order['id']}/summary", bob).status_code == 404
    assert client.request("GET", f"/api/payments/{order['payment_id']}", bob).status_code == 404


def test_out_of_stock_is_409_and_charges_nothing(client: Client) -> None:
    alice = client.access("alice")
    body = {"items": [{"sku": "WC-006", "quantity": 1}], "payment_method": "pm_card_visa"}
    before = product(client, alice, "WC-006")["stock"]
    response = client.request("POST", "/api/orders", alice, json=body)
    assert response.status_code == 409, response.text
    assert product(client, alice, "WC-006")["stock"] == before == 0
    orders = client.request("GET", "/api/orders", alice).json()
    failed = [o for o in orders if o["id"] == response.json().get("order_id")]
    assert failed and failed[0]["payment_id"] is None


def test_declined_card_is_402_and_restores_stock(client: Client) -> None:
    alice = client.access("alice")
    before = product(client, alice, "MS-002")["stock"]
    body = {"items": [{"sku": "MS-002", "quantity": 3}], "payment_method": "pm_card_chargeDeclined"}
    response = client.request("POST", "/api/orders", alice, json=body)
    assert response.status_code == 402, response.text
    order_id = response.json()["order_id"]
    assert client.request("GET", f"/api/orders/{order_id}", alice).json()["status"] == (
        "PAYMENT_FAILED"
    )
    assert product(client, alice, "MS-002")["stock"] == before


def test_cancel_refunds_and_restores_stock(client: Client) -> None:
    alice = client.access("alice")
    before = product(client, alice, "HD-004")["stock"]
    body = {"items": [{"sku": "HD-004", "quantity": 1}], "payment_method": "pm_card_visa"}
    order = client.request("POST", "/api/orders", alice, json=body).json()
    assert product(client, alice, "HD-004")["stock"] == before - 1
    cancelled = client.request("POST", f"/api/orders/{order['id']}/cancel", alice)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"
    payment = client.request("GET", f"/api/payments/{order['payment_id']}", alice).json()
    assert payment["status"] == "REFUNDED"
    assert product(client, alice, "HD-004")["stock"] == before


def test_same_idempotency_key_places_one_order_and_charges_once(client: Client) -> None:
    alice = client.access("alice")
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.request("POST", "/api/orders", alice, json=ORDER, headers=key)
    second = client.request("POST", "/api/orders", alice, json=ORDER, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["payment_id"] == second.json()["payment_id"]
    other = dict(ORDER, items=[{"sku": "KB-001", "quantity": 1}])
    assert client.request("POST", "/api/orders", alice, json=other, headers=key).status_code == 422


def test_concurrent_orders_never_oversell(client: Client) -> None:
    set_stock(client, "CB-005", 20)
    tokens = [client.access(name) for name in ("alice", "bob")]
    body = {"items": [{"sku": "CB-005", "quantity": 1}], "payment_method": "pm_card_visa"}

    def place(index: int) -> httpx.Response:
        with httpx.Client(timeout=60) as http:
            return http.post(
                f"{client.stack.url('gateway')}/api/orders",
                json=body,
                headers={"Authorization": f"Bearer {tokens[index % 2]}"},
            )

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(place, range(100)))
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 20, statuses
    assert all(s in (201, 409) for s in statuses), statuses
    admin = client.access("admin")
    assert product(client, admin, "CB-005")["stock"] == 0
    confirmed = [r.json() for r in responses if r.status_code == 201]
    captured = {
        client.request("GET", f"/api/payments/{o['payment_id']}", admin).json()["status"]
        for o in confirmed
    }
    assert captured == {"CAPTURED"} and len({o["payment_id"] for o in confirmed}) == 20
    failed_ids = [r.json()["order_id"] for r in responses if r.status_code == 409]
    for order_id in failed_ids[:10]:
        status = client.request("GET", f"/api/orders/{order_id}", admin).json()["status"]
        assert status == "OUT_OF_STOCK"


@pytest.mark.parametrize("service", ["gateway", "inventory"])
def test_customer_cannot_set_stock_at_the_gateway_or_the_service(
    client: Client, service: str
) -> None:
    alice = client.access("alice")
    response = client.request(
        "PUT", "/api/inventory/products/KB-001/stock", alice, json={"stock": 1}, service=service
    )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_service_refuses_a_role_itself_when_called_directly(client: Client) -> None:
    walt = client.access("walt")  # warehouse: may reach /api/orders at the edge, not place orders
    response = client.request("POST", "/api/orders", walt, json=ORDER, service="orders")
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("service", "path", "body"),
    [
        ("inventory", "/api/inventory/reservations", {"order_id": "x", "items": []}),
        ("inventory", "/api/inventory/reservations/x/commit", None),
        (
            "payments",
            "/api/payments/charges",
            {"order_id": "x", "amount_cents": 100, "payment_method": "pm_card_visa"},
        ),
    ],
)
@pytest.mark.parametrize("via", ["gateway", "direct"])
def test_internal_operations_refuse_a_user_token_alone(
    client: Client, service: str, path: str, body: dict | None, via: str
) -> None:
    alice = client.access("alice")
    target = "gateway" if via == "gateway" else service
    response = client.request("POST", path, alice, json=body, service=target)
    assert response.status_code in (401, 403), response.text


def test_forged_identity_headers_change_nothing(client: Client) -> None:
    alice, admin_sub = client.access("alice"), client.token("admin")
    headers = {"X-User-Id": "admin", "X-User-Roles": "admin", "X-Service-Token": alice}
    response = client.request(
        "PUT", "/api/inventory/products/KB-001/stock", alice, json={"stock": 1}, headers=headers
    )
    assert response.status_code == 403
    assert admin_sub["access_token"]  # the admin exists; alice still cannot act as one


@pytest.mark.parametrize("service", ["gateway", "orders", "payments", "inventory"])
def test_every_service_refuses_missing_tampered_and_expired_tokens(
    client: Client, service: str
) -> None:
    alice = client.access("alice")
    head, payload, signature = alice.split(".")
    tampered = f"{head}.{payload[:-4]}AAAA.{signature}"
    path = {
        "gateway": "/api/orders",
        "orders": "/api/orders",
        "payments": "/api/payments/x",
        "inventory": "/api/inventory/products",
    }[service]
    missing = client.request("GET", path, None, service=service)
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    bad = client.request("GET", path, tampered, service=service)
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["www-authenticate"]


@pytest.mark.parametrize(
    "body",
    [
        {"items": [{"sku": "KB-001", "quantity": 0}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB-001", "quantity": -1}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "NOPE-999", "quantity": 1}], "payment_method": "pm_card_visa"},
        {"items": [], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB-001", "quantity": 1}] * 10_000, "payment_method": "pm_card_visa"},
        {"items": "KB-001", "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB-001", "quantity": "two"}], "payment_method": "pm_card_visa"},
    ],
    ids=["zero", "negative", "unknown-sku", "empty", "10k-items", "wrong-type", "quantity-type"],
)
def test_bad_order_bodies_are_4xx_and_charge_nothing(client: Client, body: dict) -> None:
    alice = client.access("alice")
    stock_before = product(client, alice, "KB-001")["stock"]
    response = client.request("POST", "/api/orders", alice, json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]
    assert product(client, alice, "KB-001")["stock"] == stock_before


def test_gateway_answers_503_while_an_upstream_is_down_then_recovers(
    client: Client, stack: Stack
) -> None:
    alice = client.access("alice")
    stack.stop_service("inventory")
    try:
        response = client.request("GET", "/api/inventory/products", alice)
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
    finally:
        stack.start_service("inventory")
    assert client.request("GET", "/api/inventory/products", alice).status_code == 200


def test_every_response_carries_request_and_trace_ids(client: Client) -> None:
    for path in ("/readyz", "/api/orders", "/auth/.well-known/jwks.json", "/nope"):
        response = client.request("GET", path)
        assert response.headers.get("x-request-id")
        assert len(response.headers.get("x-trace-id", "")) == 32
