"""/docs and /redoc work offline: a real Chromium that may reach nothing but this machine.

Every request the browser makes to a host other than 127.0.0.1 or localhost is aborted and
recorded, and each test asserts the record is empty: Swagger UI, ReDoc and their assets all come
from the service itself. With the pages' strict Content-Security-Policy in force, Authorize signs
in as alice through the gateway's token endpoint (the OAuth2 password flow) and "Try it out" gets
a 200, on a service (orders) and on the gateway. Needs /usr/bin/chromium, as test_console.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Route, expect
from relayshop_devtools.devstack import PASSWORDS, Client, Stack

pytestmark = pytest.mark.browser

LOOPBACK = {"127.0.0.1", "localhost"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("docs-stack"))
    gateway = stack.url("gateway")
    # The docs' Authorize button posts to "<issuer>/token": make that this stack's gateway, and
    # let the orders page (another origin) call it, as the default settings do on ports 8000-8004.
    stack.extra_env = {
        "RELAYSHOP_ISSUER": f"{gateway}/auth",
        "RELAYSHOP_CORS_ORIGINS": json.dumps([gateway, stack.url("orders")]),
        # The Authorize button signs in with the password grant. In exchange mode that token is
        # for the gateway alone, so only the gateway's /docs could use it; relay mode's token
        # carries every audience, which is what trying a service's own /docs needs.
        "RELAYSHOP_TOKEN_MODE": "relay",
    }
    with stack:
        yield stack


class Offline:
    """A page that can reach only this machine, and remembers what it tried beyond it and what
    its console reported (a CSP violation is reported there)."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 1000})
        self.refused: list[str] = []
        self.console: list[str] = []
        self.context.route("**/*", self._only_loopback)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.page.on("console", lambda message: self.console.append(message.text))

    def _only_loopback(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            self.refused.append(route.request.url)
            route.abort("internetdisconnected")

    def assert_self_contained(self, blocked_by_csp: tuple[str, ...] = ()) -> None:
        """Nothing left this machine, and the page's CSP refused nothing but ``blocked_by_csp``."""
        assert self.refused == [], f"the page needed the internet: {self.refused}"
        violations = [text for text in self.console if "Content Security Policy" in text]
        unexpected = [text for text in violations if not any(u in text for u in blocked_by_csp)]
        assert unexpected == [], unexpected
        for url in blocked_by_csp:
            assert any(url in text for text in violations), f"{url} was not even tried"


@pytest.fixture
def offline(browser: Browser) -> Iterator[Offline]:
    offline = Offline(browser)
    try:
        yield offline
    finally:
        offline.context.close()


def authorize_as_alice(page: Page) -> None:
    page.click("button.authorize")
    dialog = page.locator(".dialog-ux")
    dialog.locator("#oauth_username").fill("alice")
    dialog.locator("#oauth_password").fill(PASSWORDS["alice"])
    with page.expect_response(lambda r: r.url.endswith("/auth/token")) as token:
        dialog.locator(".auth-btn-wrapper button.authorize").click()
    assert token.value.status == 200, token.value.text()
    expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
    dialog.locator("button.btn-done").click()


def try_it_out(page: Page, path: str, **parameters: str) -> None:
    operation = page.locator(f".opblock-get:has(.opblock-summary-path[data-path='{path}'])")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    for name, value in parameters.items():
        operation.locator(f"tr[data-param-name='{name}'] input").fill(value)
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    expect(status).to_have_text("200")


def test_service_docs_sign_in_and_call_offline(offline: Offline, stack: Stack) -> None:
    page = offline.page
    answer = page.goto(stack.url("orders") + "/docs")
    assert answer is not None and answer.status == 200
    assert "script-src 'self' 'sha256-" in answer.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("orders")
    authorize_as_alice(page)
    try_it_out(page, "/api/orders")
    offline.assert_self_contained()


def test_gateway_docs_sign_in_and_call_offline(offline: Offline, stack: Stack) -> None:
    client = Client(stack)
    alice = client.access("alice")
    order = client.request(
        "POST",
        "/api/orders",
        alice,
        json={"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": "pm_card_visa"},
    )
    assert order.status_code == 201, order.text
    page = offline.page
    page.goto(stack.url("gateway") + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("gateway")
    authorize_as_alice(page)
    try_it_out(page, "/api/orders/{order_id}/summary", order_id=order.json()["id"])
    offline.assert_self_contained()


@pytest.mark.parametrize("service", ["orders", "gateway"])
def test_redoc_renders_offline(offline: Offline, stack: Stack, service: str) -> None:
    page = offline.page
    page.goto(stack.url(service) + "/redoc")
    expect(page.locator(".api-info h1")).to_contain_text(service)
    expect(page.locator(".menu-content")).to_contain_text("health")  # the operations, by tag
    # ReDoc's sidebar shows its vendor's logo from the vendor's CDN, and hides it when it does
    # not load: the page's CSP refuses it before the browser asks for it.
    offline.assert_self_contained(blocked_by_csp=("https://cdn.redoc.ly/redoc/logo-mini.svg",))
