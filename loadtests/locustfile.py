"""Realistic relayshop traffic for Locust: shoppers, one warehouse clerk, and a few intruders.

    make load                                            # headless, thresholds, reports in var/load
    .venv/bin/locust -f loadtests/locustfile.py          # the web UI at http://localhost:8089

Who is who (all through the gateway, the only public entry point):
- Shopper (most users): signs in (alice or bob), browses, places orders (about one in twenty
  with pm_card_chargeDeclined, so 402), reads its orders, refreshes its access token before it
  expires (``expires_in`` of the token answer), and now and then logs out and signs in again.
- Warehouse (exactly one, walt): watches stock and restocks what runs low, so the shoppers'
  orders keep succeeding. Products that started at 0 (the demo's sold-out webcam) stay at 0.
- Intruder (a small share): bad, tampered, expired and revoked tokens, a customer reaching for
  warehouse and internal operations, and other users' order and payment ids. The expected refusal
  (401, 403, 404) is a success; anything else, a 200 above all, is a failure.
Every request says which statuses it expects; any other status counts as a failure.

The intruders never send a wrong password: auth throttles failed sign-ins per username and per
client address (10 and 50 in 300 s, OWASP), and all of this traffic comes from one address, so a
few wrong passwords would lock the demo accounts for everybody for five minutes.

Settings (environment):
    LOCUST_HOST or RELAYSHOP_GATEWAY_URL   the gateway (default http://127.0.0.1:8000)
    LOCUST_USERS, LOCUST_SPAWN_RATE, LOCUST_RUN_TIME   Locust's own (tools/load.py sets them)
    LOAD_SHOPPERS      accounts the shoppers use, "user:password,..." (alice and bob)
    LOAD_WAREHOUSE     the warehouse account, "user:password" (walt)
    LOAD_INTRUDER      the account an intruder signs in with to attack others' ids (bob)
    LOAD_RESTOCK_BELOW, LOAD_RESTOCK_TO   walt's rule: below this stock, set it to that (100, 5000)
"""

from __future__ import annotations

import base64
import json
import os
import random
import threading
import time
from typing import Any
from urllib.parse import urlencode

from locust import FastHttpUser, between, task
from locust.exception import StopUser

HOST = os.environ.get("LOCUST_HOST") or os.environ.get(
    "RELAYSHOP_GATEWAY_URL", "http://127.0.0.1:8000"
)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _accounts(value: str) -> list[tuple[str, str]]:
    pairs = [item.split(":", 1) for item in value.split(",") if item.strip()]
    return [(name.strip(), password) for name, password in pairs]


SHOPPERS = _accounts(os.environ.get("LOAD_SHOPPERS", "alice:alice-password,bob:bob-password"))
WAREHOUSE = _accounts(os.environ.get("LOAD_WAREHOUSE", "walt:walt-password"))[0]
INTRUDER = _accounts(os.environ.get("LOAD_INTRUDER", "bob:bob-password"))[0]
RESTOCK_BELOW = int(os.environ.get("LOAD_RESTOCK_BELOW", "100"))
RESTOCK_TO = int(os.environ.get("LOAD_RESTOCK_TO", "5000"))
# Refresh when less than this share of the token's lifetime is left (and at least 5 s).
REFRESH_AT = 0.2


class Placed:
    """Orders the shoppers placed, by owner: the intruders try to read them as someone else."""

    def __init__(self, keep: int = 500) -> None:
        self._lock = threading.Lock()
        self._keep = keep
        self.orders: list[tuple[str, str, str | None]] = []  # (owner, order id, payment id)

    def add(self, owner: str, order_id: str, payment_id: str | None) -> None:
        with self._lock:
            self.orders.append((owner, order_id, payment_id))
            del self.orders[: -self._keep]

    def not_owned_by(self, username: str) -> tuple[str, str, str | None] | None:
        with self._lock:
            others = [order for order in self.orders if order[0] != username]
        return random.choice(others) if others else None


PLACED = Placed()


