"""The proxy path end to end: a client, the real gateway and recording fake services, over TCP."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import redis.asyncio as aioredis
from relayshop_devtools.devstack import free_port
from relayshop_devtools.testing import TestKey
from relayshop_platform.revocation import RevocationStore

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def echo(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body


def echoed_headers(response: httpx.Response) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in echo(response)["headers"]:
        headers.setdefault(name, []).append(value)
    return headers


def assert_ids(response: httpx.Response) -> None:
    assert response.headers.get("x-request-id"), response.headers
    assert TRACE_ID.match(response.headers.get("x-trace-id", "")), response.headers


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def raw_request(port: int, head: str) -> tuple[int, bytes]:
    """Send a request exactly as written (no client library tidying the path); status, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    return int(data.split(b" ", 2)[1]), data.partition(b"\r\n\r\n")[2]


# -- routing -------------------------------------------------------------------------------


async def test_forward_keeps_raw_path_and_query(client, fakes, test_key) -> None:
    target = "/api/orders/abc%2Fdef/x%20y?b=2&a=1&a=%20z&empty="
    response = await client.get(target, headers=auth(test_key.mint()))
    assert response.status_code == 200
    assert echo(response)["target"] == target
    assert fakes.orders.requests[0].target == target


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/orders", "orders"),
        ("/api/orders/o-1", "orders"),
        ("/api/payments/p-1", "payments"),
        ("/api/inventory/products", "inventory"),
        ("/api/inventory/products/KB-001", "inventory"),
    ],
)
async def test_forward_routes_each_prefix_to_its_service(client, test_key, path, service) -> None:
    response = await client.get(path, headers=auth(test_key.mint()))
    assert response.status_code == 200
    assert echo(response)["service"] == service
    assert echo(response)["target"] == path


async def test_unknown_api_path_gets_404_problem(client, fakes, test_key) -> None:
    for path in ("/api/users", "/api/ordersX", "/api"):
        response = await client.get(path, headers=auth(test_key.mint()))
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404
        assert_ids(response)
    assert fakes.request_count() == 0


async def test_dot_segment_path_gets_400_and_goes_nowhere(gateway, fakes, test_key) -> None:
    for target in (
        "/api/inventory/products/../reservations",
        "/api/inventory/products/%2e%2e/reservations",
        "/api/inventory//reservations",
    ):
        status, _ = await raw_request(
            gateway.port,
            f"GET {target} HTTP/1.1\nHost: x\nConnection: close\n"
            f"Authorization: Bearer {test_key.mint(roles=['admin'])}\n",
        )
        assert status == 400, target
    assert fakes.request_count() == 0


async def test_auth_paths_pass_without_token(client, fakes) -> None:
    response = await client.post(
        "/auth/token", data={"grant_type": "password", "username": "alice", "password": "pw"}
    )
    assert response.status_code == 200
    seen = fakes.auth.requests[-1]
    assert seen.target == "/auth/token"
    assert seen.body == b"grant_type=password&username=alice&password=pw"
    assert seen.header("content-type") == "application/x-www-form-urlencoded"

    # Admin endpoints of auth too: auth checks the admin role itself.
    response = await client.post("/auth/admin/keys/rotate")
    assert response.status_code == 200
    assert fakes.auth.requests[-1].target == "/auth/admin/keys/rotate"


# -- headers -------------------------------------------------------------------------------


async def test_forward_sends_a_token_exchanged_for_the_upstream_alone(
    client, fakes, test_key
) -> None:
    token = test_key.mint(aud="urn:relayshop:gateway")
    await client.get("/api/inventory/products", headers=auth(token))
    await client.get("/api/inventory/products/KB-001", headers=auth(token))

    (sent,) = set(r.header("authorization") for r in fakes.inventory.requests)
    assert sent != f"Bearer {token}"
    claims = jwt.decode(sent.removeprefix("Bearer "), options={"verify_signature": False})
    assert claims["aud"] == "urn:relayshop:inventory"
    assert claims["act"] == {"sub": "gateway"}
    # RFC 8693 as the gateway, once: the second request used the cached exchanged token.
    (exchange,) = fakes.auth.exchanges
    assert exchange["subject_token"] == token
    assert exchange["audience"] == "urn:relayshop:inventory"


async def test_relay_mode_relays_authorization_unchanged(start_gateway, fakes, test_key) -> None:
    gateway = await start_gateway(RELAYSHOP_TOKEN_MODE="relay")
    token = test_key.mint()
    async with gateway.client() as client:
        await client.get("/api/inventory/products", headers=auth(token))
    assert fakes.inventory.requests[0].header_all("authorization") == [f"Bearer {token}"]
    assert fakes.auth.exchanges == []


