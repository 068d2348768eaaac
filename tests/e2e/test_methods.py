"""A method a path does not serve is 405 with Allow (RFC 9110 section 15.5.6), at every hop.

Directly at each service, and through the gateway: on its proxy path (the service's 405 and
Allow come back as they were sent) and on its own routes.
"""

from __future__ import annotations

import pytest
from relayshop_devtools.devstack import Client

# (service, path, what Allow must say): paths served by two routes name both methods.
CASES = [
    ("orders", "/api/orders", "GET, POST"),
    ("inventory", "/api/inventory/products", "GET"),
    ("payments", "/api/payments", "GET"),
    ("auth", "/auth/token", "POST"),
    ("gateway", "/healthz", "GET"),
]


@pytest.mark.parametrize(("service", "path", "allow"), CASES)
@pytest.mark.parametrize("method", ["OPTIONS", "DELETE"])
def test_wrong_method_is_405_with_allow(
    client: Client, service: str, path: str, allow: str, method: str
) -> None:
    token = client.access("admin")
    direct = client.request(method, path, token, service=service)
    assert (direct.status_code, direct.headers.get("allow")) == (405, allow), direct.text
    through_gateway = client.request(method, path, token)
    assert (through_gateway.status_code, through_gateway.headers.get("allow")) == (405, allow)
    assert through_gateway.headers["content-type"] == "application/problem+json"
