"""Inventory test fixtures: a running app (lifespan and all) and the tokens to call it with.

The root conftest.py gives a real Redis, a fake auth (serving test_key's JWKS) and service_env.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from inventory_service.main import create_app
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


def wait_ready(client: TestClient, timeout: float = 15.0) -> None:
    """The revocation mirror and the JWKS load in the background: poll until /readyz says so."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        if response.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"inventory never became ready: {response.text}")
        time.sleep(0.05)


@pytest.fixture
def client(service_env: dict[str, str], database_url: str | None) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        wait_ready(client)
        yield client