async def test_a_refused_exchange_is_a_401_and_nothing_goes_upstream(
    client, fakes, test_key
) -> None:
    fakes.auth.canned["exchange"] = (400, {"error": "invalid_grant"})
    response = await client.get("/api/orders", headers=auth(test_key.mint()))
    assert response.status_code == 401
    assert fakes.orders.requests == []


async def test_a_token_for_another_audience_is_refused_at_the_edge(client, fakes, test_key) -> None:
    response = await client.get(
        "/api/orders", headers=auth(test_key.mint(aud="urn:relayshop:orders"))
    )
    assert response.status_code == 401
    assert "audience" in response.json()["detail"]
    assert fakes.request_count() == 0


async def test_forward_drops_smuggled_and_hop_by_hop_headers(client, fakes, test_key) -> None:
    smuggled = {
        "X-User-Id": "admin",
        "X-User-Roles": "admin",
        "X-Service-Token": test_key.service_token("orders"),
        "X-Forwarded-User": "admin",
        "X-Auth-Request-User": "admin",
        "X-Internal-Caller": "orders",
        "X-Remote-User": "admin",
        "Forwarded": "for=10.0.0.1",
        "Proxy-Authorization": "Basic Zm9vOmJhcg==",
        "Keep-Alive": "timeout=5",
        "TE": "trailers",
        "Trailer": "X-Checksum",
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "only for the next hop",
        "Cookie": "relayshop_session=the-consoles-session-id; other=1",
        "X-Ordinary": "kept",
    }
    response = await client.get("/api/orders", headers={**smuggled, **auth(test_key.mint())})
    assert response.status_code == 200
    received = echoed_headers(response)
    for name in smuggled:
        if name != "X-Ordinary":
            assert name.lower() not in received, name
    assert received["x-ordinary"] == ["kept"]


async def test_forward_sets_forwarded_headers_and_request_id(
    client, gateway, fakes, test_key
) -> None:
    response = await client.get(
        "/api/orders",
        headers={
            **auth(test_key.mint()),
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "gopher",
            "X-Request-ID": "client-chosen.id-1",
        },
    )
    seen = fakes.orders.requests[0]
    assert seen.header_all("x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]
    assert seen.header_all("x-forwarded-proto") == ["http"]
    assert seen.header_all("x-forwarded-host") == [f"127.0.0.1:{gateway.port}"]
    assert seen.header_all("x-request-id") == ["client-chosen.id-1"]
    assert response.headers["x-request-id"] == "client-chosen.id-1"


async def test_forward_replaces_an_unsafe_request_id(client, fakes, test_key) -> None:
    response = await client.get(
        "/api/orders", headers={**auth(test_key.mint()), "X-Request-ID": "bad id\twith junk"}
    )
    chosen = response.headers["x-request-id"]
    assert chosen != "bad id\twith junk"
    assert fakes.orders.requests[0].header_all("x-request-id") == [chosen]


async def test_forward_injects_trace_context_of_x_trace_id(client, fakes, test_key) -> None:
    response = await client.get("/api/payments/p-1", headers=auth(test_key.mint()))
    trace_id = response.headers["x-trace-id"]
    assert TRACE_ID.match(trace_id)
    traceparent = fakes.payments.requests[0].header_all("traceparent")
    assert len(traceparent) == 1
    assert traceparent[0].split("-")[1] == trace_id


CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"  # sampled: "trace this, please"


async def test_forward_starts_a_new_trace_whatever_the_client_sent(client, fakes, test_key) -> None:
    response = await client.get(
        "/api/payments/p-1",
        headers={**auth(test_key.mint()), "traceparent": CLIENT_PARENT, "tracestate": "a=b"},
    )
    trace_id = response.headers["x-trace-id"]
    assert TRACE_ID.match(trace_id) and trace_id != CLIENT_TRACE
    upstream = fakes.payments.requests[0]
    assert [value.split("-")[1] for value in upstream.header_all("traceparent")] == [trace_id]
    assert upstream.header_all("tracestate") == []


async def test_gateway_routes_start_a_new_trace_too(client, fakes, test_key) -> None:
    response = await client.get(
        "/api/orders/o-1/summary", headers={**auth(test_key.mint()), "traceparent": CLIENT_PARENT}
    )
    assert TRACE_ID.match(response.headers["x-trace-id"])
    assert response.headers["x-trace-id"] != CLIENT_TRACE


async def test_forward_continues_the_clients_trace_when_trusted(
    start_gateway, fakes, test_key
) -> None:
    gateway = await start_gateway(RELAYSHOP_TRUST_CLIENT_TRACE_CONTEXT="true")
    async with gateway.client() as client:
        response = await client.get(
            "/api/payments/p-1", headers={**auth(test_key.mint()), "traceparent": CLIENT_PARENT}
        )
    assert response.headers["x-trace-id"] == CLIENT_TRACE
    upstream = fakes.payments.requests[0].header_all("traceparent")
    assert upstream[0].split("-")[1] == CLIENT_TRACE
    assert (
        upstream[0].split("-")[2] != "00f067aa0ba902b7"
    )  # the gateway's own span, not the client's


# -- the token at the edge ---------------------------------------------------------------


async def test_missing_token_gets_401_without_error_attribute(client, fakes) -> None:
    for headers in ({}, {"Authorization": "Basic YWxpY2U6cHc="}, {"Authorization": "Bearer"}):
        response = await client.get("/api/orders", headers=headers)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="relayshop"')
        assert "error=" not in challenge
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401
        assert_ids(response)
    assert fakes.request_count() == 0


def _bad_tokens(key: TestKey) -> dict[str, str]:
    now = int(time.time())
    claims = key.claims()
    return {
        "expired": key.mint(exp=now - 120, iat=now - 420),
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': key.kid})}.{_b64(claims)}.",
        "other_key_same_kid": TestKey(kid=key.kid).mint(),
        "wrong_audience": key.mint(aud="someone-else"),
        "wrong_issuer": key.mint(iss="https://evil.example/auth"),
        "not_an_access_token": key.mint(headers={"typ": "JWT"}),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "alg_none",
        "other_key_same_kid",
        "wrong_audience",
        "wrong_issuer",
        "not_an_access_token",
        "garbage",
    ],
)
async def test_bad_token_gets_401_invalid_token_and_nothing_upstream(
    client, fakes, test_key, kind
) -> None:
    token = _bad_tokens(test_key)[kind]
    response = await client.post("/api/orders", headers=auth(token), json={"items": []})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.headers["content-type"] == "application/problem+json"
    assert_ids(response)
    assert fakes.request_count() == 0


