"""The browser console in a real Chromium (Playwright for Python), against a real stack.

Needs Debian's chromium at /usr/bin/chromium (``sudo apt-get install -y chromium``); CI always
installs it. Without it the module is skipped (conftest.py), with the reason in the summary.

Screenshots go to var/screenshots/. The hop inspector's also goes to docs/hop-inspector.png (the
README's picture) when that file is missing or RELAYSHOP_UPDATE_SCREENSHOTS=1, so a plain
``make test`` does not rewrite a committed file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, Page, Response, expect
from relayshop_devtools.devstack import Client, Stack, free_port, make_stack

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
DOCS_SCREENSHOT = ROOT / "docs" / "hop-inspector.png"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.")
SESSIONS = "relayshop:bff:session:*"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(tmp_path_factory.mktemp("browser-stack"))


class Watched:
    """Every response the page receives from the gateway, bodies read as they arrive."""

    def __init__(self, page: Page, origin: str) -> None:
        self.origin = origin
        self.bodies: list[tuple[str, str]] = []
        page.on("response", self._record)

    def _record(self, response: Response) -> None:
        if not response.url.startswith(self.origin):
            return
        try:
            body = response.text()
        except Exception:  # a redirect or a body the browser did not keep: nothing to read
            return
        self.bodies.append((response.url, body))

    def assert_no_token(self, page: Page, stack: Stack) -> None:
        """No JWT in any body, and none of the sessions' real tokens anywhere script can see."""
        assert any("/bff/" in url for url, _ in self.bodies), "no BFF response was checked"
        secrets = stored_tokens(stack)
        for url, body in self.bodies:
            assert not JWT.search(body), f"a JWT-shaped string in the response of {url}"
            for secret in secrets:
                assert secret not in body, f"a session token in the response of {url}"
        assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
        assert page.evaluate("window.localStorage.length") == 0
        assert page.evaluate("window.sessionStorage.length") == 0


