"""Fixtures for auth's tests: the real app (lifespan and all) on a fresh data dir and real Redis.

api         an AuthApi (relayshop_devtools.testing) over TestClient(create_app()), entered with
            ``with`` so startup runs (keys created, demo accounts seeded); make_api() builds
            more, e.g. after setenv
redis_url   (root conftest) the test Redis; failure counters are cleared around every test
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
import redis
from auth_service.main import create_app
from auth_service.throttle import PREFIX as THROTTLE_PREFIX
from fastapi.testclient import TestClient
from relayshop_devtools.testing import AuthApi


def _clear_throttle(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{THROTTLE_PREFIX}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def fresh_throttle(redis_url: str) -> Iterator[None]:
    """Failure counters live in the shared test Redis: start and end every test without them."""
    _clear_throttle(redis_url)
    yield
    _clear_throttle(redis_url)


@pytest.fixture
def make_api(
    service_env: dict[str, str], database_url: str | None
) -> Iterator[Callable[[], AuthApi]]:
    """Start an app from the current environment (call it after monkeypatch.setenv)."""
    with ExitStack() as stack:

        def make() -> AuthApi:
            return AuthApi(stack.enter_context(TestClient(create_app())))

        yield make


@pytest.fixture
def api(make_api: Callable[[], AuthApi]) -> AuthApi:
    return make_api()
