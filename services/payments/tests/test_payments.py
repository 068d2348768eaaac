"""Reading and refunding payments: ownership (a stranger gets 404), roles, and idempotency."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from relayshop_devtools.fakes import FakeInventory
from relayshop_devtools.testing import Caller, TestKey

CHARGES = "/api/payments/charges"


def charged(
    client: TestClient, caller: Caller, order_id: str = "o-1", sub: str = "alice-id"
) -> str:
    """A CAPTURED payment of ``sub``; returns its id."""
    body = {"order_id": order_id, "amount_cents": 2900, "payment_method": "pm_card_visa"}
    response = client.post(
        CHARGES, json=body, headers=caller.user("customer", sub=sub, via="orders")
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def failed(client: TestClient, caller: Caller, method: str, order_id: str = "o-1") -> str:
    body = {"order_id": order_id, "amount_cents": 2900, "payment_method": method}
    response = client.post(CHARGES, json=body, headers=caller.user("customer", via="orders"))
    return str(response.json()["payment_id"])


# -- GET /api/payments/{id} ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("roles", "sub"),
    [(["customer"], "alice-id"), (["support"], "carol-id"), (["admin"], "admin-id")],
)
def test_get_payment_owner_support_admin_see_it(
    client: TestClient, caller: Caller, roles: list[str], sub: str
) -> None:
    payment_id = charged(client, caller, sub="alice-id")
    response = client.get(f"/api/payments/{payment_id}", headers=caller.user(*roles, sub=sub))
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["order_id"], body["status"]) == (payment_id, "o-1", "CAPTURED")
    assert body["amount_cents"] == 2900


@pytest.mark.parametrize("roles", [["customer"], ["warehouse"]])
def test_get_payment_stranger_is_404_like_unknown(
    client: TestClient, caller: Caller, roles: list[str]
) -> None:
    payment_id = charged(client, caller, sub="alice-id")
    stranger = caller.user(*roles, sub="bob-id")
    response = client.get(f"/api/payments/{payment_id}", headers=stranger)
    unknown = client.get("/api/payments/pay_unknown", headers=stranger)
    assert response.status_code == unknown.status_code == 404
    assert "2900" not in response.text


def test_get_payment_without_token_is_401(client: TestClient) -> None:
    response = client.get("/api/payments/pay_x")
    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]


def test_get_payment_tampered_token_is_401(client: TestClient, test_key: TestKey) -> None:
    header, _, signature = test_key.mint(roles=["customer"]).split(".")
    other_payload = test_key.mint(roles=["admin"]).split(".")[1]
    forged = f"{header}.{other_payload}.{signature}"  # admin claims, a customer's signature
    response = client.get("/api/payments/pay_x", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_get_payment_expired_token_is_401(client: TestClient, test_key: TestKey) -> None:
    token = test_key.mint(roles=["admin"], iat=1_000_000, exp=1_000_300)
    response = client.get("/api/payments/pay_x", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


# -- POST /api/payments/{id}/refund (admin) -------------------------------------------------------
def test_refund_as_admin_refunds_once_idempotently(
    client: TestClient, caller: Caller, app: FastAPI
) -> None:
    payment_id = charged(client, caller)
    admin = caller.user("admin", sub="admin-id")
    first = client.post(f"/api/payments/{payment_id}/refund", headers=admin)
    again = client.post(f"/api/payments/{payment_id}/refund", headers=admin)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == again.json()["status"] == "REFUNDED"
    assert len(app.state.provider.refunded) == 1


@pytest.mark.parametrize("role", ["customer", "support", "warehouse"])
def test_refund_without_admin_is_403(client: TestClient, caller: Caller, role: str) -> None:
    payment_id = charged(client, caller)
    response = client.post(f"/api/payments/{payment_id}/refund", headers=caller.user(role))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    owner = caller.user("customer")
    assert client.get(f"/api/payments/{payment_id}", headers=owner).json()["status"] == "CAPTURED"


def test_refund_declined_is_409(client: TestClient, caller: Caller) -> None:
    payment_id = failed(client, caller, "pm_card_chargeDeclined")
    response = client.post(f"/api/payments/{payment_id}/refund", headers=caller.user("admin"))
    assert response.status_code == 409
    assert response.json()["payment_status"] == "DECLINED"


def test_refund_voided_is_409(client: TestClient, caller: Caller, inventory: FakeInventory) -> None:
    inventory.status = 409
    payment_id = failed(client, caller, "pm_card_visa")
    response = client.post(f"/api/payments/{payment_id}/refund", headers=caller.user("admin"))
    assert response.status_code == 409
    assert response.json()["payment_status"] == "VOIDED"


def test_refund_unknown_is_404(client: TestClient, caller: Caller) -> None:
    response = client.post("/api/payments/pay_nope/refund", headers=caller.user("admin"))
    assert response.status_code == 404


# -- the internal by-order routes ---------------------------------------------------------------
def test_get_by_order_owner_via_orders_sees_it(client: TestClient, caller: Caller) -> None:
    payment_id = charged(client, caller)
    owner = caller.user("customer", via="orders")
    response = client.get("/api/payments/by-order/o-1", headers=owner)
    assert response.status_code == 200
    assert response.json()["id"] == payment_id


def test_get_by_order_user_token_only_is_401(client: TestClient, caller: Caller) -> None:
    charged(client, caller)
    response = client.get("/api/payments/by-order/o-1", headers=caller.user("admin"))
    assert response.status_code == 401


def test_get_by_order_via_inventory_is_403(client: TestClient, caller: Caller) -> None:
    charged(client, caller)
    headers = caller.user("admin", via="inventory")
    assert client.get("/api/payments/by-order/o-1", headers=headers).status_code == 403


def test_get_by_order_stranger_is_404(client: TestClient, caller: Caller) -> None:
    charged(client, caller, sub="alice-id")
    stranger = caller.user("customer", sub="bob-id", via="orders")
    assert client.get("/api/payments/by-order/o-1", headers=stranger).status_code == 404


def test_refund_by_order_owner_via_orders_refunds_idempotently(
    client: TestClient, caller: Caller
) -> None:
    charged(client, caller)
    owner = caller.user("customer", via="orders")
    responses = [client.post("/api/payments/by-order/o-1/refund", headers=owner) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert {r.json()["status"] for r in responses} == {"REFUNDED"}


def test_refund_by_order_stranger_is_404_and_refunds_nothing(
    client: TestClient, caller: Caller, app: FastAPI
) -> None:
    charged(client, caller, sub="alice-id")
    stranger = caller.user("customer", sub="bob-id", via="orders")
    response = client.post("/api/payments/by-order/o-1/refund", headers=stranger)
    assert response.status_code == 404
    assert app.state.provider.refunded == set()


def test_refund_by_order_as_support_is_403(client: TestClient, caller: Caller) -> None:
    charged(client, caller)
    support = caller.user("support", via="orders")
    response = client.post("/api/payments/by-order/o-1/refund", headers=support)
    assert response.status_code == 403


def test_refund_by_order_unknown_is_404(client: TestClient, caller: Caller) -> None:
    admin = caller.user("admin", via="orders")
    response = client.post("/api/payments/by-order/o-none/refund", headers=admin)
    assert response.status_code == 404
