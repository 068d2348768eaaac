"""End to end: a revoked token or a retired key is refused at every hop, within a second.

Every check goes to five doors: both gateway processes, and orders, payments and inventory called
directly (each verifies the token itself, docs/api.md, section 6). The tokens are used once before
they are revoked, so every verifier holds them in its cache: the revocation must win over a cache
hit, not only over a fresh signature check.

This module runs its own stack: two gateway processes, its own embedded Redis even in CI (it stops
and restarts Redis, which the system one cannot be), and a short revocation max staleness so the
Redis-down policy (README, "Revocation, and when Redis is down") is visible in seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
import redis
from relayshop_devtools.devstack import Client, Stack, make_stack
from relayshop_platform.revocation import JTI_KEY

MAX_STALENESS = 3.0  # RELAYSHOP_REVOCATION_MAX_STALENESS_SECONDS of this stack
# A GET on each service that any signed-in user may make (payments: an unknown id is a 404 to a
# valid token, and a 401 to a refused one).
PROBES = {
    "orders": "/api/orders",
    "payments": "/api/payments/no-such-payment",
    "inventory": "/api/inventory/products",
}
GATEWAY_PROBE = "/api/inventory/products"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(
        tmp_path_factory.mktemp("e2e-revocation"),
        redis_url=None,  # our own Redis, even when CI points the others at the system one
        gateway_replicas=2,
        env={"RELAYSHOP_REVOCATION_MAX_STALENESS_SECONDS": str(MAX_STALENESS)},
    )


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return Client(stack)


def doors(stack: Stack) -> dict[str, str]:
    """Every place a token is checked: name -> URL of a GET needing a valid token."""
    urls = {
        f"gateway{index}": f"{url}{GATEWAY_PROBE}"
        for index, url in enumerate(stack.gateway_urls(), start=1)
    }
    urls.update({name: f"{stack.url(name)}{path}" for name, path in PROBES.items()})
    return urls


def answers(client: Client, token: str, names: set[str] | None = None) -> dict[str, int]:
    """Each door's status for the token it would receive: the user's token at a gateway; at a
    service, in exchange mode, the token exchanged for it (the same one before and after the
    revocation, so what is shown refused is the derived token itself)."""
    return {
        name: client.http.get(url, headers=bearer(client, name, token)).status_code
        for name, url in doors(client.stack).items()
        if names is None or name in names
    }


def bearer(client: Client, door: str, token: str) -> dict[str, str]:
    received = token if door.startswith("gateway") else client.as_received_by(door, token)
    return {"Authorization": f"Bearer {received}"}


def assert_accepted_everywhere(client: Client, token: str) -> None:
    statuses = answers(client, token)
    assert all(status in (200, 404) for status in statuses.values()), statuses


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and 'error="invalid_token"' in response.headers.get(
        "www-authenticate", ""
    )


def wait_refused_everywhere(client: Client, token: str, within: float = 1.0) -> float:
    """Poll every door until each refuses ``token`` (401 invalid_token); the seconds it took."""
    start = time.monotonic()
    pending = doors(client.stack)
    last: dict[str, int] = {}
    while pending:
        for name, url in list(pending.items()):
            response = client.http.get(url, headers=bearer(client, name, token))
            last[name] = response.status_code
            if refused(response):
                del pending[name]
        elapsed = time.monotonic() - start
        assert elapsed < within, f"still not refused after {elapsed:.2f}s: {last}"
        if pending:
            time.sleep(0.005)
    return time.monotonic() - start


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.02)


def logout(client: Client, token: str, gateway_url: str | None = None) -> None:
    url = f"{gateway_url or client.stack.url('gateway')}/auth/logout"
    response = client.http.post(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 204, response.text


def test_logout_refuses_that_token_everywhere_but_not_another_session(client: Client) -> None:
    session = client.token("alice")
    other = client.access("alice")
    assert_accepted_everywhere(client, session["access_token"])
    assert_accepted_everywhere(client, other)

    logout(client, session["access_token"])
    wait_refused_everywhere(client, session["access_token"])
    assert_accepted_everywhere(client, other)
    # The session's refresh token ended with it (docs/api.md, section 3).
    refresh = client.http.post(
        f"{client.stack.url('gateway')}/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": session["refresh_token"]},
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


def test_logout_all_refuses_every_session(client: Client) -> None:
    first, second = client.access("bob"), client.access("bob")
    assert_accepted_everywhere(client, first)
    assert_accepted_everywhere(client, second)
    response = client.http.post(
        f"{client.stack.url('gateway')}/auth/logout-all",
        headers={"Authorization": f"Bearer {first}"},
    )
    assert response.status_code == 204, response.text
    wait_refused_everywhere(client, first)
    wait_refused_everywhere(client, second)


def test_rfc7009_revoke_refuses_the_token_everywhere(client: Client) -> None:
    token, other = client.access("carol"), client.access("carol")
    assert_accepted_everywhere(client, token)
    response = client.http.post(
        f"{client.stack.url('gateway')}/auth/revoke",
        data={"token": token, "token_type_hint": "access_token"},
    )
    assert response.status_code == 200, response.text
    wait_refused_everywhere(client, token)
    assert_accepted_everywhere(client, other)


def test_admin_revoke_user_refuses_every_token_of_that_user(client: Client) -> None:
    first, second = client.access("bob"), client.access("bob")
    assert_accepted_everywhere(client, first)
    sub = jwt.decode(first, options={"verify_signature": False})["sub"]
    response = client.http.post(
        f"{client.stack.url('gateway')}/auth/admin/users/{sub}/revoke",
        headers={"Authorization": f"Bearer {client.access('admin')}"},
    )
    assert response.status_code == 204, response.text
    wait_refused_everywhere(client, first)
    wait_refused_everywhere(client, second)


def test_revocation_through_one_gateway_is_refused_by_the_other(client: Client) -> None:
    first_gateway, second_gateway = client.stack.gateway_urls()
    token = client.access("alice")
    assert_accepted_everywhere(client, token)
    logout(client, token, gateway_url=second_gateway)
    wait_refused_everywhere(client, token)  # gateway1 among the doors
    response = client.http.get(
        f"{first_gateway}{GATEWAY_PROBE}", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused(response)


def test_restarted_service_still_refuses_a_revoked_token(client: Client, stack: Stack) -> None:
    token = client.access("alice")
    assert_accepted_everywhere(client, token)
    logout(client, token)
    wait_refused_everywhere(client, token)

    stack.stop_service("orders")
    stack.start_service("orders")  # waits for its /readyz: mirror loaded from Redis
    response = client.request("GET", PROBES["orders"], token, service="orders")
    assert refused(response), response.text
    fresh = client.access("alice")
    assert client.request("GET", PROBES["orders"], fresh, service="orders").is_success


def test_mirror_reloads_after_reconnect_and_catches_what_it_missed(
    client: Client, stack: Stack
) -> None:
    """A revocation recorded while the services' subscriptions were down (written, but its
    message never reached them) is picked up by the reload each mirror does on reconnect."""
    token = client.access("bob")
    assert_accepted_everywhere(client, token)
    claims = jwt.decode(token, options={"verify_signature": False})
    server = redis.Redis.from_url(stack.redis_url)
    try:
        server.zadd(JTI_KEY, {claims["jti"]: claims["exp"]})  # recorded, never published
        assert_accepted_everywhere(client, token)  # no mirror can know yet
        server.client_kill_filter(_type="pubsub")  # every mirror's subscription drops
    finally:
        server.close()
    wait_refused_everywhere(client, token, within=3.0)


def test_redis_outage_follows_the_written_policy(client: Client, stack: Stack) -> None:
    good, revoked = client.access("carol"), client.access("carol")
    logout(client, revoked)
    wait_refused_everywhere(client, revoked)
    assert_accepted_everywhere(client, good)

    stack.stop_service("redis")
    lost = time.monotonic()
    # 1. Within the max staleness every service answers from its mirror: the good token still
    #    passes and the revoked one is still refused.
    assert_accepted_everywhere(client, good)
    assert all(status == 401 for status in answers(client, revoked).values())
    assert time.monotonic() - lost < MAX_STALENESS, "too slow to observe the staleness window"
    # 2. Auth never claims a revocation it could not record.
    response = client.http.post(f"{stack.url('auth')}/auth/revoke", data={"token": good})
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    # 3. After the max staleness: fail closed, 503 for any token the mirror cannot vouch for.
    wait_for(
        lambda: all(status == 503 for status in answers(client, good).values()),
        MAX_STALENESS + 3,
        "every service answers 503 once its mirror is too stale",
    )
    assert time.monotonic() - lost > MAX_STALENESS - 0.5
    assert all(status == 401 for status in answers(client, revoked).values())
    assert client.http.get(f"{stack.url('gateway')}/readyz").status_code == 503

    # 4. Redis back: every mirror reloads, the good token passes again, the revoked one stays
    #    refused, and a revocation made now is honoured everywhere within a second.
    stack.start_redis()
    wait_for(
        lambda: all(status in (200, 404) for status in answers(client, good).values()),
        10,
        "every service back in sync after Redis restarted",
    )
    assert all(status == 401 for status in answers(client, revoked).values())
    logout(client, good)
    wait_refused_everywhere(client, good)
    assert_accepted_everywhere(client, client.access("carol"))


def place_order(client: Client, token: str) -> None:
    """The whole relay chain: each service also sends its own client_credentials token."""
    order = client.request(
        "POST",
        "/api/orders",
        token,
        json={"items": [{"sku": "CB-005", "quantity": 1}], "payment_method": "pm_card_visa"},
    )
    assert order.status_code == 201, order.text
    assert order.json()["status"] == "CONFIRMED"


def test_key_rotation_reaches_every_service_and_a_retired_key_is_refused(client: Client) -> None:
    gateway = client.stack.url("gateway")
    old_token = client.access("alice")
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    assert_accepted_everywhere(client, old_token)
    place_order(client, old_token)  # the services now hold service tokens of the old key too

    admin = {"Authorization": f"Bearer {client.access('admin')}"}
    rotated = client.http.post(f"{gateway}/auth/admin/keys/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["current_kid"]
    assert new_kid != old_kid and old_kid in rotated.json()["published_kids"]

    new_token = client.access("alice")
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    # Both keys pass every service, without a restart.
    wait_for(
        lambda: all(status in (200, 404) for status in answers(client, new_token).values()),
        2,
        "a token of the new key accepted everywhere",
    )
    assert_accepted_everywhere(client, old_token)

    admin = {"Authorization": f"Bearer {client.access('admin')}"}  # signed with the new key
    retired = client.http.post(f"{gateway}/auth/admin/keys/{old_kid}/retire", headers=admin)
    assert retired.status_code == 200, retired.text
    assert old_kid not in retired.json()["published_kids"]
    wait_refused_everywhere(client, old_token, within=2.0)
    userinfo = client.http.get(
        f"{gateway}/auth/userinfo", headers={"Authorization": f"Bearer {old_token}"}
    )
    assert userinfo.status_code == 401
    assert_accepted_everywhere(client, new_token)
    # The services' own client_credentials tokens of the retired key are replaced too: the
    # relay chain (gateway -> orders -> inventory, payments -> inventory) still works.
    place_order(client, new_token)
