"""Real servers over real sockets: four fake services and the gateway itself under uvicorn.

FakeService   an aiohttp.web server on a free port that records every request it gets and echoes
              it back as JSON (method, raw path with query, headers, body), unless a canned answer
              is set for the path. The "auth" one also serves test_key's JWKS, so the gateway
              verifies tokens minted with test_key. Each answers GET /readyz with ready_status.
gateway       the real gateway (create_app under uvicorn, in its own thread and event loop, the
              way it runs in production) pointed at the four fakes; start_gateway(**env) starts
              one with other settings (an upstream on a closed port, a short timeout).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp import web
from gateway_service.main import GatewayASGI, create_app
from relayshop_devtools.devstack import free_port
from relayshop_devtools.testing import TestKey

JWKS_PATH = "/auth/.well-known/jwks.json"


@dataclass
class Seen:
    method: str
    target: str  # the raw path and query, exactly as received
    headers: list[tuple[str, str]]  # names lower-cased
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


@dataclass
class FakeService:
    name: str
    port: int = field(default_factory=free_port)
    requests: list[Seen] = field(default_factory=list)  # everything but /readyz and the JWKS
    canned: dict[str, tuple[int, Any]] = field(default_factory=dict)
    ready_status: int = 200
    delay: float = 0.0
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        if request.path == "/readyz":
            return web.json_response({"status": "fake"}, status=self.ready_status)
        if request.path == JWKS_PATH and JWKS_PATH in self.canned:
            status, body = self.canned[JWKS_PATH]
            return web.json_response(body, status=status)
        seen = Seen(
            method=request.method,
            target=request.raw_path,
            headers=[(k.decode().lower(), v.decode()) for k, v in request.raw_headers],
            body=await request.read(),
        )
        self.requests.append(seen)
        if self.delay:
            await asyncio.sleep(self.delay)
        if request.path in self.canned:
            status, body = self.canned[request.path]
            return web.json_response(body, status=status)
        echo = {
            "service": self.name,
            "method": seen.method,
            "target": seen.target,
            "headers": seen.headers,
            "body": seen.body.decode("latin-1"),
        }
        return web.json_response(echo, headers={"X-Echoed-By": self.name})

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        # handler_cancellation: a slow handler stops when the gateway gives up on it.
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@dataclass
class Fakes:
    auth: FakeService
    orders: FakeService
    payments: FakeService
    inventory: FakeService

    def all(self) -> list[FakeService]:
        return [self.auth, self.orders, self.payments, self.inventory]

    def request_count(self) -> int:
        return sum(len(service.requests) for service in self.all())


@pytest.fixture
async def fakes(test_key: TestKey) -> AsyncIterator[Fakes]:
    services = Fakes(*(FakeService(name) for name in ("auth", "orders", "payments", "inventory")))
    services.auth.canned[JWKS_PATH] = (200, test_key.jwks())
    for service in services.all():
        await service.start()
    try:
        yield services
    finally:
        for service in services.all():
            await service.stop()


@dataclass
class RunningGateway:
    asgi: GatewayASGI
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)


StartGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def start_gateway(
    service_env: dict[str, str], fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StartGateway]:
    """start_gateway(RELAYSHOP_ORDERS_URL=..., ...) -> a running gateway with those settings."""
    running: list[RunningGateway] = []
    defaults = {
        "RELAYSHOP_AUTH_URL": fakes.auth.url,
        "RELAYSHOP_ORDERS_URL": fakes.orders.url,
        "RELAYSHOP_PAYMENTS_URL": fakes.payments.url,
        "RELAYSHOP_INVENTORY_URL": fakes.inventory.url,
        "RELAYSHOP_MAX_BODY_BYTES": "1024",
        "RELAYSHOP_UPSTREAM_TIMEOUT_SECONDS": "1.0",
        "RELAYSHOP_READINESS_TIMEOUT_SECONDS": "1.0",
    }

    async def start(**env: str) -> RunningGateway:
        for name, value in {**defaults, **env}.items():
            monkeypatch.setenv(name, value)
        asgi = create_app()
        port = free_port()
        # proxy_headers=False as the README asks for the edge: the test client connects from
        # 127.0.0.1, which uvicorn would otherwise trust to set the client address.
        config = uvicorn.Config(
            asgi, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        gateway = RunningGateway(asgi, server, thread, port)
        running.append(gateway)
        # Ready to judge tokens: listening, signing keys loaded, revocation mirror in sync.
        # Polled with asyncio.sleep so this loop keeps serving the fakes meanwhile.
        state = asgi.app.state
        for _ in range(500):
            jwks = getattr(state, "jwks", None)
            mirror = getattr(state, "revocations", None)
            if server.started and jwks and jwks.loaded and mirror and mirror.healthy:
                return gateway
            await asyncio.sleep(0.02)
        raise TimeoutError("the gateway did not start within 10 s")

    yield start
    for gateway in running:
        gateway.server.should_exit = True
        await asyncio.to_thread(gateway.thread.join, 10)


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> RunningGateway:
    return await start_gateway()


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client() as http:
        yield http
