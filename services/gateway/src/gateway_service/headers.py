"""Which headers cross the edge, in each direction.

Up (client -> service): everything the client sent, minus
- hop-by-hop headers (RFC 9110 section 7.6.1), including any header the Connection header names:
  they describe one connection, not the request, and a proxy must not forward them;
- identity headers a client might smuggle in (``X-User-Id: admin``). No relayshop service reads
  them (identity is only ever the verified token), but a service added later, or a sidecar, might;
  so they never get past the edge;
- the headers the gateway sets itself: X-Forwarded-*, X-Request-ID and the W3C trace context
  (replaced by the gateway's own span, injected by the proxy);
- ``Cookie``: the browser's cookies belong to the gateway (the console's session id among
  them). Services authenticate bearer tokens only, so no cookie ever needs to cross the edge.
``Authorization`` is relayed unchanged (token relay): each service verifies it again.

Down (service -> client): everything except hop-by-hop headers and the two the gateway's own
server writes itself (``date``, ``server``), so the client never sees them twice.
"""

from __future__ import annotations

from collections.abc import Iterable

# RFC 9110 section 7.6.1, plus the pre-standard Proxy-Connection some clients still send.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Identity and internal headers a client must never be able to set on an upstream request.
SMUGGLED_IDENTITY = frozenset(
    {
        "x-service-token",  # relayshop_platform.security.SERVICE_TOKEN_HEADER: services only
        "x-user",
        "x-user-id",
        "x-user-roles",
        "x-user-email",
        "x-roles",
        "x-scopes",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-access-token",
        "x-remote-user",
        "remote-user",
        "x-authenticated-user",
        "x-authenticated-userid",
        "x-consumer-id",
        "x-client-id",
    }
)
SMUGGLED_PREFIXES = ("x-internal-", "x-auth-")

# Set by the gateway itself, so the client's values are dropped first.
GATEWAY_SET = frozenset(
    {
        "host",  # the upstream's, set by the HTTP client from the URL
        "forwarded",  # RFC 7239; we speak the X-Forwarded-* dialect, so drop a forged one
        "x-real-ip",  # likewise: a client address we did not write
        "x-forwarded-for",  # appended to below, never dropped silently
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-request-id",
        "traceparent",  # W3C trace context: the proxy injects its own span's
        "tracestate",
        "baggage",
    }
)

# The gateway's own session cookie must not reach a service (or its logs, or a compromised one):
# cookies are scoped to the origin that set them (RFC 6265 section 8.5), here the gateway.
GATEWAY_ONLY = frozenset({"cookie"})

_DROPPED_UP = HOP_BY_HOP | SMUGGLED_IDENTITY | GATEWAY_SET | GATEWAY_ONLY
# The gateway's own server adds these to every response.
_DROPPED_DOWN = HOP_BY_HOP | {"date", "server"}


def _connection_named(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[str]:
    """The header names listed in Connection: hop-by-hop too (RFC 9110 section 7.6.1)."""
    names: set[str] = set()
    for name, value in headers:
        if name == b"connection":
            names.update(token.strip().lower() for token in value.decode("latin-1").split(","))
    return frozenset(names)


def upstream_headers(
    raw: list[tuple[bytes, bytes]],
    *,
    client_ip: str | None,
    scheme: str,
    request_id: str,
    authorization: str | None = None,
) -> list[tuple[str, str]]:
    """The headers to send upstream, from the ASGI request headers (lower-case bytes).
    ``authorization``: the value to send instead of the client's (a token exchanged for the
    upstream service)."""
    connection_named = _connection_named(raw)
    forwarded_for = ""
    host = ""
    headers: list[tuple[str, str]] = []
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1")
        if name in _DROPPED_UP or name.startswith(SMUGGLED_PREFIXES) or name in connection_named:
            if name == "x-forwarded-for":
                forwarded_for = raw_value.decode("latin-1")
            elif name == "host":
                host = raw_value.decode("latin-1")
            continue
        if name == "authorization" and authorization is not None:
            headers.append((name, authorization))
            continue
        headers.append((name, raw_value.decode("latin-1")))
    # X-Forwarded-For: append the address we saw. Earlier entries came from the client and are
    # only as trustworthy as the client; the last one is the one the gateway vouches for.
    if client_ip:
        forwarded_for = f"{forwarded_for}, {client_ip}" if forwarded_for else client_ip
    if forwarded_for:
        headers.append(("x-forwarded-for", forwarded_for))
    headers.append(("x-forwarded-proto", scheme))
    if host:
        headers.append(("x-forwarded-host", host))
    headers.append(("x-request-id", request_id))
    return headers


def downstream_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream response's headers minus the hop-by-hop ones, names lower-cased for ASGI."""
    lowered = [(name.lower(), value) for name, value in raw]
    connection_named = _connection_named(lowered)
    return [
        (name, value)
        for name, value in lowered
        if (text := name.decode("latin-1")) not in _DROPPED_DOWN and text not in connection_named
    ]