async def test_revoked_token_gets_401_within_a_second(client, redis_url, test_key) -> None:
    token_claims = test_key.claims()
    token = test_key.mint(token_claims)
    assert (await client.get("/api/orders", headers=auth(token))).status_code == 200
    redis = aioredis.from_url(redis_url)
    try:
        await RevocationStore(redis).revoke_jti(token_claims["jti"], token_claims["exp"])
    finally:
        await redis.aclose()
    deadline = time.monotonic() + 1.0
    while True:
        response = await client.get("/api/orders", headers=auth(token))
        if response.status_code == 401 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_duplicate_authorization_headers_get_400(client, fakes, test_key) -> None:
    response = await client.get(
        "/api/orders",
        headers=[
            ("Authorization", f"Bearer {test_key.mint()}"),
            ("Authorization", "Bearer something-else"),
        ],
    )
    assert response.status_code == 400
    assert fakes.request_count() == 0


async def test_service_token_at_the_edge_gets_403(client, fakes, test_key) -> None:
    response = await client.get(
        "/api/inventory/products", headers=auth(test_key.service_token("orders"))
    )
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert fakes.request_count() == 0


# -- coarse route rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "role", "allowed"),
    [
        ("PUT", "/api/inventory/products/KB-001/stock", "customer", False),
        ("PUT", "/api/inventory/products/KB-001/stock", "support", False),
        ("PUT", "/api/inventory/products/KB-001/stock", "warehouse", True),
        ("PUT", "/api/inventory/products/KB-001/stock", "admin", True),
        ("POST", "/api/payments/p-1/refund", "customer", False),
        ("POST", "/api/payments/p-1/refund", "admin", True),
        ("POST", "/api/orders", "support", False),
        ("POST", "/api/orders/", "warehouse", False),
        ("POST", "/api/orders", "customer", True),
        ("GET", "/api/orders", "support", True),
        ("POST", "/api/orders/o-1/cancel", "customer", True),
        ("GET", "/api/inventory/products", "warehouse", True),
    ],
)
async def test_route_rules_decide_by_role(
    client, fakes, test_key, method, path, role, allowed
) -> None:
    response = await client.request(
        method, path, headers=auth(test_key.mint(roles=[role])), json={"stock": 5}
    )
    if allowed:
        assert response.status_code == 200
        assert echo(response)["body"] == '{"stock":5}'
    else:
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
        assert response.json()["status"] == 403
        assert_ids(response)
        assert fakes.request_count() == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/inventory/reservations"),
        ("GET", "/api/inventory/reservations/o-1"),
        ("POST", "/api/inventory/reservations/o-1/commit"),
        ("POST", "/api/inventory/reservations/o-1/release"),
        ("POST", "/api/payments/charges"),
        ("GET", "/api/payments/by-order/o-1"),
        ("POST", "/api/payments/by-order/o-1/refund"),
        ("GET", "/api/payments/by-order"),
    ],
)
async def test_internal_paths_get_403_even_for_admin(client, fakes, test_key, method, path) -> None:
    response = await client.request(method, path, headers=auth(test_key.mint(roles=["admin"])))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert fakes.request_count() == 0


