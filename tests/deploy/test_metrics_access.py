"""/metrics answers scrapers only (relayshop_platform/metrics.py), the gateway's port included.

The real gateway app runs in-process; httpx's ASGITransport puts the client address we choose into
the ASGI scope (``scope["client"]``), exactly where uvicorn puts the peer's address.
"""

from __future__ import annotations

import httpx
import pytest
from gateway_service.config import GatewaySettings
from gateway_service.main import create_app

# A scraper in the cluster; a client on the internet (RFC 5737 documentation range).
POD = "10.244.1.17"
PUBLIC = "203.0.113.9"


async def get(client_host: str, path: str = "/metrics", **headers: str) -> httpx.Response:
    gateway = create_app(GatewaySettings())
    app = gateway.app  # the FastAPI app behind the gateway's dispatcher owns the lifespan
    transport = httpx.ASGITransport(gateway, client=(client_host, 50000))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get(path, headers=headers)


@pytest.mark.usefixtures("service_env")
@pytest.mark.parametrize("client_host", ["127.0.0.1", "::1", POD, "172.20.0.5", "192.168.1.20"])
async def test_metrics_answers_scraper_on_allowed_network(client_host: str) -> None:
    response = await get(client_host)
    assert response.status_code == 200
    assert "relayshop_http_requests_total" in response.text


@pytest.mark.usefixtures("service_env")
async def test_metrics_refuses_public_address_like_unknown_path() -> None:
    response = await get(PUBLIC)
    unknown = await get(PUBLIC, "/no-such-page")
    # The very answer of a path that does not exist: nothing tells a scanner /metrics is there.
    assert response.status_code == unknown.status_code == 404
    assert response.json() == unknown.json()
    assert "relayshop_" not in response.text


@pytest.mark.usefixtures("service_env")
@pytest.mark.parametrize(
    "headers",
    [{"X-Forwarded-For": PUBLIC}, {"Forwarded": f"for={PUBLIC}"}, {"X-Forwarded-For": POD}],
)
async def test_metrics_refuses_request_relayed_by_proxy(headers: dict[str, str]) -> None:
    # The ingress controller's own address is private; its forwarding header gives it away.
    response = await get(POD, **headers)
    assert response.status_code == 404


@pytest.mark.usefixtures("service_env")
@pytest.mark.parametrize("client_host", ["testclient", "::ffff:203.0.113.9"])
async def test_metrics_refuses_unparsable_or_mapped_public_address(client_host: str) -> None:
    response = await get(client_host)
    assert response.status_code == 404


async def test_metrics_follows_configured_networks(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYSHOP_METRICS_ALLOWED_NETWORKS", '["127.0.0.0/8", "172.30.99.0/24"]')
    assert (await get(POD)).status_code == 404  # private, but no longer listed
    assert (await get("172.30.99.20")).status_code == 200
    # A dual-stack socket reports IPv4 peers as IPv4-mapped IPv6 addresses.
    assert (await get("::ffff:127.0.0.1")).status_code == 200