class SignedIn(FastHttpUser):
    """A user with an access token it keeps fresh (refresh grant) and can give up (logout)."""

    abstract = True
    host = HOST
    account: tuple[str, str]

    access_token = ""
    refresh_token = ""
    refresh_after = 0.0
    expires_at = 0.0

    def sign_in(self) -> None:
        username, password = self.account
        form = {"grant_type": "password", "username": username, "password": password}
        if not self._token_request(form, "/auth/token (password)"):
            # Never retry a refused password: a wrong one in LOAD_SHOPPERS, retried in a loop,
            # would lock the account (and this address) out for everyone. The failure is counted.
            raise StopUser()

    def _token_request(self, form: dict[str, str], name: str) -> bool:
        with self.client.post(
            "/auth/token", data=urlencode(form), headers=FORM, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"token: {response.status_code} {response.text[:200]}")
                return False
            answer = response.json()
            self.access_token = answer["access_token"]
            self.refresh_token = answer.get("refresh_token", "")
            lifetime = float(answer["expires_in"])
            self.expires_at = time.monotonic() + lifetime
            self.refresh_after = time.monotonic() + lifetime - max(5.0, lifetime * REFRESH_AT)
            response.success()
            return True

    def fresh_token(self) -> str:
        """The access token, refreshed first when it is close to expiring."""
        if time.monotonic() >= self.refresh_after:
            form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
            if not self.refresh_token or not self._token_request(form, "/auth/token (refresh)"):
                self.sign_in()
        return self.access_token

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.fresh_token()}"}

    def call(
        self,
        method: str,
        path: str,
        expect: tuple[int, ...],
        *,
        name: str | None = None,
        token: str | None = None,
        json_body: Any = None,
    ) -> tuple[int, Any]:
        """One request that must answer one of ``expect``; returns (status, parsed JSON or None)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else self.bearer()
        with self.client.request(
            method, path, headers=headers, json=json_body, name=name or path, catch_response=True
        ) as response:
            status = response.status_code
            if status not in expect:
                response.failure(f"expected {expect}, got {status}: {response.text[:200]}")
                return status, None
            response.success()
            try:
                return status, response.json() if response.text else None
            except ValueError:
                return status, None


class Shopper(SignedIn):
    weight = 8
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.account = random.choice(SHOPPERS)
        self.products: list[dict[str, Any]] = []
        self.my_orders: list[str] = []
        self.sign_in()

    @task(6)
    def browse(self) -> None:
        _, products = self.call("GET", "/api/inventory/products", (200,))
        if isinstance(products, list):
            self.products = products

    @task(4)
    def view_product(self) -> None:
        if self.products:
            sku = random.choice(self.products)["sku"]
            self.call(
                "GET",
                f"/api/inventory/products/{sku}",
                (200,),
                name="/api/inventory/products/[sku]",
            )

    @task(4)
    def place_order(self) -> None:
        if not self.products:
            return self.browse()
        product = random.choice(self.products)
        quantity = random.randint(1, 3)
        declined = random.random() < 0.05
        method = "pm_card_chargeDeclined" if declined else "pm_card_visa"
        body = {"items": [{"sku": product["sku"], "quantity": quantity}], "payment_method": method}
        with self.client.post(
            "/api/orders",
            json=body,
            headers=self.bearer(),
            name="/api/orders (declined)" if declined else "/api/orders",
            catch_response=True,
        ) as response:
            status = response.status_code
            answer = _json(response.text)
            if status == 201 and not declined:
                self.my_orders.append(answer["id"])
                PLACED.add(self.account[0], answer["id"], answer.get("payment_id"))
                response.success()
            elif status == 402 and declined:
                response.success()
            elif status == 409 and self.really_out_of_stock(product["sku"], quantity):
                response.success()  # a refusal the shop owes the customer, not an error
            else:
                response.failure(f"{method}: {status} {response.text[:200]}")

    def really_out_of_stock(self, sku: str, quantity: int) -> bool:
        """A 409 is right only if the stock is really short now (walt may have restocked since,
        so the check runs right away; the demo's sold-out product is the usual case)."""
        _, product = self.call(
            "GET", f"/api/inventory/products/{sku}", (200,), name="/api/inventory/products/[sku]"
        )
        return isinstance(product, dict) and product["stock"] < quantity

    @task(4)
    def list_orders(self) -> None:
        self.call("GET", "/api/orders?limit=20", (200,), name="/api/orders?limit=20")

    @task(6)
    def read_order(self) -> None:
        if self.my_orders:
            order_id = random.choice(self.my_orders[-50:])
            self.call("GET", f"/api/orders/{order_id}", (200,), name="/api/orders/[id]")

    @task(1)
    def log_out_and_back_in(self) -> None:
        if random.random() < 0.2:  # about one task in a hundred: sign-in (argon2) is costly
            self.call("POST", "/auth/logout", (204,), token=self.fresh_token())
            self.access_token = self.refresh_token = ""
            self.sign_in()


class Warehouse(SignedIn):
    fixed_count = 1
    wait_time = between(1.0, 2.0)

    def on_start(self) -> None:
        self.account = WAREHOUSE
        self.sold_out_on_purpose: set[str] | None = None
        self.sign_in()

    @task
    def restock(self) -> None:
        _, products = self.call("GET", "/api/inventory/products", (200,))
        if not isinstance(products, list):
            return
        if self.sold_out_on_purpose is None:
            self.sold_out_on_purpose = {p["sku"] for p in products if p["stock"] == 0}
        for product in products:
            sku = product["sku"]
            if product["stock"] < RESTOCK_BELOW and sku not in self.sold_out_on_purpose:
                self.call(
                    "PUT",
                    f"/api/inventory/products/{sku}/stock",
                    (200,),
                    name="/api/inventory/products/[sku]/stock",
                    json_body={"stock": RESTOCK_TO},
                )


class Intruder(SignedIn):
    """Hostile but polite to the throttle: never a wrong password (see the module docstring)."""

    weight = 1
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.account = INTRUDER
        # A token it revoked itself (logout), and the first token of its working session, kept
        # after the session moved on to refreshed ones, until it expires.
        self.sign_in()
        self.revoked = self.access_token
        self.call("POST", "/auth/logout", (204,), token=self.revoked)
        self.sign_in()
        self.kept, self.kept_expires_at = self.access_token, self.expires_at

    def refused(self, path: str, token: str | None, name: str, expect: int = 401) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        with self.client.get(path, headers=headers, name=name, catch_response=True) as response:
            if response.status_code == expect:
                response.success()
            else:
                response.failure(f"{name}: expected {expect}, got {response.status_code}")

    @task
    def no_token(self) -> None:
        self.refused("/api/orders", None, "hostile: no token")

    @task
    def garbage_token(self) -> None:
        self.refused("/api/orders", "not.a.jwt", "hostile: garbage token")

    @task
    def tampered_token(self) -> None:
        # Same header and signature, payload rewritten to claim the admin role.
        header, payload, signature = self.fresh_token().split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["roles"] = ["admin"]
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        self.refused("/api/orders", f"{header}.{forged}.{signature}", "hostile: tampered token")

    @task
    def expired_token(self) -> None:
        # A real token past its exp (plus the verifiers' leeway); until then, one whose exp was
        # pushed into the past by hand, which fails on its signature instead.
        if time.monotonic() > self.kept_expires_at + 10:
            self.refused("/api/orders", self.kept, "hostile: expired token")
            return
        header, payload, signature = self.kept.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["exp"] = int(time.time()) - 3600
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        self.refused("/api/orders", f"{header}.{forged}.{signature}", "hostile: expired token")

    @task
    def revoked_token(self) -> None:
        self.refused("/api/orders", self.revoked, "hostile: revoked token")

    @task
    def someone_elses_order(self) -> None:
        victim = PLACED.not_owned_by(self.account[0])
        if victim is None:
            return
        _, order_id, payment_id = victim
        token = self.fresh_token()
        self.refused(f"/api/orders/{order_id}", token, "hostile: another's order", 404)
        if payment_id:
            self.refused(f"/api/payments/{payment_id}", token, "hostile: another's payment", 404)

    @task
    def forbidden_operations(self) -> None:
        # A customer restocking, and a customer calling an internal operation with its token.
        self.call(
            "PUT",
            "/api/inventory/products/KB-001/stock",
            (403,),
            name="hostile: customer restocks",
            json_body={"stock": 1},
        )
        self.call(
            "POST",
            "/api/inventory/reservations",
            (403,),
            name="hostile: customer reserves (internal)",
            json_body={"order_id": "x", "items": [{"sku": "KB-001", "quantity": 1}]},
        )


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        return None
