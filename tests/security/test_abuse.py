"""Abuse cases: guessing passwords, probing for users and for other people's objects, oversized
and malformed requests, cross-origin reads, and replays.

Failed sign-ins are sent with an X-Forwarded-For address made up per test: auth trusts that
header only from a trusted proxy, and these tests run on 127.0.0.1, which is one (the gateway's
address). So each test picks the "client address" auth counts against, and no test's failures
lock out another's.

A request sent straight to orders, payments or inventory carries the user's token as that service
would receive it in the stack's token mode (``received`` in conftest.py): exchanged for it by the
gateway for a public route, and along gateway -> caller -> callee for an internal operation, with
the caller's own token for that callee beside it. So each attack reaches the check it is about and
fails for its own reason (ownership, role, size, syntax, idempotency), never merely because the
token was addressed to another service.
"""

from __future__ import annotations

import concurrent.futures
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from relayshop_devtools.devstack import PASSWORDS

WINDOW_SECONDS = 3  # RELAYSHOP_LOGIN_FAILURE_WINDOW_SECONDS of the suite's stack (conftest.py)
MAX_PER_USERNAME = 5
MAX_PER_ADDRESS = 10
SERVICES = ("orders", "payments", "inventory")
EVERY_TARGET = ("gateway", "auth", *SERVICES)
# One JSON endpoint per target that reads a body (the internal ones parse it before any check).
JSON_ENDPOINTS = {
    "gateway": ("POST", "/api/orders"),
    "orders": ("POST", "/api/orders"),
    "payments": ("POST", "/api/payments/charges"),
    "inventory": ("PUT", "/api/inventory/products/KB-001/stock"),
    "auth": ("POST", "/auth/password"),
}
UNKNOWN_ORIGINS = (
    "https://evil.example",
    "null",
    "http://localhost:8000.evil.example",
    "http://127.0.0.1.evil.example:8000",
)


def fake_address() -> str:
    """A made-up client address in TEST-NET-2 (RFC 5737)."""
    raw = os.urandom(2)
    return f"198.51.{raw[0]}.{max(raw[1], 1)}"


def password_grant(
    client: httpx.Client, url: str, username: str, password: str, address: str
) -> httpx.Response:
    return client.post(
        f"{url}/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def wait_until_signed_in(
    client: httpx.Client, url: str, username: str, address: str
) -> tuple[float, httpx.Response]:
    """Poll (with the right password) until the lock ends; how long it took, and the answer."""
    started = time.monotonic()
    while True:
        answer = password_grant(client, url, username, PASSWORDS[username], address)
        if answer.status_code != 429 or time.monotonic() - started > WINDOW_SECONDS + 5:
            return time.monotonic() - started, answer
        time.sleep(0.2)


# -- brute force and enumeration (OWASP Authentication and Credential Stuffing cheat sheets) ----
def test_guessing_one_account_is_throttled_then_the_lock_ends(
    targets: dict[str, str], attacker: httpx.Client
) -> None:
    gateway = targets["gateway"]
    # Distinct addresses: only the per-account counter can be what stops this.
    for _ in range(MAX_PER_USERNAME):
        answer = password_grant(attacker, gateway, "walt", "wrong-password", fake_address())
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    refused = password_grant(attacker, gateway, "walt", PASSWORDS["walt"], fake_address())
    assert refused.status_code == 429, refused.text  # even the right password waits
    assert 1 <= int(refused.headers["retry-after"]) <= WINDOW_SECONDS
    assert refused.json()["error"] == "slow_down"
    # Not locked forever: once the window has passed, the owner signs in again.
    waited, answer = wait_until_signed_in(attacker, gateway, "walt", fake_address())
    assert answer.status_code == 200, answer.text
    assert waited <= WINDOW_SECONDS + 1


def test_guessing_from_one_address_is_throttled_then_the_lock_ends(
    targets: dict[str, str], attacker: httpx.Client
) -> None:
    auth, address = targets["auth"], fake_address()
    # Credential stuffing: many usernames, one address. The per-address counter stops it.
    for _ in range(MAX_PER_ADDRESS):
        answer = password_grant(attacker, auth, f"ghost-{uuid.uuid4().hex[:8]}", "x", address)
        assert answer.status_code == 400, answer.text
    refused = password_grant(attacker, auth, "carol", PASSWORDS["carol"], address)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) <= WINDOW_SECONDS
    # The victim account itself is not locked: from another address it signs in at once.
    assert password_grant(attacker, auth, "carol", PASSWORDS["carol"], fake_address()).is_success
    waited, answer = wait_until_signed_in(attacker, auth, "carol", address)
    assert answer.status_code == 200, answer.text
    assert waited <= WINDOW_SECONDS + 1


