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

The endpoint answers on the service's own port. Scrape the services on the internal network; at
the edge, keep ``/metrics`` of the gateway away from the public (a proxy rule or a network policy).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

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
# Methods outside this set are counted as "OTHER": a client must not mint label values.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "OTHER"
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
