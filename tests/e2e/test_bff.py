"""The console's backend-for-frontend (gateway /bff/*) over HTTP, without a web.

Cookie flags, CSRF refusals, tokens kept out of every body, refresh before expiry, logout revoking
at auth, and the hop inspector's ownership rule. The tokens themselves are read from the stack's
Redis (where the gateway keeps them), to prove they never reach the client and stop working.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from relayshop_devtools.devstack import PASSWORDS, Client, Stack

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.")
ORDER = {"items": [{"sku": "CB-005", "quantity": 1}], "payment_method": "pm_card_visa"}


@pytest.fixture
def store(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url)
    yield client
    client.close()


@pytest.fixture
def web(stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client that behaves like the page: same-origin fetches, cookies kept."""
    with httpx.Client(
        base_url=stack.url("gateway"),
        timeout=30,
        headers={"Sec-Fetch-Site": "same-origin", "Origin": stack.url("gateway")},
    ) as client:
        yield client


def sign_in(web: httpx.Client, user: str) -> dict:
    answer = web.post("/bff/login", json={"username": user, "password": PASSWORDS[user]})
    assert answer.status_code == 200, answer.text
    return answer.json()


def stored(store: redis.Redis, web: httpx.Client) -> dict:
    session_id = web.cookies["relayshop_session"]
    digest = hashlib.sha256(session_id.encode()).hexdigest()
    raw = store.get(f"relayshop:bff:session:{digest}")
    assert raw is not None
    return json.loads(raw)


def test_login_sets_an_httponly_strict_cookie_and_returns_no_token(
    web: httpx.Client, store: redis.Redis
) -> None:
    answer = web.post("/bff/login", json={"username": "alice", "password": "alice-password"})
    assert answer.status_code == 200
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("relayshop_session=")  # plain-HTTP localhost: no __Host- prefix
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie and "Secure" not in cookie
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["username"] == "alice" and body["roles"] == ["customer"]
    assert not JWT.search(answer.text)
    tokens = stored(store, web)
    assert tokens["access_token"] not in answer.text
    assert tokens["refresh_token"] not in answer.text


