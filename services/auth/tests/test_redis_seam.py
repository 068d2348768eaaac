"""create_app(redis_connect=...): every Redis client auth opens, the revocation mirror's and its
own (revocations, sign-in throttle), goes through the one function the platform offers, so a
test chooses the server, the user and sees the options."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from auth_service.config import AuthSettings
from auth_service.main import create_app
from fastapi.testclient import TestClient
from relayshop_devtools.testing import AuthApi


def test_every_redis_client_goes_through_the_seam(
    service_env: dict[str, str], database_url: str | None, redis_url: str
) -> None:
    opened: list[tuple[str | None, dict[str, Any]]] = []

    def connect(user: str | None = None, /, **options: Any) -> aioredis.Redis:
        opened.append((user, options))
        return aioredis.from_url(redis_url, **options)

    with TestClient(create_app(redis_connect=connect)) as client:
        api = AuthApi(client)
        assert client.get("/readyz").status_code == 200  # the mirror synced through it
        assert api.sign_in("alice", "wrong-password").status_code == 400  # counted in Redis
        tokens = api.login("alice")
        revoked = client.post("/auth/revoke", data={"token": tokens["refresh_token"]})
        assert revoked.status_code == 200

    assert [user for user, _ in opened] == [None, None]  # the ACL user named after auth
    mirror, own = sorted(opened, key=lambda call: "client_name" not in call[1])
    assert str(mirror[1]["client_name"]).startswith("relayshop-mirror-")
    assert own[1]["socket_timeout"] == AuthSettings().redis_timeout_seconds


def test_the_seam_decides_which_redis(
    service_env: dict[str, str], database_url: str | None
) -> None:
    def nowhere(user: str | None = None, /, **options: Any) -> aioredis.Redis:
        return aioredis.from_url("redis://127.0.0.1:9/0", **options)  # nothing listens there

    with TestClient(create_app(redis_connect=nowhere)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] == "down"
