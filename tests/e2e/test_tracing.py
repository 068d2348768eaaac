"""End to end: one request is one trace across every hop, each hop's authorization
decision is on its span, logs and metrics say the same, and nothing exported holds a secret.

Its own stack (module scope): the demo logs alice out, and the last test reads every file the
stack wrote. Spans are read back from <data_dir>/traces/<service>.jsonl with tools/trace.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from relayshop_devtools.devstack import PASSWORDS, SERVICES, Client, Stack, make_stack
from relayshop_devtools.repository import load_tool

ROOT = Path(__file__).resolve().parents[2]
trace_tool = load_tool("trace")

ORDER = {"items": [{"sku": "MS-002", "quantity": 1}], "payment_method": "pm_card_visa"}
SAGA = {"gateway", "orders", "inventory", "payments"}
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{20,}")
Span = dict[str, Any]


class TracingClient(Client):
    """Client that remembers every token it was given, for the last test to search for."""

    issued: list[str]

    def token(self, username: str, password: str | None = None) -> dict[str, str]:
        body = super().token(username, password)
        self.issued += [body["access_token"], body["refresh_token"]]
        return body


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(tmp_path_factory.mktemp("tracing-stack"))


@pytest.fixture(scope="module")
def client(stack: Stack) -> TracingClient:
    client = TracingClient(stack)
    client.issued = []
    return client


def spans_of(stack: Stack, response: httpx.Response, services: set[str]) -> list[Span]:
    trace_id = response.headers["x-trace-id"]
    spans = trace_tool.load_trace(
        stack.data_dir / "traces", trace_id, wait_seconds=10.0, services=services
    )
    assert services <= {span["service"] for span in spans}, trace_tool.render(spans)
    return spans


def server_span(spans: list[Span], service: str, name: str | None = None) -> Span:
    found = [
        s
        for s in spans
        if s["service"] == service and s["kind"] == "SERVER" and name in (None, s["name"])
    ]
    assert len(found) == 1, (service, name, trace_tool.render(spans))
    return found[0]


def decision(span: Span) -> tuple[str | None, str | None, str | None]:
    attributes = span["attributes"]
    return (
        attributes.get("relayshop.auth.check"),
        attributes.get("relayshop.auth.decision"),
        attributes.get("relayshop.auth.reason"),
    )


def sub_of(client: Client, token: str) -> str:
    response = client.request("GET", "/auth/userinfo", token)
    assert response.status_code == 200, response.text
    return str(response.json()["sub"])


def until_refused(client: Client, token: str, service: str) -> httpx.Response:
    """Revocation reaches every service through Redis within a second: poll for the 401."""
    deadline = time.monotonic() + 5
    while True:
        response = client.request("GET", "/api/orders", token, service=service)
        if response.status_code == 401:
            return response
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)


def test_place_order_is_one_trace_with_the_real_call_chain(
    stack: Stack, client: TracingClient
) -> None:
    alice = client.access("alice")
    alice_sub = sub_of(client, alice)
    response = client.request("POST", "/api/orders", alice, json=ORDER)
    assert response.status_code == 201, response.text
    spans = spans_of(stack, response, SAGA)
    by_id = {span["span_id"]: span for span in spans}
    assert len({span["trace_id"] for span in spans}) == 1

    def caller_of(span: Span, service: str) -> Span:
        """The CLIENT span in ``service`` that made this SERVER span's request."""
        client_span = by_id[span["parent_id"]]
        assert (client_span["service"], client_span["kind"]) == (service, "CLIENT")
        return client_span

    gateway = server_span(spans, "gateway")
    orders = server_span(spans, "orders", "POST /api/orders")
    reserve = server_span(spans, "inventory", "POST /api/inventory/reservations")
    charge = server_span(spans, "payments", "POST /api/payments/charges")
    commit = server_span(spans, "inventory", "POST /api/inventory/reservations/{order_id}/commit")
    # gateway SERVER -> orders SERVER -> orders CLIENT -> inventory SERVER (reserve)
    #                                  -> orders CLIENT -> payments SERVER -> payments CLIENT
    #                                                                      -> inventory (commit)
    assert gateway["parent_id"] is None
    assert orders["parent_id"] == gateway["span_id"]
    assert caller_of(reserve, "orders")["parent_id"] == orders["span_id"]
    assert caller_of(charge, "orders")["parent_id"] == orders["span_id"]
    assert caller_of(commit, "payments")["parent_id"] == charge["span_id"]

    assert decision(gateway) == ("edge", "allow", None)
    assert decision(orders) == ("service", "allow", None)
    for span, caller in ((reserve, "orders"), (charge, "orders"), (commit, "payments")):
        assert decision(span) == ("internal_caller", "allow", None)
        assert span["attributes"]["relayshop.caller"] == caller
    for span in (gateway, orders, reserve, charge, commit):
        assert span["attributes"]["enduser.id"] == alice_sub
        assert span["attributes"]["enduser.role"] == "customer"
    # Each SQL statement has a span under its request's SERVER span; a pool checkout has none.
    statements = [span for span in spans if "db.statement" in span["attributes"]]
    assert {"inventory", "payments", "orders"} <= {span["service"] for span in statements}
    assert any(span["parent_id"] == reserve["span_id"] for span in statements)
    assert not [span for span in spans if span["name"] == "connect"]

    # `make trace ID=...` is this script: it prints the same tree.
    printed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools/trace.py"),
            response.headers["x-trace-id"],
            *("--dir", str(stack.data_dir / "traces")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    lines = printed.splitlines()
    assert lines[1].startswith("gateway") and "edge allow" in lines[1]
    assert any("POST /api/inventory/reservations/{order_id}/commit" in line for line in lines)
    assert any("internal_caller allow" in line and "caller=payments" in line for line in lines)


def test_refused_requests_have_a_span_saying_who_refused_and_why(
    stack: Stack, client: TracingClient
) -> None:
    alice, bob = client.access("alice"), client.access("bob")

    # Wrong role, through the gateway: refused at the edge, never sent upstream.
    stock = {"json": {"stock": 5}}
    edge = client.request("PUT", "/api/inventory/products/KB-001/stock", alice, **stock)
    assert edge.status_code == 403
    spans = spans_of(stack, edge, {"gateway"})
    assert decision(server_span(spans, "gateway")) == ("edge", "deny", "role")
    assert {span["service"] for span in spans} == {"gateway"}

    # Wrong role, at inventory directly: inventory's own rule refuses.
    direct = client.request(
        "PUT", "/api/inventory/products/KB-001/stock", alice, service="inventory", **stock
    )
    assert direct.status_code == 403
    inventory = server_span(spans_of(stack, direct, {"inventory"}), "inventory")
    assert decision(inventory) == ("service", "deny", "role")

    # A stranger's order: the gateway lets bob through, orders answers 404 and says why.
    order = client.request("POST", "/api/orders", alice, json=ORDER).json()
    stranger = client.request("GET", f"/api/orders/{order['id']}", bob)
    assert stranger.status_code == 404
    spans = spans_of(stack, stranger, {"gateway", "orders"})
    assert decision(server_span(spans, "gateway"))[1] == "allow"
    refused = server_span(spans, "orders")
    assert decision(refused) == ("service", "deny", "not_owner")
    assert refused["attributes"]["enduser.id"] == sub_of(client, bob)

    # A user token alone at an internal operation: the internal caller check refuses it.
    body = {"json": {"order_id": "x-1", "items": [{"sku": "KB-001", "quantity": 1}]}}
    internal = client.request(
        "POST", "/api/inventory/reservations", alice, service="inventory", **body
    )
    assert internal.status_code == 401
    inventory = server_span(spans_of(stack, internal, {"inventory"}), "inventory")
    assert decision(inventory) == ("internal_caller", "deny", "missing")

    # A revoked token: refused at the edge and by a service called directly, reason "revoked".
    carol = client.access("carol")
    client.as_received_by("orders", carol)  # exchange mode: orders' token, derived before logout
    assert client.request("POST", "/auth/logout", carol).status_code == 204
    at_edge = until_refused(client, carol, "gateway")
    gateway = server_span(spans_of(stack, at_edge, {"gateway"}), "gateway")
    assert decision(gateway) == ("edge", "deny", "revoked")
    at_orders = until_refused(client, carol, "orders")
    orders = server_span(spans_of(stack, at_orders, {"orders"}), "orders")
    assert decision(orders) == ("service", "deny", "revoked")

    # The same refusals, counted.
    gateway_metrics = httpx.get(f"{stack.url('gateway')}/metrics").text
    assert 'relayshop_token_rejections_total{check="edge",reason="revoked"}' in gateway_metrics
    assert 'relayshop_access_denials_total{check="edge",reason="role"}' in gateway_metrics
    orders_metrics = httpx.get(f"{stack.url('orders')}/metrics").text
    assert 'relayshop_access_denials_total{check="service",reason="not_owner"}' in orders_metrics
    assert (
        'relayshop_http_requests_total{method="GET",route="/api/orders/{order_id}",status="404"}'
        in orders_metrics
    )
    assert 'relayshop_http_request_duration_seconds_bucket{le="0.1",method="POST"' in (
        orders_metrics
    )


def test_every_log_line_is_json_with_trace_ids_and_one_access_line_per_request(
    stack: Stack, client: TracingClient
) -> None:
    alice = client.access("alice")
    response = client.request("POST", "/api/orders", alice, json=ORDER)
    assert response.status_code == 201
    trace_id = response.headers["x-trace-id"]
    spans_of(stack, response, SAGA)  # every hop answered: its access line is written
    access: dict[str, list[dict[str, Any]]] = {}
    for service in SERVICES:
        for line in (stack.data_dir / f"{service}.log").read_text().splitlines():
            entry = json.loads(line)  # every line, startup and shutdown included
            assert "trace_id" in entry and "span_id" in entry and entry["service"] == service
            if entry["logger"] == "relayshop_platform.logs" and entry["trace_id"] == trace_id:
                access.setdefault(service, []).append(entry)
    assert [e["path"] for e in access["gateway"]] == ["/api/orders"]
    assert [(e["path"], e["status"]) for e in access["orders"]] == [("/api/orders", 201)]
    assert {e["path"] for e in access["inventory"]} == {
        "/api/inventory/reservations",
        f"/api/inventory/reservations/{response.json()['id']}/commit",
    }
    assert all(len(e["span_id"]) == 16 and e["duration_ms"] > 0 for e in access["payments"])


def test_demo_runs_to_the_end_against_a_stack(stack: Stack) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RELAYSHOP_")}
    env["RELAYSHOP_DATA_DIR"] = str(stack.data_dir)
    for name in ("gateway", "auth", "orders", "payments", "inventory"):
        env[f"RELAYSHOP_{name.upper()}_URL"] = stack.url(name)
    demo = subprocess.run(
        [sys.executable, str(ROOT / "tools/demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "The demo ran to the end." in demo.stdout
    assert "refused by orders (service check): not_owner" in demo.stdout
    assert "refused by inventory (service check): revoked" in demo.stdout
    assert not JWT.search(demo.stdout)


def test_nothing_exported_holds_a_token_password_or_secret(
    stack: Stack, client: TracingClient
) -> None:
    """Runs last: searches every span, log line and metric the whole module produced."""
    gateway = stack.url("gateway")
    tokens = client.token("admin")
    refreshed = httpx.post(
        f"{gateway}/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert refreshed.status_code == 200
    client.issued += [refreshed.json()["access_token"], refreshed.json()["refresh_token"]]
    service = httpx.post(
        f"{gateway}/auth/token",
        data={"grant_type": "client_credentials", "resource": "urn:relayshop:inventory"},
        auth=("orders", "orders-demo-secret"),
    )
    assert service.status_code == 200
    client.issued.append(service.json()["access_token"])
    wrong = {"grant_type": "password", "username": "alice", "password": "wrong-pass-8c1f2e"}
    assert httpx.post(f"{gateway}/auth/token", data=wrong).status_code == 400

    exported = [path.read_text() for path in (stack.data_dir / "traces").glob("*.jsonl*")]
    exported += [(stack.data_dir / f"{name}.log").read_text() for name in SERVICES]
    exported += [httpx.get(f"{stack.url(name)}/metrics").text for name in SERVICES]
    everything = "\n".join(exported)
    assert '"relayshop.auth.decision"' in everything
    assert "relayshop_http_requests_total" in everything

    secrets = [*PASSWORDS.values(), "wrong-pass-8c1f2e"]
    secrets += [f"{name}-demo-secret" for name in SERVICES]
    secrets += client.issued
    # A token's signature alone is enough to be worried about.
    secrets += [token.rsplit(".", 1)[-1] for token in client.issued if token.count(".") == 2]
    leaked = [secret[:12] + "..." for secret in secrets if secret in everything]
    assert not leaked, f"found in spans, logs or metrics: {leaked}"
    assert not JWT.search(everything), JWT.search(everything)