def test_login_on_a_real_host_uses_a_secure_host_prefixed_cookie(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url("gateway"), timeout=30) as http:
        host = {"Host": "shop.example.com"}
        answer = http.post(
            "/bff/login", json={"username": "bob", "password": "bob-password"}, headers=host
        )
        assert answer.status_code == 200, answer.text
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("__Host-relayshop_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Domain" not in cookie and "Path=/" in cookie
        session_id = cookie.split(";")[0].split("=", 1)[1]
        # On that host only the __Host- cookie counts: the plain name (which a sibling
        # subdomain could plant) is not read.
        plain = http.get(
            "/bff/session", headers={**host, "Cookie": f"relayshop_session={session_id}"}
        )
        assert plain.json() == {"signed_in": False}
        strict = http.get(
            "/bff/session", headers={**host, "Cookie": f"__Host-relayshop_session={session_id}"}
        )
        assert strict.json()["username"] == "bob"


def test_wrong_password_is_401_and_sets_no_cookie(web: httpx.Client) -> None:
    answer = web.post("/bff/login", json={"username": "alice", "password": "nope"})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers


def test_state_change_without_the_csrf_token_is_403_and_orders_nothing(
    web: httpx.Client, client: Client
) -> None:
    sign_in(web, "alice")
    before = len(web.get("/bff/api/orders").json())
    answer = web.post("/bff/api/orders", json=ORDER)
    assert answer.status_code == 403
    wrong = web.post("/bff/api/orders", json=ORDER, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    assert len(web.get("/bff/api/orders").json()) == before


def test_cross_site_requests_are_403_even_with_the_csrf_token(web: httpx.Client) -> None:
    csrf = sign_in(web, "alice")["csrf_token"]
    for headers in (
        {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},  # another port
        {"Origin": "null"},
    ):
        answer = web.post("/bff/api/orders", json=ORDER, headers={**headers, "X-CSRF-Token": csrf})
        assert answer.status_code == 403, headers
    login = web.post(
        "/bff/login",
        data={"username": "alice", "password": "alice-password"},
        headers={"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert login.status_code == 403


def test_relay_places_an_order_with_the_session_token_and_no_token_in_bodies(
    web: httpx.Client, store: redis.Redis, client: Client
) -> None:
    # The stack is shared by the e2e modules (test_order_flow sells this sku out): restock first.
    walt = client.access("walt")
    stock = {"json": {"stock": 100}}
    restocked = client.request("PUT", "/api/inventory/products/CB-005/stock", walt, **stock)
    assert restocked.status_code == 200, restocked.text
    csrf = sign_in(web, "alice")["csrf_token"]
    tokens = stored(store, web)
    answers = [
        web.get("/bff/session"),
        web.get("/bff/api/inventory/products"),
        web.post("/bff/api/orders", json=ORDER, headers={"X-CSRF-Token": csrf}),
        web.get("/bff/api/orders"),
    ]
    assert answers[2].status_code == 201, answers[2].text
    assert answers[2].json()["status"] == "CONFIRMED"
    assert re.fullmatch(r"[0-9a-f]{32}", answers[2].headers["x-trace-id"])
    for answer in answers:
        assert not JWT.search(answer.text)
        assert tokens["access_token"] not in answer.text
        assert tokens["refresh_token"] not in answer.text


def test_relay_applies_the_edge_rules_and_only_relays_api_services(
    web: httpx.Client,
) -> None:
    csrf = sign_in(web, "alice")["csrf_token"]
    stock = web.put(
        "/bff/api/inventory/products/KB-001/stock",
        json={"stock": 0},
        headers={"X-CSRF-Token": csrf},
    )
    assert stock.status_code == 403
    assert web.get("/bff/api/nothing/here").status_code == 404
    internal = web.get("/bff/api/inventory/reservations/x")
    assert internal.status_code == 403


def test_access_token_is_refreshed_shortly_before_it_expires(
    web: httpx.Client, store: redis.Redis
) -> None:
    sign_in(web, "alice")
    before = stored(store, web)
    digest = hashlib.sha256(web.cookies["relayshop_session"].encode()).hexdigest()
    store.set(
        f"relayshop:bff:session:{digest}",
        json.dumps({**before, "access_expires_at": time.time() + 1}),
        keepttl=True,
    )
    assert web.get("/bff/api/orders").status_code == 200
    after = stored(store, web)
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # single use: rotated
    assert after["access_expires_at"] > time.time() + 60


def test_logout_revokes_the_tokens_at_auth_and_clears_the_cookie(
    web: httpx.Client, store: redis.Redis, client: Client
) -> None:
    csrf = sign_in(web, "alice")["csrf_token"]
    tokens = stored(store, web)
    assert web.post("/bff/logout").status_code == 403  # CSRF token required here too
    answer = web.post("/bff/logout", headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200
    assert answer.json()["revoked"] is True
    assert 'relayshop_session=""' in answer.headers["set-cookie"]
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert web.get("/bff/session").json() == {"signed_in": False}
    # The old tokens are dead at auth, the gateway and the services.
    refused = client.request("GET", "/api/orders", tokens["access_token"], service="orders")
    assert refused.status_code == 401
    refresh = client.http.post(
        f"{client.stack.url('gateway')}/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert refresh.status_code == 400
    check = web.post("/bff/demo/revocation-check", json={"id": answer.json()["revocation_check"]})
    assert check.status_code == 200
    assert [hop["status"] for hop in check.json()["hops"]] == [401, 401, 401, 401]
    assert tokens["access_token"] not in check.text


def test_trace_is_shown_to_its_user_only(stack: Stack, web: httpx.Client) -> None:
    sign_in(web, "alice")
    trace_id = web.get("/bff/api/inventory/products").headers["x-trace-id"]
    spans: list[dict] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = web.get(f"/bff/trace/{trace_id}")
        spans = answer.json().get("spans", []) if answer.status_code == 200 else []
        if {"gateway", "inventory"} <= {span["service"] for span in spans}:
            break
        time.sleep(0.2)
    services = {span["service"] for span in spans}
    assert {"gateway", "inventory"} <= services
    decisions = [s["attributes"].get("relayshop.auth.decision") for s in spans]
    assert "allow" in decisions

    with httpx.Client(base_url=stack.url("gateway"), timeout=30) as bob:
        sign_in(bob, "bob")
        assert bob.get(f"/bff/trace/{trace_id}").status_code == 404
    with httpx.Client(base_url=stack.url("gateway"), timeout=30) as admin:
        sign_in(admin, "admin")
        assert admin.get(f"/bff/trace/{trace_id}").status_code == 200
    assert httpx.get(f"{stack.url('gateway')}/bff/trace/{trace_id}").status_code == 401


def test_console_page_has_a_strict_content_security_policy(stack: Stack) -> None:
    page = httpx.get(stack.url("gateway") + "/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    script = httpx.get(stack.url("gateway") + "/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text  # no inline script: CSP would block it anyway
