"""One stack for the whole security suite, the identities to attack it with, and the tally.

stack            five services + Redis as real processes, started once for every security test,
                 with a short sign-in failure window (3 s) so a test can show a lock ending
canary_gateway   a second gateway whose orders, payments and inventory URLs all point at the
                 listener: a request it lets through would reach the listener
listener         a TCP server that records every connection; it must receive nothing (no jku,
                 no x5u, no forwarded forged token, no ``${jndi:...}`` lookup)
attacker         the HTTP client every attack is sent with; it counts what it sends, per target
http             the HTTP client for setting up and inspecting state (not counted)
accounts         a fresh access token and the ``sub`` of each demo user
service_tokens   real client_credentials tokens of the services, one per (caller, callee), to
                 reach internal operations
received         a user's token as a service receives it in the stack's token mode (exchanged
                 hop by hop in exchange mode, the token itself in relay mode), for every test that
                 calls a service directly: a hop must refuse an attack for the attack's own
                 reason, not merely because the token was addressed to someone else
signer           auth's real private signing key, read from the stack's own key directory: tokens
                 signed with it pass the signature check, so each claim check is attacked alone

The summary line at the end of the run: ``security suite: N attack cases against M targets``.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from relayshop_devtools.devstack import (
    PASSWORDS,
    Client,
    Stack,
    free_port,
    make_stack,
    stop_process,
)
from relayshop_platform.catalogue import audience_of

# Small limits with a short window: the brute-force tests hit them and then watch them end.
THROTTLE_ENV = {
    "RELAYSHOP_LOGIN_MAX_FAILURES_PER_USERNAME": "5",
    "RELAYSHOP_LOGIN_MAX_FAILURES_PER_ADDRESS": "10",
    "RELAYSHOP_LOGIN_FAILURE_WINDOW_SECONDS": "3",
}
ORDER = {"items": [{"sku": "CB-005", "quantity": 1}], "payment_method": "pm_card_visa"}


# -- the tally ----------------------------------------------------------------------------------
@dataclass
class Tally:
    """Attack cases sent, per target (one case = one request sent to one target)."""

    sent: Counter[str] = field(default_factory=Counter)

    def add(self, target: str, cases: int = 1) -> None:
        self.sent[target] += cases


TALLY = Tally()


@pytest.fixture(scope="session")
def tally() -> Tally:
    """For cases not sent by ``attacker`` (the fuzzer's own HTTP client)."""
    return TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.sent:
        targets = ", ".join(f"{name} {count}" for name, count in sorted(TALLY.sent.items()))
        terminalreporter.write_line(
            f"security suite: {sum(TALLY.sent.values())} attack cases against "
            f"{len(TALLY.sent)} targets ({targets})"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The fuzzer signs out, rotates keys and sets stock with the tokens it is given: it runs
    # after every other security test, so none of them sees what it changed.
    fuzz = [item for item in items if item.path.name == "test_fuzz.py"]
    if fuzz:
        items[:] = [item for item in items if item not in fuzz] + fuzz


# -- the listener -------------------------------------------------------------------------------
class Listener:
    """Accepts TCP connections, keeps what each one sent, answers an empty 200 and hangs up."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._sock.accept()
            except OSError:
                return  # closed
            with connection:
                connection.settimeout(1.0)
                try:
                    self.received.append(connection.recv(65536))
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b'content-length: 11\r\nconnection: close\r\n\r\n{"keys":[]}'
                    )
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._sock.close()


@pytest.fixture(scope="session")
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


# -- the stack ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Its own Redis even in CI (redis_url=None): the one with the ACL users of production, so the
    # suite can show what each service's Redis user may not do.
    yield from make_stack(
        tmp_path_factory.mktemp("security-stack"), env=THROTTLE_ENV, redis_url=None
    )


class Canary:
    """A gateway like the real one (same auth, Redis and keys) whose every /api upstream is the
    listener, so "nothing was forwarded" is a fact the listener observes, not a guess."""

    def __init__(self, stack: Stack, listener: Listener) -> None:
        self.listener = listener
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = stack.data_dir / "canary-gateway.log"
        env = stack.env("gateway")
        for name in ("ORDERS", "PAYMENTS", "INVENTORY"):
            env[f"RELAYSHOP_{name}_URL"] = listener.url
        command = [sys.executable, "-m", "uvicorn", "gateway_service.main:create_app"]
        command += ["--factory", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--no-access-log", "--no-proxy-headers"]
        self._log = open(self.log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.ready = False

    def wait_ready(self, timeout: float = 30.0) -> str:
        # Ready for this purpose once its signing keys are loaded. Its /readyz is 503 (the
        # "upstreams" are the listener) and probes the listener: those probes are forgotten.
        deadline = time.monotonic() + timeout
        while not self.ready:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                checks = httpx.get(f"{self.url}/readyz", timeout=2).json().get("checks", {})
                self.ready = checks.get("jwks") == "ok" and checks.get("redis") == "ok"
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the canary gateway did not load its keys"
            time.sleep(0.1)
        self.listener.received.clear()
        return self.url

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


@pytest.fixture(scope="session")
def canary(stack: Stack, listener: Listener) -> Iterator[Canary]:
    """Started at once, waited for only by the tests that use it (it boots while others run)."""
    process = Canary(stack, listener)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def canary_gateway(canary: Canary) -> str:
    return canary.wait_ready()


@pytest.fixture(scope="session")
def targets(stack: Stack, canary: Canary) -> dict[str, str]:
    """Every address the suite attacks, by name."""
    names = ("gateway", "auth", "orders", "payments", "inventory")
    return {**{name: stack.url(name) for name in names}, "canary-gateway": canary.url}


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as client:
        yield client


@pytest.fixture(scope="session")
def attacker(targets: dict[str, str]) -> Iterator[httpx.Client]:
    by_port = {httpx.URL(url).port: name for name, url in targets.items()}

    def count(request: httpx.Request) -> None:
        TALLY.add(by_port.get(request.url.port, str(request.url.port)))

    with httpx.Client(timeout=30.0, event_hooks={"request": [count]}) as client:
        yield client


# -- identities ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    username: str
    access_token: str
    refresh_token: str
    sub: str


def sign_in(http: httpx.Client, gateway: str, username: str, **headers: str) -> httpx.Response:
    return http.post(
        f"{gateway}/auth/token",
        data={"grant_type": "password", "username": username, "password": PASSWORDS[username]},
        headers=headers,
    )


def account(http: httpx.Client, gateway: str, username: str) -> Account:
    answer = sign_in(http, gateway, username)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    info = http.get(
        f"{gateway}/auth/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert info.status_code == 200, info.text
    return Account(username, tokens["access_token"], tokens["refresh_token"], info.json()["sub"])


@pytest.fixture(scope="session")
def accounts(stack: Stack, http: httpx.Client) -> dict[str, Account]:
    return {name: account(http, stack.url("gateway"), name) for name in PASSWORDS}


def service_token(http: httpx.Client, auth_url: str, client_id: str, callee: str) -> str:
    """A real client_credentials token of one of the services for one callee (RFC 8707
    ``resource``): its aud is that callee alone (demo secrets, test stack)."""
    basic = base64.b64encode(f"{client_id}:{client_id}-demo-secret".encode()).decode()
    answer = http.post(
        f"{auth_url}/auth/token",
        data={"grant_type": "client_credentials", "resource": audience_of(callee)},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


class ServiceTokens:
    """``tokens["orders", "payments"]``: the token orders sends payments beside a user's token
    (accepted at payments only), fetched again before its 300 s are up."""

    def __init__(self, http: httpx.Client, auth_url: str) -> None:
        self._http, self._auth_url = http, auth_url
        self._tokens: dict[tuple[str, str], tuple[float, str]] = {}

    def __getitem__(self, caller_and_callee: tuple[str, str]) -> str:
        fetched, token = self._tokens.get(caller_and_callee, (0.0, ""))
        if time.monotonic() - fetched > 200:
            token = service_token(self._http, self._auth_url, *caller_and_callee)
            self._tokens[caller_and_callee] = (time.monotonic(), token)
        return token


@pytest.fixture(scope="session")
def service_tokens(stack: Stack, http: httpx.Client) -> ServiceTokens:
    return ServiceTokens(http, stack.url("auth"))


class Received:
    """A user's token as a service receives it, in the stack's token mode.

    ``received(token, "gateway")`` (or ``"auth"``) is the token as signed in: those two take it
    as it is. ``received(token, "orders")`` is what orders gets from the gateway (a public route);
    ``received(token, "orders", "payments")`` what payments gets from orders, which got it from the
    gateway (an internal operation orders calls: the nearest actor is orders, the service whose
    own token goes beside it). Exchange mode: the token exchanged at auth hop by hop (RFC 8693),
    the gateway first, as the services themselves do; relay mode: the token itself, which carries
    every audience. Remembered per (token, hops), so a test may revoke the user's token and show
    that this very derived token is refused too. Sent with the uncounted client: setting up an
    attack is not an attack case.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._derived: dict[tuple[str, tuple[str, ...]], str] = {}

    @property
    def mode(self) -> str:
        return self._client.mode

    def __call__(self, token: str, *hops: str) -> str:
        if self.mode == "relay" or hops in ((), ("gateway",), ("auth",)):
            return token
        key = (token, hops)
        if key not in self._derived:
            derived, holder = token, "gateway"
            for hop in hops:
                answer = self._client.exchange(derived, audience_of(hop), by=holder)
                assert answer.status_code == 200, f"{holder} -> {hop}: {answer.text}"
                derived, holder = str(answer.json()["access_token"]), hop
            self._derived[key] = derived
        return self._derived[key]


@pytest.fixture(scope="session")
def received(stack: Stack) -> Iterator[Received]:
    client = Client(stack)
    try:
        yield Received(client)
    finally:
        client.http.close()


@dataclass(frozen=True)
class Signer:
    kid: str
    private_key: rsa.RSAPrivateKey
    jwks: dict[str, Any]


@pytest.fixture(scope="session")
def signer(stack: Stack, http: httpx.Client) -> Signer:
    jwks = http.get(f"{stack.url('gateway')}/auth/.well-known/jwks.json").json()
    kid = jwks["keys"][0]["kid"]
    pem = (stack.data_dir / "keys" / f"{kid}.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Signer(kid, key, jwks)


@dataclass(frozen=True)
class PlacedOrder:
    id: str
    payment_id: str
    total_cents: int


@pytest.fixture(scope="session")
def alice_order(stack: Stack, http: httpx.Client, accounts: dict[str, Account]) -> PlacedOrder:
    """A CONFIRMED order of alice's, with its captured payment: the object strangers go after."""
    answer = http.post(
        f"{stack.url('gateway')}/api/orders",
        json=ORDER,
        headers={"Authorization": f"Bearer {accounts['alice'].access_token}"},
    )
    assert answer.status_code == 201, answer.text
    order = answer.json()
    return PlacedOrder(order["id"], order["payment_id"], order["total_cents"])
