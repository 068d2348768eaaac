"""Real servers over real sockets: four fake services and the gateway itself under uvicorn.

fakes         a FakeService (relayshop_devtools.fakes) per service: an aiohttp.web server on a free
              port that records every request it gets and echoes it back as JSON (method, raw
              path with query, headers, body), unless a canned answer is set for the path. The
              "auth" one also serves test_key's JWKS, so the gateway verifies tokens minted with
              test_key, and answers the gateway's token exchanges (RFC 8693) with test_key's
              tokens, recorded in ``exchanges`` rather than ``requests``. Each answers GET
              /readyz with ready_status.
gateway       the real gateway (create_app under uvicorn, in its own thread and event loop, the
              way it runs in production) pointed at the four fakes; start_gateway(**env) starts
              one with other settings (an upstream on a closed port, a short timeout).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from gateway_service.main import create_app
from relayshop_devtools.devstack import free_port
from relayshop_devtools.fakes import JWKS_PATH, Fakes, FakeService
from relayshop_devtools.testing import RunningGateway, StartGateway, TestKey


@pytest.fixture
async def fakes(test_key: TestKey) -> AsyncIterator[Fakes]:
    services = Fakes(*(FakeService(name) for name in ("auth", "orders", "payments", "inventory")))
    services.auth.canned[JWKS_PATH] = (200, test_key.jwks())
    services.auth.exchanger = test_key
    for service in services.all():
        await service.start()
    try:
        yield services
    finally:
        for service in services.all():
            await service.stop()


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
