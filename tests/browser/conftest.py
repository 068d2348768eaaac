"""What every browser test shares: Debian's Chromium, launched headless by Playwright.

Needs /usr/bin/chromium (``sudo apt-get install -y chromium``; CI always installs it). Without it
every test here is skipped, with the reason printed in the summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = "/usr/bin/chromium"
HERE = Path(__file__).resolve().parent
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)
