"""The saga's outcomes: every failure leaves the order in a final state with nothing charged
and the stock given back, and the answer says what happened (with the order's id). When the
outcome cannot be known yet, the order stays PENDING for the reconciler (test_reconciler.py)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def order(sku: str = "KB-001", quantity: int = 1, method: str = "pm_card_visa") -> dict:
    return {"items": [{"sku": sku, "quantity": quantity}], "payment_method": method}


def status_of(client: TestClient, auth, order_id: str) -> str:
    return client.get(f"/api/orders/{order_id}", headers=auth("alice")).json()["status"]


def test_place_order_out_of_stock_answers_409_and_charges_nothing(
    client: TestClient, neighbours, auth
) -> None:
    response = client.post("/api/orders", json=order("WC-006"), headers=auth("alice"))

    assert response.status_code == 409
    problem = response.json()
    assert problem["order_status"] == "OUT_OF_STOCK"
    assert "Nothing was charged" in problem["detail"]
    assert status_of(client, auth, problem["order_id"]) == "OUT_OF_STOCK"
    assert neighbours.calls_to("payments") == []


def test_place_order_more_than_stock_answers_409(client: TestClient, neighbours, auth) -> None:
    response = client.post("/api/orders", json=order("KB-001", 101), headers=auth("alice"))

    assert response.status_code == 409
    assert neighbours.products["KB-001"]["stock"] == 100


def test_place_order_declined_answers_402_and_restores_stock(
    client: TestClient, neighbours, auth
) -> None:
    body = order("KB-001", 3, method="pm_card_chargeDeclined")

    response = client.post("/api/orders", json=body, headers=auth("alice"))

    assert response.status_code == 402
    order_id = response.json()["order_id"]
    assert status_of(client, auth, order_id) == "PAYMENT_FAILED"
    assert neighbours.reservations[order_id]["status"] == "RELEASED"
    assert neighbours.products["KB-001"]["stock"] == 100
    # The failed order still shows what inventory priced it at.
    shown = client.get(f"/api/orders/{order_id}", headers=auth("alice")).json()
    assert shown["total_cents"] == 3 * 8900
    assert shown["payment_id"] is None


def test_place_order_unknown_payment_method_answers_422_and_restores_stock(
    client: TestClient, neighbours, auth
) -> None:
    response = client.post("/api/orders", json=order(method="pm_bitcoin"), headers=auth("alice"))

    assert response.status_code == 422
    assert status_of(client, auth, response.json()["order_id"]) == "FAILED"
    assert neighbours.products["KB-001"]["stock"] == 100


def test_place_order_unknown_sku_answers_422_and_fails_order(
    client: TestClient, neighbours, auth
) -> None:
    response = client.post("/api/orders", json=order("NOPE-1"), headers=auth("alice"))

    assert response.status_code == 422
    assert "NOPE-1" in response.json()["detail"]
    assert status_of(client, auth, response.json()["order_id"]) == "FAILED"
    assert neighbours.calls_to("payments") == []


def test_place_order_payments_down_answers_503_and_restores_stock(
    client: TestClient, neighbours, auth
) -> None:
    neighbours.down.add("payments")  # connection refused: the charge was never sent

    response = client.post("/api/orders", json=order("KB-001", 4), headers=auth("alice"))

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    order_id = response.json()["order_id"]
    assert status_of(client, auth, order_id) == "FAILED"
    assert neighbours.reservations[order_id]["status"] == "RELEASED"
    assert neighbours.products["KB-001"]["stock"] == 100
    assert "Nothing was charged" in response.json()["detail"]


def test_place_order_payments_dies_mid_charge_leaves_order_pending(
    client: TestClient, neighbours, auth
) -> None:
    # The charge reached payments, which then died: nobody can say yet whether money was taken.
    neighbours.charge_then_crash = True

    response = client.post("/api/orders", json=order("KB-001", 4), headers=auth("alice"))

    assert response.status_code == 503
    problem = response.json()
    assert problem["order_status"] == "PENDING"
    assert "being settled" in problem["detail"]
    assert status_of(client, auth, problem["order_id"]) == "PENDING"
    # Released first, so the capture cannot stick; the refund waits for the reconciler.
    assert neighbours.reservations[problem["order_id"]]["status"] == "RELEASED"
    assert neighbours.payments[problem["order_id"]]["status"] == "CAPTURED"


def test_place_order_inventory_down_answers_503_and_charges_nothing(
    client: TestClient, neighbours, auth
) -> None:
    neighbours.down.add("inventory")

    response = client.post("/api/orders", json=order(), headers=auth("alice"))

    assert response.status_code == 503
    assert status_of(client, auth, response.json()["order_id"]) == "FAILED"
    assert neighbours.calls_to("payments") == []


def test_place_order_charge_answer_lost_refunds_and_answers_504(
    client: TestClient, neighbours, auth
) -> None:
    # Payments captured (and committed the stock), but its answer timed out on the way back.
    neighbours.charge_then_timeout = True

    response = client.post("/api/orders", json=order("KB-001", 2), headers=auth("alice"))

    assert response.status_code == 504
    order_id = response.json()["order_id"]
    assert "refunded" in response.json()["detail"]
    assert status_of(client, auth, order_id) == "FAILED"
    assert neighbours.payments[order_id]["status"] == "REFUNDED"
    assert neighbours.reservations[order_id]["status"] == "RELEASED"
    assert neighbours.products["KB-001"]["stock"] == 100
    assert len(neighbours.calls_to("payments", "/charges")) == 1  # asked, never charged again


def test_place_order_commit_refused_answers_409_and_fails_order(
    client: TestClient, neighbours, auth
) -> None:
    neighbours.commit_refused = True  # the reservation expired before payments committed it

    response = client.post("/api/orders", json=order(), headers=auth("alice"))

    assert response.status_code == 409
    order_id = response.json()["order_id"]
    assert status_of(client, auth, order_id) == "FAILED"
    assert neighbours.payments[order_id]["status"] == "VOIDED"
    assert neighbours.reservations[order_id]["status"] == "RELEASED"
    assert neighbours.products["KB-001"]["stock"] == 100
