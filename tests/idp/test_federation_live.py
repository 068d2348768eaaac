"""The real thing: a user signs in at a certified OpenID Provider (tools/idp, npm oidc-provider,
a Node process) and shops through a stack whose gateway and auth trust it.

The token is RFC 9068's (typ at+jwt, client_id, roles), obtained with authorization code + PKCE
S256 on the provider's login page, exactly as a browser would. Needs Node.js (skipped otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from relayshop_devtools import oidc_provider
from relayshop_devtools.devstack import Client, Stack, free_port, make_stack
from relayshop_devtools.oidc_provider import OidcProvider, console_token, trusted_issuer
from relayshop_platform.issuers import stable_sub

ORDER = {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": "pm_card_visa"}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    reason = oidc_provider.missing()
    if reason is not None:
        pytest.skip(reason)
    with OidcProvider(free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, provider: OidcProvider) -> Iterator[Client]:
    stacks: Iterator[Stack] = make_stack(
        tmp_path_factory.mktemp("idp-federation"),
        trusted_issuers=[trusted_issuer(provider.issuer)],
    )
    for stack in stacks:
        yield Client(stack)


def test_a_user_of_the_provider_places_an_order_through_the_gateway(
    client: Client, provider: OidcProvider
) -> None:
    token = console_token(provider.issuer, "alice")
    placed = client.request("POST", "/api/orders", token, json=ORDER)
    assert placed.status_code == 201, placed.text
    # The owner is relayshop's stable id for (provider, "alice"), whatever token she comes with.
    assert placed.json()["owner"] == stable_sub(provider.issuer, "alice")
    again = console_token(provider.issuer, "alice")
    listed = client.request("GET", "/api/orders", again)
    assert listed.status_code == 200, listed.text
    assert [order["id"] for order in listed.json()] == [placed.json()["id"]]


def test_a_user_without_the_customer_role_is_refused_at_the_route(
    client: Client, provider: OidcProvider
) -> None:
    token = console_token(provider.issuer, "wendy")  # warehouse
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert client.request("POST", "/api/orders", token, json=ORDER).status_code == 403
    assert client.request("GET", "/api/inventory/products", token).status_code == 200


# --- the console's sign-in at the provider (routes/oidc.py), its refusals ----------------------
# The whole flow in a browser is tests/browser/test_idp_console.py; these need no browser.


def test_the_console_offers_the_provider_and_starts_a_pkce_sign_in(
    client: Client, provider: OidcProvider
) -> None:
    gateway = client.stack.url("gateway")
    offered = httpx.get(f"{gateway}/console/oidc/providers").json()["providers"]
    assert offered == [{"issuer": provider.issuer, "name": "relayshop-idp"}]
    assert (
        httpx.get(f"{gateway}/console/oidc/login", params={"issuer": "http://x"}).status_code == 404
    )

    started = httpx.get(f"{gateway}/console/oidc/login", params={"issuer": provider.issuer})
    assert started.status_code == 303
    target = urlsplit(started.headers["location"])
    query = parse_qs(target.query)
    assert f"{target.scheme}://{target.netloc}" == provider.issuer
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["client_id"] == ["relayshop-console"] and query["scope"] == ["openid"]
    assert query["redirect_uri"] == [f"{gateway}/console/oidc/callback"]
    # state is bound to this browser: the cookie carries it, HttpOnly, for this module's paths.
    cookie = started.headers["set-cookie"]
    assert f"relayshop_oidc={query['state'][0]}" in cookie
    assert "HttpOnly" in cookie and "Path=/console/oidc/" in cookie and "SameSite=lax" in cookie
    assert len(query["nonce"][0]) >= 43


def test_a_callback_must_carry_this_browsers_state_and_is_used_once(
    client: Client, provider: OidcProvider
) -> None:
    gateway = client.stack.url("gateway")
    with httpx.Client(base_url=gateway) as browser:
        started = browser.get("/console/oidc/login", params={"issuer": provider.issuer})
        state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
        # Another state than the one this browser's cookie holds (login CSRF): refused.
        forged = browser.get("/console/oidc/callback", params={"state": "x" * 43, "code": "c"})
        assert forged.headers["location"] == "/?signin_error=state_mismatch"
        # The right state with a code the provider never issued: refused at the token endpoint.
        bogus = browser.get("/console/oidc/callback", params={"state": state, "code": "bogus"})
        assert bogus.headers["location"] == "/?signin_error=sign_in_refused"
        assert "relayshop_session" not in bogus.headers.get("set-cookie", "")
        # The pending sign-in was taken: the same callback again finds nothing.
        browser.cookies.set("relayshop_oidc", state, path="/console/oidc/")
        again = browser.get("/console/oidc/callback", params={"state": state, "code": "bogus"})
        assert again.headers["location"] == "/?signin_error=sign_in_expired"
