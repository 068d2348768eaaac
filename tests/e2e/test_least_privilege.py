"""Least privilege at every hop, against the real stack: audiences, scopes, token exchange.

In exchange mode (the default) a user's token is for the gateway alone, and each hop behind it
gets a token exchanged for it (RFC 8693). In relay mode the user's token carries every audience.
Either way a token is accepted only where its ``aud`` says, and a route needs its scope.
"""

from __future__ import annotations

import os
import time

import httpx
import jwt
import pytest
from relayshop_devtools.devstack import Client

ORDER = {"items": [{"sku": "MS-002", "quantity": 1}], "payment_method": "pm_card_visa"}
MODE = os.environ.get("RELAYSHOP_TEST_TOKEN_MODE", "exchange")
exchange_mode_only = pytest.mark.skipif(
    MODE == "relay", reason="relay mode: the user's token carries every audience by design"
)


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def service_token(client: Client, service: str, callee: str) -> str:
    answer = client.http.post(
        f"{client.stack.url('auth')}/auth/token",
        data={"grant_type": "client_credentials", "resource": f"urn:relayshop:{callee}"},
        auth=(service, f"{service}-demo-secret"),
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@exchange_mode_only
def test_a_token_for_orders_is_refused_at_inventory_and_payments(client: Client) -> None:
    for_orders = client.token_for("orders", client.access("alice"))
    assert (
        client.request(
            "GET", "/api/orders", for_orders, service="orders", exchange=False
        ).status_code
        == 200
    )

    for service, path in (("inventory", "/api/inventory/products"), ("payments", "/api/payments")):
        answer = client.request("GET", path, for_orders, service=service, exchange=False)
        assert answer.status_code == 401, (service, answer.text)
        assert 'error="invalid_token"' in answer.headers["www-authenticate"]
        assert "audience" in answer.json()["detail"]


@exchange_mode_only
def test_a_signed_in_token_works_only_at_the_gateway(client: Client) -> None:
    token = client.access("alice")
    assert claims(token)["aud"] == "urn:relayshop:gateway"
    assert client.request("GET", "/api/orders", token).status_code == 200  # through the gateway
    direct = client.request("GET", "/api/orders", token, service="orders", exchange=False)
    assert direct.status_code == 401


def test_a_service_token_for_inventory_is_refused_at_payments(client: Client) -> None:
    alice = client.access("alice")
    own = service_token(client, "orders", "inventory")
    assert claims(own)["aud"] == "urn:relayshop:inventory"
    # Beside a user token payments accepts, orders' token for inventory is no identity there.
    headers = {"X-Service-Token": own, "Idempotency-Key": "lp-1"}
    answer = client.request(
        "POST",
        "/api/payments/charges",
        client.token_for("payments", alice),
        service="payments",
        exchange=False,
        headers=headers,
        json={"order_id": "lp-order-1", "amount_cents": 100, "payment_method": "pm_card_visa"},
    )
    assert answer.status_code == 401, answer.text


def test_a_user_token_alone_is_refused_where_a_service_identity_is_required(
    client: Client,
) -> None:
    alice = client.access("alice")
    answer = client.request(
        "POST",
        "/api/inventory/reservations",
        client.token_for("inventory", alice),
        service="inventory",
        exchange=False,
        json={"order_id": "lp-order-2", "items": [{"sku": "MS-002", "quantity": 1}]},
    )
    assert answer.status_code == 401


def test_scope_orders_read_lists_orders_but_cannot_place_one(client: Client) -> None:
    response = client.http.post(
        f"{client.stack.url('gateway')}/auth/token",
        data={
            "grant_type": "password",
            "username": "alice",
            "password": "alice-password",
            "scope": "orders:read",
        },
    )
    assert response.status_code == 200, response.text
    narrow = response.json()
    assert narrow["scope"] == "orders:read"

    assert client.request("GET", "/api/orders", narrow["access_token"]).status_code == 200
    placed = client.request("POST", "/api/orders", narrow["access_token"], json=ORDER)
    assert placed.status_code == 403, placed.text
    challenge = placed.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="orders:write"' in challenge
    # Nor can it read the products: inventory:read was not granted.
    products = client.request("GET", "/api/inventory/products", narrow["access_token"])
    assert products.status_code == 403
    assert 'scope="inventory:read"' in products.headers["www-authenticate"]


@exchange_mode_only
def test_after_logout_every_token_exchanged_from_the_session_is_refused(client: Client) -> None:
    token = client.access("alice")
    placed = client.request("POST", "/api/orders", token, json=ORDER)
    assert placed.status_code == 201, placed.text  # the hops now hold exchanged tokens
    derived = {
        "orders": client.token_for("orders", token),
        "payments": client.token_for("payments", token),
        "inventory": client.token_for("inventory", token),
    }
    for service, path in (
        ("orders", "/api/orders"),
        ("payments", f"/api/payments/{placed.json()['payment_id']}"),
        ("inventory", "/api/inventory/products"),
    ):
        assert (
            client.request(
                "GET", path, derived[service], service=service, exchange=False
            ).status_code
            == 200
        )

    assert client.request("POST", "/auth/logout", token).status_code == 204
    deadline = time.monotonic() + 1.0
    paths = {
        "orders": "/api/orders",
        "payments": f"/api/payments/{placed.json()['payment_id']}",
        "inventory": "/api/inventory/products",
    }
    while True:
        statuses = {
            service: client.request(
                "GET", paths[service], derived[service], service=service, exchange=False
            )
            for service in paths
        }
        if all(answer.status_code == 401 for answer in statuses.values()):
            break
        assert time.monotonic() < deadline, {s: a.status_code for s, a in statuses.items()}
        time.sleep(0.05)
    for answer in statuses.values():
        assert "revoked" in answer.json()["detail"]
    # And the gateway refuses the session's token, so nothing new is exchanged from it.
    assert client.request("GET", "/api/orders", token).status_code == 401


def test_the_order_travels_with_a_token_per_hop(client: Client) -> None:
    """The saga works end to end in either mode: gateway -> orders -> inventory, payments."""
    token = client.access("alice")
    placed = client.request("POST", "/api/orders", token, json=ORDER)
    assert placed.status_code == 201, placed.text
    assert placed.json()["status"] == "CONFIRMED"
    order_id = placed.json()["id"]
    cancelled = client.request("POST", f"/api/orders/{order_id}/cancel", token)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "CANCELLED"


def test_exchange_is_refused_for_a_pair_outside_the_policy(client: Client) -> None:
    token = client.access("alice")
    answer = client.exchange(token, "urn:relayshop:auth")
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_target"
    at_inventory = client.exchange(token, "urn:relayshop:inventory")
    if client.mode == "exchange":
        assert at_inventory.status_code == 200
        # inventory calls nobody: it cannot exchange the token it received for anyone.
        onward = client.http.post(
            f"{client.stack.url('auth')}/auth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": at_inventory.json()["access_token"],
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": "urn:relayshop:payments",
            },
            auth=httpx.BasicAuth("inventory", "inventory-demo-secret"),
        )
        assert onward.status_code == 400
        assert onward.json()["error"] == "invalid_target"