def stored_tokens(stack: Stack) -> list[str]:
    """The access and refresh tokens the gateway keeps for the browser sessions (server-side)."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        tokens = []
        for key in client.scan_iter(SESSIONS):
            raw = client.get(key)
            if raw:
                session = json.loads(raw)
                tokens += [session["access_token"], session["refresh_token"]]
        return tokens
    finally:
        client.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1180, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(stack.url("gateway") + "/")
    try:
        yield page
    finally:
        context.close()


def sign_in(page: Page, user: str) -> None:
    page.click(f"button.account[data-user='{user}']")
    expect(page.locator("#who-text")).to_contain_text(f"Signed in as {user}")
    expect(page.locator("#products tr[data-sku='KB-001']")).to_be_visible()


def place_order(page: Page, sku: str = "KB-001", card: str = "pm_card_visa") -> None:
    page.select_option("#sku", sku)
    page.fill("#quantity", "1")
    page.select_option("#payment", card)
    page.click("#place-order")


def wait_for_trace(page: Page) -> None:
    expect(page.locator("#waterfall")).to_have_attribute("data-complete", "true", timeout=20_000)


def screenshot(page: Page, name: str, selector: str | None = None) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.evaluate("document.getElementById('toast').classList.remove('visible')")
    if selector:
        page.locator(selector).screenshot(path=str(path), animations="disabled")
    else:
        page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


def test_sign_in_order_and_inspect_every_hop(page: Page, stack: Stack) -> None:
    watched = Watched(page, stack.url("gateway"))
    sign_in(page, "alice")
    place_order(page)
    expect(page.locator("#orders li.order[data-status='CONFIRMED']").first).to_be_visible()
    expect(page.locator("#last-request")).to_contain_text("POST /api/orders")
    wait_for_trace(page)

    hops = page.locator("#waterfall li.hop[data-decision='allow']")
    for service in ("gateway", "orders", "inventory", "payments"):
        expect(hops.filter(has=page.locator(f".svc-{service}")).first).to_be_visible()
    # Each hop shows who it let through and under which check.
    expect(
        page.locator("#waterfall li.hop[data-service='inventory'] .decision").first
    ).to_contain_text("caller")
    expect(
        page.locator("#waterfall li.hop[data-service='gateway'] .decision").first
    ).to_contain_text("customer")

    shot = screenshot(page, "hop-inspector.png", "#inspector")
    screenshot(page, "console-order.png")
    if not DOCS_SCREENSHOT.exists() or os.environ.get("RELAYSHOP_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    watched.assert_no_token(page, stack)


def test_declined_card_shows_payment_failed(page: Page, stack: Stack) -> None:
    sign_in(page, "alice")
    place_order(page, sku="MS-002", card="pm_card_chargeDeclined")
    expect(page.locator("#last-request .badge")).to_have_text("402")
    expect(page.locator("#orders li.order[data-status='PAYMENT_FAILED']").first).to_be_visible()


def test_refusals_show_who_said_no(page: Page, stack: Stack) -> None:
    watched = Watched(page, stack.url("gateway"))
    sign_in(page, "bob")  # bob orders first, so alice has someone else's order to try
    place_order(page, sku="CB-005")
    expect(page.locator("#orders li.order[data-status='CONFIRMED']").first).to_be_visible()
    page.click("#logout")
    expect(page.locator("#who-text")).to_have_text("Not signed in")

    sign_in(page, "alice")
    page.click("#demo-foreign")
    expect(page.locator("#last-request .badge")).to_have_text("404")
    wait_for_trace(page)
    # orders itself refused: the gateway let alice through, ownership is orders' rule.
    expect(
        page.locator("#waterfall li.hop[data-service='orders'][data-decision='deny']")
    ).to_be_visible()

    page.click("#demo-stock")
    expect(page.locator("#last-request .badge")).to_have_text("403")
    wait_for_trace(page)
    refused = page.locator("#waterfall li.hop[data-service='gateway'][data-decision='deny']")
    expect(refused.first).to_contain_text("role")
    assert page.locator("#waterfall li.hop[data-service='inventory']").count() == 0
    screenshot(page, "console-refusal.png")
    watched.assert_no_token(page, stack)


def test_logout_is_refused_at_every_hop(page: Page, stack: Stack) -> None:
    watched = Watched(page, stack.url("gateway"))
    sign_in(page, "alice")
    watched.assert_no_token(page, stack)  # while signed in, with the session's tokens known
    page.click("#demo-revoke")
    rows = page.locator("#revocation-rows tr.hop-result")
    expect(rows).to_have_count(4)
    for service in ("gateway", "orders", "inventory", "payments"):
        expect(rows.filter(has=page.locator(f".svc-{service}"))).to_have_attribute(
            "data-status", "401"
        )
    expect(page.locator("#who-text")).to_have_text("Not signed in")
    screenshot(page, "console-revocation.png", "#demos")
    # The page cannot use the old session either.
    session = page.evaluate("fetch('/bff/session').then(r => r.json())")
    assert session == {"signed_in": False}
    for url, body in watched.bodies:
        assert not JWT.search(body), url


class Attacker:
    """A page on another origin that auto-submits a form to the gateway (classic CSRF)."""

    def __init__(self, target: str) -> None:
        self.port = free_port()
        page = f"""<!doctype html><html><body>
<form id="f" method="POST" action="{target}">
  <input name="items" value="KB-001"><input name="payment_method" value="pm_card_visa">
</form>
<script>document.getElementById("f").submit();</script></body></html>""".encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_cross_site_form_post_is_refused(page: Page, stack: Stack) -> None:
    sign_in(page, "alice")  # the victim is signed in: the browser holds a session cookie
    client = Client(stack)
    alice = client.access("alice")
    before = len(client.request("GET", "/api/orders", alice).json())

    # Another port on 127.0.0.1 is another origin but the SAME site, so even the SameSite=Strict
    # cookie goes along: the origin checks and the CSRF token must refuse it on their own.
    attacker = Attacker(stack.url("gateway") + "/bff/api/orders")
    try:
        with page.expect_response(lambda r: "/bff/api/orders" in r.url) as answer:
            page.goto(attacker.url)
        assert answer.value.status == 403
    finally:
        attacker.close()
    assert len(client.request("GET", "/api/orders", alice).json()) == before
