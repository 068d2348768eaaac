"""GET /readyz of the gateway: 200 only when every service and Redis are ready."""

from __future__ import annotations

from relayshop_devtools.devstack import free_port


async def test_healthz_gets_200(client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200


async def test_readyz_with_everything_up_gets_200(client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["down"] == []
    assert set(body["checks"]) == {"auth", "orders", "payments", "inventory", "redis", "jwks"}


async def test_readyz_names_an_upstream_that_is_down(start_gateway) -> None:
    gateway = await start_gateway(RELAYSHOP_PAYMENTS_URL=f"http://127.0.0.1:{free_port()}")
    async with gateway.client() as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["payments"]
    assert body["checks"]["payments"].startswith("down")
    assert body["checks"]["orders"] == "ok"


async def test_readyz_names_an_upstream_that_is_not_ready(client, fakes) -> None:
    fakes.inventory.ready_status = 503
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["inventory"]
    assert response.json()["checks"]["inventory"] == "down (status 503)"


async def test_readyz_names_redis_when_the_mirror_is_out_of_sync(client, gateway) -> None:
    mirror = gateway.asgi.app.state.revocations
    mirror._lost_at = 0.0  # as the mirror marks a lost Redis connection
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["down"] == ["redis"]
