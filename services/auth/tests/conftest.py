"""Fixtures for auth's tests: the real app (lifespan and all) on a fresh data dir and real Redis.

api         an AuthApi over TestClient(create_app()), entered with ``with`` so startup runs
            (keys created, demo accounts seeded); make_api() builds more, e.g. after setenv
redis_url   (root conftest) the test Redis; failure counters are cleared around every test
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import jwt
import pytest
import redis
from auth_service.main import create_app
from auth_service.throttle import PREFIX as THROTTLE_PREFIX
from fastapi.testclient import TestClient


class AuthApi:
    """The calls the tests make again and again, over one running app."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def app(self) -> Any:
        return self.client.app

    def sign_in(self, username: str, password: str | None = None, **form: str) -> httpx.Response:
        data = {
            "grant_type": "password",
            "username": username,
            "password": password if password is not None else f"{username}-password",
            **form,
        }
        return self.client.post("/auth/token", data=data)

    def login(self, username: str, password: str | None = None, **form: str) -> dict[str, Any]:
        response = self.sign_in(username, password, **form)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.client.post(
            "/auth/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    def userinfo(self, token: str) -> httpx.Response:
        return self.client.get("/auth/userinfo", headers=bearer(token))

    def post(
        self,
        path: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        all_headers = {**(bearer(token) if token else {}), **(headers or {})}
        return self.client.post(path, headers=all_headers, **kwargs)

    def jwks(self) -> dict[str, Any]:
        body: dict[str, Any] = self.client.get("/auth/.well-known/jwks.json").json()
        return body

    def kids(self) -> list[str]:
        return [key["kid"] for key in self.jwks()["keys"]]

    def jwks_key(self, token: str) -> Any:
        """The public key for ``token`` from the served JWKS, as any client would get it."""
        kid = jwt.get_unverified_header(token)["kid"]
        return jwt.PyJWKSet.from_dict(self.jwks())[kid].key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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
