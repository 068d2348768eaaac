"""GET /api/orders/{order_id}/summary: one order with its payment and products, in one call.

The one piece of the public API the gateway serves itself (an aggregation, the "API composition"
pattern). It calls the three services exactly as the client would: each call passes the edge
check the proxy runs for a request to that path (edge.py: the route rule, and the caller's token
for that service alone, exchanged or relayed), and each service applies its own rules, so a
customer asking for someone else's order gets the 404 orders gives, and sees only what the token
may see. No service token is added: these are public operations, and the gateway must not reach
more than its caller could.

A trusted issuer's token works here as on the proxy path: main.GatewayASGI has already replaced
it with relayshop's token for the same user (federation.py), so this route sees a local user's.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Path, Request
from relayshop_platform.errors import (
    InsufficientScope,
    InvalidToken,
    NotFound,
    UpstreamUnavailable,
)
from relayshop_platform.relay import BearerRelay, HttpClient, upstream_error
from relayshop_platform.security import require_scope

from ..config import Settings
from ..edge import Edge, bearer_token
from ..models import OrderSummary

router = APIRouter(tags=["orders"])
SUMMARY_SOURCES = ("orders", "inventory", "payments")

OrderId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


async def _get(
    http: httpx.AsyncClient, upstream: str, base_url: str, path: str, relay: BearerRelay
) -> dict[str, Any] | None:
    """GET one resource: its JSON, or None for a 404. Other failures become one HTTP answer."""
    try:
        response = await http.get(f"{base_url.rstrip('/')}{path}", auth=relay)
    except httpx.HTTPError as exc:
        raise upstream_error(exc, upstream) from exc  # 503 down, 504 too slow
    if response.status_code == 404:
        return None
    if response.status_code == 401:  # e.g. revoked between our check and theirs
        raise InvalidToken("upstream", f"The {upstream} service refused the access token.")
    if response.status_code == 403:
        raise InsufficientScope(f"The {upstream} service refused this request.")
    if response.status_code != 200:
        raise UpstreamUnavailable(
            f"The {upstream} service answered {response.status_code} unexpectedly."
        )
    try:
        body: dict[str, Any] = response.json()
    except ValueError as exc:
        raise UpstreamUnavailable(f"The {upstream} service answered with invalid JSON.") from exc
    return body


@router.get(
    "/api/orders/{order_id}/summary",
    response_model=OrderSummary,
    summary="An order with its payment and products (gathered by the gateway)",
    dependencies=[Depends(require_scope("orders:read"))],
    responses={
        404: {"description": "Unknown, or not yours to see"},
        503: {"description": "A service behind the gateway is down or answered unexpectedly"},
        504: {"description": "A service behind the gateway was too slow"},
    },
)
async def order_summary(
    order_id: OrderId, request: Request, settings: Settings, http: HttpClient
) -> OrderSummary:
    # require_scope verified the token (401), refused a service token and a token without
    # orders:read (403) before any call out.
    bearer = bearer_token(request.scope["headers"])
    edge: Edge = request.app.state.edge

    async def to(service: str, path: str) -> BearerRelay:
        """The proxy's edge check for GET ``path``, and the token ``service`` gets for it."""
        _, token = await edge.admit("GET", path, bearer, service)
        return BearerRelay(token)

    path = f"/api/orders/{order_id}"
    order = await _get(http, "orders", settings.url("orders"), path, await to("orders", path))
    if order is None:
        raise NotFound("No such order.")

    # The payment and the products do not depend on each other: ask for them all at once.
    items = order.get("items") or []
    skus = list(dict.fromkeys(str(i["sku"]) for i in items if isinstance(i, dict) and "sku" in i))
    payment_id = order.get("payment_id")
    lookups = []
    for sku in skus:
        path = f"/api/inventory/products/{quote(sku, safe='')}"
        relay = await to("inventory", path)  # one exchange, cached: the same token each time
        lookups.append(_get(http, "inventory", settings.url("inventory"), path, relay))
    if payment_id:
        path = f"/api/payments/{quote(str(payment_id), safe='')}"
        relay = await to("payments", path)
        lookups.append(_get(http, "payments", settings.url("payments"), path, relay))
    results = await asyncio.gather(*lookups)
    payment = results.pop() if payment_id else None
    return OrderSummary(
        order=order, payment=payment, products=[p for p in results if p is not None]
    )
