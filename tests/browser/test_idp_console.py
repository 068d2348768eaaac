"""The console's "Sign in with <name>" in a real Chromium, against a real OpenID Provider.

A stack trusts tools/idp's oidc-provider (a Node process) with a console client. The user clicks
"Sign in with relayshop-idp", types alice's password on the provider's own login page, comes back
signed in (authorization code + PKCE, the code redeemed by the gateway: routes/oidc.py), places
an order, and logs out, which ends the provider's session too (RP-initiated logout): the next
sign-in asks for the password again.

Needs Chromium (conftest.py) and Node.js with tools/idp's packages (``make idp-deps``); skipped,
with the reason, without either.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, Response, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from relayshop_devtools import oidc_provider
from relayshop_devtools.devstack import Stack, free_port, make_stack
from relayshop_devtools.oidc_provider import OidcProvider, reporting_token, trusted_issuer
from relayshop_platform.issuers import stable_sub

pytestmark = pytest.mark.browser

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="module")
def idp_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, OidcProvider]]:
    reason = oidc_provider.missing()
    if reason is not None:
        pytest.skip(reason)
    # The provider's issuer is known from its port, so the stack can trust it before it runs:
    # the gateway and auth discover its keys in the background, retrying until it answers.
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    stacks = make_stack(
        tmp_path_factory.mktemp("idp-console"), trusted_issuers=[trusted_issuer(issuer)]
    )
    for stack in stacks:
        # Its console client accepts this gateway's callback (and page, after logout) only.
        with OidcProvider(port, consoles=(stack.url("gateway"),)) as provider:
            assert provider.issuer == issuer
            wait_for_discovery(stack, issuer)
            yield stack, provider


def wait_for_discovery(stack: Stack, issuer: str, timeout: float = 30.0) -> None:
    """Until the gateway and auth have both read the provider's keys (each retries in the
    background): the machine client's token, exchanged at the edge, is then no longer a 401."""
    gateway = stack.url("gateway")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        login = httpx.get(f"{gateway}/console/oidc/login", params={"issuer": issuer})
        token = reporting_token(issuer)
        answer = httpx.get(
            f"{gateway}/api/inventory/products", headers={"Authorization": f"Bearer {token}"}
        )
        if login.headers.get("location", "").startswith(issuer) and answer.status_code != 401:
            return
        time.sleep(0.5)
    raise AssertionError("the gateway or auth never discovered the provider")


def local_only(route: Route) -> None:
    """The provider's pages @import a web font: nothing leaves this machine."""
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        route.continue_()
    else:
        route.abort()


@pytest.fixture
def page(browser: Browser, idp_stack: tuple[Stack, OidcProvider]) -> Iterator[Page]:
    stack, _ = idp_stack
    context = browser.new_context(viewport={"width": 1180, "height": 900})
    context.route("**/*", local_only)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(stack.url("gateway") + "/")
    try:
        yield page
    finally:
        context.close()


def sign_in_at_the_provider(page: Page, username: str, back_at: str) -> None:
    """oidc-provider's development login page, then its consent page if it shows one (it does
    not for relayshop-console, whose grant provider.mjs implies), and back at ``back_at``."""
    page.fill("input[name='login']", username)
    page.fill("input[name='password']", f"{username}-password")
    page.click("button[type='submit']")
    try:
        page.wait_for_url(back_at, timeout=5_000)
    except PlaywrightTimeout:
        page.click("button[type='submit']")  # "Continue" on the consent page
        page.wait_for_url(back_at)


def record_bodies(page: Page, bodies: list[str]) -> None:
    """Every body the console's script reads (/bff/* and /console/oidc/providers)."""

    def record(response: Response) -> None:
        if "/bff/" in response.url or response.url.endswith("/providers"):
            try:
                bodies.append(response.text())
            except Exception:  # a redirect: no body the page could read
                return

    page.on("response", record)


def test_sign_in_with_the_provider_order_and_log_out(
    page: Page, idp_stack: tuple[Stack, OidcProvider]
) -> None:
    stack, provider = idp_stack
    gateway = stack.url("gateway")
    bodies: list[str] = []
    record_bodies(page, bodies)

    # The button comes from the gateway's settings (console_client_id, name).
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#signin").screenshot(path=SCREENSHOTS / "idp-sign-in.png")
    page.click("text=Sign in with relayshop-idp")
    page.wait_for_url(f"{provider.issuer}/interaction/**")
    sign_in_at_the_provider(page, "alice", f"{gateway}/")
    expect(page.locator("#who-text")).to_contain_text("Signed in as alice (customer)")

    # The session is relayshop's user for (provider, alice); its tokens stay in Redis.
    sessions = redis.Redis.from_url(stack.redis_url)
    try:
        stored = [
            json.loads(sessions.get(key) or b"{}")
            for key in sessions.scan_iter("relayshop:bff:session:*")
        ]
    finally:
        sessions.close()
    ours = [s for s in stored if s.get("idp") == provider.issuer]
    assert len(ours) == 1
    assert ours[0]["sub"] == stable_sub(provider.issuer, "alice")

    expect(page.locator("#products tr[data-sku='KB-001']")).to_be_visible()
    with page.expect_response(
        lambda r: r.url == f"{gateway}/bff/api/orders" and r.request.method == "POST"
    ) as placed:
        page.select_option("#sku", "KB-001")
        page.fill("#quantity", "1")
        page.select_option("#payment", "pm_card_visa")
        page.click("#place-order")
    assert placed.value.status == 201
    expect(page.locator("#toast")).to_contain_text("Order CONFIRMED")
    expect(page.locator("#orders li.order[data-status='CONFIRMED']").first).to_be_visible()

    # The browser never holds a token: not in a body, not in script-readable storage.
    secrets = [ours[0][name] for name in ("access_token", "idp_access_token", "idp_id_token")]
    for body in bodies:
        assert not JWT.search(body)
        assert not any(secret in body for secret in secrets)
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0

    # Logout: relayshop's session ends, then the provider's (RP-initiated logout; its page
    # asks for confirmation), and the browser comes back to the console.
    page.click("#logout")
    page.wait_for_url(f"{provider.issuer}/**")
    page.click("button[name='logout'][value='yes']")
    page.wait_for_url(f"{gateway}/")
    expect(page.locator("#who-text")).to_have_text("Not signed in")
    # The provider forgot alice: signing in again asks for her password.
    page.click("text=Sign in with relayshop-idp")
    page.wait_for_url(f"{provider.issuer}/interaction/**")
    expect(page.locator("input[name='password']")).to_be_visible()