# -- bodies --------------------------------------------------------------------------------


async def test_body_within_limit_arrives_intact(client, fakes, test_key) -> None:
    payload = b'{"items": [{"sku": "KB-001", "quantity": 1}], "note": "' + b"x" * 900 + b'"}'
    response = await client.post(
        "/api/orders",
        headers={**auth(test_key.mint()), "Content-Type": "application/json"},
        content=payload,
    )
    assert response.status_code == 200
    assert fakes.orders.requests[0].body == payload
    assert fakes.orders.requests[0].header("content-length") == str(len(payload))


async def test_streamed_body_within_limit_arrives_intact(client, fakes, test_key) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(10):
            yield b"%d" % index * 50

    response = await client.post("/api/orders", headers=auth(test_key.mint()), content=chunks())
    assert response.status_code == 200
    assert fakes.orders.requests[0].body == b"".join(b"%d" % i * 50 for i in range(10))


async def test_body_over_limit_by_content_length_gets_413(client, fakes, test_key) -> None:
    response = await client.post("/api/orders", headers=auth(test_key.mint()), content=b"x" * 1025)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert_ids(response)
    assert fakes.request_count() == 0


async def test_streamed_body_over_limit_gets_413(client, test_key) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 100

    response = await client.post("/api/orders", headers=auth(test_key.mint()), content=chunks())
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert_ids(response)


# -- upstream failures ---------------------------------------------------------------------


async def test_upstream_down_gets_503_problem_naming_it(start_gateway, test_key) -> None:
    gateway = await start_gateway(RELAYSHOP_ORDERS_URL=f"http://127.0.0.1:{free_port()}")
    async with gateway.client() as client:
        started = time.monotonic()
        response = await client.get("/api/orders", headers=auth(test_key.mint()))
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "orders" in response.json()["detail"]
    assert "Traceback" not in response.text
    assert elapsed < 1.0  # refused at once, not after the 1 s timeout
    assert_ids(response)


async def test_slow_upstream_gets_504_after_the_timeout(client, fakes, test_key) -> None:
    fakes.inventory.delay = 5.0
    started = time.monotonic()
    response = await client.get("/api/inventory/products", headers=auth(test_key.mint()))
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"
    assert "inventory" in response.json()["detail"]
    assert 0.9 < elapsed < 3.0  # RELAYSHOP_UPSTREAM_TIMEOUT_SECONDS=1.0 in these tests
    assert_ids(response)


async def test_upstream_errors_pass_through_unchanged(client, fakes, test_key) -> None:
    fakes.orders.canned["/api/orders/o-9"] = (404, {"title": "Not Found", "status": 404})
    response = await client.get("/api/orders/o-9", headers=auth(test_key.mint()))
    assert response.status_code == 404
    assert response.json() == {"title": "Not Found", "status": 404}
    assert_ids(response)


# -- what every response carries -----------------------------------------------------------


async def test_every_response_carries_request_and_trace_ids(client, test_key) -> None:
    customer = auth(test_key.mint())
    responses = [
        await client.get("/api/orders", headers=customer),  # proxied
        await client.get("/auth/userinfo"),  # proxied, no token needed
        await client.get("/api/orders"),  # 401
        await client.get("/api/payments/charges", headers=customer),  # 403
        await client.get("/api/nothing", headers=customer),  # 404 at the edge
        await client.get("/healthz"),
        await client.get("/readyz"),
        await client.get("/openapi.json"),
        await client.get("/not-a-route"),  # FastAPI's 404
    ]
    for response in responses:
        assert_ids(response)
    assert len({r.headers["x-request-id"] for r in responses}) == len(responses)
