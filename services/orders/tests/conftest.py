"""Fixtures for the orders tests: the real orders app, and its two neighbours faked in memory.

FakeNeighbours implements the internal API of inventory and payments (the common brief) just
enough for the saga, and refuses (401) any call that does not carry both the relayed user token
and orders' own service token, so every test here also proves the relay and orders' identity.
The system routes the reconciler uses (``/system/``) instead demand orders' service token alone,
as the bearer token, exactly like security.require_service.
Neighbours are not what these tests are about; the real chain is tested end to end in tests/e2e.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from orders_service.main import create_app
from relayshop_devtools.testing import RouteByHost, TestKey

INVENTORY_URL = "http://inventory.test"
PAYMENTS_URL = "http://payments.test"
VISA = "pm_card_visa"
DECLINED = "pm_card_chargeDeclined"


@dataclass
class Call:
    service: str
    method: str
    path: str
    user_sub: str
    caller: str


class FakeNeighbours:
    def __init__(self, key: TestKey) -> None:
        self.key = key
        self.products: dict[str, dict[str, Any]] = {
            "KB-001": {"name": "Mechanical keyboard", "price_cents": 8900, "stock": 100},
            "MS-002": {"name": "Wireless mouse", "price_cents": 2900, "stock": 200},
            "CB-005": {"name": "USB-C cable", "price_cents": 990, "stock": 500},
            "WC-006": {"name": "4K webcam", "price_cents": 12900, "stock": 0},
        }
        self.reservations: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.down: set[str] = set()  # "inventory" or "payments": every call fails to connect
        self.charge_then_timeout = False  # the charge happens, its answer never arrives
        self.charge_then_crash = False  # the charge happens, then payments dies (down from then)
        self.commit_refused = False  # the reservation expires before payments commits it
        self.reserve_delay = 0.0

    def calls_to(self, service: str, path_end: str = "") -> list[Call]:
        return [c for c in self.calls if c.service == service and c.path.endswith(path_end)]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        service = {"inventory.test": "inventory", "payments.test": "payments"}[request.url.host]
        system = "/system/" in request.url.path
        identity = self._system_identity(request) if system else self._identities(request)
        if identity is None:
            return _problem(401, "a user token and orders' service token are both required")
        self.calls.append(Call(service, request.method, request.url.path, *identity))
        if service in self.down:
            # Exactly what httpx-aiohttp raises for a refused connection: a ConnectTimeout.
            error = httpx.ConnectTimeout("Cannot connect to host", request=request)
            raise error from ConnectionRefusedError(111, "Connect call failed")
        if system:  # same behaviour as the relayed routes, without the ownership check
            request.url = request.url.copy_with(path=request.url.path.replace("/system", "", 1))
        if service == "inventory":
            return await self._inventory(request)
        return self._payments(request)

    def _system_identity(self, request: httpx.Request) -> tuple[str, str] | None:
        """("", "orders") for orders' own service token as the bearer, else None."""
        if "x-service-token" in request.headers:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            caller = jwt.decode(token, self.key.public_key, ["RS256"], audience="relayshop")
        except jwt.PyJWTError:
            return None
        if scheme != "Bearer" or caller["roles"] != ["service"] or caller["sub"] != "orders":
            return None
        return "", caller["client_id"]

    def _identities(self, request: httpx.Request) -> tuple[str, str] | None:
        """(user sub, calling service), checked like require_caller does, or None."""
        scheme, _, user_token = request.headers.get("authorization", "").partition(" ")
        service_token = request.headers.get("x-service-token", "")
        try:
            user = jwt.decode(user_token, self.key.public_key, ["RS256"], audience="relayshop")
            caller = jwt.decode(service_token, self.key.public_key, ["RS256"], audience="relayshop")
        except jwt.PyJWTError:
            return None
        if scheme != "Bearer" or "service" in user["roles"] or caller["roles"] != ["service"]:
            return None
        return user["sub"], caller["client_id"]

    async def _inventory(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/inventory/reservations" and request.method == "POST":
            await asyncio.sleep(self.reserve_delay)
            return self._reserve(httpx.Response(200, content=request.content).json())
        order_id = path.split("/")[4]
        if request.method == "GET":
            found = self.reservations.get(order_id)
            return httpx.Response(200, json=found) if found else _problem(404, "no reservation")
        if path.endswith("/release") and request.method == "POST":
            reservation = self.reservations.get(order_id)
            if reservation is None:
                return _problem(404, "no reservation")
            if reservation["status"] in ("HELD", "COMMITTED"):
                for item in reservation["items"]:
                    self.products[item["sku"]]["stock"] += item["quantity"]
                reservation["status"] = "RELEASED"
            return httpx.Response(200, json=reservation)
        return _problem(404, "no such route")

    def _reserve(self, body: dict[str, Any]) -> httpx.Response:
        if body["order_id"] in self.reservations:
            return httpx.Response(200, json=self.reservations[body["order_id"]])
        for item in body["items"]:
            if item["sku"] not in self.products:
                return _problem(404, f"Unknown sku {item['sku']}.")
        for item in body["items"]:
            if self.products[item["sku"]]["stock"] < item["quantity"]:
                return _problem(409, f"Not enough stock for {item['sku']}.")
        items = []
        for item in body["items"]:
            product = self.products[item["sku"]]
            product["stock"] -= item["quantity"]
            items.append({**item, "name": product["name"], "price_cents": product["price_cents"]})
        reservation = {
            "order_id": body["order_id"],
            "status": "HELD",
            "items": items,
            "total_cents": sum(i["price_cents"] * i["quantity"] for i in items),
            "expires_at": "2099-01-01T00:00:00Z",
        }
        self.reservations[body["order_id"]] = reservation
        return httpx.Response(201, json=reservation)

    def _payments(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/payments/charges" and request.method == "POST":
            response = self._charge(httpx.Response(200, content=request.content).json())
            if self.charge_then_timeout:
                raise httpx.ReadTimeout("the answer never came", request=request)
            if self.charge_then_crash:
                self.down.add("payments")
                # What httpx-aiohttp raises when the server dies mid-request.
                error = httpx.ConnectTimeout("Server disconnected", request=request)
                raise error from aiohttp.ServerDisconnectedError()
            return response
        order_id = path.split("/")[4]
        payment = self.payments.get(order_id)
        if payment is None:
            return _problem(404, "no payment for this order")
        if path.endswith("/refund") and request.method == "POST":
            if payment["status"] == "CAPTURED":
                payment["status"] = "REFUNDED"
            return httpx.Response(200, json=payment)
        return httpx.Response(200, json=payment)

    def _charge(self, body: dict[str, Any]) -> httpx.Response:
        if body["order_id"] in self.payments:
            return httpx.Response(200, json=self.payments[body["order_id"]])
        if body["payment_method"] not in (VISA, DECLINED):
            return _problem(422, "Unknown payment method.")
        payment = {
            "id": f"pay_{len(self.payments) + 1}",
            "order_id": body["order_id"],
            "amount_cents": body["amount_cents"],
            "payment_method": body["payment_method"],
            "status": "CAPTURED" if body["payment_method"] == VISA else "DECLINED",
            "created_at": "2025-01-01T00:00:00Z",
        }
        self.payments[body["order_id"]] = payment
        if payment["status"] == "DECLINED":
            return _problem(402, "Your card was declined.")
        reservation = self.reservations.get(body["order_id"])
        if reservation is None or reservation["status"] != "HELD" or self.commit_refused:
            payment["status"] = "VOIDED"
            return _problem(409, "The reservation could not be committed; payment voided.")
        reservation["status"] = "COMMITTED"
        return httpx.Response(201, json=payment)


def _problem(status: int, detail: str) -> httpx.Response:
    body = {"type": "about:blank", "title": "Error", "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@pytest.fixture
def neighbours(test_key: TestKey) -> FakeNeighbours:
    return FakeNeighbours(test_key)


@pytest.fixture
def client(
    service_env: dict[str, str],
    database_url: str | None,
    monkeypatch: pytest.MonkeyPatch,
    neighbours: FakeNeighbours,
) -> Iterator[TestClient]:
    monkeypatch.setenv("RELAYSHOP_INVENTORY_URL", INVENTORY_URL)
    monkeypatch.setenv("RELAYSHOP_PAYMENTS_URL", PAYMENTS_URL)
    # Only the calls to inventory and payments go to the fake: orders' own token and the JWKS
    # still come from fake_auth over real HTTP.
    fake = httpx.MockTransport(neighbours.handle)
    app = create_app(http_transport=RouteByHost({"inventory.test": fake, "payments.test": fake}))
    with TestClient(app) as test_client:
        deadline = time.monotonic() + 15
        while test_client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, test_client.get("/readyz").json()
            time.sleep(0.05)
        yield test_client


Headers = Callable[..., dict[str, str]]


@pytest.fixture
def auth(test_key: TestKey) -> Headers:
    """auth("alice", "customer") -> the Authorization header of a fresh token for that user."""

    def headers(sub: str, *roles: str, **claims: Any) -> dict[str, str]:
        token = test_key.mint(sub=sub, roles=list(roles or ("customer",)), **claims)
        return {"Authorization": f"Bearer {token}"}

    return headers
