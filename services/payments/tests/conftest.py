"""Payments test fixtures: a running app whose inventory neighbour is a scripted fake.

Inventory is not what these tests are about, so the app is built with an HTTP transport that
sends the calls to inventory to FakeInventory (relayshop_devtools.fakes), which records each
call.
The root conftest.py gives a real Redis, a fake auth (serving test_key's JWKS and minting this
service's client_credentials token), service_env and caller (headers with test_key's tokens).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from payments_service.main import create_app
from relayshop_devtools.fakes import FakeInventory
from relayshop_devtools.testing import RouteByHost, wait_ready


@pytest.fixture
def inventory() -> FakeInventory:
    return FakeInventory()


@pytest.fixture
def app(
    service_env: dict[str, str],
    database_url: str | None,
    inventory: FakeInventory,
    monkeypatch: pytest.MonkeyPatch,
) -> FastAPI:
    monkeypatch.setenv("RELAYSHOP_INVENTORY_URL", "http://inventory.test")
    fake = httpx.MockTransport(inventory.handle)
    return create_app(http_transport=RouteByHost({"inventory.test": fake}))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        wait_ready(client)
        yield client
