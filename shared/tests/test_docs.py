"""docs.py: the docs pages name only this service's own files, and their CSP allows exactly them.

The browser proof (Chromium refused the internet, Authorize, "Try it out") is
tests/browser/test_docs.py; this one runs everywhere, in process.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from relayshop_platform.docs import install_docs
from relayshop_platform.security import oauth2_scheme

TOKEN_URL = "http://localhost:8000/auth/token"


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI(title="relayshop test", docs_url=None, redoc_url=None)

    @app.get("/private")
    async def private(token: Annotated[str | None, Depends(oauth2_scheme)]) -> dict[str, str]:
        return {}

    install_docs(app, TOKEN_URL)
    return TestClient(app)


def csp_of(response: object) -> dict[str, str]:
    header = response.headers["content-security-policy"]  # type: ignore[attr-defined]
    return dict(part.strip().split(" ", 1) for part in header.split(";"))


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_docs_pages_load_only_local_files(client: TestClient, path: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    for source in sources:
        assert source.startswith("/docs/assets/"), source
        assert client.get(source).status_code == 200, source
    assert "cdn" not in page.text.lower()
    assert "fonts.googleapis" not in page.text


def test_swagger_page_allows_its_inline_script_by_hash_only(client: TestClient) -> None:
    page = client.get("/docs")
    policy = csp_of(page)
    inline = re.search(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert inline is not None
    digest = base64.b64encode(hashlib.sha256(inline.group(1).encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe" not in page.headers["content-security-policy"]
    assert policy["connect-src"] == "'self' http://localhost:8000"  # the Authorize button's
    assert policy["frame-ancestors"] == "'none'"


def test_authorize_button_signs_in_at_the_public_token_endpoint(client: TestClient) -> None:
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert [s["flows"]["password"]["tokenUrl"] for s in schemes.values()] == [TOKEN_URL]
