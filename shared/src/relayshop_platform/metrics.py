"""Prometheus metrics: ``GET /metrics`` on every service (text exposition format).

    relayshop_http_requests_total{method, route, status}        request rate and errors:
        sum by (route) (rate(relayshop_http_requests_total{status=~"5.."}[5m]))
    relayshop_http_request_duration_seconds{method, route}      latency histogram:
        histogram_quantile(0.99, sum by (le) (rate(..._bucket[5m])))
    relayshop_token_rejections_total{check, reason}             401s: expired, revoked, signature...
    relayshop_access_denials_total{check, reason}               403/404 refusals: role, not_owner...

``route`` is the route template (``/api/orders/{order_id}``) or the gateway's upstream prefix,
never the raw path: ids in label values would make a new time series per order. Nothing here
ever holds a token, a user id or any other value a client chose.

The endpoint answers on the service's own port, and only to a scraper: a client whose address is
in ``RELAYSHOP_METRICS_ALLOWED_NETWORKS`` (default: loopback and the private ranges, where
Prometheus scrapes pod IPs in a cluster), reaching the service directly. Everyone else gets the
same 404 as for a path that does not exist, so the gateway's public port does not hand out traffic
figures. A request that carries ``Forwarded`` (RFC 7239) or ``X-Forwarded-For`` came through a
proxy, such as the ingress controller in front of the gateway: the peer address is then the
proxy's own private one and says nothing about the real client, so it is refused too. Prometheus
scrapes pods directly and never sends those headers.
"""

from __future__ import annotations

from ipaddress import IPv6Address, ip_address

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.exceptions import HTTPException

REQUESTS = Counter(
    "relayshop_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "relayshop_http_request_duration_seconds",
    "Time from the request's arrival to the last byte of the answer.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TOKEN_REJECTIONS = Counter(
    "relayshop_token_rejections_total",
    "Bearer tokens refused (401), by which check refused them and why.",
    ["check", "reason"],
)
ACCESS_DENIALS = Counter(
    "relayshop_access_denials_total",
    "Requests with a valid token that were refused (403, or a stranger's 404), by check and why.",
    ["check", "reason"],
)
TOKEN_EXCHANGES = Counter(
    "relayshop_token_exchanges_total",
    "Tokens this service needed for a next hop (RFC 8693 exchange), by callee and how it got "
    "one: hit (cached), miss (exchanged at auth), refused (auth said no) or error.",
    ["callee", "result"],
)
EXCHANGE_LATENCY = Histogram(
    "relayshop_token_exchange_seconds",
    "The token exchange call to auth, on a cache miss.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
# Methods outside this set are counted as "OTHER": a client must not mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def may_scrape(request: Request) -> bool:
    """True for a direct request from an allowed network (see the module doc)."""
    if "forwarded" in request.headers or "x-forwarded-for" in request.headers:
        return False
    settings = getattr(request.app.state, "settings", None)  # set by create_service_app
    if settings is None or request.client is None:
        return False  # fail closed: no settings to check against, or no peer address at all
    try:
        address = ip_address(request.client.host)
    except ValueError:  # not an IP address (a Unix socket, a test client's made-up name)
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:10.1.2.3 from a dual-stack socket is 10.1.2.3
    return any(address in network for network in settings.metrics_allowed_networks)


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if not may_scrape(request):
            raise HTTPException(404)  # exactly what an unknown path answers
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
