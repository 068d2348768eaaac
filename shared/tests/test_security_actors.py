"""require_caller and the act chain: who may present a user token beside their own.

A token exchanged for a hop (RFC 8693 section 4.1) must come from the service that exchanged it.
The one exception is the gateway's federation step: a trusted issuer's token exchanged by the
gateway for its own audience, which then travels like a signed-in user's token (in relay mode,
to every service, with act {"sub": "gateway"}).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from relayshop_devtools.testing import TestKey
from relayshop_platform.errors import install_error_handlers
from relayshop_platform.security import require_caller
from relayshop_platform.tokens import TokenVerifier

EVERY_SERVICE = [f"urn:relayshop:{name}" for name in ("gateway", "orders", "payments", "inventory")]


class StaticKeys:
    def __init__(self, key: TestKey) -> None:
        self.key = key

    async def get(self, kid: str) -> Any | None:
        return self.key.public_key if kid == self.key.kid else None


@pytest.fixture(scope="module")
def key() -> TestKey:
    return TestKey()


@pytest.fixture(scope="module")
def inventory(key: TestKey) -> TestClient:
    """An internal operation of inventory that orders may call for a customer."""
    app = FastAPI()
    install_error_handlers(app)
    app.state.verifier = TokenVerifier(
        StaticKeys(key), issuer="http://localhost:8000/auth", audience="urn:relayshop:inventory"
    )

    @app.post(
        "/reserve", dependencies=[Depends(require_caller(services={"orders"}, roles={"customer"}))]
    )
    async def reserve() -> dict[str, str]:
        return {"ok": "yes"}

    return TestClient(app)


@pytest.mark.parametrize(
    ("aud", "act", "status"),
    [
        ("urn:relayshop:inventory", {"sub": "orders"}, 200),  # exchanged by the caller
        ("urn:relayshop:inventory", {"sub": "payments"}, 403),  # exchanged by someone else
        ("urn:relayshop:inventory", {"sub": "gateway"}, 403),  # exchanged for inventory, not by us
        (EVERY_SERVICE, None, 200),  # a local user's relay-mode token
        (EVERY_SERVICE, {"sub": "gateway"}, 200),  # a federated user's relay-mode token
    ],
)
def test_the_nearest_actor_must_be_the_caller_unless_it_federated(
    inventory: TestClient, key: TestKey, aud: Any, act: Any, status: int
) -> None:
    claims: dict[str, Any] = {"aud": aud, "roles": ["customer"]}
    if act is not None:
        claims["act"] = act
    headers = {
        "Authorization": f"Bearer {key.mint(**claims)}",
        "X-Service-Token": key.service_token("orders", aud="urn:relayshop:inventory"),
    }
    assert inventory.post("/reserve", headers=headers).status_code == status
