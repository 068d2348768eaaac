"""Tokens from another identity provider, against a Keycloak-shaped issuer on a real socket:
every refusal the edge owes (401, with its reason), role mapping, the stable relayshop sub,
discovery and key rotation."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest
from jwt.exceptions import PyJWKSetError
from pydantic import ValidationError
from relayshop_devtools.oidc_issuer import DROP, KeycloakIssuer
from relayshop_devtools.testing import TestKey
from relayshop_platform.errors import InvalidToken
from relayshop_platform.issuers import (
    ExternalTokenVerifier,
    TrustedIssuer,
    parse_trusted_issuers,
    stable_sub,
)
from relayshop_platform.jwks import JWKSCache
from relayshop_platform.settings import PlatformSettings
from relayshop_platform.tokens import _IDENTIFIER

AUDIENCE = "urn:relayshop:gateway"
DEFAULT_ROLES = {"offline_access", "uma_authorization", "default-roles-relayshop"}


@pytest.fixture(scope="module")
def keycloak() -> Iterator[KeycloakIssuer]:
    with KeycloakIssuer() as issuer:
        yield issuer


@pytest.fixture
def fresh_keycloak() -> Iterator[KeycloakIssuer]:
    """For a test that changes the issuer (its keys, its discovery document)."""
    with KeycloakIssuer() as issuer:
        yield issuer


def trusting(keycloak: KeycloakIssuer, **settings: object) -> TrustedIssuer:
    """The TrustedIssuer deploy/keycloak/README.md recommends, for this issuer."""
    entry: dict[str, object] = {
        "issuer": keycloak.issuer,
        "audience": AUDIENCE,
        "roles_claim": "realm_access.roles",
        "allowed_azp": ["relayshop-console"],
        "token_types": ["JWT", "at+jwt"],
    }
    entry.update(settings)
    return TrustedIssuer.model_validate(entry)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def verifier(client: httpx.AsyncClient, *issuers: TrustedIssuer) -> ExternalTokenVerifier:
    return ExternalTokenVerifier(issuers, client, min_refetch_seconds=0)


async def refused(verifier: ExternalTokenVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    return caught.value.reason


# --- accepted, and what relayshop makes of it ---------------------------------------------------


async def test_a_keycloak_token_becomes_an_identity_without_personal_data(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    claims = keycloak.claims(roles=["customer"], audience=[AUDIENCE], username="alice")
    identity = await verifier(client, trusting(keycloak)).verify(keycloak.mint(claims))
    assert identity.issuer == keycloak.issuer
    assert identity.external_sub == claims["sub"]
    assert identity.sub == stable_sub(keycloak.issuer, claims["sub"])
    assert identity.roles == ("customer",)  # Keycloak's default roles map to nothing
    assert identity.scope == "openid profile email"
    assert (identity.sid, identity.jti) == (claims["sid"], claims["jti"])
    assert (identity.exp, identity.iat) == (claims["exp"], claims["iat"])
    for personal in ("alice", "Alice", "example.com"):
        assert personal not in repr(identity)


async def test_only_default_roles_give_no_roles(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    claims = keycloak.claims(audience=[AUDIENCE])
    assert set(claims["realm_access"]["roles"]) == DEFAULT_ROLES
    identity = await verifier(client, trusting(keycloak)).verify(keycloak.mint(claims))
    assert identity.roles == ()  # a valid identity that may do nothing: 403 at the route


async def test_realm_roles_through_a_role_map(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    """With a role_map only its names count: their own "admin" is not ours unless mapped."""
    trusted = trusting(keycloak, role_map={"shop-staff": "support", "stock": "warehouse"})
    token = keycloak.mint(roles=["stock", "shop-staff", "admin", "stock"], audience=[AUDIENCE])
    identity = await verifier(client, trusted).verify(token)
    assert identity.roles == ("support", "warehouse")


async def test_client_roles_from_resource_access(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    trusted = trusting(
        keycloak,
        roles_claim="resource_access.relayshop-console.roles",
        role_map={"shop-admin": "admin"},
    )
    token = keycloak.mint(
        roles=["customer"],  # realm roles: not where this issuer's roles are read
        client_roles={"relayshop-console": ["shop-admin", "manage-account"]},
        audience=[AUDIENCE],
    )
    assert (await verifier(client, trusted).verify(token)).roles == ("admin",)


async def test_roles_from_groups(keycloak: KeycloakIssuer, client: httpx.AsyncClient) -> None:
    trusted = trusting(keycloak, roles_claim="groups", role_map={"/staff/support": "support"})
    token = keycloak.mint(audience=[AUDIENCE], groups=["/staff/support", "/newsletter"])
    assert (await verifier(client, trusted).verify(token)).roles == ("support",)


async def test_roles_from_a_roles_claim_kept_by_name(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    trusted = trusting(keycloak, roles_claim="roles")  # the default
    claims = keycloak.claims(audience=[AUDIENCE])
    claims["roles"] = ["warehouse", "root"]  # as an IdP with a "roles" mapper writes them
    token = keycloak.mint(claims)
    assert (await verifier(client, trusted).verify(token)).roles == ("warehouse",)


async def test_a_missing_roles_claim_is_no_roles_and_a_malformed_one_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = verifier(client, trusting(keycloak))
    assert (await checker.verify(keycloak.mint(audience=[AUDIENCE], realm_access=DROP))).roles == ()
    token = keycloak.mint(audience=[AUDIENCE], realm_access={"roles": "admin"})
    assert await refused(checker, token) == "claims"


async def test_the_relayshop_sub_is_stable_per_issuer_and_user(
    keycloak: KeycloakIssuer, fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = verifier(client, trusting(keycloak), trusting(fresh_keycloak))
    same_person = "5f0c7a7e-0f59-4a5e-9a4e-1c2f7a9d3b11"
    first = await checker.verify(keycloak.mint(audience=[AUDIENCE], sub=same_person))
    again = await checker.verify(keycloak.mint(audience=[AUDIENCE], sub=same_person))
    elsewhere = await checker.verify(fresh_keycloak.mint(audience=[AUDIENCE], sub=same_person))
    assert first.sub == again.sub
    assert elsewhere.sub != first.sub  # sub is unique only within its issuer
    assert _IDENTIFIER.fullmatch(first.sub) and re.fullmatch(r"ext-[a-z2-7]{52}", first.sub)
    assert same_person not in first.sub


async def test_rfc_9068_typ_is_accepted_in_either_spelling(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = verifier(client, trusting(keycloak, token_types=["at+jwt"]))
    for typ in ("at+jwt", "application/at+jwt", "AT+JWT"):
        token = keycloak.mint(audience=[AUDIENCE], headers={"typ": typ})
        assert (await checker.verify(token)).issuer == keycloak.issuer


async def test_a_verified_token_is_cached(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = verifier(client, trusting(keycloak))
    token = keycloak.mint(audience=[AUDIENCE])
    assert await checker.verify(token) is await checker.verify(token)


async def test_a_cached_token_is_not_trusted_past_its_exp(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = ExternalTokenVerifier([trusting(keycloak)], client, leeway_seconds=0)
    claims = keycloak.claims(audience=[AUDIENCE])
    claims["exp"] = claims["iat"] + 2
    token = keycloak.mint(claims)
    await checker.verify(token)
    await asyncio.sleep(claims["exp"] - time.time() + 0.1)
    assert await refused(checker, token) == "expired"


# --- refused at the edge (401, with the reason) -------------------------------------------------


async def test_an_unknown_issuer_is_refused(
    keycloak: KeycloakIssuer, fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    token = fresh_keycloak.mint(audience=[AUDIENCE])
    assert await refused(verifier(client, trusting(keycloak)), token) == "issuer"
    assert fresh_keycloak.discovery_requests == 0  # nothing fetched for a stranger


async def test_a_token_naming_a_trusted_issuer_but_signed_by_another_is_refused(
    keycloak: KeycloakIssuer, fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    """The other realm's key, under a kid the trusted issuer does not publish."""
    token = fresh_keycloak.mint(audience=[AUDIENCE], iss=keycloak.issuer)
    assert await refused(verifier(client, trusting(keycloak)), token) == "unknown_key"


