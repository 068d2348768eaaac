"""Helpers for tests: a throwaway RSA signing key, a JWKS for it, and tokens minted with it.

Never used by a running service. Lets a test make exactly the token it wants to attack with.
Caller turns such tokens into request headers; wait_ready waits for an in-process app;
embedded_redis runs a real Redis for as long as a test needs it.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from relayshop_platform.security import SERVICE_TOKEN_HEADER

if TYPE_CHECKING:
    from starlette.testclient import TestClient


@contextmanager
def embedded_redis(directory: Path, acl: Sequence[str] = (), password: str = "") -> Iterator[str]:
    """A real Redis on a free port (``redis_acl.redis_server_args`` for ``acl``) until the block
    ends; yields its URL without credentials. ``password``: the default user's, to ping it."""
    from relayshop_platform.redis_acl import service_url

    from .devstack import free_port, wait_for_redis
    from .embedded_redis import redis_args

    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own redis-server binary and arguments
        redis_args(port, directory, acl), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        wait_for_redis(service_url(url, "default", password) if password else url)
        yield url
    finally:
        process.terminate()
        process.wait(10)


DEFAULT_ISSUER = "http://localhost:8000/auth"
DEFAULT_AUDIENCE = "relayshop"


class TestKey:
    __test__ = False  # not a pytest class

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or uuid.uuid4().hex[:16]
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key = self.private_key.public_key()

    def jwk(self) -> dict[str, Any]:
        data = json.loads(RSAAlgorithm.to_jwk(self.public_key))
        data.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return data

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": DEFAULT_ISSUER,
            "sub": "user-" + uuid.uuid4().hex[:8],
            "aud": DEFAULT_AUDIENCE,
            "exp": now + 300,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "roles": ["customer"],
            "scope": "openid",
            "sid": uuid.uuid4().hex,
            "client_id": "relayshop",
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not _DROP}

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        headers: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        payload = claims if claims is not None else self.claims(**overrides)
        header = {"typ": "at+jwt", "kid": self.kid}
        header.update(headers or {})
        return jwt.encode(payload, self.private_key, algorithm="RS256", headers=header)

    def service_token(self, client_id: str, **overrides: Any) -> str:
        claims = self.claims(
            sub=client_id, client_id=client_id, roles=["service"], scope="internal", sid=DROP
        )
        claims.update(overrides)
        return self.mint(claims)


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


_DROP = _Drop()
DROP: Any = _DROP  # pass as a claim value to leave that claim out


class Caller:
    """Headers for a user token, optionally with a calling service's token beside it."""

    def __init__(self, key: TestKey) -> None:
        self.key = key

    def user(self, *roles: str, sub: str = "alice-id", via: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key.mint(roles=list(roles), sub=sub)}"}
        if via is not None:  # the way a neighbour service calls: the user's token plus its own
            headers[SERVICE_TOKEN_HEADER] = self.key.service_token(via)
        return headers


def wait_ready(client: TestClient, timeout: float = 15.0) -> None:
    """The revocation mirror and the JWKS load in the background: poll until /readyz says so."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        if response.status_code == 200:
            return
        if time.monotonic() > deadline:
            title = getattr(client.app, "title", "the service")  # "relayshop orders"
            raise AssertionError(f"{title} never became ready: {response.text}")
        time.sleep(0.05)


class RouteByHost(httpx.AsyncBaseTransport):
    """An HTTP transport for a service under test (``create_app(http_transport=...)``): requests
    to the named hosts go to their own transports (fakes of the neighbours, httpx.MockTransport),
    every other request (auth's keys and tokens) to a real one."""

    def __init__(
        self,
        routes: dict[str, httpx.AsyncBaseTransport],
        default: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.routes = routes
        self.default = default or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.routes.get(request.url.host, self.default)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in {*self.routes.values(), self.default}:
            await transport.aclose()
