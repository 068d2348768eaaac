"""The coarse route rules as a table: method, path and role in, allowed or 403 out."""

from __future__ import annotations

import pytest
from gateway_service.rules import check_route
from relayshop_platform.errors import InsufficientScope
from relayshop_platform.tokens import Principal


def user(*roles: str) -> Principal:
    return Principal(sub="u-1", roles=roles, scope="", jti="j", exp=2**31, iat=0)


@pytest.mark.parametrize(
    ("method", "path", "roles", "allowed"),
    [
        ("GET", "/api/orders", ("customer",), True),
        ("GET", "/api/payments/p-1", ("support",), True),
        ("POST", "/api/orders", ("customer",), True),
        ("POST", "/api/orders", ("admin",), False),
        ("POST", "/api/orders/", ("support",), False),
        ("POST", "/api/orders/o-1/cancel", ("customer",), True),
        ("PUT", "/api/inventory/products/KB-001/stock", ("warehouse",), True),
        ("PUT", "/api/inventory/products/KB-001/stock", ("customer", "support"), False),
        ("PUT", "/api/inventory/products/KB-001/stock/", ("customer",), False),
        ("GET", "/api/inventory/products/KB-001/stock", ("customer",), True),
        ("POST", "/api/payments/p-1/refund", ("admin",), True),
        ("POST", "/api/payments/p-1/refund", ("support",), False),
        ("POST", "/api/inventory/reservations", ("admin",), False),
        ("POST", "/api/inventory/reservations/o-1/commit", ("admin",), False),
        ("GET", "/api/inventory/reservations/", ("admin",), False),
        ("POST", "/api/payments/charges", ("customer",), False),
        ("GET", "/api/payments/by-order/o-1", ("support",), False),
        ("GET", "/api/inventory/reservationsX", ("customer",), True),  # not the internal prefix
    ],
)
def test_check_route_decides_by_method_path_and_role(
    method: str, path: str, roles: tuple[str, ...], allowed: bool
) -> None:
    if allowed:
        check_route(method, path, user(*roles))
    else:
        with pytest.raises(InsufficientScope):
            check_route(method, path, user(*roles))


def test_check_route_names_the_needed_roles() -> None:
    with pytest.raises(InsufficientScope) as caught:
        check_route("PUT", "/api/inventory/products/KB-001/stock", user("customer"))
    assert "admin, warehouse" in caught.value.detail
    assert 'error="insufficient_scope"' in caught.value.headers()["WWW-Authenticate"]