@pytest.mark.parametrize("aud", ["account", ["account"], ["account", "urn:relayshop:orders"]])
async def test_keycloaks_default_audience_alone_is_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient, aud: object
) -> None:
    token = keycloak.mint(aud=aud)
    assert await refused(verifier(client, trusting(keycloak)), token) == "audience"


async def test_a_client_not_allowed_is_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = verifier(client, trusting(keycloak))
    assert await refused(checker, keycloak.mint(audience=[AUDIENCE], azp="other-app")) == "azp"
    assert await refused(checker, keycloak.mint(audience=[AUDIENCE], azp=DROP)) == "azp"
    # allowed_azp unset: any client of the issuer
    anyone = verifier(client, trusting(keycloak, allowed_azp=None))
    assert await anyone.verify(keycloak.mint(audience=[AUDIENCE], azp="other-app"))


async def test_keycloaks_typ_jwt_is_refused_unless_listed(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    entry = {"issuer": keycloak.issuer, "audience": AUDIENCE, "roles_claim": "realm_access.roles"}
    default_types = TrustedIssuer.model_validate(entry)
    assert default_types.token_types == ["at+jwt"]
    token = keycloak.mint(audience=[AUDIENCE])  # header typ: JWT, as Keycloak signs them
    assert await refused(verifier(client, default_types), token) == "type"
    untyped = keycloak.mint(audience=[AUDIENCE], headers={"typ": None})
    assert await refused(verifier(client, trusting(keycloak)), untyped) == "type"


async def test_a_bad_signature_is_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    impostor = TestKey(keycloak.key.kid)  # the right kid, another private key
    token = keycloak.mint(audience=[AUDIENCE], key=impostor)
    assert await refused(verifier(client, trusting(keycloak)), token) == "signature"
    header, _, signature = keycloak.mint(audience=[AUDIENCE]).split(".")
    tampered = keycloak.mint(audience=[AUDIENCE], roles=["admin"]).split(".")[1]
    forged = f"{header}.{tampered}.{signature}"
    assert await refused(verifier(client, trusting(keycloak)), forged) == "signature"


async def test_an_expired_token_is_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    claims = keycloak.claims(audience=[AUDIENCE])
    claims.update(iat=claims["iat"] - 400, exp=claims["iat"] - 100)
    assert await refused(verifier(client, trusting(keycloak)), keycloak.mint(claims)) == "expired"


async def test_a_token_living_too_long_is_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    claims = keycloak.claims(audience=[AUDIENCE])
    claims["exp"] = claims["iat"] + 86_400
    assert await refused(verifier(client, trusting(keycloak)), keycloak.mint(claims)) == "lifetime"


@pytest.mark.parametrize("alg", ["HS256", "none", "RS512"])
async def test_any_algorithm_but_rs256_is_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient, alg: str
) -> None:
    claims = keycloak.claims(audience=[AUDIENCE])
    header = {"typ": "JWT", "kid": keycloak.key.kid}
    signing_key = {
        "HS256": b"a-secret-shared-with-nobody-at-all",
        "none": None,
        "RS512": keycloak.key.private_key,
    }[alg]
    token = jwt.encode(claims, signing_key, algorithm=alg, headers=header)
    assert await refused(verifier(client, trusting(keycloak)), token) == "algorithm"


