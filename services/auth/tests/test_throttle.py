"""Failed sign-ins are throttled per username and per address, and the lock always ends."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_network

import pytest
from auth_service.config import AuthSettings
from auth_service.throttle import client_address
from starlette.requests import Request


def fail(api, username: str, times: int) -> None:
    for _ in range(times):
        assert api.sign_in(username, "wrong-password").status_code == 400


def test_sign_in_answers_429_after_ten_failures(api) -> None:
    fail(api, "alice", 10)

    response = api.sign_in("alice")  # even the right password now waits

    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 300
    assert response.json()["error"] == "slow_down"
    assert api.sign_in("bob").status_code == 200  # other accounts are not affected


def test_concurrent_wrong_passwords_never_pass_the_limit(api) -> None:
    """Thirty guesses at once, limit ten: each attempt is counted before its hash, so no more
    than ten are ever checked (a counter read before and written after lets them all through)."""
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda _: api.sign_in("alice", "wrong-password"), range(30)))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [400] * 10 + [429] * 20


def test_concurrent_wrong_current_passwords_never_pass_the_limit(api) -> None:
    token = api.login("bob")["access_token"]
    change = {"current_password": "wrong-password", "new_password": "a-new-password"}

    with ThreadPoolExecutor(30) as pool:
        answers = list(
            pool.map(lambda _: api.post("/auth/password", token, json=change), range(30))
        )

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [422] * 10 + [429] * 20  # 422: "the current password is incorrect"


def client_credentials(api, secret: str, client_id: str = "orders"):
    return api.client.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "resource": "urn:relayshop:inventory"},
        auth=(client_id, secret),
    )


def test_guessing_a_client_secret_is_throttled_per_client(api) -> None:
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda _: client_credentials(api, "guess"), range(30)))

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * 10 + [429] * 20
    refused = client_credentials(api, "orders-demo-secret")  # even the right secret waits
    assert refused.status_code == 429
    assert refused.json()["error"] == "slow_down"
    assert int(refused.headers["retry-after"]) >= 1
    assert client_credentials(api, "payments-demo-secret", "payments").status_code == 200


def test_guessing_client_secrets_is_throttled_per_address(monkeypatch, make_api) -> None:
    monkeypatch.setenv("RELAYSHOP_LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
    api = make_api()
    for client_id in ("orders", "payments", "inventory"):
        assert client_credentials(api, "guess", client_id).status_code == 401

    assert client_credentials(api, "gateway-demo-secret", "gateway").status_code == 429


def test_successful_sign_ins_do_not_use_up_the_address_budget(monkeypatch, make_api) -> None:
    monkeypatch.setenv("RELAYSHOP_LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
    api = make_api()
    for _ in range(5):
        api.login("alice")

    assert api.sign_in("alice").status_code == 200


def test_sign_in_throttles_unknown_usernames_too(api) -> None:
    username = "ghost-" + uuid.uuid4().hex[:8]
    fail(api, username, 10)

    assert api.sign_in(username, "wrong-password").status_code == 429


def test_successful_sign_in_resets_the_username_counter(api) -> None:
    fail(api, "alice", 9)
    api.login("alice")
    fail(api, "alice", 9)

    assert api.sign_in("alice").status_code == 200


def test_sign_in_unlocks_when_the_window_ends(monkeypatch, make_api) -> None:
    monkeypatch.setenv("RELAYSHOP_LOGIN_MAX_FAILURES_PER_USERNAME", "3")
    monkeypatch.setenv("RELAYSHOP_LOGIN_FAILURE_WINDOW_SECONDS", "1")
    api = make_api()
    fail(api, "alice", 3)
    assert api.sign_in("alice").status_code == 429

    deadline = time.monotonic() + 5
    while api.sign_in("alice").status_code == 429:
        assert time.monotonic() < deadline, "the lock did not end with its window"
        time.sleep(0.1)


def test_sign_in_throttles_one_address_across_usernames(monkeypatch, make_api) -> None:
    monkeypatch.setenv("RELAYSHOP_LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
    api = make_api()
    for _ in range(3):
        fail(api, "ghost-" + uuid.uuid4().hex[:8], 1)

    response = api.sign_in("alice")

    assert response.status_code == 429
    assert "retry-after" in response.headers


LOOPBACK = [ip_network("127.0.0.1/32")]


def request_from(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


def test_client_address_ignores_forwarded_for_from_untrusted_peer() -> None:
    request = request_from("203.0.113.9", "198.51.100.1")

    assert client_address(request, LOOPBACK) == "203.0.113.9"


def test_client_address_takes_rightmost_untrusted_hop_behind_trusted_proxy() -> None:
    # The client forged the first entry; the gateway appended the address it really saw.
    request = request_from("127.0.0.1", "6.6.6.6, 198.51.100.7")

    assert client_address(request, LOOPBACK) == "198.51.100.7"


def test_client_address_falls_back_to_peer_on_garbage_forwarded_for() -> None:
    request = request_from("127.0.0.1", "not-an-address")

    assert client_address(request, LOOPBACK) == "127.0.0.1"


def test_client_address_trusts_a_whole_pod_range(monkeypatch) -> None:
    """In a cluster the gateway's pods come and go within the pod range: a CIDR trusts them all,
    so each sign-in counts under the client's address, not under one shared gateway address."""
    monkeypatch.setenv("RELAYSHOP_TRUSTED_PROXIES", '["10.0.0.0/8", "172.30.99.10", "fd00::/8"]')
    trusted = AuthSettings().trusted_proxies

    assert client_address(request_from("10.42.3.7", "198.51.100.7"), trusted) == "198.51.100.7"
    assert client_address(request_from("10.9.0.2", "6.6.6.6, 10.1.1.1"), trusted) == "6.6.6.6"
    assert client_address(request_from("172.30.99.10", "198.51.100.8"), trusted) == "198.51.100.8"
    assert client_address(request_from("fd00::5", "2001:db8::1"), trusted) == "2001:db8::1"
    # A peer outside the ranges is taken as it is, whatever it claims.
    assert client_address(request_from("203.0.113.9", "198.51.100.1"), trusted) == "203.0.113.9"


def test_trusted_proxies_refuse_what_is_not_a_network(monkeypatch) -> None:
    monkeypatch.setenv("RELAYSHOP_TRUSTED_PROXIES", '["gateway"]')
    with pytest.raises(ValueError, match="trusted_proxies"):
        AuthSettings()
