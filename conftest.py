"""Fixtures every test directory shares: a real Redis, a test signing key, a small fake auth.

redis_url   a real Redis server: the embedded one (started here, on a free port), or the one named
            by RELAYSHOP_TEST_REDIS_URL (CI points it at the system Redis).
test_key    a throwaway RSA key (relayshop_devtools.testing.TestKey) to mint any token with.
caller      request headers with test_key's tokens: a user's, and a calling service's beside it.
fake_auth   a real HTTP server on a free port that serves test_key's JWKS and answers the
            client_credentials grant and the token exchange (RFC 8693) with test_key's tokens,
            so one service can be tested alone.
service_env the environment variables a service reads, pointed at the three above and tmp_path.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from relayshop_devtools.devstack import free_port
from relayshop_devtools.testing import (
    DEFAULT_AUDIENCE,
    Caller,
    JsonHandler,
    TestKey,
    embedded_redis,
)
from relayshop_platform.relay import EXCHANGE_GRANT

# Unset, RELAYSHOP_ENV means production (demo secrets refused): the tests say "test" explicitly.
os.environ.setdefault("RELAYSHOP_ENV", "test")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("RELAYSHOP_TEST_REDIS_URL")
    if external:
        yield external
        return
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def test_key() -> TestKey:
    return TestKey()


@pytest.fixture
def caller(test_key: TestKey) -> Caller:
    """caller.user("customer", via="orders"): headers with tokens minted by test_key."""
    return Caller(test_key)


class FakeAuth:
    def __init__(self, key: TestKey) -> None:
        self.key = key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_requests = 0
        self.exchange_requests = 0
        self.jwks_requests = 0


@pytest.fixture(scope="session")
def fake_auth(test_key: TestKey) -> Iterator[FakeAuth]:
    fake = FakeAuth(test_key)

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            if self.path == "/auth/.well-known/jwks.json":
                fake.jwks_requests += 1
                self._json(200, fake.key.jwks())
            else:
                self._json(404, {"detail": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
            grant = form.get("grant_type")
            if self.path != "/auth/token" or grant not in ("client_credentials", EXCHANGE_GRANT):
                self._json(400, {"error": "unsupported_grant_type"})
                return
            if scheme.lower() != "basic":
                self._json(401, {"error": "invalid_client"})
                return
            client_id = base64.b64decode(encoded).decode().partition(":")[0]
            audience = form.get("resource") or form.get("audience") or DEFAULT_AUDIENCE
            fake.token_requests += 1
            if grant == "client_credentials":
                token, scope = fake.key.service_token(client_id, aud=audience), "internal"
            else:  # RFC 8693, the shape auth gives it (its own checks are auth's tests' business)
                fake.exchange_requests += 1
                subject = jwt.decode(form["subject_token"], options={"verify_signature": False})
                token = fake.key.exchanged(form["subject_token"], client_id, audience)
                scope = subject["scope"]
            self._json(
                200,
                {"access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": scope},
            )

    class Server(ThreadingHTTPServer):
        request_queue_size = 128  # the default backlog (5) drops a burst of connections

    server = Server(("127.0.0.1", fake.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def service_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str, fake_auth: FakeAuth
) -> dict[str, str]:
    env = {
        "RELAYSHOP_ENV": "test",
        "RELAYSHOP_DATA_DIR": str(tmp_path),
        "REDIS_URL": redis_url,
        "RELAYSHOP_AUTH_URL": fake_auth.url,
    }
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


# ---- database_url: SQLite by default, also PostgreSQL for the modules that ask -----------------
#
# A test module whose data behaviour matters on both databases (atomic stock updates, unique
# constraints, conditional updates) says ``pytestmark = pytest.mark.databases``: each of its tests
# that uses ``database_url`` (directly or through its service's fixtures) then runs twice, on
# SQLite and on PostgreSQL. PostgreSQL is RELAYSHOP_TEST_POSTGRES_URL, else 127.0.0.1:5432 as
# user postgres; one fresh database per test module, emptied after each test, dropped at the end.
# When no PostgreSQL answers, the PostgreSQL variant is skipped and says why (pytest -ra).

POSTGRES_ADMIN_URL = os.environ.get(
    "RELAYSHOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
DATABASE_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "databases: run the module's data tests on SQLite and on PostgreSQL"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
        "databases"
    ):
        metafunc.parametrize("database_url", DATABASE_BACKENDS, indirect=True)


def _on_postgres(work: Any, url: str = POSTGRES_ADMIN_URL) -> Any:
    """Run ``work(connection)`` (async) on a connection to ``url``, in a thread of its own so
    that it never meets a test's running event loop."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import asyncpg

    async def run() -> Any:
        connection = await asyncpg.connect(url, timeout=2)
        try:
            return await work(connection)
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="module")
def postgres_module_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test module (skipped when none is reachable)."""
    import uuid

    import asyncpg

    name = f"relayshop_test_{uuid.uuid4().hex[:12]}"

    async def create(connection: Any) -> None:
        await connection.execute(f'CREATE DATABASE "{name}"')

    try:
        _on_postgres(create)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:  # down, or refuses us
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc!r}")

    async def drop(connection: Any) -> None:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    try:
        yield f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        _on_postgres(drop)


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest, service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str | None]:
    """The DATABASE_URL the service under test runs on: None is the SQLite default (a file under
    tmp_path, fresh per test); else this module's PostgreSQL database, emptied after the test."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
        return
    url: str = request.getfixturevalue("postgres_module_database")
    monkeypatch.setenv("DATABASE_URL", url)
    yield url
    _empty_database(url)


def _empty_database(url: str) -> None:
    """Delete every row but the schema version, so the next test starts as on a fresh SQLite."""

    async def empty(connection: Any) -> None:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await connection.execute(f"TRUNCATE {names} CASCADE")

    _on_postgres(empty, url)
