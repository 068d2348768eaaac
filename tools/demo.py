"""A scripted walk-through for a live demo, against a running stack (`make run`, then `make demo`).

    1. alice signs in and places an order; its trace is printed as a tree: every hop, and what
       each hop decided about her token
    2. refusals: bob reading alice's order (404: orders refuses, not_owner), alice setting stock
       (403: the gateway refuses at the edge, missing role)
    3. alice logs out; her token is refused (401, revoked) by the gateway, and so is the token
       each of orders, payments and inventory receives for her, each called directly with its own
       (accepted just before the logout, so the 401 is the revocation and nothing else)

Which token a service receives depends on the stack's token mode, read from alice's token itself:
in exchange mode (the default) it is addressed to the gateway alone, and each service gets it
exchanged for it at auth (RFC 8693), as the gateway would (the gateway's client secret,
RELAYSHOP_GATEWAY_CLIENT_SECRET, default the demo one); the logout revokes her token and, with it,
every token derived from it. In relay mode her token names every service and is sent as it is.

Addresses: RELAYSHOP_GATEWAY_URL (default http://127.0.0.1:8000), RELAYSHOP_AUTH_URL,
RELAYSHOP_ORDERS_URL, RELAYSHOP_PAYMENTS_URL, RELAYSHOP_INVENTORY_URL; span files under
RELAYSHOP_DATA_DIR (default var). Takes no options. Exits 1 as soon as a step does not behave as
announced. No token is ever printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from relayshop_devtools.repository import load_tool
from relayshop_devtools.run import neighbour_urls
from relayshop_platform.catalogue import GATEWAY, audience_of, service

# Loaded by path: the name "trace" would find the standard library's trace module first.
trace_tool = load_tool("trace")

EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 section 2.1
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
ORDER = {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": "pm_card_visa"}
SAGA_SERVICES = {"gateway", "orders", "inventory", "payments"}
BOLD, PLAIN = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")


class StepFailed(Exception):
    pass


class Demo:
    def __init__(self) -> None:
        env = os.environ.get
        self.gateway = env("RELAYSHOP_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/")
        urls = neighbour_urls(os.environ)  # as `make run` tells the services (ports moved too)
        self.services = {
            name: urls[service(name).url_variable].rstrip("/")
            for name in ("auth", "orders", "payments", "inventory")
        }
        self.gateway_secret = env("RELAYSHOP_GATEWAY_CLIENT_SECRET", "gateway-demo-secret")
        self._received: dict[tuple[str, str], str] = {}
        self.traces = Path(env("RELAYSHOP_DATA_DIR", "var")) / "traces"
        self.http = httpx.Client(timeout=15.0)

    # -- helpers ---------------------------------------------------------------------------
    def step(self, title: str) -> None:
        print(f"\n{BOLD}== {title}{PLAIN}")

    def expect(self, response: httpx.Response, status: int, what: str) -> httpx.Response:
        mark = "ok " if response.status_code == status else "FAIL"
        print(f"  [{mark}] {what}: {response.status_code} (expected {status})")
        if response.status_code != status:
            raise StepFailed(f"{what}: {response.status_code} {response.text[:300]}")
        return response

    def sign_in(self, username: str) -> str:
        response = self.http.post(
            f"{self.gateway}/auth/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": f"{username}-password",
            },
        )
        self.expect(response, 200, f"{username} signs in (password grant)")
        body: dict[str, Any] = response.json()
        print(f"       token for {username}: scope {body['scope']!r}, {body['expires_in']} s")
        return str(body["access_token"])

    def call(self, method: str, url: str, token: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(
            method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )

    def received_by(self, name: str, token: str) -> str:
        """The user's token as service ``name`` receives it from the gateway: the token itself
        when it names that service (relay mode), else exchanged for it at auth as the gateway
        exchanges it (exchange mode). Remembered, so the same derived token is used before and
        after the logout. The claims are only read here, to see whom the token is addressed to;
        every service verifies them."""
        key = (name, token)
        if key in self._received:
            return self._received[key]
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
        audiences = [aud] if isinstance(aud, str) else list(aud or [])
        if audience_of(name) in audiences:
            self._received[key] = token
            return token
        response = self.http.post(
            f"{self.services['auth']}/auth/token",
            data={
                "grant_type": EXCHANGE_GRANT,
                "subject_token": token,
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "audience": audience_of(name),
            },
            auth=(GATEWAY, self.gateway_secret),
        )
        self.expect(response, 200, f"the gateway exchanges alice's token for {name} (RFC 8693)")
        derived = str(response.json()["access_token"])
        claims = jwt.decode(derived, options={"verify_signature": False})
        print(f"       aud {claims['aud']}, act {claims.get('act')}, scope {claims['scope']!r}")
        self._received[key] = derived
        return derived

    def show_trace(self, response: httpx.Response, services: set[str] | None = None) -> None:
        trace_id = response.headers.get("x-trace-id", "")
        print(f"       X-Trace-Id {trace_id}   (make trace ID={trace_id})")
        if not self.traces.is_dir():
            print(f"       (no span files in {self.traces}: spans go to a collector here)")
            return
        spans = trace_tool.load_trace(
            self.traces, trace_id, wait_seconds=5.0, services=services or {"gateway"}
        )
        missing = (services or set()) - {span["service"] for span in spans}
        if not spans or missing:
            raise StepFailed(f"trace {trace_id} lacks spans from {sorted(missing) or 'anyone'}")
        print("\n".join("    " + line for line in trace_tool.render(spans, sql=False).splitlines()))

    def refusal(self, response: httpx.Response) -> str:
        """Who refused, and why: the deny decision on the trace (or the response's own words)."""
        trace_id = response.headers.get("x-trace-id", "")
        # Spans reach the files in batches, one service at a time: keep looking for the deny
        # span until it arrives (or give up and show the response's own words).
        deadline = time.monotonic() + 10.0
        while self.traces.is_dir() and trace_id and time.monotonic() < deadline:
            for span in trace_tool.load_trace(self.traces, trace_id):
                attributes = span.get("attributes", {})
                if attributes.get("relayshop.auth.decision") == "deny":
                    return (
                        f"refused by {span['service']} ({attributes.get('relayshop.auth.check')}"
                        f" check): {attributes.get('relayshop.auth.reason')}"
                    )
            time.sleep(0.1)
        return response.headers.get("www-authenticate", "") or response.text[:120]

    # -- the walk-through ------------------------------------------------------------------
    def run(self) -> None:
        self.step("Is the stack up?")
        try:
            ready = self.http.get(f"{self.gateway}/readyz")
        except httpx.HTTPError as exc:
            raise StepFailed(f"no gateway at {self.gateway} ({exc}); start it: make run") from exc
        self.expect(ready, 200, f"GET {self.gateway}/readyz")

        self.step("1. alice signs in and places an order")
        alice = self.sign_in("alice")
        placed = self.expect(
            self.call("POST", f"{self.gateway}/api/orders", alice, json=ORDER),
            201,
            "POST /api/orders (1 x KB-001, pm_card_visa)",
        )
        order = placed.json()
        if order.get("status") != "CONFIRMED":
            raise StepFailed(f"the order is {order.get('status')}, not CONFIRMED")
        print(f"       order {order['id']} CONFIRMED, {order['total_cents']} cents")
        print("       one request, one trace: gateway > orders > inventory, payments > inventory")
        self.show_trace(placed, SAGA_SERVICES)

        self.step("2. Refused requests, and who refused them")
        bob = self.sign_in("bob")
        stranger = self.expect(
            self.call("GET", f"{self.gateway}/api/orders/{order['id']}", bob),
            404,
            "bob reads alice's order (a stranger's id is a 404, not a 403)",
        )
        print(f"       {self.refusal(stranger)}")
        self.show_trace(stranger, {"gateway", "orders"})
        stock = self.expect(
            self.call(
                "PUT",
                f"{self.gateway}/api/inventory/products/KB-001/stock",
                alice,
                json={"stock": 1},
            ),
            403,
            "alice sets the stock of KB-001 (warehouse or admin only)",
        )
        print(f"       {self.refusal(stock)}")

        self.step("3. alice logs out: her token, and every token derived from it, is refused")
        payment = f"/api/payments/{order['payment_id']}"
        targets = [
            ("gateway", f"{self.gateway}/api/orders", alice),
            (
                "orders (direct)",
                f"{self.services['orders']}/api/orders",
                self.received_by("orders", alice),
            ),
            (
                "payments (direct)",
                f"{self.services['payments']}{payment}",
                self.received_by("payments", alice),
            ),
            (
                "inventory (direct)",
                f"{self.services['inventory']}/api/inventory/products",
                self.received_by("inventory", alice),
            ),
        ]
        # Each hop accepts its token now: the 401s after the logout are the revocation alone.
        for name, url, token in targets:
            self.expect(
                self.call("GET", url, token), 200, f"before: {name}: GET {httpx.URL(url).path}"
            )
        self.expect(
            self.call("POST", f"{self.gateway}/auth/logout", alice), 204, "POST /auth/logout"
        )
        for name, url, token in targets:
            # Revocation reaches every service through Redis pub/sub within a second.
            deadline = time.monotonic() + 3.0
            while True:
                response = self.call("GET", url, token)
                if response.status_code == 401 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.expect(response, 401, f"{name}: GET {httpx.URL(url).path}")
            print(f"       {self.refusal(response)}")
        print(f"\n{BOLD}The demo ran to the end.{PLAIN}")


def main() -> int:
    # No options: --help says what the demo does and where it looks (the docstring).
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    try:
        Demo().run()
    except StepFailed as exc:
        print(f"\nThe demo stopped: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
