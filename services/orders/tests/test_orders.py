"""The orders API: placing (with Idempotency-Key), reading, listing and cancelling, and who may.

``neighbours`` (conftest.py) is the in-memory inventory and payments (FakeNeighbours); it
refuses any call without both the relayed user token and orders' service token.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from relayshop_devtools.fakes import VISA

ORDER = {
    "items": [{"sku": "KB-001", "quantity": 2}, {"sku": "CB-005", "quantity": 3}],
    "payment_method": VISA,
}


def place(client: TestClient, headers: dict[str, str], body: Any = None, key: str | None = None):
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post("/api/orders", json=ORDER if body is None else body, headers=headers)


# ---- placing an order ---------------------------------------------------------------------------


def test_place_order_confirms_with_inventory_prices(client: TestClient, neighbours, auth) -> None:
    response = place(client, auth("alice"))

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "CONFIRMED"
    assert order["total_cents"] == 2 * 8900 + 3 * 990
    assert order["items"] == [
        {"sku": "KB-001", "quantity": 2, "price_cents": 8900, "name": "Mechanical keyboard"},
        {"sku": "CB-005", "quantity": 3, "price_cents": 990, "name": "USB-C cable"},
    ]
    assert order["owner"] == "alice"
    assert order["payment_method"] == "pm_card_visa"
    payment = neighbours.payments[order["id"]]
    assert order["payment_id"] == payment["id"]
    assert payment["amount_cents"] == order["total_cents"]
    assert neighbours.reservations[order["id"]]["status"] == "COMMITTED"
    assert client.get(f"/api/orders/{order['id']}", headers=auth("alice")).json() == order


def test_place_order_relays_user_token_and_orders_identity(
    client: TestClient, neighbours, auth
) -> None:
    place(client, auth("alice"))

    assert [(c.service, c.path.split("/")[-1]) for c in neighbours.calls] == [
        ("inventory", "reservations"),
        ("payments", "charges"),
    ]
    assert {(c.user_sub, c.caller) for c in neighbours.calls} == {("alice", "orders")}


@pytest.mark.parametrize(
    "body",
    [
        {"items": [{"sku": "KB-001", "quantity": 0}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB-001", "quantity": -1}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB-001", "quantity": 1001}], "payment_method": "pm_card_visa"},
        {"items": [], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "CB-005", "quantity": 1}] * 10_000, "payment_method": "pm_card_visa"},
        {"items": [{"sku": f"S-{i}", "quantity": 1} for i in range(101)], "payment_method": VISA},
        {"items": [{"sku": "KB-001", "quantity": "2"}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB-001", "quantity": True}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB-001", "quantity": 1.5}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": 7, "quantity": 1}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "", "quantity": 1}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "K" * 65, "quantity": 1}], "payment_method": "pm_card_visa"},
        {"items": "KB-001", "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB 001", "quantity": 1}], "payment_method": "pm_card_visa"},
        {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": ""},
        {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": "4242424242424242"},
        {"items": [{"sku": "KB-001", "quantity": 1}]},
        {"items": [{"sku": "KB-001", "quantity": 1, "price_cents": 1}], "payment_method": VISA},
        {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": VISA, "total_cents": 1},
        {
            "items": [{"sku": "KB-001", "quantity": 1}, {"sku": "KB-001", "quantity": 2}],
            "payment_method": "pm_card_visa",
        },
        ["not", "an", "object"],
    ],
)
def test_place_order_bad_body_answers_422_and_does_nothing(
    client: TestClient, neighbours, auth, body: Any
) -> None:
    response = place(client, auth("alice"), body)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert neighbours.calls == []
    assert client.get("/api/orders", headers=auth("alice")).json() == []


def test_place_order_duplicate_sku_names_it(client: TestClient, auth) -> None:
    body = {"items": [{"sku": "KB-001", "quantity": 1}] * 2, "payment_method": "pm_card_visa"}

    response = place(client, auth("alice"), body)

    assert response.status_code == 422
    assert "KB-001" in response.json()["errors"][0]["msg"]


def test_place_order_without_token_answers_401(client: TestClient, neighbours) -> None:
    response = client.post("/api/orders", json=ORDER)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["www-authenticate"]  # RFC 6750 3.1: no token, no code
    assert neighbours.calls == []


def test_place_order_expired_token_answers_401(client: TestClient, neighbours, auth) -> None:
    now = int(time.time())

    response = place(client, auth("alice", exp=now - 120, iat=now - 420))

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert neighbours.calls == []


@pytest.mark.parametrize("role", ["warehouse", "support", "admin"])
def test_place_order_as_non_customer_answers_403(
    client: TestClient, neighbours, auth, role: str
) -> None:
    response = place(client, auth("walt", role))

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert neighbours.calls == []


# ---- Idempotency-Key ----------------------------------------------------------------------------


def test_place_order_same_key_same_body_returns_same_order(
    client: TestClient, neighbours, auth
) -> None:
    first = place(client, auth("alice"), key="k-1")
    # The same body, written differently: other key order, other item order.
    reordered = {"payment_method": "pm_card_visa", "items": list(reversed(ORDER["items"]))}
    second = place(client, auth("alice"), reordered, key="k-1")

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert len(neighbours.calls_to("payments", "/charges")) == 1
    assert len(client.get("/api/orders", headers=auth("alice")).json()) == 1


def test_place_order_same_key_different_body_answers_422(
    client: TestClient, neighbours, auth
) -> None:
    place(client, auth("alice"), key="k-1")
    other = {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": "pm_card_visa"}

    response = place(client, auth("alice"), other, key="k-1")

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]
    assert len(neighbours.calls_to("payments", "/charges")) == 1


def test_place_order_same_key_after_decline_replays_402(
    client: TestClient, neighbours, auth
) -> None:
    declined = {**ORDER, "payment_method": "pm_card_chargeDeclined"}
    first = place(client, auth("alice"), declined, key="k-2")

    second = place(client, auth("alice"), declined, key="k-2")

    assert first.status_code == second.status_code == 402
    assert second.json()["order_id"] == first.json()["order_id"]
    assert len(neighbours.calls_to("payments", "/charges")) == 1


def test_place_order_same_key_of_another_user_is_a_new_order(client: TestClient, auth) -> None:
    alices = place(client, auth("alice"), key="shared-key")
    bobs = place(client, auth("bob"), key="shared-key")

    assert alices.status_code == bobs.status_code == 201
    assert alices.json()["id"] != bobs.json()["id"]
    assert bobs.json()["owner"] == "bob"


def test_place_order_concurrent_same_key_creates_one_order(
    client: TestClient, neighbours, auth
) -> None:
    neighbours.reserve_delay = 0.2  # keep the first saga running while the others arrive
    headers = auth("alice")

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda _: place(client, headers, key="k-race"), range(6)))

    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(neighbours.calls_to("inventory", "/reservations")) == 1
    assert len(neighbours.calls_to("payments", "/charges")) == 1
    assert len(client.get("/api/orders", headers=headers).json()) == 1


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "caf\u00e9".encode()])
def test_place_order_bad_idempotency_key_answers_422(
    client: TestClient, neighbours, auth, key: str | bytes
) -> None:
    headers: dict[str, str | bytes] = {**auth("alice"), "Idempotency-Key": key}

    response = client.post("/api/orders", json=ORDER, headers=headers)

    assert response.status_code == 422
    assert neighbours.calls == []


# ---- reading and listing ------------------------------------------------------------------------


def test_get_order_of_another_customer_answers_404(client: TestClient, auth) -> None:
    order_id = place(client, auth("alice")).json()["id"]

    for headers in (auth("bob"), auth("walt", "warehouse")):
        response = client.get(f"/api/orders/{order_id}", headers=headers)
        assert response.status_code == 404
        assert response.json()["detail"] == "No order with this id."


@pytest.mark.parametrize("role", ["support", "admin"])
def test_get_order_as_support_or_admin_answers_200(client: TestClient, auth, role: str) -> None:
    order_id = place(client, auth("alice")).json()["id"]

    response = client.get(f"/api/orders/{order_id}", headers=auth("staff", role))

    assert response.status_code == 200
    assert response.json()["owner"] == "alice"


def test_get_order_unknown_id_answers_404(client: TestClient, auth) -> None:
    response = client.get("/api/orders/does-not-exist", headers=auth("admin", "admin"))

    assert response.status_code == 404


def test_list_orders_as_customer_shows_only_own(client: TestClient, auth) -> None:
    mine = place(client, auth("alice")).json()["id"]
    place(client, auth("bob"))

    listed = client.get("/api/orders", headers=auth("alice")).json()

    assert [order["id"] for order in listed] == [mine]


@pytest.mark.parametrize("role", ["support", "admin"])
def test_list_orders_as_support_or_admin_shows_all(client: TestClient, auth, role: str) -> None:
    place(client, auth("alice"))
    place(client, auth("bob"))

    listed = client.get("/api/orders", headers=auth("staff", role)).json()

    assert sorted(order["owner"] for order in listed) == ["alice", "bob"]


def test_list_orders_is_bounded(client: TestClient, auth) -> None:
    place(client, auth("alice"))
    place(client, auth("alice"))

    assert len(client.get("/api/orders?limit=1", headers=auth("alice")).json()) == 1
    assert client.get("/api/orders?limit=201", headers=auth("alice")).status_code == 422
    assert client.get("/api/orders?limit=0", headers=auth("alice")).status_code == 422


def test_list_orders_as_warehouse_answers_403(client: TestClient, auth) -> None:
    response = client.get("/api/orders", headers=auth("walt", "warehouse"))

    assert response.status_code == 403


# ---- cancelling ---------------------------------------------------------------------------------


def test_cancel_order_by_owner_refunds_and_restores_stock(
    client: TestClient, neighbours, auth
) -> None:
    order_id = place(client, auth("alice")).json()["id"]

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth("alice"))

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert neighbours.payments[order_id]["status"] == "REFUNDED"
    assert neighbours.reservations[order_id]["status"] == "RELEASED"
    assert neighbours.products["KB-001"]["stock"] == 100
    assert neighbours.products["CB-005"]["stock"] == 500
    assert {(c.user_sub, c.caller) for c in neighbours.calls} == {("alice", "orders")}


def test_cancel_order_twice_returns_it_without_calling_again(
    client: TestClient, neighbours, auth
) -> None:
    order_id = place(client, auth("alice")).json()["id"]
    client.post(f"/api/orders/{order_id}/cancel", headers=auth("alice"))
    calls_before = len(neighbours.calls)

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth("alice"))

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert len(neighbours.calls) == calls_before


def test_cancel_order_by_admin_answers_200(client: TestClient, neighbours, auth) -> None:
    order_id = place(client, auth("alice")).json()["id"]

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth("root", "admin"))

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert neighbours.payments[order_id]["status"] == "REFUNDED"


def test_cancel_order_by_support_answers_403(client: TestClient, neighbours, auth) -> None:
    order_id = place(client, auth("alice")).json()["id"]

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth("carol", "support"))

    assert response.status_code == 403
    assert neighbours.payments[order_id]["status"] == "CAPTURED"


def test_cancel_order_of_another_customer_answers_404(client: TestClient, neighbours, auth) -> None:
    order_id = place(client, auth("alice")).json()["id"]

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth("bob"))

    assert response.status_code == 404
    assert neighbours.payments[order_id]["status"] == "CAPTURED"


def test_cancel_order_that_failed_answers_409(client: TestClient, auth) -> None:
    body = {"items": [{"sku": "WC-006", "quantity": 1}], "payment_method": "pm_card_visa"}
    order_id = place(client, auth("alice"), body).json()["order_id"]

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth("alice"))

    assert response.status_code == 409
    assert "OUT_OF_STOCK" in response.json()["detail"]


def test_cancel_order_while_payments_down_answers_503_and_keeps_it(
    client: TestClient, neighbours, auth
) -> None:
    order_id = place(client, auth("alice")).json()["id"]
    neighbours.down.add("payments")

    response = client.post(f"/api/orders/{order_id}/cancel", headers=auth("alice"))

    assert response.status_code == 503
    order = client.get(f"/api/orders/{order_id}", headers=auth("alice")).json()
    assert order["status"] == "CONFIRMED"
    assert neighbours.reservations[order_id]["status"] == "COMMITTED"


def test_place_order_same_key_while_first_still_running_answers_409(
    client: TestClient, neighbours, auth
) -> None:
    client.app.state.settings.idempotent_replay_wait_seconds = 0.1
    neighbours.reserve_delay = 1.0
    headers = auth("alice")

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(place, client, headers, key="k-slow")
        deadline = time.monotonic() + 5
        while not neighbours.calls:  # the first order is stored, its reservation under way
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = place(client, headers, key="k-slow")
        first_order = first.result().json()

    assert second.status_code == 409
    assert second.json()["order_id"] == first_order["id"]
    assert first_order["status"] == "CONFIRMED"
    assert len(neighbours.calls_to("payments", "/charges")) == 1
