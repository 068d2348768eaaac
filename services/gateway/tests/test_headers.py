"""Which headers cross the edge: unit tests of headers.py (test_proxy.py covers them end to end)."""

from __future__ import annotations

from gateway_service.headers import downstream_headers, upstream_headers


def test_upstream_headers_drop_connection_named_and_internal_headers() -> None:
    raw = [
        (b"host", b"shop.example"),
        (b"connection", b"keep-alive, X-Hop-A , x-hop-b"),
        (b"x-hop-a", b"1"),
        (b"x-hop-b", b"2"),
        (b"x-internal-anything", b"3"),
        (b"x-auth-user", b"admin"),
        (b"authorization", b"Bearer t"),
        (b"accept", b"application/json"),
        (b"traceparent", b"00-client-trace"),
        (b"cookie", b"relayshop_session=s3cr3t"),
    ]
    headers = upstream_headers(raw, client_ip="198.51.100.2", scheme="https", request_id="r-1")
    assert headers == [
        ("authorization", "Bearer t"),
        ("accept", "application/json"),
        ("x-forwarded-for", "198.51.100.2"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "shop.example"),
        ("x-request-id", "r-1"),
    ]


def test_upstream_headers_without_client_address_keep_the_chain() -> None:
    raw = [(b"x-forwarded-for", b"203.0.113.1")]
    headers = upstream_headers(raw, client_ip=None, scheme="http", request_id="r")
    assert ("x-forwarded-for", "203.0.113.1") in headers


def test_downstream_headers_drop_hop_by_hop_and_lower_names() -> None:
    raw = [
        (b"Content-Type", b"application/json"),
        (b"Connection", b"close, X-Upstream-Hop"),
        (b"X-Upstream-Hop", b"1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Date", b"Sat, 01 Jan 2000 00:00:00 GMT"),
        (b"Server", b"uvicorn"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
    ]
    assert downstream_headers(raw) == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
