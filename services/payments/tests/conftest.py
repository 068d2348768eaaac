"""Payments test fixtures: a running app whose inventory neighbour is a scripted fake.

Inventory is not what these tests are about, so app.state.http (the one client payments calls
its neighbours with) is swapped for an httpx.MockTransport-backed client that records each call.
The root conftest.py gives a real Redis, a fake auth (serving test_key's JWKS and minting this
service's client_credentials token) and service_env.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from payments_service.main import create_app
from relayshop_platform.testing import TestKey


class Caller:
    """Headers for a user token, optionally with a calling service's token beside it."""

    def __init__(self, key: TestKey) -> None:
        self.key = key

    def user(self, *roles: str, sub: str = "alice-id", via: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key.mint(roles=list(roles), sub=sub)}"}
        if via is not None:
            headers["x-service-token"] = self.key.service_token(via)
        return headers


@pytest.fixture
def caller(test_key: TestKey) -> Caller:
    return Caller(test_key)


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


def wait_ready(client: TestClient, timeout: float = 15.0) -> None:
    """The revocation mirror and the JWKS load in the background: poll until /readyz says so."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        if response.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"payments never became ready: {response.text}")
        time.sleep(0.05)


@pytest.fixture
def inventory() -> FakeInventory:
    return FakeInventory()


@pytest.fixture
def app(service_env: dict[str, str], database_url: str | None) -> FastAPI:
    return create_app()


@pytest.fixture
def client(app: FastAPI, inventory: FakeInventory) -> Iterator[TestClient]:
    with TestClient(app) as client:
        wait_ready(client)
        original = app.state.http
        app.state.http = httpx.AsyncClient(transport=httpx.MockTransport(inventory.handle))
        try:
            yield client
        finally:
            app.state.http = original  # the lifespan closes the client it created