@pytest.mark.parametrize("target", ["gateway", "auth"])
def test_concurrent_guesses_never_pass_the_limit(
    target: str, targets: dict[str, str], attacker: httpx.Client
) -> None:
    """Twenty guesses at once at one account: each is counted before its password is hashed,
    so exactly the limit of them is checked and the rest wait (no check-then-act race)."""
    url, username = targets[target], f"ghost-{uuid.uuid4().hex[:8]}"
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(
                lambda _: password_grant(attacker, url, username, "guess", fake_address()),
                range(20),
            )
        )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [400] * MAX_PER_USERNAME + [429] * (20 - MAX_PER_USERNAME)


@pytest.mark.parametrize("target", ["gateway", "auth"])
def test_guessing_a_client_secret_is_throttled(
    target: str, targets: dict[str, str], attacker: httpx.Client
) -> None:
    """client_credentials is a password check too: per client (here from twenty addresses at
    once), then per address (many clients from one)."""
    url, client_id = targets[target], f"ghost-client-{uuid.uuid4().hex[:8]}"

    def guess(client: str, address: str) -> httpx.Response:
        return attacker.post(
            f"{url}/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(client, "guessed-secret"),
            headers={"X-Forwarded-For": address},
        )

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: guess(client_id, fake_address()), range(20)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * MAX_PER_USERNAME + [429] * (20 - MAX_PER_USERNAME)
    address = fake_address()
    for _ in range(MAX_PER_ADDRESS):
        assert guess(f"ghost-client-{uuid.uuid4().hex[:8]}", address).status_code == 401
    refused = guess(f"ghost-client-{uuid.uuid4().hex[:8]}", address)
    assert refused.status_code == 429 and refused.json()["error"] == "slow_down"


@pytest.mark.parametrize("target", ["gateway", "auth"])
def test_unknown_user_and_wrong_password_answer_the_same(
    target: str, targets: dict[str, str], attacker: httpx.Client
) -> None:
    url = targets[target]
    wrong = password_grant(attacker, url, "bob", "not-bobs-password", fake_address())
    unknown = password_grant(attacker, url, "nobody-" + uuid.uuid4().hex[:8], "x", fake_address())
    assert wrong.status_code == unknown.status_code == 400
    assert wrong.content == unknown.content
    varying = {"date", "x-request-id", "x-trace-id", "content-length"}
    assert {k for k in wrong.headers if k not in varying} == {
        k for k in unknown.headers if k not in varying
    }


def test_unknown_user_and_wrong_password_take_the_same_time(
    targets: dict[str, str], attacker: httpx.Client, http: httpx.Client
) -> None:
    """Medians of 30 tries each, interleaved, differ by less than 20% (directly at auth, where
    the only difference can be made). The throttle must not decide the answer: each try comes
    from its own address, unknown names are all different, and bob signs in for real every few
    tries, which clears his counter."""
    auth = targets["auth"]
    known: list[float] = []
    unknown: list[float] = []
    for attempt in range(30):
        if attempt % (MAX_PER_USERNAME - 1) == 0:
            assert password_grant(http, auth, "bob", PASSWORDS["bob"], fake_address()).is_success
        for username, times in (("bob", known), (f"ghost-{uuid.uuid4().hex[:8]}", unknown)):
            started = time.perf_counter()
            answer = password_grant(attacker, auth, username, "wrong-password", fake_address())
            times.append(time.perf_counter() - started)
            assert answer.status_code == 400, answer.text
    known_median, unknown_median = statistics.median(known), statistics.median(unknown)
    difference = abs(known_median - unknown_median) / min(known_median, unknown_median)
    assert difference < 0.20, f"known {known_median:.4f}s, unknown {unknown_median:.4f}s"


