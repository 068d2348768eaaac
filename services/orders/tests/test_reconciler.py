"""The reconciler: every PENDING order whose lease ran out is finished from what the neighbours
say, with orders' own token on the system routes, and only ever by one driver at a time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from orders_service import leases
from orders_service.config import OrdersSettings
from orders_service.models import Order, utcnow
from orders_service.reconciler import reconcile_once
from pydantic import ValidationError
from relayshop_devtools.fakes import VISA, FakeNeighbours

# Runs on SQLite and on PostgreSQL (the root conftest's database_url).
pytestmark = pytest.mark.databases

ITEMS = [{"sku": "KB-001", "quantity": 2}]


def pending_order(client: TestClient, *, lease_over: bool = True) -> str:
    """An order as a crash leaves it: PENDING, its request gone (lease over) or still running."""
    order_id = uuid.uuid4().hex
    until = utcnow() + timedelta(seconds=-1 if lease_over else 60)

    async def insert() -> None:
        async with client.app.state.sessionmaker() as session:
            session.add(
                Order(
                    id=order_id,
                    owner_sub="alice",
                    items=ITEMS,
                    payment_method=VISA,
                    lease_id="crashed",
                    lease_until=until,
                )
            )
            await session.commit()

    client.portal.call(insert)
    return order_id


def reconcile(client: TestClient) -> int:
    return client.portal.call(reconcile_once, client.app)


def order_of(client: TestClient, auth, order_id: str) -> dict:
    return client.get(f"/api/orders/{order_id}", headers=auth("admin", "admin")).json()


def reserve(neighbours: FakeNeighbours, order_id: str) -> None:
    assert neighbours._reserve({"order_id": order_id, "items": ITEMS}).status_code == 201


def charge(neighbours: FakeNeighbours, order_id: str) -> None:
    body = {"order_id": order_id, "amount_cents": 2 * 8900, "payment_method": VISA}
    assert neighbours._charge(body).status_code == 201  # captures, then commits the stock


def test_reconcile_confirms_order_captured_and_committed(
    client: TestClient, neighbours: FakeNeighbours, auth
) -> None:
    # orders died after payments captured and committed, before it stored CONFIRMED.
    order_id = pending_order(client)
    reserve(neighbours, order_id)
    charge(neighbours, order_id)

    assert reconcile(client) == 1

    order = order_of(client, auth, order_id)
    assert order["status"] == "CONFIRMED"
    assert order["payment_id"] == neighbours.payments[order_id]["id"]
    assert order["total_cents"] == 2 * 8900
    assert neighbours.payments[order_id]["status"] == "CAPTURED"
    assert neighbours.products["KB-001"]["stock"] == 98


def test_reconcile_releases_order_killed_between_reserve_and_charge(
    client: TestClient, neighbours: FakeNeighbours, auth
) -> None:
    order_id = pending_order(client)
    reserve(neighbours, order_id)

    assert reconcile(client) == 1

    assert order_of(client, auth, order_id)["status"] == "FAILED"
    assert neighbours.reservations[order_id]["status"] == "RELEASED"
    assert neighbours.products["KB-001"]["stock"] == 100
    assert order_id not in neighbours.payments


def test_reconcile_refunds_capture_whose_commit_never_happened(
    client: TestClient, neighbours: FakeNeighbours, auth
) -> None:
    # payments captured, then died before committing the stock (the reservation is still HELD).
    order_id = pending_order(client)
    reserve(neighbours, order_id)
    neighbours.commit_refused = True
    charge_body = {"order_id": order_id, "amount_cents": 2 * 8900, "payment_method": VISA}
    neighbours._charge(charge_body)
    neighbours.payments[order_id]["status"] = "CAPTURED"  # the void never happened either

    assert reconcile(client) == 1

    assert order_of(client, auth, order_id)["status"] == "FAILED"
    assert neighbours.payments[order_id]["status"] == "REFUNDED"
    assert neighbours.reservations[order_id]["status"] == "RELEASED"
    assert neighbours.products["KB-001"]["stock"] == 100


def test_reconcile_declined_payment_ends_payment_failed(
    client: TestClient, neighbours: FakeNeighbours, auth
) -> None:
    order_id = pending_order(client)
    reserve(neighbours, order_id)
    body = {"order_id": order_id, "amount_cents": 100, "payment_method": "pm_card_chargeDeclined"}
    neighbours._charge(body)

    reconcile(client)

    assert order_of(client, auth, order_id)["status"] == "PAYMENT_FAILED"
    assert neighbours.products["KB-001"]["stock"] == 100


def test_reconcile_keeps_order_pending_while_a_neighbour_is_down(
    client: TestClient, neighbours: FakeNeighbours, auth
) -> None:
    order_id = pending_order(client)
    reserve(neighbours, order_id)
    neighbours.down.add("inventory")

    assert reconcile(client) == 0
    assert order_of(client, auth, order_id)["status"] == "PENDING"

    neighbours.down.clear()  # back: the next round finishes it (the failed round let go)
    assert reconcile(client) == 1
    assert order_of(client, auth, order_id)["status"] == "FAILED"
    assert neighbours.products["KB-001"]["stock"] == 100


def test_reconcile_leaves_order_whose_request_still_runs(
    client: TestClient, neighbours: FakeNeighbours, auth
) -> None:
    order_id = pending_order(client, lease_over=False)

    assert reconcile(client) == 0

    assert order_of(client, auth, order_id)["status"] == "PENDING"
    assert neighbours.calls == []


def test_reconcile_calls_system_routes_with_orders_token_alone(
    client: TestClient, neighbours: FakeNeighbours
) -> None:
    order_id = pending_order(client)
    reserve(neighbours, order_id)

    reconcile(client)

    assert neighbours.calls, "the reconciler called nobody"
    for call in neighbours.calls:
        assert "/system/" in call.path
        assert (call.user_sub, call.caller) == ("", "orders")


def test_place_order_left_pending_is_finished_by_reconciler(
    client: TestClient, neighbours: FakeNeighbours, auth
) -> None:
    neighbours.charge_then_crash = True  # captured and committed, then payments died
    response = client.post(
        "/api/orders", json={"items": ITEMS, "payment_method": VISA}, headers=auth("alice")
    )
    order_id = response.json()["order_id"]
    assert response.json()["order_status"] == "PENDING"

    neighbours.down.clear()  # payments restarted
    assert reconcile(client) == 1

    assert order_of(client, auth, order_id)["status"] == "FAILED"
    assert neighbours.payments[order_id]["status"] == "REFUNDED"
    assert neighbours.products["KB-001"]["stock"] == 100


def test_take_lease_lets_one_of_two_replicas_win(client: TestClient) -> None:
    order_id = pending_order(client)

    async def race() -> list[object]:
        async def take() -> object:
            async with client.app.state.sessionmaker() as session:
                return await leases.take(session, order_id, 30)

        return list(await asyncio.gather(take(), take(), take()))

    results = client.portal.call(race)

    assert sum(result is not None for result in results) == 1


def test_settings_refuse_fault_injection_in_production() -> None:
    with pytest.raises(ValidationError, match="production refuses"):
        OrdersSettings(
            env="production",
            client_secret="a-long-production-secret",
            fault_delay_before_charge_seconds=5,
        )
