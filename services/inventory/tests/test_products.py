"""The catalogue routes: who may read, who may set stock, and what a bad request gets."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from inventory_service.main import create_app
from relayshop_devtools.testing import Caller, TestKey, wait_ready

PRODUCTS = "/api/inventory/products"


@pytest.mark.parametrize("role", ["customer", "support", "warehouse", "admin"])
def test_list_products_any_role_sees_seeded_catalogue(
    client: TestClient, caller: Caller, role: str
) -> None:
    response = client.get(PRODUCTS, headers=caller.user(role))
    assert response.status_code == 200
    products = {p["sku"]: p for p in response.json()}
    assert len(products) == 6
    assert products["KB-001"] == {
        "sku": "KB-001",
        "name": "Mechanical keyboard",
        "price_cents": 8900,
        "stock": 100,
    }
    assert products["WC-006"]["stock"] == 0


def test_get_product_known_sku_returns_it(client: TestClient, caller: Caller) -> None:
    response = client.get(f"{PRODUCTS}/MS-002", headers=caller.user("support"))
    assert response.status_code == 200
    assert response.json()["price_cents"] == 2900


def test_get_product_unknown_sku_is_404_problem(client: TestClient, caller: Caller) -> None:
    response = client.get(f"{PRODUCTS}/NOPE-1", headers=caller.user("customer"))
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "NOPE-1" in response.json()["detail"]


@pytest.mark.parametrize("role", ["customer", "support"])
def test_set_stock_without_warehouse_role_is_403(
    client: TestClient, caller: Caller, role: str
) -> None:
    response = client.put(f"{PRODUCTS}/KB-001/stock", json={"stock": 1}, headers=caller.user(role))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert client.get(f"{PRODUCTS}/KB-001", headers=caller.user(role)).json()["stock"] == 100


@pytest.mark.parametrize("role", ["warehouse", "admin"])
def test_set_stock_as_warehouse_or_admin_sets_it(
    client: TestClient, caller: Caller, role: str
) -> None:
    response = client.put(f"{PRODUCTS}/WC-006/stock", json={"stock": 7}, headers=caller.user(role))
    assert response.status_code == 200
    assert response.json()["stock"] == 7
    assert client.get(f"{PRODUCTS}/WC-006", headers=caller.user("customer")).json()["stock"] == 7


def test_set_stock_unknown_sku_is_404(client: TestClient, caller: Caller) -> None:
    response = client.put(
        f"{PRODUCTS}/ZZ-999/stock", json={"stock": 1}, headers=caller.user("admin")
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"stock": -1}, "stock"),
        ({"stock": 1_000_001}, "stock"),
        ({"stock": "5"}, "stock"),
        ({"stock": 1.5}, "stock"),
        ({"stock": True}, "stock"),
        ({}, "stock"),
        ({"stock": 5, "price_cents": 1}, "price_cents"),
    ],
)
def test_set_stock_bad_body_is_422_naming_the_field(
    client: TestClient, caller: Caller, body: dict[str, Any], where: str
) -> None:
    response = client.put(f"{PRODUCTS}/KB-001/stock", json=body, headers=caller.user("warehouse"))
    assert response.status_code == 422
    problem = response.json()
    assert problem["status"] == 422
    assert any(error["loc"][-1] == where for error in problem["errors"])


def test_set_stock_too_long_sku_is_422(client: TestClient, caller: Caller) -> None:
    response = client.put(
        f"{PRODUCTS}/{'X' * 65}/stock", json={"stock": 1}, headers=caller.user("admin")
    )
    assert response.status_code == 422


def test_list_products_without_token_is_401_without_error(client: TestClient) -> None:
    response = client.get(PRODUCTS)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    assert "error=" not in challenge  # RFC 6750 section 3.1: no error code when no token


def test_list_products_tampered_token_is_401_invalid_token(
    client: TestClient, test_key: TestKey
) -> None:
    header, payload, signature = test_key.mint(roles=["admin"]).split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    response = client.get(PRODUCTS, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_list_products_expired_token_is_401_invalid_token(
    client: TestClient, test_key: TestKey
) -> None:
    token = test_key.mint(roles=["customer"], iat=1_000_000, exp=1_000_300)
    response = client.get(PRODUCTS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "expired" in response.json()["detail"]


def test_list_products_service_token_alone_is_refused(
    client: TestClient, test_key: TestKey
) -> None:
    token = test_key.service_token("orders")
    response = client.get(PRODUCTS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_restart_keeps_stock_set_before_it(service_env: dict[str, str], caller: Caller) -> None:
    with TestClient(create_app()) as client:
        wait_ready(client)
        client.put(f"{PRODUCTS}/KB-001/stock", json={"stock": 3}, headers=caller.user("admin"))
    with TestClient(create_app()) as client:  # same data dir: the seed runs again
        wait_ready(client)
        response = client.get(PRODUCTS, headers=caller.user("customer"))
    stocks = {p["sku"]: p["stock"] for p in response.json()}
    assert stocks["KB-001"] == 3
    assert len(stocks) == 6