# -- IDOR: someone else's object is a 404, exactly like one that does not exist -----------------
def test_strangers_get_404_for_every_object_route(
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    received: Any,
    alice_order: Any,
) -> None:
    bob_token = accounts["bob"].access_token

    def bob(target: str) -> dict[str, str]:
        # Bob's token as the target receives it: a valid token for that hop, so only the
        # ownership rule can refuse him.
        return bearer(received(bob_token, target))

    order, payment = alice_order.id, alice_order.payment_id
    routes = [
        ("GET", f"/api/orders/{order}", ("gateway", "orders")),
        ("POST", f"/api/orders/{order}/cancel", ("gateway", "orders")),
        ("GET", f"/api/orders/{order}/summary", ("gateway",)),
        ("GET", f"/api/payments/{payment}", ("gateway", "payments")),
    ]
    for method, path, where in routes:
        for target in where:
            answer = attacker.request(method, targets[target] + path, headers=bob(target))
            assert answer.status_code == 404, f"{target} {method} {path}: {answer.text}"
            # Indistinguishable from an id that does not exist.
            unknown_path = path.replace(order, "0" * 32).replace(payment, "pay_" + "0" * 32)
            unknown = attacker.request(method, targets[target] + unknown_path, headers=bob(target))
            assert unknown.status_code == 404
            assert unknown.json()["title"] == answer.json()["title"]
    listed = attacker.get(targets["gateway"] + "/api/orders?limit=200", headers=bob("gateway"))
    assert order not in {o["id"] for o in listed.json()}
    # Refunds are admin-only: a customer gets the same 403 for any id, known or not.
    for target in ("gateway", "payments"):
        for pid in (payment, "pay_" + "0" * 32):
            answer = attacker.post(
                f"{targets[target]}/api/payments/{pid}/refund", headers=bob(target)
            )
            assert answer.status_code == 403, answer.text


def test_strangers_get_404_from_internal_object_routes_even_via_a_service(
    targets: dict[str, str],
    attacker: httpx.Client,
    http: httpx.Client,
    accounts: dict[str, Any],
    service_tokens: Any,
    received: Any,
    alice_order: Any,
) -> None:
    """Bob's token relayed by a real service token: the ownership rule still applies. Bob's token
    is the one the caller would send (exchanged along gateway -> caller -> target in exchange
    mode, so its nearest actor is the caller) beside the caller's own token for the target: every
    token check passes, and only the ownership rule is left to refuse him."""
    order = alice_order.id
    routes = [
        ("inventory", "GET", f"/api/inventory/reservations/{order}", "orders"),
        ("inventory", "POST", f"/api/inventory/reservations/{order}/commit", "payments"),
        ("inventory", "POST", f"/api/inventory/reservations/{order}/release", "orders"),
        ("payments", "GET", f"/api/payments/by-order/{order}", "orders"),
        ("payments", "POST", f"/api/payments/by-order/{order}/refund", "orders"),
    ]
    bob = accounts["bob"].access_token
    for target, method, path, caller in routes:
        service = {"X-Service-Token": service_tokens[caller, target]}
        headers = bearer(received(bob, caller, target), **service)
        answer = attacker.request(method, targets[target] + path, headers=headers)
        assert answer.status_code == 404, f"{target} {method} {path}: {answer.text}"
        # Through the gateway an internal route is out of reach whatever the token: bob's own
        # token (the one the gateway accepts) with the service token beside it.
        edge = attacker.request(method, targets["gateway"] + path, headers=bearer(bob, **service))
        assert edge.status_code == 403, edge.text
    # And nothing happened to alice's order: still confirmed, paid and committed.
    alice = bearer(accounts["alice"].access_token)
    seen = http.get(f"{targets['gateway']}/api/orders/{order}/summary", headers=alice).json()
    assert seen["order"]["status"] == "CONFIRMED"
    assert seen["payment"]["status"] == "CAPTURED"
    reservation = http.get(
        f"{targets['inventory']}/api/inventory/reservations/{order}",
        headers=bearer(
            received(accounts["alice"].access_token, "orders", "inventory"),
            **{"X-Service-Token": service_tokens["orders", "inventory"]},
        ),
    )
    assert reservation.json()["status"] == "COMMITTED"


# -- oversized and malformed requests -----------------------------------------------------------
@pytest.fixture
def body_headers(
    accounts: dict[str, Any], service_tokens: Any, received: Any
) -> dict[str, dict[str, str]]:
    """Per target, credentials that get a request as far as its body: a customer for orders, the
    warehouse for stock, a customer via orders for the internal charge (each token as that
    target receives it, so a refusal is about the body, never about the token's audience)."""
    json_type = {"Content-Type": "application/json"}
    alice, walt = accounts["alice"].access_token, accounts["walt"].access_token
    via_orders = {"X-Service-Token": service_tokens["orders", "payments"]}
    return {
        "gateway": bearer(alice, **json_type),
        "orders": bearer(received(alice, "orders"), **json_type),
        "payments": bearer(received(alice, "orders", "payments"), **json_type, **via_orders),
        "inventory": bearer(received(walt, "inventory"), **json_type),
        "auth": bearer(alice, **json_type),
    }


