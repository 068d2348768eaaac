"""Fixtures for the orders tests: the real orders app, and its two neighbours faked in memory.

FakeNeighbours (relayshop_devtools.fakes) implements the internal API of inventory and payments
just enough for the saga, and refuses (401) any call that does not carry both the relayed user
token and orders' own service token, so every test here also proves the relay and orders'
identity. The system routes the reconciler uses (``/system/``) instead demand orders' service
token alone, as the bearer token, exactly like security.require_service.
Neighbours are not what these tests are about; the real chain is tested end to end in tests/e2e.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from orders_service.main import create_app
from relayshop_devtools.fakes import INVENTORY_URL, PAYMENTS_URL, FakeNeighbours
from relayshop_devtools.testing import RouteByHost, TestKey, wait_ready


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
        wait_ready(test_client)
        yield test_client


Headers = Callable[..., dict[str, str]]


@pytest.fixture
def auth(test_key: TestKey) -> Headers:
    """auth("alice", "customer") -> the Authorization header of a fresh token for that user."""

    def headers(sub: str, *roles: str, **claims: Any) -> dict[str, str]:
        token = test_key.mint(sub=sub, roles=list(roles or ("customer",)), **claims)
        return {"Authorization": f"Bearer {token}"}

    return headers