@pytest.mark.parametrize("name", ["jku", "x5u", "jwk", "x5c"])
async def test_a_key_named_in_the_token_is_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient, name: str
) -> None:
    token = keycloak.mint(audience=[AUDIENCE], headers={name: "http://127.0.0.1:9/keys"})
    assert await refused(verifier(client, trusting(keycloak)), token) == "key_reference"


async def test_crit_and_odd_kids_are_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = verifier(client, trusting(keycloak))
    crit = keycloak.mint(audience=[AUDIENCE], headers={"crit": ["exp"]})
    # PyJWT itself refuses a crit it does not know when reading the header ("malformed"); the
    # verifier refuses any crit that got past it.
    assert await refused(checker, crit) in ("crit", "malformed")
    odd = keycloak.mint(audience=[AUDIENCE], headers={"kid": "../../etc/passwd"})
    assert await refused(checker, odd) == "kid"


async def test_claims_of_the_wrong_type_are_refused(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = verifier(client, trusting(keycloak))
    for bad in ({"sub": ""}, {"sub": "a b"}, {"sid": 42}, {"jti": "x' OR '1'='1"}):
        assert await refused(checker, keycloak.mint(audience=[AUDIENCE], **bad)) == "claims"
    assert await refused(checker, keycloak.mint(audience=[AUDIENCE], sub=DROP)) == "missing_claim"


# --- discovery and keys -------------------------------------------------------------------------


async def test_a_jwks_uri_on_another_origin_is_refused(
    fresh_keycloak: KeycloakIssuer, keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    """The discovery document sends us to another server, which even publishes the right key:
    still refused, and that server is never asked."""
    keycloak_jwks_requests = keycloak.jwks_requests
    fresh_keycloak.published.append(keycloak.key)
    fresh_keycloak.discovery_overrides["jwks_uri"] = keycloak.jwks_uri  # another port
    token = fresh_keycloak.mint(audience=[AUDIENCE], key=keycloak.key)
    assert await refused(verifier(client, trusting(fresh_keycloak)), token) == "unknown_key"
    assert fresh_keycloak.discovery_requests == 1
    assert keycloak.jwks_requests == keycloak_jwks_requests


async def test_a_discovery_document_for_another_issuer_is_refused(
    fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    fresh_keycloak.discovery_overrides["issuer"] = fresh_keycloak.issuer + "-evil"
    token = fresh_keycloak.mint(audience=[AUDIENCE])
    assert await refused(verifier(client, trusting(fresh_keycloak)), token) == "unknown_key"
    assert fresh_keycloak.jwks_requests == 0


async def test_a_rotated_key_is_fetched_when_first_seen(
    fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = verifier(client, trusting(fresh_keycloak))
    await checker.verify(fresh_keycloak.mint(audience=[AUDIENCE]))
    assert (fresh_keycloak.discovery_requests, fresh_keycloak.jwks_requests) == (1, 1)
    fresh_keycloak.rotate(keep_old=False)
    identity = await checker.verify(fresh_keycloak.mint(audience=[AUDIENCE]))
    assert identity.issuer == fresh_keycloak.issuer
    # the unknown kid refetched the JWKS; the discovery document was not read again
    assert (fresh_keycloak.discovery_requests, fresh_keycloak.jwks_requests) == (1, 2)


async def test_rsa_keys_published_without_alg_are_used_for_rs256_only(
    fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    """As Microsoft Entra ID publishes them: the key names no alg, the verifier still fixes it."""
    fresh_keycloak.jwks_without_alg = True
    checker = verifier(client, trusting(fresh_keycloak))
    assert await checker.verify(fresh_keycloak.mint(audience=[AUDIENCE]))
    claims = fresh_keycloak.claims(audience=[AUDIENCE])
    header = {"typ": "JWT", "kid": fresh_keycloak.key.kid}
    other = jwt.encode(claims, fresh_keycloak.key.private_key, algorithm="PS256", headers=header)
    assert await refused(checker, other) == "algorithm"


def test_a_key_without_alg_is_taken_only_from_an_external_issuer() -> None:
    """Auth's own JWKS keeps requiring alg; an external issuer's may leave it out (RSA only)."""
    rsa = {name: value for name, value in TestKey("k1").jwk().items() if name != "alg"}
    oct_key = {"kty": "oct", "kid": "k2", "k": "c2VjcmV0"}
    with pytest.raises(PyJWKSetError, match="no usable"):
        JWKSCache.parse({"keys": [rsa, oct_key]})
    assert list(JWKSCache.parse({"keys": [rsa, oct_key]}, rsa_keys_without_alg=True)) == ["k1"]


async def test_start_loads_the_keys_before_the_first_token(
    fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    checker = ExternalTokenVerifier([trusting(fresh_keycloak)], client, refresh_seconds=0.1)
    checker.start()
    try:
        deadline = time.monotonic() + 5
        while fresh_keycloak.jwks_requests < 2:  # loaded, then refreshed on schedule
            assert time.monotonic() < deadline, "the keys were not loaded in the background"
            await asyncio.sleep(0.02)
        assert fresh_keycloak.discovery_requests == 1
    finally:
        await checker.stop()


async def test_an_issuer_that_is_down_is_refused_then_trusted_when_it_answers(
    client: httpx.AsyncClient,
) -> None:
    issuer = KeycloakIssuer()  # not started: nothing listens on its port yet
    checker = verifier(client, trusting(issuer))
    token = issuer.mint(audience=[AUDIENCE])
    assert await refused(checker, token) == "unknown_key"
    with issuer:
        assert (await checker.verify(token)).issuer == issuer.issuer


# --- configuration ------------------------------------------------------------------------------


def test_defaults_of_a_trusted_issuer() -> None:
    [entry] = parse_trusted_issuers(
        '[{"issuer": "https://id.example.com/realms/shop", "audience": "urn:relayshop:gateway"}]'
    )
    assert entry.roles_claim == "roles"
    assert entry.role_map is None and entry.allowed_azp is None
    assert entry.token_types == ["at+jwt"]


@pytest.mark.parametrize(
    "entry",
    [
        {"audience": AUDIENCE},
        {"issuer": "https://id.example.com"},
        {"issuer": "ftp://id.example.com", "audience": AUDIENCE},
        {"issuer": "id.example.com", "audience": AUDIENCE},
        {"issuer": "https://id.example.com?tenant=1", "audience": AUDIENCE},
        {"issuer": "https://id.example.com", "audience": ""},
        {"issuer": "https://id.example.com", "audience": AUDIENCE, "roles_claim": "a..b"},
        {"issuer": "https://id.example.com", "audience": AUDIENCE, "roles_claim": "a[0]"},
        {"issuer": "https://id.example.com", "audience": AUDIENCE, "role_map": {"x": "root"}},
        {"issuer": "https://id.example.com", "audience": AUDIENCE, "token_types": []},
        {"issuer": "https://id.example.com", "audience": AUDIENCE, "allowed_azp": []},
        {"issuer": "https://id.example.com", "audience": AUDIENCE, "audiences": ["x"]},
    ],
)
def test_a_wrong_entry_is_refused_at_start(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TrustedIssuer.model_validate(entry)


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYSHOP_ENV", "test")
    monkeypatch.setenv(
        "RELAYSHOP_TRUSTED_ISSUERS",
        '[{"issuer": "http://localhost:8080/realms/relayshop", "audience": "urn:relayshop:gateway",'
        ' "token_types": ["JWT", "application/at+jwt"]}]',
    )
    [entry] = PlatformSettings().trusted_issuers
    assert entry.issuer == "http://localhost:8080/realms/relayshop"
    assert entry.token_types == ["jwt", "at+jwt"]
    monkeypatch.setenv(
        "RELAYSHOP_TRUSTED_ISSUERS",
        '[{"issuer": "https://a.example", "audience": "x"},'
        ' {"issuer": "https://a.example", "audience": "y"}]',
    )
    with pytest.raises(ValidationError, match="once"):
        PlatformSettings()
    monkeypatch.delenv("RELAYSHOP_TRUSTED_ISSUERS")
    assert PlatformSettings().trusted_issuers == []


async def test_a_discovery_url_reaches_the_issuer_under_another_name(
    fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    """Containers reach Keycloak at keycloak:8080 while tokens say localhost:8080: the document
    is fetched at discovery_url, must still name the issuer, and the keys are on its origin."""
    public = "http://keycloak.invalid/realms/relayshop"  # never fetched
    fresh_keycloak.discovery_overrides["issuer"] = public
    discovery = fresh_keycloak.issuer + "/.well-known/openid-configuration"
    trusted = trusting(fresh_keycloak, issuer=public, discovery_url=discovery)
    token = fresh_keycloak.mint(audience=[AUDIENCE], iss=public)
    identity = await verifier(client, trusted).verify(token)
    assert identity.issuer == public
    assert fresh_keycloak.discovery_requests == 1


async def test_a_discovery_url_cannot_vouch_for_another_issuer(
    fresh_keycloak: KeycloakIssuer, client: httpx.AsyncClient
) -> None:
    # The document at discovery_url names its own issuer, not the configured one: refused.
    discovery = fresh_keycloak.issuer + "/.well-known/openid-configuration"
    public = "http://keycloak.invalid/realms/relayshop"
    trusted = trusting(fresh_keycloak, issuer=public, discovery_url=discovery)
    token = fresh_keycloak.mint(audience=[AUDIENCE], iss=public)
    assert await refused(verifier(client, trusted), token) == "unknown_key"
    assert fresh_keycloak.jwks_requests == 0


def test_the_console_client_must_be_an_allowed_azp(keycloak: KeycloakIssuer) -> None:
    with pytest.raises(ValidationError, match="console_client_id"):
        trusting(keycloak, console_client_id="another-client")
    assert trusting(keycloak, console_client_id="relayshop-console", name="Keycloak")


def id_token(keycloak: KeycloakIssuer, **claims: object) -> str:
    now = int(time.time())
    payload: dict[str, object] = {
        "iss": keycloak.issuer,
        "sub": "user-1",
        "aud": "relayshop-console",
        "azp": "relayshop-console",
        "exp": now + 300,
        "iat": now,
        "nonce": "the-nonce",
    }
    payload.update(claims)
    return keycloak.mint({k: v for k, v in payload.items() if v is not DROP})


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"nonce": "another-nonce"}, "nonce"),  # a replayed ID token of another sign-in
        ({"nonce": DROP}, "id_token"),
        ({"aud": "another-client"}, "id_token"),
        ({"azp": "another-client"}, "azp"),
        ({"exp": int(time.time()) - 3600}, "id_token"),
    ],
)
async def test_an_id_token_is_checked_as_openid_connect_says(
    keycloak: KeycloakIssuer, client: httpx.AsyncClient, claims: dict[str, object], reason: str
) -> None:
    checker = verifier(client, trusting(keycloak, console_client_id="relayshop-console"))
    good = await checker.verify_id_token(
        id_token(keycloak), keycloak.issuer, "relayshop-console", "the-nonce"
    )
    assert good["sub"] == "user-1"
    with pytest.raises(InvalidToken) as caught:
        await checker.verify_id_token(
            id_token(keycloak, **claims), keycloak.issuer, "relayshop-console", "the-nonce"
        )
    assert caught.value.reason == reason