def _chunks(total: int) -> Iterator[bytes]:
    chunk = b" " * 65536
    for _ in range(total // len(chunk)):
        yield chunk


@pytest.mark.parametrize("target", EVERY_TARGET)
def test_oversized_body_is_413(
    target: str,
    targets: dict[str, str],
    attacker: httpx.Client,
    body_headers: dict[str, dict[str, str]],
) -> None:
    method, path = JSON_ENDPOINTS[target]
    headers = body_headers[target]
    big = 2 * 1024 * 1024
    declared = attacker.request(method, targets[target] + path, content=b" " * big, headers=headers)
    assert declared.status_code == 413, declared.text
    # Chunked: no Content-Length to refuse up front, so the limit cuts the stream.
    chunked = attacker.request(
        method, targets[target] + path, content=_chunks(big), headers=headers
    )
    assert chunked.status_code == 413, chunked.text
    # auth's form endpoints have a smaller budget (a token request is a few hundred bytes).
    if target in ("auth", "gateway"):
        form = attacker.post(
            targets[target] + "/auth/token",
            content=b"grant_type=password&username=" + b"a" * 20000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert form.status_code == 413, form.text


@pytest.mark.parametrize("target", EVERY_TARGET)
def test_oversized_headers_are_431(
    target: str,
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    received: Any,
) -> None:
    token = received(accounts["alice"].access_token, target)
    paths = ["/healthz", JSON_ENDPOINTS[target][1]]
    for path in paths:
        for headers in (
            {"X-Padding": "p" * 20000},  # one huge field
            {f"X-Padding-{i}": "p" * 1000 for i in range(20)},  # many ordinary ones
        ):
            answer = attacker.get(targets[target] + path, headers=bearer(token, **headers))
            assert answer.status_code == 431, f"{target} {path}: {answer.status_code}"


@pytest.mark.parametrize("target", EVERY_TARGET)
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        b'{"items": [' + b"[" * 3000 + b"]" * 3000 + b'], "payment_method": "pm_card_visa"}',
        b'{"items": "\xff\xfe", "payment_method": "pm_card_visa"}',
        b'{"stock": 1, "\xc0\xaf": "overlong"}',
        b'{"stock": 1e999999}',
        b'{"stock": NaN}',
        b'{"stock": ' + b"9" * 5000 + b"}",
    ],
    ids=[
        "nested_arrays",
        "nested_objects",
        "nested_in_field",
        "invalid_utf8",
        "overlong_utf8",
        "huge_exponent",
        "nan",
        "huge_integer",
    ],
)
def test_malformed_json_is_4xx(
    target: str,
    body: bytes,
    targets: dict[str, str],
    attacker: httpx.Client,
    body_headers: dict[str, dict[str, str]],
) -> None:
    method, path = JSON_ENDPOINTS[target]
    answer = attacker.request(
        method, targets[target] + path, content=body, headers=body_headers[target]
    )
    assert 400 <= answer.status_code < 500, f"{answer.status_code} {answer.text[:200]}"


@pytest.mark.parametrize("target", ["gateway", *SERVICES])
def test_malformed_path_and_query_are_4xx(
    target: str,
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    received: Any,
) -> None:
    prefix = {"gateway": "/api/orders", "orders": "/api/orders"}.get(
        target, "/api/payments" if target == "payments" else "/api/inventory/products"
    )
    # The admin's token as the target receives it: a 4xx must come from the path or the query
    # (a 401 for the token's audience would pass this test without testing anything).
    headers = bearer(received(accounts["admin"].access_token, target))
    for suffix in ("/%ff%fe", "/%c0%af", "/abc%00def", "/" + "a" * 5000, "/%2e%2e%2fsecret"):
        answer = attacker.get(targets[target] + prefix + suffix, headers=headers)
        assert 400 <= answer.status_code < 500, f"{prefix}{suffix[:40]}: {answer.status_code}"
    for query in ("limit=%ff", "limit=%00", "limit=1e9999", "limit=-1&offset=%ff"):
        answer = attacker.get(f"{targets[target]}{prefix}?{query}", headers=headers)
        assert answer.status_code < 500, f"{query}: {answer.status_code}"


