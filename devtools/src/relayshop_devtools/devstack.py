"""Start the whole system as real processes on free ports: for end-to-end tests and benchmarks.

    with Stack(tmp_path) as stack:          # embedded Redis, SQLite files under tmp_path
        httpx.get(stack.url("gateway") + "/readyz")

Each service runs under uvicorn in its own process, exactly as ``make run`` starts it, with every
port and URL passed as the same environment variables a user would set. ``stop()`` always stops
what ``start()`` started (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx
import redis
from relayshop_platform.catalogue import AUTH, CATALOGUE, GATEWAY, SERVICES_WITH_TABLES
from relayshop_platform.issuers import TrustedIssuer
from relayshop_platform.redis_acl import ADMIN, redis_server_args

from .embedded_redis import redis_args

# The services that read RELAYSHOP_TRUSTED_ISSUERS: the edge, and the token service behind it.
FEDERATING = (GATEWAY, AUTH)
# Every service of the catalogue, auth first (the others load its keys at start) and the gateway
# last (its /readyz asks every other service).
SERVICES = tuple(
    sorted((s.name for s in CATALOGUE), key=lambda name: (name == GATEWAY, name != AUTH))
)


def wait_for_redis(url: str, timeout: float = 10.0) -> None:
    """Until a Redis answers PING at ``url``; its last error after ``timeout`` seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        client.close()


def stop_process(
    process: subprocess.Popen[Any], sig: int = signal.SIGTERM, *, group: bool = False
) -> None:
    """Send ``sig`` (to its whole process group with ``group``: a process started with
    start_new_session), give it 10 s to end, then SIGKILL."""

    def send(signal_number: int) -> None:
        if group:
            os.killpg(process.pid, signal_number)
        else:
            process.send_signal(signal_number)

    if process.poll() is not None:
        return
    send(sig)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait(5)


