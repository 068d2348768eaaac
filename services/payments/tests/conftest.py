"""Payments test fixtures: a running app whose inventory neighbour is a scripted fake.

Inventory is not what these tests are about, so the app is built with an HTTP transport that
sends the calls to inventory to an httpx.MockTransport-backed fake, which records each call.
The root conftest.py gives a real Redis, a fake auth (serving test_key's JWKS and minting this
service's client_credentials token), service_env and caller (headers with test_key's tokens).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from payments_service.main import create_app

# Caller is re-exported for the test modules (`from .conftest import Caller`); the root
# conftest.py gives the `caller` fixture.
from relayshop_devtools.testing import Caller as Caller
from relayshop_devtools.testing import RouteByHost, wait_ready


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
