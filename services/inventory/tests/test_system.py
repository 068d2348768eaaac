"""The system routes (orders' reconciler: orders' own token alone) and the reservations audit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from relayshop_devtools.testing import Caller

# Runs on SQLite and on PostgreSQL (the root conftest's database_url).
pytestmark = pytest.mark.databases

SYSTEM = "/api/inventory/system/reservations"
RESERVATIONS = "/api/inventory/reservations"


def service(caller: Caller, client_id: str = "orders") -> dict[str, str]:
    """A service's own token as the bearer: what relay.ServiceAuth sends."""
    return {"Authorization": f"Bearer {caller.key.service_token(client_id)}"}


def reserved(client: TestClient, caller: Caller, order_id: str = "o-1", quantity: int = 5) -> None:
    body = {"order_id": order_id, "items": [{"sku": "HD-004", "quantity": quantity}]}
    headers = caller.user("customer", via="orders")
    assert client.post(RESERVATIONS, json=body, headers=headers).status_code == 201


def stock(client: TestClient, caller: Caller) -> int:
    headers = caller.user("admin")
    return int(client.get("/api/inventory/products/HD-004", headers=headers).json()["stock"])


def test_system_release_gives_stock_back_once(client: TestClient, caller: Caller) -> None:
    reserved(client, caller)
    assert stock(client, caller) == 70

    first = client.post(f"{SYSTEM}/o-1/release", headers=service(caller))
    again = client.post(f"{SYSTEM}/o-1/release", headers=service(caller))

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["status"] == "RELEASED"
    assert stock(client, caller) == 75


def test_system_lookup_answers_status_and_404_for_unknown(
    client: TestClient, caller: Caller
) -> None:
    reserved(client, caller)

    found = client.get(f"{SYSTEM}/o-1", headers=service(caller))

    assert found.status_code == 200
    assert found.json()["status"] == "HELD"
    assert client.get(f"{SYSTEM}/nope", headers=service(caller)).status_code == 404
    assert client.post(f"{SYSTEM}/nope/release", headers=service(caller)).status_code == 404


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("nobody", 401),
        ("admin user token", 403),
        ("user token plus orders' service header", 403),
        ("payments' token", 403),
    ],
)
def test_system_routes_refuse_anyone_but_orders_alone(
    client: TestClient, caller: Caller, who: str, status: int
) -> None:
    reserved(client, caller)
    headers = {
        "nobody": {},
        "admin user token": caller.user("admin"),
        "user token plus orders' service header": caller.user("admin", via="orders"),
        "payments' token": service(caller, "payments"),
    }[who]

    assert client.get(f"{SYSTEM}/o-1", headers=headers).status_code == status
    assert client.post(f"{SYSTEM}/o-1/release", headers=headers).status_code == status
    assert stock(client, caller) == 70


def test_list_reservations_lets_admin_audit_by_status(client: TestClient, caller: Caller) -> None:
    reserved(client, caller, "o-1")
    reserved(client, caller, "o-2")
    client.post(f"{SYSTEM}/o-1/release", headers=service(caller))

    held = client.get(RESERVATIONS, params={"status": "HELD"}, headers=caller.user("admin"))

    assert held.status_code == 200
    assert [r["order_id"] for r in held.json()] == ["o-2"]
    everything = client.get(RESERVATIONS, headers=caller.user("support")).json()
    assert {r["order_id"] for r in everything} == {"o-1", "o-2"}


def test_list_reservations_as_customer_is_403(client: TestClient, caller: Caller) -> None:
    assert client.get(RESERVATIONS, headers=caller.user("customer")).status_code == 403
