"""Inventory test fixtures: a running app (lifespan and all) and the tokens to call it with.

The root conftest.py gives a real Redis, a fake auth (serving test_key's JWKS), service_env and
caller (headers with tokens minted by test_key).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from inventory_service.main import create_app
from relayshop_devtools.testing import wait_ready


@pytest.fixture
def client(service_env: dict[str, str], database_url: str | None) -> Iterator[TestClient]:
    with TestClient(create_app()) as client:
        wait_ready(client)
        yield client
