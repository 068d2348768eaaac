"""Reservations: the internal operations of the order saga, their callers, and their states."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from inventory_service.main import create_app
from relayshop_devtools.testing import Caller, wait_ready

# Runs on SQLite and on PostgreSQL (the root conftest's database_url).
pytestmark = pytest.mark.databases

RESERVATIONS = "/api/inventory/reservations"
PRODUCTS = "/api/inventory/products"


def stock_of(client: TestClient, caller: Caller, sku: str) -> int:
    return int(client.get(f"{PRODUCTS}/{sku}", headers=caller.user("admin")).json()["stock"])


def reserve(
    client: TestClient, caller: Caller, order_id: str, items: list[dict[str, Any]], **who: Any
) -> Any:
    who.setdefault("via", "orders")
    headers = caller.user(*who.pop("roles", ("customer",)), **who)
    return client.post(RESERVATIONS, json={"order_id": order_id, "items": items}, headers=headers)


def act(
    client: TestClient, caller: Caller, order_id: str, action: str, via: str = "payments"
) -> Any:
    return client.post(
        f"{RESERVATIONS}/{order_id}/{action}", headers=caller.user("customer", via=via)
    )


# -- who may call ------------------------------------------------------------------------------
def test_reserve_with_user_token_only_is_401(client: TestClient, caller: Caller) -> None:
    body = {"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": 1}]}
    response = client.post(RESERVATIONS, json=body, headers=caller.user("customer"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert stock_of(client, caller, "KB-001") == 100


def test_reserve_via_wrong_service_is_403(client: TestClient, caller: Caller) -> None:
    response = reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], via="payments")
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert stock_of(client, caller, "KB-001") == 100


def test_reserve_as_support_is_403(client: TestClient, caller: Caller) -> None:
    response = reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], roles=["support"])
    assert response.status_code == 403


def test_reserve_with_service_token_as_user_is_403(client: TestClient, caller: Caller) -> None:
    token = caller.key.service_token("orders")
    headers = {"Authorization": f"Bearer {token}", "x-service-token": token}
    body = {"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": 1}]}
    assert client.post(RESERVATIONS, json=body, headers=headers).status_code == 403


def test_reserve_with_user_token_in_service_header_is_403(
    client: TestClient, caller: Caller
) -> None:
    headers = caller.user("customer")
    headers["x-service-token"] = caller.key.mint(roles=["admin"])
    body = {"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": 1}]}
    assert client.post(RESERVATIONS, json=body, headers=headers).status_code == 403


def test_commit_via_orders_is_403(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}])
    assert act(client, caller, "o-1", "commit", via="orders").status_code == 403


# -- reserve -------------------------------------------------------------------------------------
def test_reserve_in_stock_holds_it_and_is_201(client: TestClient, caller: Caller) -> None:
    items = [{"sku": "KB-001", "quantity": 2}, {"sku": "CB-005", "quantity": 3}]
    response = reserve(client, caller, "o-1", items)
    assert response.status_code == 201
    body = response.json()
    assert body["order_id"] == "o-1"
    assert body["status"] == "HELD"
    assert body["items"] == [
        {"sku": "KB-001", "name": "Mechanical keyboard", "quantity": 2, "price_cents": 8900},
        {"sku": "CB-005", "name": "USB-C cable", "quantity": 3, "price_cents": 990},
    ]
    assert body["total_cents"] == 2 * 8900 + 3 * 990
    assert body["expires_at"]
    assert stock_of(client, caller, "KB-001") == 98
    assert stock_of(client, caller, "CB-005") == 497


def test_reserve_same_order_id_twice_returns_existing_200(
    client: TestClient, caller: Caller
) -> None:
    first = reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 2}])
    again = reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 2}])
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert stock_of(client, caller, "KB-001") == 98


def test_reserve_repeat_after_stock_ran_out_returns_existing_200(
    client: TestClient, caller: Caller
) -> None:
    first = reserve(client, caller, "o-1", [{"sku": "MN-003", "quantity": 50}])
    assert first.status_code == 201 and stock_of(client, caller, "MN-003") == 0
    again = reserve(client, caller, "o-1", [{"sku": "MN-003", "quantity": 50}])
    assert again.status_code == 200  # the same reservation, not "not enough stock"
    assert again.json() == first.json()
    assert stock_of(client, caller, "MN-003") == 0


def test_reserve_repeat_gives_back_the_stock_it_took_on_the_way(
    client: TestClient, caller: Caller
) -> None:
    items = [{"sku": "KB-001", "quantity": 2}, {"sku": "CB-005", "quantity": 1}]
    assert reserve(client, caller, "o-1", items).status_code == 201
    for _ in range(3):
        assert reserve(client, caller, "o-1", items).status_code == 200
    assert stock_of(client, caller, "KB-001") == 98
    assert stock_of(client, caller, "CB-005") == 499


def test_reserve_someone_elses_order_id_is_409(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], sub="alice-id")
    response = reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], sub="bob-id")
    assert response.status_code == 409
    assert "items" not in response.json()


def test_reserve_short_item_is_409_and_reserves_nothing(client: TestClient, caller: Caller) -> None:
    items = [{"sku": "KB-001", "quantity": 5}, {"sku": "WC-006", "quantity": 1}]
    response = reserve(client, caller, "o-1", items)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "WC-006" in response.json()["detail"]
    assert stock_of(client, caller, "KB-001") == 100  # the line that fit was given back
    admin = caller.user("admin", via="orders")
    assert client.get(f"{RESERVATIONS}/o-1", headers=admin).status_code == 404


def test_reserve_unknown_sku_is_404(client: TestClient, caller: Caller) -> None:
    items = [{"sku": "KB-001", "quantity": 1}, {"sku": "XX-404", "quantity": 1}]
    response = reserve(client, caller, "o-1", items)
    assert response.status_code == 404
    assert "XX-404" in response.json()["detail"]
    assert stock_of(client, caller, "KB-001") == 100


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"order_id": "o-1", "items": []}, "at least 1"),
        ({"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": 0}]}, "greater than or equal"),
        ({"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": 1001}]}, "less than or equal"),
        ({"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": "2"}]}, "valid integer"),
        ({"order_id": "o-1", "items": [{"sku": "K" * 65, "quantity": 1}]}, "at most 64"),
        ({"order_id": "", "items": [{"sku": "KB-001", "quantity": 1}]}, "at least 1"),
        ({"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": 1}], "x": 1}, "Extra"),
        (
            {"order_id": "o-1", "items": [{"sku": "KB-001", "quantity": 1}] * 2},
            "only once",
        ),
        (
            {"order_id": "o-1", "items": [{"sku": f"S-{i}", "quantity": 1} for i in range(101)]},
            "at most 100",
        ),
    ],
)
def test_reserve_bad_body_is_422_with_clear_message(
    client: TestClient, caller: Caller, body: dict[str, Any], message: str
) -> None:
    headers = caller.user("customer", via="orders")
    response = client.post(RESERVATIONS, json=body, headers=headers)
    assert response.status_code == 422
    assert any(message in error["msg"] for error in response.json()["errors"])


# -- read ------------------------------------------------------------------------------------
def test_get_reservation_owner_and_admin_see_it(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], sub="alice-id")
    owner = caller.user("customer", sub="alice-id", via="payments")
    admin = caller.user("admin", sub="admin-id", via="orders")
    assert client.get(f"{RESERVATIONS}/o-1", headers=owner).json()["status"] == "HELD"
    assert client.get(f"{RESERVATIONS}/o-1", headers=admin).status_code == 200
    # A step of placing or cancelling an order: support, who changes nothing, has no part in it
    # (the audit of every reservation is GET /api/inventory/reservations).
    support = caller.user("support", sub="carol-id", via="orders")
    assert client.get(f"{RESERVATIONS}/o-1", headers=support).status_code == 403


def test_get_reservation_stranger_is_404(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], sub="alice-id")
    stranger = caller.user("customer", sub="bob-id", via="orders")
    assert client.get(f"{RESERVATIONS}/o-1", headers=stranger).status_code == 404
    unknown = caller.user("admin", via="orders")
    assert client.get(f"{RESERVATIONS}/o-unknown", headers=unknown).status_code == 404


# -- commit and release --------------------------------------------------------------------------
def test_commit_held_is_committed_and_idempotent(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}])
    first, again = act(client, caller, "o-1", "commit"), act(client, caller, "o-1", "commit")
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["status"] == again.json()["status"] == "COMMITTED"
    assert stock_of(client, caller, "KB-001") == 99


def test_commit_by_stranger_is_404_and_keeps_it_held(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], sub="alice-id")
    stranger = caller.user("customer", sub="bob-id", via="payments")
    assert client.post(f"{RESERVATIONS}/o-1/commit", headers=stranger).status_code == 404
    admin = caller.user("admin", via="orders")
    assert client.get(f"{RESERVATIONS}/o-1", headers=admin).json()["status"] == "HELD"


def test_commit_by_admin_commits_anyones(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], sub="alice-id")
    admin = caller.user("admin", sub="admin-id", via="payments")
    response = client.post(f"{RESERVATIONS}/o-1/commit", headers=admin)
    assert response.status_code == 200
    assert response.json()["status"] == "COMMITTED"
    assert response.json()["items"][0]["sku"] == "KB-001"


def test_commit_unknown_order_is_404(client: TestClient, caller: Caller) -> None:
    assert act(client, caller, "o-missing", "commit").status_code == 404


def test_commit_released_is_409(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}])
    assert act(client, caller, "o-1", "release", via="orders").status_code == 200
    response = act(client, caller, "o-1", "commit")
    assert response.status_code == 409
    assert "released" in response.json()["detail"]


def test_release_gives_stock_back_exactly_once(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 4}])
    assert stock_of(client, caller, "KB-001") == 96
    for _ in range(3):
        response = act(client, caller, "o-1", "release", via="orders")
        assert response.status_code == 200
        assert response.json()["status"] == "RELEASED"
    assert stock_of(client, caller, "KB-001") == 100


def test_release_committed_gives_stock_back(client: TestClient, caller: Caller) -> None:
    reserve(client, caller, "o-1", [{"sku": "MN-003", "quantity": 2}])
    act(client, caller, "o-1", "commit")
    response = act(client, caller, "o-1", "release", via="payments")
    assert response.json()["status"] == "RELEASED"
    assert stock_of(client, caller, "MN-003") == 50


def test_release_by_stranger_is_404_and_keeps_stock_held(
    client: TestClient, caller: Caller
) -> None:
    reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}], sub="alice-id")
    stranger = caller.user("customer", sub="bob-id", via="orders")
    assert client.post(f"{RESERVATIONS}/o-1/release", headers=stranger).status_code == 404
    assert stock_of(client, caller, "KB-001") == 99


# -- expiry --------------------------------------------------------------------------------------
def test_expired_reservation_is_released_by_sweeper_and_cannot_commit(
    service_env: dict[str, str], caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYSHOP_RESERVATION_TTL_SECONDS", "0.5")
    monkeypatch.setenv("RELAYSHOP_RESERVATION_SWEEP_SECONDS", "0.1")
    with TestClient(create_app()) as client:
        wait_ready(client)
        reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 10}])
        reserve(client, caller, "o-2", [{"sku": "KB-001", "quantity": 5}])
        act(client, caller, "o-2", "commit")  # committed in time: a sale, never expired
        assert stock_of(client, caller, "KB-001") == 85
        admin = caller.user("admin", via="orders")
        deadline = time.monotonic() + 10
        while client.get(f"{RESERVATIONS}/o-1", headers=admin).json()["status"] != "RELEASED":
            assert time.monotonic() < deadline, "the sweeper never released o-1"
            time.sleep(0.05)
        assert stock_of(client, caller, "KB-001") == 95
        assert client.get(f"{RESERVATIONS}/o-2", headers=admin).json()["status"] == "COMMITTED"
        assert act(client, caller, "o-1", "commit").status_code == 409


def test_commit_after_expiry_before_sweep_is_409(
    service_env: dict[str, str], caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYSHOP_RESERVATION_TTL_SECONDS", "0.2")
    monkeypatch.setenv("RELAYSHOP_RESERVATION_SWEEP_SECONDS", "3600")  # the sweeper never runs
    with TestClient(create_app()) as client:
        wait_ready(client)
        reserve(client, caller, "o-1", [{"sku": "KB-001", "quantity": 1}])
        admin = caller.user("admin", via="orders")
        expires_at = datetime.fromisoformat(
            client.get(f"{RESERVATIONS}/o-1", headers=admin).json()["expires_at"]
        )
        while datetime.now(UTC) <= expires_at:  # wait for a known instant, not a guessed delay
            time.sleep(0.02)
        response = act(client, caller, "o-1", "commit")
        assert response.status_code == 409, response.text
        assert "expired" in response.json()["detail"]
        assert stock_of(client, caller, "KB-001") == 99  # still held until the sweeper runs
