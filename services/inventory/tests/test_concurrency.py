"""Stock under a crowd: many reserves at once, on SQLite and (when reachable) PostgreSQL.

The app runs in this test's event loop (relayshop_devtools.testing.running: requests through
httpx.ASGITransport), so asyncio.gather really interleaves the requests inside the service.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from inventory_service.main import create_app
from relayshop_devtools.testing import Caller, running

# Each test runs on SQLite and on PostgreSQL (the root conftest's database_url).
pytestmark = pytest.mark.databases

PRODUCTS = "/api/inventory/products"
RESERVATIONS = "/api/inventory/reservations"


async def test_reserve_concurrently_never_oversells(
    database_url: str | None, caller: Caller
) -> None:
    async with running(create_app()) as client:
        admin = caller.user("admin")
        put = await client.put(f"{PRODUCTS}/KB-001/stock", json={"stock": 20}, headers=admin)
        assert put.status_code == 200

        async def one(index: int) -> int:
            body = {"order_id": f"o-{index}", "items": [{"sku": "KB-001", "quantity": 1}]}
            headers = caller.user("customer", sub=f"user-{index}", via="orders")
            return (await client.post(RESERVATIONS, json=body, headers=headers)).status_code

        statuses = Counter(await asyncio.gather(*(one(i) for i in range(50))))
        assert statuses == {201: 20, 409: 30}
        product = (await client.get(f"{PRODUCTS}/KB-001", headers=admin)).json()
        assert product["stock"] == 0
        reader = caller.user("admin", via="orders")
        held = [
            (await client.get(f"{RESERVATIONS}/o-{i}", headers=reader)).json().get("status")
            for i in range(50)
        ]
        assert held.count("HELD") == 20


async def test_reserve_same_order_concurrently_reserves_once(
    database_url: str | None, caller: Caller
) -> None:
    async with running(create_app()) as client:
        headers = caller.user("customer", via="orders")
        body = {"order_id": "o-dup", "items": [{"sku": "MN-003", "quantity": 3}]}
        responses = await asyncio.gather(
            *(client.post(RESERVATIONS, json=body, headers=headers) for _ in range(20))
        )
        assert Counter(r.status_code for r in responses) == {201: 1, 200: 19}
        assert len({r.json()["expires_at"] for r in responses}) == 1
        product = (await client.get(f"{PRODUCTS}/MN-003", headers=headers)).json()
        assert product["stock"] == 50 - 3


async def test_release_concurrently_gives_stock_back_once(
    database_url: str | None, caller: Caller
) -> None:
    async with running(create_app()) as client:
        headers = caller.user("customer", via="orders")
        body = {"order_id": "o-1", "items": [{"sku": "HD-004", "quantity": 5}]}
        assert (await client.post(RESERVATIONS, json=body, headers=headers)).status_code == 201
        responses = await asyncio.gather(
            *(client.post(f"{RESERVATIONS}/o-1/release", headers=headers) for _ in range(20))
        )
        assert {r.json()["status"] for r in responses} == {"RELEASED"}
        product = (await client.get(f"{PRODUCTS}/HD-004", headers=headers)).json()
        assert product["stock"] == 75
