"""Fixtures every test directory shares: a real Redis, a test signing key, a small fake auth.

redis_url   a real Redis server: the embedded one (started here, on a free port), or the one named
            by RELAYSHOP_TEST_REDIS_URL (CI points it at the system Redis).
test_key    a throwaway RSA key (relayshop_platform.testing.TestKey) to mint any token with.
fake_auth   a real HTTP server on a free port that serves test_key's JWKS and answers the
            client_credentials grant with a service token, so one service can be tested alone.
service_env the environment variables a service reads, pointed at the three above and tmp_path.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import redis
from relayshop_platform.devstack import free_port
from relayshop_platform.embedded_redis import redis_args
from relayshop_platform.testing import TestKey


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("RELAYSHOP_TEST_REDIS_URL")
    if external:
        yield external
        return
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(  # noqa: S603
        redis_args(port, directory), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    try:
        yield url
    finally:
        client.close()
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="session")
def test_key() -> TestKey:
    return TestKey()


class FakeAuth:
    def __init__(self, key: TestKey) -> None:
        self.key = key
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_requests = 0
        self.jwks_requests = 0


@pytest.fixture(scope="session")
def fake_auth(test_key: TestKey) -> Iterator[FakeAuth]:
    fake = FakeAuth(test_key)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/auth/.well-known/jwks.json":
                fake.jwks_requests += 1
                self._json(200, fake.key.jwks())
            else:
                self._json(404, {"detail": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
            if self.path != "/auth/token" or form.get("grant_type") != ["client_credentials"]:
                self._json(400, {"error": "unsupported_grant_type"})
                return
            if scheme.lower() != "basic":
                self._json(401, {"error": "invalid_client"})
                return
            client_id = base64.b64decode(encoded).decode().partition(":")[0]
            fake.token_requests += 1
            self._json(
                200,
                {
                    "access_token": fake.key.service_token(client_id),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "scope": "internal",
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", fake.port), Handler)
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