def free_port() -> int:
    """A port nothing listens on, chosen BELOW the kernel's ephemeral range.

    Asking the kernel for port 0 returns an ephemeral port, which any outgoing connection may
    take before our server binds it ("address already in use" under load). Ports under the
    ephemeral range (32768+ on Linux, 49152+ on macOS) are never handed out that way.
    """
    for _ in range(200):
        port = _random.randint(20_000, 32_000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found between 20000 and 32000")


_random = random.SystemRandom()
_handed_out: set[int] = set()  # never give the same port twice within one process


class Stack:
    def __init__(
        self,
        data_dir: Path,
        *,
        redis_url: str | None = None,
        database_urls: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        services: tuple[str, ...] = SERVICES,
        gateway_replicas: int = 1,
        trusted_issuers: Sequence[TrustedIssuer] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.services = services
        self.ports = {name: free_port() for name in services}
        self.extra_gateway_ports = [free_port() for _ in range(gateway_replicas - 1)]
        self._own_redis = redis_url is None
        self.redis_port = free_port() if redis_url is None else None
        # The stack's own Redis has the ACL users of production (redis_acl.py), each service
        # signing in as its own; redis_url is the default user's, for tests to set up and inspect.
        # A Redis passed in (CI's system one) is used as it is, by everyone.
        self.redis_passwords: dict[str, str] = {}
        self._redis_admin_password = secrets.token_urlsafe(16)
        self._services_redis_url = self.redis_url = redis_url or ""
        if redis_url is None:
            self.redis_passwords = {name: secrets.token_urlsafe(16) for name in SERVICES}
            self._services_redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
            self.redis_url = f"redis://:{self._redis_admin_password}@127.0.0.1:{self.redis_port}/0"
        self.database_urls = database_urls or {}
        self.extra_env = env or {}
        # Other identity providers the stack trusts (RELAYSHOP_TRUSTED_ISSUERS): told to the
        # gateway, which accepts their tokens, and to auth, which exchanges them for its own.
        # The services behind the gateway trust relayshop's auth alone, so they are not told.
        self.trusted_issuers = list(trusted_issuers)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}

    # -- addresses -------------------------------------------------------------------------
    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def gateway_urls(self) -> list[str]:
        return [self.url("gateway")] + [f"http://127.0.0.1:{p}" for p in self.extra_gateway_ports]

    def env(self, service: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("RELAYSHOP_")}
        env.pop("DATABASE_URL", None)
        env.update(
            {
                "RELAYSHOP_ENV": "test",
                "RELAYSHOP_DATA_DIR": str(self.data_dir),
                "REDIS_URL": self._services_redis_url,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if service in self.redis_passwords:
            env["RELAYSHOP_REDIS_PASSWORD"] = self.redis_passwords[service]
        for entry in CATALOGUE:
            port = self.ports.get(entry.name)
            if port is not None:
                env[entry.url_variable] = f"http://127.0.0.1:{port}"
        if service in self.database_urls:
            env["DATABASE_URL"] = self.database_urls[service]
        # CI runs the suites once per token mode: RELAYSHOP_TEST_TOKEN_MODE=relay for the other.
        if mode := os.environ.get("RELAYSHOP_TEST_TOKEN_MODE"):
            env["RELAYSHOP_TOKEN_MODE"] = mode
        if self.trusted_issuers and service in FEDERATING:
            env["RELAYSHOP_TRUSTED_ISSUERS"] = json.dumps(
                [issuer.model_dump(exclude_none=True) for issuer in self.trusted_issuers]
            )
        env.update(self.extra_env)
        return env

    # -- processes -------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> Stack:
        try:
            if self._own_redis:
                self.start_redis(wait=False)
            for name in self.services:
                self.start_service(name, wait=False)
            for index, port in enumerate(self.extra_gateway_ports, start=2):
                self._spawn_service(f"gateway{index}", "gateway", port)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_redis(self, wait: bool = True, timeout: float = 10.0) -> None:
        """(Re)start the stack's own embedded Redis on its port and data directory. Its
        append-only file keeps what was written before a ``stop_service("redis")``."""
        if not self._own_redis:
            raise RuntimeError("this stack uses an external Redis; it cannot restart it")
        redis_dir = self.data_dir / "redis"
        redis_dir.mkdir(exist_ok=True)
        acl = redis_server_args(
            self.redis_passwords, default_password=self._redis_admin_password, default_rules=ADMIN
        )
        self._spawn("redis", redis_args(self.redis_port or 0, redis_dir, acl), os.environ.copy())
        if not wait:
            return
        wait_for_redis(self.redis_url, timeout)

    def start_service(self, name: str, wait: bool = True, timeout: float = 30.0) -> None:
        self._spawn_service(name, name, self.ports[name])
        if wait:
            self.wait_until(f"{self.url(name)}/readyz", timeout)

    def _spawn_service(self, label: str, service: str, port: int) -> None:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            f"{service}_service.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--ws",  # no service speaks WebSocket: uvicorn need not load the websockets library
            "none",
            "--timeout-graceful-shutdown",
            "5",
            "--no-proxy-headers",
        ]
        env = self.env(service)
        if service in SERVICES_WITH_TABLES:
            # As `make run`, compose and the k8s initContainers do: a short-lived process upgrades
            # the schema, then uvicorn serves without ever importing Alembic (migrate_on_start).
            migrate = shlex.join([sys.executable, "-m", "relayshop_platform.migrate", service])
            command = ["sh", "-c", f'{migrate} && exec "$@"', "sh", *command]
            env = {"RELAYSHOP_MIGRATE_ON_START": "false", **env}  # a test's env may say otherwise
        self._spawn(label, command, env)

    def _spawn(self, label: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.data_dir / f"{label}.log", "ab")
        self._logs[label] = log
        self.processes[label] = subprocess.Popen(  # noqa: S603 - our own interpreter and args
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop_service(self, label: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(label, None)
        if process is None:
            return
        stop_process(process, sig, group=True)
        log = self._logs.pop(label, None)
        if log:
            log.close()

    def kill_service(self, label: str) -> None:
        self.stop_service(label, signal.SIGKILL)

    def wait_ready(self, timeout: float = 60.0) -> None:
        targets = [f"{self.url(name)}/readyz" for name in self.services]
        targets += [f"http://127.0.0.1:{port}/readyz" for port in self.extra_gateway_ports]
        deadline = time.monotonic() + timeout
        for target in targets:
            self.wait_until(target, max(1.0, deadline - time.monotonic()))

    def wait_until(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for label, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{label} exited early:\n{self.log_tail(label)}")
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        raise TimeoutError(f"{url} not ready after {timeout:.0f}s: {last}\n{self.all_log_tails()}")

    def log_tail(self, label: str, lines: int = 40) -> str:
        path = self.data_dir / f"{label}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def all_log_tails(self) -> str:
        return "\n".join(f"--- {label}\n{self.log_tail(label)}" for label in self._logs)

    def stop(self) -> None:
        for label in reversed(list(self.processes)):
            self.stop_service(label)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- for test suites: the stack on the embedded default, or on CI's PostgreSQL and Redis ------

PASSWORDS = {
    "alice": "alice-password",
    "bob": "bob-password",
    "carol": "carol-password",
    "walt": "walt-password",
    "admin": "admin-password",
}


def postgres_databases(server_url: str) -> dict[str, str]:
    """Create one fresh database per service on the PostgreSQL server at ``server_url``."""
    import asyncpg

    suffix = uuid.uuid4().hex[:8]
    names = {service: f"relayshop_e2e_{service}_{suffix}" for service in SERVICES_WITH_TABLES}

    async def create() -> None:
        connection = await asyncpg.connect(server_url)
        try:
            for name in names.values():
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    base = server_url.rsplit("/", 1)[0]
    return {service: f"{base}/{name}" for service, name in names.items()}


def drop_postgres_databases(server_url: str, urls: dict[str, str]) -> None:
    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(server_url)
        try:
            for url in urls.values():
                name = url.rsplit("/", 1)[1]
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


def make_stack(data_dir: Path, **kwargs: object) -> Iterator[Stack]:
    postgres = os.environ.get("RELAYSHOP_TEST_POSTGRES_URL")
    databases = postgres_databases(postgres) if postgres else {}
    # redis_url=None passed explicitly keeps the stack's own embedded Redis even in CI: for
    # tests that stop and restart Redis (the system one cannot be stopped).
    kwargs.setdefault("redis_url", os.environ.get("RELAYSHOP_TEST_REDIS_URL"))
    stack = Stack(data_dir, database_urls=databases, **kwargs)  # type: ignore[arg-type]
    try:
        with stack:
            yield stack
    finally:
        if postgres:
            drop_postgres_databases(postgres, databases)


class Client:
    """A tiny synchronous client for e2e tests: signs in, keeps tokens, talks to any URL."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.Client(timeout=30.0)
        self._received: dict[tuple[str, str], str] = {}

    def token(self, username: str, password: str | None = None) -> dict[str, str]:
        response = self.http.post(
            f"{self.stack.url('gateway')}/auth/token",
            data={
                "grant_type": "password",
                "username": username,
                "password": password or PASSWORDS[username],
            },
        )
        assert response.status_code == 200, response.text
        return response.json()

    def access(self, username: str) -> str:
        return self.token(username)["access_token"]

    def exchange(self, token: str, audience: str, *, by: str = "gateway") -> httpx.Response:
        """RFC 8693 at auth, as service ``by`` (its demo client secret) would ask."""
        return self.http.post(
            f"{self.stack.url('auth')}/auth/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": token,
                "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "audience": audience,
            },
            auth=(by, f"{by}-demo-secret"),
        )

    def token_for(self, service: str, token: str) -> str:
        """The token ``service`` accepts for this user: in relay mode the user's own (it carries
        every audience); in exchange mode the user's token exchanged for it, as the gateway
        would. For tests that call a service directly, on its own port."""
        if self.mode == "relay":
            return token
        answer = self.exchange(token, f"urn:relayshop:{service}")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def as_received_by(self, service: str, token: str) -> str:
        """The user's token as ``service`` receives it from the gateway: in exchange mode the
        token exchanged for it (remembered, so a test can log out and then show that this very
        derived token is refused too); in relay mode the token itself. A token auth will not
        exchange (forged, revoked before its first use) is sent as it is: refused either way."""
        if self.mode == "relay":
            return token
        key = (token, service)
        if key not in self._received:
            answer = self.exchange(token, f"urn:relayshop:{service}")
            self._received[key] = (
                str(answer.json()["access_token"]) if answer.status_code == 200 else token
            )
        return self._received[key]

    @property
    def mode(self) -> str:
        return os.environ.get("RELAYSHOP_TEST_TOKEN_MODE", "exchange")

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        *,
        service: str = "gateway",
        exchange: bool = True,
        **kwargs: object,
    ) -> httpx.Response:
        """``method path`` at ``service`` with ``token``. Called directly, a service gets the
        token it would receive from the hop before it (``as_received_by``), unless
        ``exchange=False`` sends ``token`` exactly as given."""
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        if token and exchange and service not in ("gateway", "auth"):
            token = self.as_received_by(service, token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(
            method,
            f"{self.stack.url(service)}{path}",
            headers=headers,
            **kwargs,  # type: ignore[arg-type]
        )
