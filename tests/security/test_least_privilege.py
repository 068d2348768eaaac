"""Least privilege: every token is good for one hop, one caller and its own scopes, and no more.

A user's token is addressed to the gateway alone (exchange mode); each service behind it gets the
token exchanged for it at auth (RFC 8693), with ``act`` naming the services it came through; a
service's own token names one callee (RFC 8707 ``resource``); and auth exchanges only along the
catalogue's ``calls`` (gateway -> orders, payments, inventory; orders -> inventory, payments;
payments -> inventory). Each attack below misuses a real token one way, at every hop where that
misuse could be tried, and must fail for that reason alone:

- a token exchanged for one service, replayed at every other hop: 401, audience (RFC 9068
  section 4; RFC 8707 section 2);
- a service's own token for one callee, shown at another beside a good user token: 401;
- a user token exchanged by one service, sent beside another service's own token: 403, actor
  (RFC 8693 section 4.1: the nearest actor must be the caller);
- good tokens of a service an internal operation does not list as a caller: 403;
- exchanges auth must refuse: a pair outside the policy (invalid_target, RFC 8693 section 2.2.2
  and RFC 8707 section 2), a subject token not addressed to the exchanging client, an ``act``
  chain the policy cannot produce (signed with the real key), a revoked subject (invalid_grant,
  RFC 6749 section 5.2), a scope wider than the subject's (invalid_scope, RFC 8693 section 2.1),
  a user's credentials as a client (invalid_client, RFC 6749 section 2.3.1);
- a token signed in with ``scope=orders:read`` placing an order: 403 insufficient_scope with
  ``scope="orders:write"`` (RFC 6750 section 3.1), at the gateway, at orders and at the internal
  operations of the order saga.

Relay mode gives a user's token every audience by design, so the cases about a user token's
audience or ``act`` are skipped there; the others run in both modes. Each token exchange that sets
an attack up goes through ``received`` (conftest.py, not counted); only the attack is counted.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from relayshop_devtools.devstack import PASSWORDS
from relayshop_devtools.testing import DEFAULT_ISSUER
from relayshop_platform.catalogue import (
    SERVICE_CLIENTS,
    SERVICE_NAMES,
    audience_of,
    exchange_targets,
)

# The stack's token mode, as devstack passes it to every service (Stack.env, Client.mode).
TOKEN_MODE = os.environ.get("RELAYSHOP_TEST_TOKEN_MODE", "exchange")
EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
BEHIND = ("orders", "payments", "inventory")
# The exchange policy, as pairs (client, callee): the catalogue's calls without auth.
POLICY = tuple(
    (client, callee) for client in SERVICE_CLIENTS for callee in exchange_targets(client)
)
# The way a user's token reaches each exchanging client, for ``received``: the gateway takes it as
# signed in; orders from the gateway; payments from orders (the only path through which payments
# holds a user's token).
TO_CLIENT = {"gateway": ("gateway",), "orders": ("orders",), "payments": ("orders", "payments")}
# The token endpoint is auth's, and the gateway's too (proxied): both are hops an attacker can use.
TOKEN_HOPS = ("auth", "gateway")

exchange_only = pytest.mark.skipif(
    TOKEN_MODE == "relay",
    reason="relay mode: a user's token carries every audience and no act, by design",
)


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def exchange_form(subject: str, callee: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": EXCHANGE_GRANT,
        "subject_token": subject,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": audience_of(callee),
        **extra,
    }


def as_client(client: str) -> tuple[str, str]:
    """HTTP Basic credentials of a service client (the test stack's demo secrets)."""
    return client, f"{client}-demo-secret"


def assert_oauth_error(answer: httpx.Response, status: int, error: str, where: str) -> None:
    assert answer.status_code == status, f"{where}: {answer.status_code} {answer.text[:300]}"
    assert answer.json()["error"] == error, f"{where}: {answer.text[:300]}"


def sign_in(http: httpx.Client, gateway: str, username: str, **form: str) -> str:
    answer = http.post(
        f"{gateway}/auth/token",
        data={
            "grant_type": "password",
            "username": username,
            "password": PASSWORDS[username],
            **form,
        },
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


@pytest.fixture(scope="module")
def reads(alice_order: Any) -> dict[str, tuple[str, str]]:
    """A route per hop that alice's token for that hop may read (method, path)."""
    return {
        "gateway": ("GET", "/api/orders"),
        "auth": ("GET", "/auth/userinfo"),
        "orders": ("GET", "/api/orders"),
        "payments": ("GET", f"/api/payments/{alice_order.payment_id}"),
        "inventory": ("GET", "/api/inventory/products"),
    }


# The order ids of every internal_call: the last test checks that none reserved or charged.
ATTEMPTED: list[str] = []


def internal_call(target: str) -> tuple[str, dict[str, Any]]:
    """An internal operation only orders may call, at ``target``, with a body that would move
    stock or money if accepted (an order id no real order has)."""
    order_id = f"lp-{uuid.uuid4().hex[:16]}"
    ATTEMPTED.append(order_id)
    if target == "payments":
        body = {"order_id": order_id, "amount_cents": 100, "payment_method": "pm_card_visa"}
        return "/api/payments/charges", body
    body = {"order_id": order_id, "items": [{"sku": "MS-002", "quantity": 1}]}
    return "/api/inventory/reservations", body


# -- audiences: a token is good at the hop it names, and nowhere else ---------------------------
@exchange_only
@pytest.mark.parametrize("addressed_to", BEHIND)
def test_a_token_exchanged_for_one_service_is_refused_at_every_other_hop(
    addressed_to: str,
    targets: dict[str, str],
    attacker: httpx.Client,
    http: httpx.Client,
    accounts: dict[str, Any],
    received: Any,
    reads: dict[str, tuple[str, str]],
) -> None:
    """A token the gateway obtained for orders (say), replayed at payments, inventory, the
    gateway and auth: 401 audience at each, though it is alice's, valid, unrevoked and signed by
    auth. RFC 9068 section 4 (the resource server checks that aud names it), RFC 8707."""
    token = received(accounts["alice"].access_token, addressed_to)
    method, path = reads[addressed_to]
    control = http.request(method, targets[addressed_to] + path, headers=bearer(token))
    assert control.status_code == 200, control.text  # good where it is addressed
    for hop in ("gateway", "auth", *BEHIND):
        if hop == addressed_to:
            continue
        method, path = reads[hop]
        answer = attacker.request(method, targets[hop] + path, headers=bearer(token))
        assert answer.status_code == 401, f"{hop}: {answer.status_code} {answer.text[:200]}"
        assert 'error="invalid_token"' in answer.headers["www-authenticate"], hop
        assert "audience" in answer.json()["detail"], f"{hop}: {answer.text[:200]}"


@pytest.mark.parametrize("target", ["payments", "inventory"])
def test_a_service_token_for_another_callee_is_no_identity(
    target: str,
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    service_tokens: Any,
    received: Any,
) -> None:
    """Every service token minted for a callee other than ``target`` (orders' for inventory,
    say), shown at ``target``'s internal operation beside the user's token exactly as orders
    would send it: 401, the service token's audience (RFC 8707 section 2, RFC 9068 section 4).
    The user's token is good there, so the service token is the only thing refused."""
    user = received(accounts["alice"].access_token, "orders", target)
    for caller, callee in POLICY:
        if callee == target:
            continue
        path, body = internal_call(target)
        headers = bearer(user, **{"X-Service-Token": service_tokens[caller, callee]})
        answer = attacker.post(targets[target] + path, json=body, headers=headers)
        where = f"{caller}'s token for {callee} at {target}"
        assert answer.status_code == 401, f"{where}: {answer.status_code} {answer.text[:200]}"
        assert "audience" in answer.json()["detail"], f"{where}: {answer.text[:200]}"


@exchange_only
@pytest.mark.parametrize(
    ("target", "hops"),
    [
        ("payments", ("payments",)),  # exchanged by the gateway, not by orders
        ("inventory", ("inventory",)),  # exchanged by the gateway
        ("inventory", ("orders", "payments", "inventory")),  # exchanged by payments
    ],
    ids=["payments_by_gateway", "inventory_by_gateway", "inventory_by_payments"],
)
def test_a_user_token_exchanged_by_another_service_is_refused_beside_orders_token(
    target: str,
    hops: tuple[str, ...],
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    service_tokens: Any,
    received: Any,
) -> None:
    """orders' own token for ``target`` and a user's token addressed to ``target`` that another
    service obtained: each is good, together they are not (403, actor). A service that took a
    neighbour's exchanged token cannot replay it under its own identity (RFC 8693 section 4.1:
    ``act`` says who acts; the nearest actor must be the caller)."""
    user = received(accounts["alice"].access_token, *hops)
    path, body = internal_call(target)
    headers = bearer(user, **{"X-Service-Token": service_tokens["orders", target]})
    answer = attacker.post(targets[target] + path, json=body, headers=headers)
    assert answer.status_code == 403, f"{answer.status_code} {answer.text[:200]}"
    assert "another service than the caller" in answer.json()["detail"], answer.text


@pytest.mark.parametrize(
    ("target", "caller", "hops"),
    [
        ("inventory", "payments", ("orders", "payments", "inventory")),
        ("payments", "gateway", ("payments",)),
    ],
    ids=["inventory_as_payments", "payments_as_gateway"],
)
def test_a_caller_the_route_does_not_list_is_refused_with_matching_tokens(
    target: str,
    caller: str,
    hops: tuple[str, ...],
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    service_tokens: Any,
    received: Any,
) -> None:
    """A route only orders may call (reserve stock, charge a card), called with a user token
    exchanged for ``target`` by ``caller`` and ``caller``'s own token for ``target``: both
    genuine and consistent (the actor is the caller), and still 403, because the caller is not
    orders. In relay mode the user's token is the one as signed in; the answer is the same."""
    user = received(accounts["alice"].access_token, *hops)
    path, body = internal_call(target)
    headers = bearer(user, **{"X-Service-Token": service_tokens[caller, target]})
    answer = attacker.post(targets[target] + path, json=body, headers=headers)
    assert answer.status_code == 403, f"{answer.status_code} {answer.text[:200]}"
    assert "Only orders may call this" in answer.json()["detail"], answer.text


# -- the exchange itself: what auth must refuse -------------------------------------------------
def test_no_token_for_a_pair_outside_the_policy(
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    received: Any,
) -> None:
    """Every (client, audience) pair the catalogue's calls do not hold, for both grants that
    name a callee: a token exchange (RFC 8693 section 2.2.2) and client_credentials with
    ``resource`` (RFC 8707 section 2): 400 invalid_target, at auth and through the gateway. The
    subject token is one the client really holds, so only the target is wrong."""
    alice = accounts["alice"].access_token
    subjects = {client: received(alice, *hops) for client, hops in TO_CLIENT.items()}
    subjects["inventory"] = received(alice, "orders", "inventory")
    for client in SERVICE_CLIENTS:
        for callee in SERVICE_NAMES:
            if callee in exchange_targets(client):
                continue
            for hop in TOKEN_HOPS:
                url, where = f"{targets[hop]}/auth/token", f"{client} -> {callee} at {hop}"
                exchanged = attacker.post(
                    url, data=exchange_form(subjects[client], callee), auth=as_client(client)
                )
                assert_oauth_error(exchanged, 400, "invalid_target", f"exchange {where}")
                own = attacker.post(
                    url,
                    data={"grant_type": "client_credentials", "resource": audience_of(callee)},
                    auth=as_client(client),
                )
                assert_oauth_error(own, 400, "invalid_target", f"client_credentials {where}")


@exchange_only
def test_a_subject_token_not_addressed_to_the_client_is_not_exchanged(
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
    received: Any,
) -> None:
    """A client may exchange only a token addressed to itself: orders cannot turn the gateway's
    token (or payments') into one for its own callees. Every exchanging client, every token
    addressed elsewhere, a callee it may ask for: 400 invalid_grant (RFC 8693 section 2.2.2,
    RFC 6749 section 5.2)."""
    alice = accounts["alice"].access_token
    addressed = {
        "gateway": alice,
        "orders": received(alice, "orders"),
        "payments": received(alice, "payments"),
        "inventory": received(alice, "inventory"),
    }
    for client in TO_CLIENT:
        callee = exchange_targets(client)[0]
        for audience, subject in addressed.items():
            if audience == client:
                continue
            for hop in TOKEN_HOPS:
                answer = attacker.post(
                    f"{targets[hop]}/auth/token",
                    data=exchange_form(subject, callee),
                    auth=as_client(client),
                )
                where = f"{client} exchanging a token for {audience} at {hop}"
                assert_oauth_error(answer, 400, "invalid_grant", where)


# (client, act chain nearest first) the policy can never produce, for a subject addressed to client
FORGED_CHAINS = {
    "gateway_acted_by_orders": ("gateway", ("orders",)),  # nobody exchanges for the gateway
    "orders_via_payments": ("orders", ("payments",)),  # payments does not call orders
    "orders_via_inventory": ("orders", ("inventory",)),  # inventory calls no one
    "orders_via_orders": ("orders", ("orders",)),  # a service never calls itself
    "payments_via_inventory": ("payments", ("inventory",)),
    "payments_via_gateway_via_payments": ("payments", ("gateway", "payments")),
    "payments_via_orders_via_payments": ("payments", ("orders", "payments")),
}
# The same subjects with the chains the policy does produce: exchanged, so only act decides.
REAL_CHAINS = {"gateway": (), "orders": ("gateway",), "payments": ("orders", "gateway")}


@pytest.mark.parametrize("case", sorted(FORGED_CHAINS))
def test_a_forged_act_chain_is_not_exchanged(
    case: str,
    targets: dict[str, str],
    attacker: httpx.Client,
    http: httpx.Client,
    accounts: dict[str, Any],
    signer: Any,
) -> None:
    """A subject token signed with auth's REAL key, addressed to the exchanging client, whose
    ``act`` chain the policy could never have produced: 400 invalid_grant (RFC 8693 section 4.1;
    RFC 8725 section 3.10, a signed claim is still checked). The same token with a real chain is
    exchanged, so the chain is what is refused."""
    client, chain = FORGED_CHAINS[case]
    callee = exchange_targets(client)[0]

    def subject(actors: tuple[str, ...]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": DEFAULT_ISSUER,
            "sub": accounts["alice"].sub,
            "aud": audience_of(client),
            "exp": now + 300,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "roles": ["customer"],
            "scope": "openid orders:read orders:write",
            "client_id": actors[0] if actors else "relayshop",
            "sid": uuid.uuid4().hex,
        }
        act: dict[str, Any] = claims
        for actor in actors:
            act["act"] = {"sub": actor}
            act = act["act"]
        headers = {"kid": signer.kid, "typ": "at+jwt"}
        return jwt.encode(claims, signer.private_key, algorithm="RS256", headers=headers)

    control = http.post(
        f"{targets['auth']}/auth/token",
        data=exchange_form(subject(REAL_CHAINS[client]), callee),
        auth=as_client(client),
    )
    assert control.status_code == 200, control.text
    forged = subject(chain)
    for hop in TOKEN_HOPS:
        answer = attacker.post(
            f"{targets[hop]}/auth/token", data=exchange_form(forged, callee), auth=as_client(client)
        )
        assert_oauth_error(answer, 400, "invalid_grant", f"{case} at {hop}")
        assert "act chain" in answer.json()["error_description"], answer.text


def test_an_exchange_never_widens_the_scope(
    targets: dict[str, str],
    attacker: httpx.Client,
    http: httpx.Client,
    received: Any,
) -> None:
    """A token signed in with ``scope=orders:read``, exchanged at every step of the policy with
    ``scope`` asking for orders:write too: 400 invalid_scope (RFC 8693 section 2.1, RFC 6749
    section 3.3: the exchanged token is never wider than its subject). Asking for the scope it
    has is granted, so the widening alone is refused."""
    narrow = sign_in(http, targets["gateway"], "alice", scope="orders:read")
    for client, callee in POLICY:
        if client not in TO_CLIENT:
            continue
        subject = received(narrow, *TO_CLIENT[client])
        same = http.post(
            f"{targets['auth']}/auth/token",
            data=exchange_form(subject, callee, scope="orders:read"),
            auth=as_client(client),
        )
        assert same.status_code == 200 and same.json()["scope"] == "orders:read", same.text
        for hop in TOKEN_HOPS:
            answer = attacker.post(
                f"{targets[hop]}/auth/token",
                data=exchange_form(subject, callee, scope="orders:read orders:write"),
                auth=as_client(client),
            )
            assert_oauth_error(answer, 400, "invalid_scope", f"{client} -> {callee} at {hop}")


def test_a_revoked_subject_is_not_exchanged(
    targets: dict[str, str],
    attacker: httpx.Client,
    http: httpx.Client,
    received: Any,
) -> None:
    """carol's fresh token and what each client holds of it, exchanged once (so each is known
    good), then revoked (RFC 7009): no client can exchange it, or any token derived from it, at
    any step of the policy: 400 invalid_grant. A logout reaches the next hops this way too."""
    token = sign_in(http, targets["gateway"], "carol")
    held = {client: received(token, *hops) for client, hops in TO_CLIENT.items()}
    for client, subject in held.items():
        callee = exchange_targets(client)[0]
        good = http.post(
            f"{targets['auth']}/auth/token",
            data=exchange_form(subject, callee),
            auth=as_client(client),
        )
        assert good.status_code == 200, good.text
    assert http.post(f"{targets['auth']}/auth/revoke", data={"token": token}).is_success
    for client, callee in POLICY:
        if client not in held:
            continue
        for hop in TOKEN_HOPS:
            deadline = time.monotonic() + 1.0  # auth's own mirror of the revocations
            while True:
                answer = attacker.post(
                    f"{targets[hop]}/auth/token",
                    data=exchange_form(held[client], callee),
                    auth=as_client(client),
                )
                if answer.status_code != 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert_oauth_error(answer, 400, "invalid_grant", f"{client} -> {callee} at {hop}")


def test_a_users_credentials_are_no_client(
    targets: dict[str, str],
    attacker: httpx.Client,
    accounts: dict[str, Any],
) -> None:
    """alice's username and password as HTTP Basic client credentials, for the token exchange
    and client_credentials: 401 invalid_client (RFC 6749 sections 2.3.1 and 5.2): a user is not
    a service, whatever their password. From an address of its own (the client throttle counts
    these failures per address)."""
    alice = accounts["alice"].access_token
    forms = {
        "exchange": exchange_form(alice, "orders"),
        "client_credentials": {
            "grant_type": "client_credentials",
            "resource": audience_of("orders"),
        },
    }
    for name, form in forms.items():
        for hop in TOKEN_HOPS:
            answer = attacker.post(
                f"{targets[hop]}/auth/token",
                data=form,
                auth=("alice", PASSWORDS["alice"]),
                headers={"X-Forwarded-For": "198.51.100.23"},
            )
            assert_oauth_error(answer, 401, "invalid_client", f"{name} at {hop}")


# -- scopes: a narrow token stays narrow at every hop -------------------------------------------
def test_a_read_only_token_cannot_place_an_order_anywhere(
    targets: dict[str, str],
    attacker: httpx.Client,
    http: httpx.Client,
    service_tokens: Any,
    received: Any,
) -> None:
    """alice signed in with ``scope=orders:read``: placing an order is 403 insufficient_scope
    with ``scope="orders:write"`` (RFC 6750 section 3.1) at the gateway, at orders directly, and
    at each step of the saga orders would call (reserve stock, charge the card) with orders' own
    token beside it. Her roles allow all of it; her token does not. It still lists her orders."""
    narrow = sign_in(http, targets["gateway"], "alice", scope="orders:read")
    order = {"items": [{"sku": "MS-002", "quantity": 1}], "payment_method": "pm_card_visa"}
    assert http.get(f"{targets['gateway']}/api/orders", headers=bearer(narrow)).is_success
    attempts: list[tuple[str, str, dict[str, str], Any]] = [
        ("gateway", "/api/orders", bearer(narrow), order),
        ("orders", "/api/orders", bearer(received(narrow, "orders")), order),
    ]
    for target in ("inventory", "payments"):
        path, body = internal_call(target)
        service = {"X-Service-Token": service_tokens["orders", target]}
        attempts.append((target, path, bearer(received(narrow, "orders", target), **service), body))
    for target, path, headers, body in attempts:
        answer = attacker.post(targets[target] + path, json=body, headers=headers)
        assert answer.status_code == 403, f"{target}: {answer.status_code} {answer.text[:200]}"
        challenge = answer.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge, f"{target}: {challenge}"
        assert 'scope="orders:write"' in challenge, f"{target}: {challenge}"


def test_the_refused_internal_calls_reserved_and_charged_nothing(
    targets: dict[str, str],
    http: httpx.Client,
    accounts: dict[str, Any],
    service_tokens: Any,
    received: Any,
) -> None:
    """Runs after the attacks above (file order): each internal call they sent would have
    reserved stock or charged alice's card had it been accepted. Asked as orders would ask, with
    the tokens it would use, none of those orders has a reservation or a payment."""
    assert ATTEMPTED, "no internal call was attempted"
    alice = accounts["alice"].access_token
    for target, path in (
        ("inventory", "/api/inventory/reservations/{}"),
        ("payments", "/api/payments/by-order/{}"),
    ):
        headers = bearer(
            received(alice, "orders", target),
            **{"X-Service-Token": service_tokens["orders", target]},
        )
        for order_id in ATTEMPTED:
            answer = http.get(targets[target] + path.format(order_id), headers=headers)
            assert answer.status_code == 404, f"{target} {order_id}: {answer.text[:200]}"
