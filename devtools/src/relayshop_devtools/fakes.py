"""Fakes of relayshop's services, for testing one service alone (never used by a running one).

FakeNeighbours  inventory and payments in memory, behind an httpx.MockTransport, just enough
                for orders' saga; refuses (401) any call without both the relayed user token and
                orders' own service token, like require_caller (orders' tests)
FakeInventory   answers payments' commit of a reservation with a chosen status (payments' tests)
FakeService     a real aiohttp server on a free port that records and echoes what it gets;
                Fakes holds one per service behind the gateway (the gateway's tests)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import jwt
from aiohttp import web
from relayshop_platform.relay import EXCHANGE_GRANT

from .devstack import free_port
from .testing import TestKey

# ---- orders' neighbours --------------------------------------------------------------------

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
        audience = f"urn:relayshop:{service}"  # each neighbour accepts only its own tokens
        identity = (
            self._system_identity(request, audience)
            if system
            else self._identities(request, audience)
        )
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

    def _system_identity(self, request: httpx.Request, audience: str) -> tuple[str, str] | None:
        """("", "orders") for orders' own service token as the bearer, else None."""
        if "x-service-token" in request.headers:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            caller = jwt.decode(token, self.key.public_key, ["RS256"], audience=audience)
        except jwt.PyJWTError:
            return None
        if scheme != "Bearer" or caller["roles"] != ["service"] or caller["sub"] != "orders":
            return None
        return "", caller["client_id"]

    def _identities(self, request: httpx.Request, audience: str) -> tuple[str, str] | None:
        """(user sub, calling service), checked like require_caller does, or None."""
        scheme, _, user_token = request.headers.get("authorization", "").partition(" ")
        service_token = request.headers.get("x-service-token", "")
        try:
            user = jwt.decode(user_token, self.key.public_key, ["RS256"], audience=audience)
            caller = jwt.decode(service_token, self.key.public_key, ["RS256"], audience=audience)
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


# ---- payments' inventory --------------------------------------------------------------------


@dataclass
class FakeInventory:
    """Answers every commit with ``status`` (or raises ``error``) and keeps the requests."""

    status: int = 200
    error: Exception | None = None
    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return httpx.Response(self.status, json={"status": "COMMITTED"})


# ---- the services behind the gateway ------------------------------------------------------

JWKS_PATH = "/auth/.well-known/jwks.json"


@dataclass
class Seen:
    method: str
    target: str  # the raw path and query, exactly as received
    headers: list[tuple[str, str]]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


@dataclass
class FakeService:
    name: str
    port: int = field(default_factory=free_port)
    requests: list[Seen] = field(default_factory=list)  # everything but /readyz and the JWKS
    canned: dict[str, tuple[int, Any]] = field(default_factory=dict)
    ready_status: int = 200
    delay: float = 0.0
    runner: web.AppRunner | None = None
    exchanger: TestKey | None = None  # set on the auth fake: it answers token exchanges
    exchanges: list[dict[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == "/readyz":
            return web.json_response({"status": "fake"}, status=self.ready_status)
        if request.path == JWKS_PATH and JWKS_PATH in self.canned:
            status, body = self.canned[JWKS_PATH]
            return web.json_response(body, status=status)
        if self.exchanger is not None and request.path == "/auth/token":
            form = dict(await request.post())
            if form.get("grant_type") == EXCHANGE_GRANT:
                return self.exchange({k: str(v) for k, v in form.items()})
        seen = Seen(
            method=request.method,
            target=request.raw_path,
            headers=[(k.decode().lower(), v.decode()) for k, v in request.raw_headers],
            body=await request.read(),
        )
        self.requests.append(seen)
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.path in self.canned:
            status, body = self.canned[request.path]
            return web.json_response(body, status=status)
        echo = {
            "service": self.name,
            "method": seen.method,
            "target": seen.target,
            "headers": seen.headers,
            "body": seen.body.decode("latin-1"),
        }
        return web.json_response(echo, headers={"X-Echoed-By": self.name})

    def exchange(self, form: dict[str, str]) -> web.Response:
        """The token auth would issue: the subject's user, for the requested audience alone."""
        assert self.exchanger is not None
        self.exchanges.append(form)
        if "exchange" in self.canned:
            status, body = self.canned["exchange"]
            return web.json_response(body, status=status)
        token = self.exchanger.exchanged(form["subject_token"], "gateway", form["audience"])
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "x"}
        )

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # handler_cancellation: a slow handler stops when the gateway gives up on it.
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class Fakes:
    auth: FakeService
    orders: FakeService
    payments: FakeService
    inventory: FakeService

    def all(self) -> list[FakeService]:
        return [self.auth, self.orders, self.payments, self.inventory]

    def request_count(self) -> int:
        return sum(len(service.requests) for service in self.all())
