"""A certified OpenID Provider (tools/idp, npm oidc-provider) as a real Node process on a free port:
its RFC 9068 access tokens, fetched over HTTP, pass ExternalTokenVerifier, discovery and all.

Needs Node.js; tools/idp/node_modules is installed with `make idp-deps` (npm ci) when absent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from relayshop_devtools import oidc_provider
from relayshop_devtools.devstack import free_port
from relayshop_devtools.oidc_provider import OidcProvider, pkce_pair
from relayshop_platform.errors import InvalidToken
from relayshop_platform.issuers import ExternalTokenVerifier, TrustedIssuer, stable_sub

RESOURCE = "urn:relayshop:gateway"
CONSOLE = "relayshop-console"
CALLBACK = "http://localhost:8000/console/oidc/callback"
REPORTING = ("relayshop-reporting", "relayshop-reporting-demo-secret")


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """The provider's issuer URL, once it has printed its readiness line."""
    reason = oidc_provider.missing()  # installs tools/idp/node_modules when npm can
    if reason is not None:
        pytest.skip(reason)
    with OidcProvider(free_port()) as provider:
        yield provider.issuer


def trusting(issuer: str, **settings: object) -> TrustedIssuer:
    entry: dict[str, object] = {
        "issuer": issuer,
        "audience": RESOURCE,
        "roles_claim": "roles",
        "allowed_azp": [CONSOLE, REPORTING[0]],
    }
    entry.update(settings)
    return TrustedIssuer.model_validate(entry)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def client_credentials(client: httpx.AsyncClient, issuer: str, **form: str) -> httpx.Response:
    return await client.post(
        f"{issuer}/token",
        data={"grant_type": "client_credentials", "scope": "relayshop", **form},
        auth=REPORTING,
    )


async def test_a_client_credentials_token_passes_the_verifier(
    issuer: str, client: httpx.AsyncClient
) -> None:
    response = await client_credentials(client, issuer, resource=RESOURCE)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    identity = await ExternalTokenVerifier([trusting(issuer)], client).verify(token)
    assert identity.issuer == issuer
    assert identity.external_sub == REPORTING[0]  # RFC 9068 2.2: a client's own token
    assert identity.sub == stable_sub(issuer, REPORTING[0])
    assert identity.roles == ("support",)
    assert identity.scope == "relayshop"
    assert identity.jti and identity.exp - identity.iat == 300


async def test_its_tokens_are_refused_where_the_configuration_says_otherwise(
    issuer: str, client: httpx.AsyncClient
) -> None:
    token = (await client_credentials(client, issuer, resource=RESOURCE)).json()["access_token"]
    cases = {
        "audience": trusting(issuer, audience="urn:relayshop:orders"),
        "azp": trusting(issuer, allowed_azp=[CONSOLE]),
        "type": trusting(issuer, token_types=["JWT"]),
        "issuer": trusting(issuer + "/other"),
    }
    for reason, trusted in cases.items():
        with pytest.raises(InvalidToken) as caught:
            await ExternalTokenVerifier([trusted], client).verify(token)
        assert caught.value.reason == reason


async def test_a_token_for_another_resource_is_not_issued(
    issuer: str, client: httpx.AsyncClient
) -> None:
    response = await client_credentials(client, issuer, resource="urn:relayshop:elsewhere")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"  # RFC 8707 section 2


async def test_a_console_sign_in_with_pkce_gives_the_users_roles(issuer: str) -> None:
    """Authorization code + PKCE S256 through the development login page, password checked."""
    verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=10) as browser:
        authorize = {
            "client_id": CONSOLE,
            "response_type": "code",
            "redirect_uri": CALLBACK,
            "scope": "openid",
            "state": "s1",
            "resource": RESOURCE,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        login_page = (await browser.get(f"{issuer}/auth", params=authorize)).headers["location"]
        login_url = httpx.URL(issuer).join(login_page)
        wrong = {"prompt": "login", "login": "alice", "password": "not-alices-password"}
        assert (await browser.post(login_url, data=wrong)).status_code == 401
        right = {"prompt": "login", "login": "alice", "password": "alice-password"}
        resume = (await browser.post(login_url, data=right)).headers["location"]
        callback = (await browser.get(httpx.URL(issuer).join(resume))).headers["location"]
        assert callback.startswith(CALLBACK + "?")
        query = parse_qs(urlsplit(callback).query)
        assert query["state"] == ["s1"] and query["iss"] == [issuer]  # RFC 9207
        exchange = {
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": CALLBACK,
            "client_id": CONSOLE,
            "code_verifier": verifier,
        }
        response = await browser.post(f"{issuer}/token", data=exchange)
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        identity = await ExternalTokenVerifier([trusting(issuer)], browser).verify(token)
    assert identity.external_sub == "alice"
    assert identity.roles == ("customer",)


@pytest.mark.parametrize(
    "pkce", [{}, {"code_challenge": "x" * 43, "code_challenge_method": "plain"}]
)
async def test_the_console_must_use_pkce_s256(
    issuer: str, client: httpx.AsyncClient, pkce: dict[str, str]
) -> None:
    authorize = {
        "client_id": CONSOLE,
        "response_type": "code",
        "redirect_uri": CALLBACK,
        "scope": "openid",
        "state": "s2",
        **pkce,
    }
    callback = (await client.get(f"{issuer}/auth", params=authorize)).headers["location"]
    query = parse_qs(urlsplit(callback).query)
    assert query["error"] == ["invalid_request"], query
    assert "code" not in query
