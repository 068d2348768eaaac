"""The system routes (orders' reconciler: orders' own token alone) and the support audit list."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from relayshop_devtools.testing import Caller

# Runs on SQLite and on PostgreSQL (the root conftest's database_url).
pytestmark = pytest.mark.databases

SYSTEM = "/api/payments/system/by-order"


def service(caller: Caller, client_id: str = "orders") -> dict[str, str]:
    """A service's own token as the bearer: what relay.ServiceAuth sends."""
    return {"Authorization": f"Bearer {caller.key.service_token(client_id)}"}


def charged(client: TestClient, caller: Caller, order_id: str = "o-1") -> dict:
    body = {"order_id": order_id, "amount_cents": 8900, "payment_method": "pm_card_visa"}
    headers = caller.user("customer", sub="alice-id", via="orders")
    response = client.post("/api/payments/charges", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_system_lookup_with_orders_token_alone_answers_the_payment(
    client: TestClient, caller: Caller
) -> None:
    payment = charged(client, caller)

    response = client.get(f"{SYSTEM}/o-1", headers=service(caller))

    assert response.status_code == 200
    assert response.json()["id"] == payment["id"]


def test_system_lookup_of_unknown_order_is_404(client: TestClient, caller: Caller) -> None:
    assert client.get(f"{SYSTEM}/nope", headers=service(caller)).status_code == 404


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("nobody", 401),
        ("admin user token", 403),
        ("user token plus orders' service header", 403),
        ("inventory's token", 403),
    ],
)
def test_system_routes_refuse_anyone_but_orders_alone(
    client: TestClient, caller: Caller, app: FastAPI, who: str, status: int
) -> None:
    charged(client, caller)
    headers = {
        "nobody": {},
        "admin user token": caller.user("admin"),
        "user token plus orders' service header": caller.user("admin", via="orders"),
        "inventory's token": service(caller, "inventory"),
    }[who]

    assert client.get(f"{SYSTEM}/o-1", headers=headers).status_code == status
    assert client.post(f"{SYSTEM}/o-1/refund", headers=headers).status_code == status
    assert app.state.provider.refunded == set()


def test_system_refund_gives_money_back_once(
    client: TestClient, caller: Caller, app: FastAPI
) -> None:
    charged(client, caller)

    first = client.post(f"{SYSTEM}/o-1/refund", headers=service(caller))
    again = client.post(f"{SYSTEM}/o-1/refund", headers=service(caller))

    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == again.json()["status"] == "REFUNDED"
    assert len(app.state.provider.refunded) == 1


def test_list_payments_lets_support_audit_one_order(client: TestClient, caller: Caller) -> None:
    charged(client, caller, "o-1")
    charged(client, caller, "o-2")

    response = client.get(
        "/api/payments", params={"order_id": "o-2"}, headers=caller.user("support")
    )

    assert response.status_code == 200
    assert [p["order_id"] for p in response.json()] == ["o-2"]
    assert len(client.get("/api/payments", headers=caller.user("admin")).json()) == 2


def test_list_payments_as_customer_is_403(client: TestClient, caller: Caller) -> None:
    assert client.get("/api/payments", headers=caller.user("customer")).status_code == 403