def test_invalid_utf8_or_control_characters_in_a_form_are_400(
    targets: dict[str, str], attacker: httpx.Client
) -> None:
    for url in (targets["gateway"], targets["auth"]):
        for body in (
            b"grant_type=password&username=\xff&password=x",
            b"grant_type=password&username=%ff%fe&password=x",
            b"grant_type=password&username=a%00b&password=x",
            b"grant_type=password&username=alice%0d%0aforged&password=x",
        ):
            answer = attacker.post(
                f"{url}/auth/token",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"] == "invalid_request"


# -- CORS: an unknown Origin is never echoed, and never with credentials ------------------------
@pytest.mark.parametrize("target", EVERY_TARGET)
def test_unknown_origin_is_never_allowed_with_credentials(
    target: str,
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    received: Any,
) -> None:
    path = "/auth/token" if target in ("auth",) else JSON_ENDPOINTS[target][1]
    token = received(accounts["alice"].access_token, target)
    for origin in UNKNOWN_ORIGINS:
        preflight = attacker.options(
            targets[target] + path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        simple = attacker.get(targets[target] + "/healthz", headers={"Origin": origin})
        with_token = attacker.get(
            targets[target] + path, headers=bearer(token, Origin=origin, Cookie="session=x")
        )
        for answer in (preflight, simple, with_token):
            allowed = answer.headers.get("access-control-allow-origin")
            assert allowed not in (origin, "*"), f"{target} {origin}: allow-origin {allowed}"
            assert answer.headers.get("access-control-allow-credentials") != "true"
    # A known origin (the docs of a service) may read auth's answers, but never with credentials.
    if target in ("auth", "gateway"):
        known = attacker.options(
            f"{targets[target]}/auth/token",
            headers={"Origin": "http://localhost:8002", "Access-Control-Request-Method": "POST"},
        )
        assert known.headers.get("access-control-allow-credentials") != "true"


# -- replays ------------------------------------------------------------------------------------
def test_order_replay_with_another_body_is_422_and_charges_once(
    targets: dict[str, str],
    attacker: httpx.Client,
    http: httpx.Client,
    accounts: dict[str, Any],
    received: Any,
) -> None:
    alice = accounts["alice"].access_token
    first_body = {"items": [{"sku": "MS-002", "quantity": 1}], "payment_method": "pm_card_visa"}
    other_body = {"items": [{"sku": "MS-002", "quantity": 9}], "payment_method": "pm_card_visa"}
    stock_url = f"{targets['gateway']}/api/inventory/products/MS-002"

    def stock() -> int:
        return int(http.get(stock_url, headers=bearer(alice)).json()["stock"])

    for target in ("gateway", "orders"):
        url, keyed = (
            targets[target] + "/api/orders",
            bearer(received(alice, target), **{"Idempotency-Key": uuid.uuid4().hex}),
        )
        before = stock()
        first = http.post(url, json=first_body, headers=keyed)
        assert first.status_code == 201, first.text
        again = attacker.post(url, json=first_body, headers=keyed)
        assert again.status_code in (200, 201) and again.json()["id"] == first.json()["id"]
        other = attacker.post(url, json=other_body, headers=keyed)
        assert other.status_code == 422, other.text
        assert stock() == before - 1  # one order, one unit: the replays changed nothing


def test_payment_charge_replay_never_charges_twice(
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    service_tokens: Any,
    received: Any,
    alice_order: Any,
) -> None:
    """Replays of the internal charge (as if orders retried, or a stolen relay was replayed): the
    very tokens orders sent, alice's as payments receives it from orders and orders' own."""
    url = f"{targets['payments']}/api/payments/charges"
    via_orders = {"X-Service-Token": service_tokens["orders", "payments"]}
    alice = accounts["alice"].access_token
    headers = bearer(received(alice, "orders", "payments"), **via_orders)
    same = {
        "order_id": alice_order.id,
        "amount_cents": alice_order.total_cents,
        "payment_method": "pm_card_visa",
    }
    replay = attacker.post(url, json=same, headers=headers)
    assert replay.status_code == 200, replay.text
    assert replay.json()["id"] == alice_order.payment_id
    other_amount = attacker.post(url, json={**same, "amount_cents": 1}, headers=headers)
    assert other_amount.status_code == 409, other_amount.text
    other_method = attacker.post(
        url, json={**same, "payment_method": "pm_card_chargeDeclined"}, headers=headers
    )
    assert other_method.json()["id"] == alice_order.payment_id  # the first charge stands
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: attacker.post(url, json=same, headers=headers), range(5)))
    assert {a.json()["id"] for a in answers} == {alice_order.payment_id}
    # Another customer replaying alice's charge learns nothing and charges nothing.
    bob = bearer(received(accounts["bob"].access_token, "orders", "payments"), **via_orders)
    stranger = attacker.post(url, json=same, headers=bob)
    assert stranger.status_code == 409 and alice_order.payment_id not in stranger.text
    paid = attacker.get(
        f"{targets['payments']}/api/payments/{alice_order.payment_id}",
        headers=bearer(received(alice, "payments")),
    )
    assert paid.json()["status"] == "CAPTURED"
    assert paid.json()["amount_cents"] == alice_order.total_cents
