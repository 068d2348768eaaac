"""deploy/keycloak: the realm export, the compose service and the README's TrustedIssuer agree.

A token from this realm is accepted only if its iss, aud, azp and typ are what the TrustedIssuer
says and its roles are where it looks: each is checked here against the realm's own settings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from auth_service.seed import DEMO_USERS
from relayshop_platform.issuers import TrustedIssuer, parse_trusted_issuers
from relayshop_platform.roles import ROLES
from relayshop_platform.settings import PlatformSettings

ROOT = Path(__file__).resolve().parents[2]
KEYCLOAK = ROOT / "deploy/keycloak"
EXPECTED = TrustedIssuer(
    issuer="http://localhost:8080/realms/relayshop",
    audience="urn:relayshop:gateway",
    roles_claim="realm_access.roles",
    allowed_azp=["relayshop-console"],
    token_types=["JWT", "at+jwt"],
    console_client_id="relayshop-console",
    name="Keycloak",
)
USERS = {
    "alice": "customer",
    "bob": "customer",
    "sam": "support",
    "wendy": "warehouse",
    "ada": "admin",
}


@pytest.fixture(scope="module")
def realm() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((KEYCLOAK / "realm-export.json").read_text())
    return document


@pytest.fixture(scope="module")
def console(realm: dict[str, Any]) -> dict[str, Any]:
    [client] = [c for c in realm["clients"] if c["clientId"] == "relayshop-console"]
    return client


def test_the_readme_names_the_trusted_issuer_this_test_expects() -> None:
    readme = (KEYCLOAK / "README.md").read_text()
    [block] = re.findall(r"```json\n(.*?)```", readme, flags=re.DOTALL)
    assert parse_trusted_issuers(block) == [EXPECTED]


def test_the_realm_is_the_issuer(realm: dict[str, Any]) -> None:
    assert EXPECTED.issuer.endswith(f"/realms/{realm['realm']}")
    assert realm["enabled"] is True


def test_the_realm_roles_are_relayshops(realm: dict[str, Any]) -> None:
    assert {role["name"] for role in realm["roles"]["realm"]} == set(ROLES)


def test_the_console_is_a_public_client_with_pkce_s256_only(console: dict[str, Any]) -> None:
    assert console["publicClient"] is True
    assert console["standardFlowEnabled"] is True
    for flow in ("implicitFlowEnabled", "directAccessGrantsEnabled", "serviceAccountsEnabled"):
        assert console[flow] is False, flow
    assert console["attributes"]["pkce.code.challenge.method"] == "S256"
    assert console["attributes"]["oauth2.device.authorization.grant.enabled"] == "false"
    assert console["redirectUris"] == ["http://localhost:8000/console/oidc/callback"]
    assert console["clientId"] in (EXPECTED.allowed_azp or [])


def test_the_audience_mapper_puts_the_gateway_in_access_tokens(console: dict[str, Any]) -> None:
    [mapper] = [
        m for m in console["protocolMappers"] if m["protocolMapper"] == "oidc-audience-mapper"
    ]
    assert mapper["protocol"] == "openid-connect"
    assert mapper["config"]["included.custom.audience"] == EXPECTED.audience
    assert mapper["config"]["access.token.claim"] == "true"
    # Not in ID tokens: one of those (typ JWT too) must never pass for an access token.
    assert mapper["config"]["id.token.claim"] == "false"


def test_the_demo_users_get_their_relayshop_role(realm: dict[str, Any]) -> None:
    users = {user["username"]: user for user in realm["users"]}
    assert set(users) == set(USERS)
    for name, role in USERS.items():
        # What Keycloak will put in realm_access.roles, read as the TrustedIssuer reads it.
        claims = {"realm_access": {"roles": users[name]["realmRoles"]}}
        assert EXPECTED.roles_from(claims) == (role,), name


def test_the_demo_passwords_follow_the_seed(realm: dict[str, Any]) -> None:
    seed = {name: password for name, password, _ in DEMO_USERS}
    assert all(password == f"{name}-password" for name, password in seed.items())
    for user in realm["users"]:
        [credential] = user["credentials"]
        assert credential == {
            "type": "password",
            "value": seed.get(user["username"], f"{user['username']}-password"),
            "temporary": False,
        }


def test_access_tokens_live_no_longer_than_relayshops(realm: dict[str, Any]) -> None:
    default_ttl = PlatformSettings.model_fields["access_token_ttl_seconds"].default
    assert realm["accessTokenLifespan"] <= default_ttl


def test_the_compose_service_imports_the_realm_under_its_profile() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["keycloak"]
    assert service["profiles"] == ["keycloak"]
    assert re.fullmatch(r"quay\.io/keycloak/keycloak:\d+\.\d+\.\d+", service["image"])
    assert service["command"] == ["start-dev", "--import-realm"]
    # Paths resolve from the repository root (docker-compose.yml's directory).
    [volume] = service["volumes"]
    source, target, mode = volume.split(":")
    assert (ROOT / source).resolve() == (KEYCLOAK / "realm-export.json").resolve()
    assert target.startswith("/opt/keycloak/data/import/") and mode == "ro"
    # The iss Keycloak writes is the one the TrustedIssuer names.
    hostname = service["environment"]["KC_HOSTNAME"]
    assert EXPECTED.issuer == f"{hostname}/realms/relayshop"


def test_the_profiles_env_file_trusts_the_realm_over_the_compose_network() -> None:
    lines = (KEYCLOAK / "keycloak.env").read_text().splitlines()
    [value] = [line.split("=", 1)[1] for line in lines if line.startswith("TRUSTED_ISSUERS=")]
    [entry] = parse_trusted_issuers(value.strip("'"))
    # The README's entry (for services on the host), plus where containers find the realm.
    assert entry.model_copy(update={"discovery_url": None}) == EXPECTED
    assert entry.discovery_url == (
        "http://keycloak:8080/realms/relayshop/.well-known/openid-configuration"
    )


def test_the_console_client_returns_to_the_console(console: dict[str, Any]) -> None:
    assert console["redirectUris"] == ["http://localhost:8000/console/oidc/callback"]
    assert console["attributes"]["post.logout.redirect.uris"] == "http://localhost:8000/"
