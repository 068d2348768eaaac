"""POST /api/payments/charges: once per order, the stock committed, or the money given back."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from relayshop_devtools.fakes import FakeInventory
from relayshop_devtools.testing import Caller, running

# Runs on SQLite and on PostgreSQL (the root conftest's database_url).
pytestmark = pytest.mark.databases

CHARGES = "/api/payments/charges"


def charge(
    client: TestClient,
    caller: Caller,
    order_id: str = "o-1",
    method: str = "pm_card_visa",
    amount: int = 8900,
    **who: Any,
) -> httpx.Response:
    who.setdefault("via", "orders")
    headers = caller.user(*who.pop("roles", ("customer",)), **who)
    body = {"order_id": order_id, "amount_cents": amount, "payment_method": method}
    return client.post(CHARGES, json=body, headers=headers)


def by_order(client: TestClient, caller: Caller, order_id: str = "o-1") -> httpx.Response:
    headers = caller.user("admin", via="orders")
    return client.get(f"/api/payments/by-order/{order_id}", headers=headers)


# -- who may call ------------------------------------------------------------------------------
def test_charge_with_user_token_only_is_401(
    client: TestClient, caller: Caller, inventory: FakeInventory
) -> None:
    body = {"order_id": "o-1", "amount_cents": 100, "payment_method": "pm_card_visa"}
    response = client.post(CHARGES, json=body, headers=caller.user("customer"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert inventory.requests == []


def test_charge_via_wrong_service_is_403(client: TestClient, caller: Caller, app: FastAPI) -> None:
    response = charge(client, caller, via="inventory")
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert app.state.provider.captures == 0


def test_charge_as_support_is_403(client: TestClient, caller: Caller) -> None:
    assert charge(client, caller, roles=["support"]).status_code == 403


def test_charge_with_service_token_as_user_is_403(client: TestClient, caller: Caller) -> None:
    token = caller.key.service_token("orders")
    headers = {"Authorization": f"Bearer {token}", "x-service-token": token}
    body = {"order_id": "o-1", "amount_cents": 100, "payment_method": "pm_card_visa"}
    assert client.post(CHARGES, json=body, headers=headers).status_code == 403


# -- the happy path and its repeats -------------------------------------------------------------
def test_charge_visa_captures_and_commits_stock_with_relayed_tokens(
    client: TestClient, caller: Caller, inventory: FakeInventory, app: FastAPI
) -> None:
    headers = caller.user("customer", via="orders")
    body = {"order_id": "o-1", "amount_cents": 8900, "payment_method": "pm_card_visa"}
    response = client.post(CHARGES, json=body, headers=headers)
    assert response.status_code == 201
    payment = response.json()
    assert payment["status"] == "CAPTURED"
    assert payment["id"].startswith("pay_")
    assert {k: payment[k] for k in ("order_id", "amount_cents", "payment_method")} == body
    assert payment["created_at"]

    [commit] = inventory.requests
    assert commit.method == "POST"
    assert commit.url.path == "/api/inventory/reservations/o-1/commit"
    # The user's token exchanged for inventory by payments (RFC 8693), and payments' own token
    # for inventory beside it: both addressed to inventory alone.
    received = jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})
    user = jwt.decode(commit.headers["authorization"][7:], options={"verify_signature": False})
    assert (user["sub"], user["aud"]) == (received["sub"], "urn:relayshop:inventory")
    assert user["act"]["sub"] == "payments"
    service = jwt.decode(commit.headers["x-service-token"], options={"verify_signature": False})
    assert (service["sub"], service["roles"]) == ("payments", ["service"])
    assert service["aud"] == "urn:relayshop:inventory"
    assert app.state.provider.captures == 1


def test_charge_repeat_returns_same_payment_200_and_captures_once(
    client: TestClient, caller: Caller, app: FastAPI
) -> None:
    first = charge(client, caller)
    again = charge(client, caller)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert app.state.provider.captures == 1


def test_charge_repeat_with_other_amount_is_409(client: TestClient, caller: Caller) -> None:
    charge(client, caller, amount=8900)
    response = charge(client, caller, amount=1)
    assert response.status_code == 409
    assert by_order(client, caller).json()["amount_cents"] == 8900


def test_charge_someone_elses_order_id_is_409_without_details(
    client: TestClient, caller: Caller
) -> None:
    charge(client, caller, sub="alice-id")
    response = charge(client, caller, sub="bob-id")
    assert response.status_code == 409
    assert "payment_id" not in response.json()


# -- declined, unknown, bad input --------------------------------------------------------------
def test_charge_declined_is_402_and_stored_declined(
    client: TestClient, caller: Caller, inventory: FakeInventory
) -> None:
    response = charge(client, caller, method="pm_card_chargeDeclined")
    assert response.status_code == 402
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 402
    assert problem["payment_id"].startswith("pay_")
    stored = by_order(client, caller).json()
    assert (stored["status"], stored["id"]) == ("DECLINED", problem["payment_id"])
    assert inventory.requests == []  # nothing to commit
    assert charge(client, caller, method="pm_card_chargeDeclined").status_code == 402


def test_charge_unknown_method_is_422_and_stores_nothing(
    client: TestClient, caller: Caller
) -> None:
    response = charge(client, caller, method="pm_card_mastercard")
    assert response.status_code == 422
    assert response.json()["detail"] == "unknown payment method"
    assert by_order(client, caller).status_code == 404


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"amount_cents": 0}, "amount_cents"),
        ({"amount_cents": -5}, "amount_cents"),
        ({"amount_cents": 100_000_001}, "amount_cents"),
        ({"amount_cents": "8900"}, "amount_cents"),
        ({"amount_cents": 89.5}, "amount_cents"),
        ({"order_id": "o" * 65}, "order_id"),
        ({"order_id": "../etc"}, "order_id"),
        ({"payment_method": ""}, "payment_method"),
        ({"payment_method": "4242 4242 4242 4242"}, "payment_method"),
        ({"card_number": "4242424242424242"}, "card_number"),
    ],
)
def test_charge_bad_body_is_422_naming_the_field(
    client: TestClient, caller: Caller, change: dict[str, Any], where: str
) -> None:
    body = {"order_id": "o-1", "amount_cents": 8900, "payment_method": "pm_card_visa", **change}
    response = client.post(CHARGES, json=body, headers=caller.user("customer", via="orders"))
    assert response.status_code == 422
    problem = response.json()
    assert any(error["loc"][-1] == where for error in problem["errors"])
    assert "4242" not in response.text  # the offending value is never echoed


# -- the stock commit fails: the payment is voided -------------------------------------------
@pytest.mark.parametrize("status", [404, 409])
def test_charge_commit_refused_voids_and_is_409(
    client: TestClient, caller: Caller, inventory: FakeInventory, app: FastAPI, status: int
) -> None:
    inventory.status = status
    response = charge(client, caller)
    assert response.status_code == 409
    assert response.json()["payment_status"] == "VOIDED"
    stored = by_order(client, caller).json()
    assert stored["status"] == "VOIDED"
    provider = app.state.provider
    assert provider.refunded == {provider.charges["o-1"].id}  # the money went back
    assert charge(client, caller).status_code == 409  # and a repeat does not capture again
    assert provider.captures == 1


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (httpx.ConnectError("connection refused"), 503),
        (httpx.ReadTimeout("too slow"), 504),
    ],
)
def test_charge_inventory_down_voids(
    client: TestClient,
    caller: Caller,
    inventory: FakeInventory,
    error: Exception,
    status: int,
) -> None:
    inventory.error = error
    response = charge(client, caller)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert by_order(client, caller).json()["status"] == "VOIDED"


def test_charge_inventory_server_error_voids_and_is_503(
    client: TestClient, caller: Caller, inventory: FakeInventory
) -> None:
    inventory.status = 500
    assert charge(client, caller).status_code == 503
    assert by_order(client, caller).json()["status"] == "VOIDED"


async def test_charge_concurrently_same_order_captures_once(app: FastAPI, caller: Caller) -> None:
    """Twenty identical charges at once capture once (unique order_id plus the processor's
    idempotency key). The app runs in this test's event loop, so they really interleave."""
    async with running(app) as client:
        headers = caller.user("customer", via="orders")
        body = {"order_id": "o-1", "amount_cents": 8900, "payment_method": "pm_card_visa"}
        responses = await asyncio.gather(
            *(client.post(CHARGES, json=body, headers=headers) for _ in range(20))
        )
    assert Counter(r.status_code for r in responses) == {201: 1, 200: 19}
    assert len({r.json()["id"] for r in responses}) == 1
    assert app.state.provider.captures == 1
