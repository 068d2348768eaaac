"""Helpers for tests: a throwaway RSA signing key, a JWKS for it, and tokens minted with it.

Never used by a running service. Lets a test make exactly the token it wants to attack with.
Caller turns such tokens into request headers (bearer: any token); wait_ready waits for an app
under TestClient, running() runs one in the test's own event loop; AuthApi is auth's API over
TestClient; RunningGateway is the gateway under uvicorn; embedded_redis runs a real Redis for as
long as a test needs it. The fakes of relayshop's services, to test one service alone, are in
fakes.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from relayshop_platform.catalogue import AUTH, CATALOGUE
from relayshop_platform.scopes import USER_SCOPES
from relayshop_platform.security import SERVICE_TOKEN_HEADER

if TYPE_CHECKING:
    import threading

    import uvicorn
    from fastapi import FastAPI
    from gateway_service.main import GatewayASGI
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


class JsonHandler(BaseHTTPRequestHandler):
    """A quiet http.server handler for the small JSON servers tests stand up (a fake auth, an
    OpenID issuer): no access log on stderr, and ``_json`` to answer."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


DEFAULT_ISSUER = "http://localhost:8000/auth"
# A test token is, by default, shaped like a relay-mode user token: every service's audience and
# every scope, so a service's tests exercise its own rules. A test about audiences or scopes
# passes its own ``aud`` or ``scope``.
DEFAULT_AUDIENCE = [s.audience for s in CATALOGUE if s.name != AUTH]
DEFAULT_SCOPE = " ".join(USER_SCOPES)


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
            "scope": DEFAULT_SCOPE,
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

    def exchanged(self, subject_token: str, client_id: str, audience: Any) -> str:
        """The token auth's exchange (RFC 8693) issues ``client_id`` for ``subject_token``, in
        shape: the same user, roles, scope and sid; ``aud`` the callee; ``act`` the client with
        earlier actors nested (section 4.1); ``derived_from`` every ancestor's jti. The subject is
        read, not verified: the fakes that use this stand in for auth, whose tests check it."""
        subject = jwt.decode(subject_token, options={"verify_signature": False})
        act = {"sub": client_id, **({"act": subject["act"]} if "act" in subject else {})}
        return self.mint(
            sub=subject["sub"],
            roles=subject["roles"],
            scope=subject["scope"],
            sid=subject.get("sid", DROP),
            aud=audience,
            act=act,
            derived_from=[*subject.get("derived_from", []), subject["jti"]],
            client_id=client_id,
        )

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


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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


class AuthApi:
    """Auth's API as auth's tests call it again and again, over one app under TestClient."""

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


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """``app`` in the test's own event loop: its lifespan entered here, an AsyncClient that
    sends to it through httpx.ASGITransport, ready before use. asyncio.gather over that client
    then really interleaves requests inside the service."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            deadline = time.monotonic() + 15
            while (response := await client.get("/readyz")).status_code != 200:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{app.title} never became ready: {response.text}")
                await asyncio.sleep(0.05)
            yield client


@dataclass
class RunningGateway:
    """The real gateway under uvicorn, in a thread of its own (the gateway's tests start it)."""

    asgi: GatewayASGI
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)


# The gateway tests' start_gateway fixture: start_gateway(RELAYSHOP_...=...) -> RunningGateway.
StartGateway = Callable[..., Awaitable[RunningGateway]]


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
