"""Trust access tokens from someone else's identity provider (Keycloak, Auth0, Okta, Entra ID...).

Each trusted issuer is one entry of ``RELAYSHOP_TRUSTED_ISSUERS`` (a JSON list):

    {"issuer": "http://localhost:8080/realms/relayshop", "audience": "urn:relayshop:gateway",
     "roles_claim": "realm_access.roles", "role_map": {"shop-admin": "admin"},
     "allowed_azp": ["relayshop-console"], "token_types": ["JWT", "at+jwt"]}

Only ``issuer`` and ``audience`` are required. Optional, per issuer:

- ``discovery_url``: where relayshop itself fetches the discovery document, when that is not the
  issuer's own URL (a container reaching Keycloak at ``http://keycloak:8080`` while browsers and
  tokens say ``http://localhost:8080``). The document must still name ``issuer`` exactly, and the
  keys and token endpoint must be on the discovery URL's origin;
- ``console_client_id`` and ``name``: the console offers "Sign in with <name>" with this client
  (authorization code + PKCE, gateway_service/routes/oidc.py). The client must be one of
  ``allowed_azp`` when that is set, or its own access tokens would be refused.

 A token from such an issuer is checked with the
same rules as relayshop's own (tokens.py, RFC 8725): RS256 only, ``jku``/``x5u``/``jwk``/``x5c``
and ``crit`` refused, ``exp``/``iat``/``nbf`` with a leeway, a capped lifetime, claims of the
right type. On top of that, per issuer:

- ``iss`` is read unverified only to pick the issuer's configuration; its keys then verify the
  signature and ``iss`` is checked again, so a key of issuer A never vouches for a token naming
  issuer B (RFC 8725 section 3.8);
- ``aud`` must contain ``audience`` (RFC 7519 section 4.1.3). Keycloak puts ``account`` in every
  token it issues; that alone says nothing about relayshop and is refused;
- ``azp`` (OpenID Connect Core section 2), or RFC 9068's ``client_id`` where there is no ``azp``,
  must be one of ``allowed_azp`` when that is set: only the clients you name may call relayshop;
- the header ``typ`` must be one of ``token_types`` (default ``at+jwt``, RFC 9068 section 4).
  Keycloak signs access tokens with ``typ: JWT``: list ``JWT`` for it, knowing that such an
  issuer's ID tokens then differ from its access tokens only by their ``aud``;
- roles are read at ``roles_claim``, a dot path into the claims (``realm_access.roles``,
  ``resource_access.<client>.roles``, ``groups``), and mapped through ``role_map``; anything that
  is not then a relayshop role is dropped. A token whose roles map to nothing is still a valid
  identity: what it may do is decided at each route (403 there, not 401 here).

The user becomes ``ExternalIdentity``, whose ``sub`` is relayshop's own stable identifier for the
pair (issuer, external ``sub``): the same person at two issuers is two users, and no name, email
or username is ever copied from the token (data minimisation, GDPR article 5(1)(c)).

Keys come from the issuer's discovery document (OpenID Connect Discovery 1.0, RFC 8414), then
its ``jwks_uri``, held in a JWKSCache (jwks.py): fetched once, refetched for an unknown ``kid``
at most every ``min_refetch_seconds``, refreshed every ``refresh_seconds``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import jwt
from jwt.exceptions import (
    PyJWTError,
)
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

from .errors import InvalidToken
from .jwks import JWKSCache
from .roles import ROLES
from .tokens import (
    _IDENTIFIER,
    _SCOPE,
    _is_numeric_date,
    decode_claims,
    key_id,
    signed_header,
)

__all__ = [
    "DiscoveredKeys",
    "ExternalIdentity",
    "ExternalTokenVerifier",
    "TrustedIssuer",
    "TrustedIssuers",
    "federated_id",
    "identity_from_claims",
    "is_external_sub",
    "parse_trusted_issuers",
    "same_origin",
    "stable_sub",
    "unverified_issuer",
]

log = logging.getLogger(__name__)

# What an external token must carry: without them it cannot be checked or attributed.
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
# A dot path of claim names: "roles", "realm_access.roles", "resource_access.my-client.roles".
_DOT_PATH = re.compile(r"[A-Za-z0-9_:/-]+(?:\.[A-Za-z0-9_:/-]+)*")
# Another issuer's ``sub`` is its own business (Auth0's is "auth0|5f...", Google's digits): any
# visible ASCII, no spaces or control characters. It is hashed, never used as our identifier.
_EXTERNAL_SUB = re.compile(r"[\x21-\x7e]{1,255}")
_EXTERNAL_PREFIX = "ext-"
# What stable_sub returns: the prefix, then a SHA-256 in unpadded lower-case base32.
_STABLE_SUB = re.compile(r"ext-[a-z2-7]{52}")


def _media_type(value: str) -> str:
    """RFC 7515 section 4.1.9: ``typ`` is a media type, compared case-insensitively, whose
    ``application/`` prefix may be left out: ``application/at+jwt`` is ``at+jwt``."""
    value = value.strip().lower()
    return value.removeprefix("application/")


class TrustedIssuer(BaseModel):
    """One identity provider whose access tokens relayshop accepts, and how to read them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The exact ``iss`` of its tokens (and of its discovery document), compared as a string.
    issuer: str
    # The value ``aud`` must contain: the identifier this provider knows relayshop by.
    audience: str = Field(min_length=1)
    # Where the roles are, as a dot path into the claims.
    roles_claim: str = "roles"
    # Their role name -> relayshop role. None: their names are used as they are.
    role_map: dict[str, str] | None = None
    # The clients (``azp``) whose tokens are accepted. None: any client of this issuer. An empty
    # list, which would refuse every token, is refused at start as the mistake it must be.
    allowed_azp: list[str] | None = Field(default=None, min_length=1)
    # The header ``typ`` values accepted, normalised to lower case without ``application/``.
    token_types: list[str] = Field(default=["at+jwt"], min_length=1)
    # Where to fetch the discovery document when relayshop cannot reach the issuer's own URL.
    # None: the issuer's URL + /.well-known/openid-configuration.
    discovery_url: str | None = None
    # The public client the console signs users in with (authorization code + PKCE). None: the
    # console offers no sign-in with this issuer.
    console_client_id: str | None = Field(default=None, min_length=1, max_length=255)
    # What the console's button says: "Sign in with <name>". None: the issuer's host.
    name: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("issuer")
    @classmethod
    def _issuer_is_a_url(cls, value: str) -> str:
        # OpenID Connect Discovery 1.0 section 3: the issuer is a URL with a scheme and a host
        # and no query or fragment. (Use https in production: the keys are fetched from it.)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("issuer must be an http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("issuer must have no query or fragment")
        return value

    @field_validator("discovery_url")
    @classmethod
    def _discovery_is_a_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError("discovery_url must be an http(s) URL without a fragment")
        return value

    @model_validator(mode="after")
    def _console_client_is_allowed(self) -> TrustedIssuer:
        client = self.console_client_id
        if client is not None and self.allowed_azp is not None and client not in self.allowed_azp:
            raise ValueError(f"console_client_id {client!r} must be one of allowed_azp")
        return self

    @property
    def display_name(self) -> str:
        return self.name or urlsplit(self.issuer).hostname or self.issuer

    @field_validator("roles_claim")
    @classmethod
    def _roles_claim_is_a_path(cls, value: str) -> str:
        if not _DOT_PATH.fullmatch(value):
            raise ValueError("roles_claim must be a dot path such as realm_access.roles")
        return value

    @field_validator("role_map")
    @classmethod
    def _maps_to_relayshop_roles(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        unknown = sorted(set((value or {}).values()) - set(ROLES))
        if unknown:
            raise ValueError(
                f"role_map maps to {unknown}; relayshop's roles are {', '.join(ROLES)}"
            )
        return value

    @field_validator("token_types")
    @classmethod
    def _normalise_types(cls, value: list[str]) -> list[str]:
        return [_media_type(item) for item in value]

    def roles_from(self, claims: dict[str, Any]) -> tuple[str, ...]:
        """The relayshop roles the claims grant: sorted, unique, unknown names dropped.

        A missing claim is no roles. A claim of the wrong type (not a list of strings) is a
        malformed token and refused, as tokens.py refuses one."""
        value: Any = claims
        for name in self.roles_claim.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(role, str) for role in value):
            raise InvalidToken("claims", "The access token's roles are not a list of names.")
        if self.role_map is None:
            mapped: Iterable[str | None] = value
        else:
            mapped = (self.role_map.get(role) for role in value)
        # An external role becomes one of relayshop's roles, or nothing.
        return tuple(sorted({role for role in mapped if role in ROLES}))


def _unique_issuers(issuers: list[TrustedIssuer]) -> list[TrustedIssuer]:
    seen = [item.issuer for item in issuers]
    duplicated = sorted({issuer for issuer in seen if seen.count(issuer) > 1})
    if duplicated:
        raise ValueError(f"each issuer may be listed once: {duplicated}")
    return issuers


# The type of the setting: a JSON list of TrustedIssuer, each issuer at most once.
TrustedIssuers = Annotated[list[TrustedIssuer], AfterValidator(_unique_issuers)]
_ADAPTER: TypeAdapter[list[TrustedIssuer]] = TypeAdapter(TrustedIssuers)


def parse_trusted_issuers(value: str | bytes) -> list[TrustedIssuer]:
    """``RELAYSHOP_TRUSTED_ISSUERS`` as a list (the settings field does the same)."""
    return _ADAPTER.validate_json(value)


def stable_sub(issuer: str, external_sub: str) -> str:
    """Relayshop's identifier for the user ``external_sub`` of ``issuer``.

    Namespaced by issuer, so two issuers' users never share an id even when their ``sub`` do
    (OpenID Connect Core section 2: ``sub`` is unique only within its issuer). A hash, so it has
    the shape of our own identifiers whatever the issuer's looks like, and is the same every
    time without storing anything. The newline cannot occur in a URL, so no two pairs hash the
    same input."""
    digest = hashlib.sha256(f"{issuer}\n{external_sub}".encode()).digest()
    return _EXTERNAL_PREFIX + base64.b32encode(digest).decode().rstrip("=").lower()


def is_external_sub(value: str) -> bool:
    """True for an identifier stable_sub could have made (a user of a trusted issuer)."""
    return _STABLE_SUB.fullmatch(value) is not None


def federated_id(issuer: str, kind: str, value: str) -> str:
    """A relayshop identifier derived from one of another issuer's identifiers (its ``sid``, say):
    the same every time, namespaced by issuer and kind, and revealing nothing of the original."""
    digest = hashlib.sha256(f"{issuer}\n{kind}\n{value}".encode()).digest()
    return _EXTERNAL_PREFIX + base64.b32encode(digest).decode().rstrip("=").lower()


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a JWT claims, read WITHOUT verifying anything; None when it cannot be read.

    Only to choose whose keys and rules must then verify the token (RFC 8725 section 3.8):
    never a reason to trust it."""
    try:
        iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except PyJWTError:
        return None
    return iss if isinstance(iss, str) else None


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """A user signed in at a trusted issuer. ``sub`` is relayshop's id, ``external_sub`` theirs."""

    issuer: str
    external_sub: str
    sub: str
    roles: tuple[str, ...]
    scope: str
    sid: str | None
    exp: int
    iat: int
    jti: str | None


class DiscoveredKeys:
    """One issuer's signing keys: its discovery document names its ``jwks_uri``, a JWKSCache
    holds the keys. A KeySource (tokens.py), like relayshop's own JWKS cache.

    The discovery document must name the configured issuer exactly (OpenID Connect Discovery 1.0
    section 4.3), and its ``jwks_uri`` must be on the origin (scheme, host, port) the document
    was fetched from: the issuer's own, or the configured ``discovery_url``'s. We trust the
    issuer because of who answers at the URL we were given. A document that sends us elsewhere
    for keys (a typo, a compromised or shared host, a tenant able to edit its metadata) would
    make whoever answers there able to sign tokens relayshop accepts: refused. Redirects are
    not followed for the same reason. (Keycloak, Auth0, Okta and Entra ID serve their keys on
    their issuer's origin; Google does not, and is not usable as an issuer here.)"""

    def __init__(
        self,
        issuer: str,
        client: httpx.AsyncClient,
        *,
        discovery_url: str | None = None,
        min_refetch_seconds: float = 5.0,
        refresh_seconds: float = 60.0,
        on_keys_removed: Callable[[], None] | None = None,
    ) -> None:
        self.issuer = issuer
        # OpenID Connect Discovery 1.0 section 4: the issuer, without a trailing slash, then
        # /.well-known/openid-configuration (unless the configuration names another URL).
        self.discovery_url = discovery_url or (
            issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        # The discovery document, once read: the console's sign-in reads its endpoints.
        self.document: dict[str, Any] | None = None
        self._client = client
        self._min_refetch = min_refetch_seconds
        self._refresh_seconds = refresh_seconds
        self._on_keys_removed = on_keys_removed
        self.jwks: JWKSCache | None = None
        self._last_attempt = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def get(self, kid: str) -> Any | None:
        jwks = self.jwks or await self.discover()
        return await jwks.get(kid) if jwks is not None else None

    async def discover(self) -> JWKSCache | None:
        """Read the discovery document once it answers; at most once per min_refetch_seconds."""
        async with self._lock:
            if self.jwks is not None:
                return self.jwks
            now = time.monotonic()
            if now - self._last_attempt < self._min_refetch:
                return None
            self._last_attempt = now
            try:
                response = await self._client.get(self.discovery_url, follow_redirects=False)
                response.raise_for_status()
                document = response.json()
                jwks_uri = self.jwks_uri(document)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("discovery at %s failed: %s", self.discovery_url, exc)
                return None
            self.document = document
            self.jwks = JWKSCache(
                jwks_uri,
                self._client,
                min_refetch_seconds=self._min_refetch,
                refresh_seconds=self._refresh_seconds,
                on_keys_removed=self._on_keys_removed,
                rsa_keys_without_alg=True,  # Microsoft Entra ID publishes keys without alg
            )
            return self.jwks

    def jwks_uri(self, document: Any) -> str:
        """The document's ``jwks_uri``, or ValueError when it cannot be trusted."""
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        if _origin(jwks_uri) != _origin(self.discovery_url):
            raise ValueError(f"jwks_uri {jwks_uri} is not on the discovery document's origin")
        return jwks_uri

    def start(self) -> None:
        """Discover and load the keys in the background, then refresh them periodically."""
        self._task = asyncio.create_task(self._keep_fresh())

    async def _keep_fresh(self) -> None:
        jwks = await self.discover()
        while jwks is None:  # the issuer is not up yet: try again, no faster than min_refetch
            await asyncio.sleep(max(self._min_refetch, 1.0))
            jwks = await self.discover()
        jwks.start()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self.jwks is not None:
            await self.jwks.stop()


def same_origin(a: str, b: str) -> bool:
    """RFC 6454 origins compared: scheme, host and port (the scheme's default when left out)."""
    return _origin(a) == _origin(b)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, parts.hostname or "", port


class ExternalTokenVerifier:
    """Verify an access token from one of the trusted issuers and return who it speaks for.

    Verified tokens are cached, bounded in number and never past ``exp`` (nor past the maximum
    lifetime from the moment they were cached), as TokenVerifier does."""

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        client: httpx.AsyncClient,
        *,
        leeway_seconds: int = 5,
        max_token_bytes: int = 8192,
        cache_size: int = 10_000,
        max_lifetime_seconds: int = 3600,
        min_refetch_seconds: float = 5.0,
        refresh_seconds: float = 60.0,
    ) -> None:
        self.issuers = {item.issuer: item for item in _unique_issuers(list(issuers))}
        self.keys = {
            item.issuer: DiscoveredKeys(
                item.issuer,
                client,
                discovery_url=item.discovery_url,
                min_refetch_seconds=min_refetch_seconds,
                refresh_seconds=refresh_seconds,
                on_keys_removed=self.forget,
            )
            for item in issuers
        }
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self._max_lifetime = max_lifetime_seconds
        self._cache: OrderedDict[str, tuple[ExternalIdentity, float]] = OrderedDict()
        self._cache_size = cache_size

    def start(self) -> None:
        for source in self.keys.values():
            source.start()

    async def stop(self) -> None:
        for source in self.keys.values():
            await source.stop()

    def forget(self) -> None:
        self._cache.clear()

    async def verify(self, token: str) -> ExternalIdentity:
        if len(token) > self._max_bytes:
            raise InvalidToken("oversized", "The access token is too large.")
        cached = self._cache.get(token)
        if cached is not None and cached[1] > time.time():
            self._cache.move_to_end(token)
            return cached[0]
        identity = await self._verify_signed(token)
        self._cache[token] = (identity, min(identity.exp, time.time() + self._max_lifetime))
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return identity

    async def _verify_signed(self, token: str) -> ExternalIdentity:
        # The same header rules as for relayshop's own tokens (tokens.py).
        header = signed_header(token, "access token")
        kid = key_id(header)
        try:
            # Read, not trusted: only to choose whose keys and rules apply. The signature and
            # then ``iss`` itself are checked below with that issuer's keys (RFC 8725 3.8).
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except PyJWTError:
            raise InvalidToken("malformed", "The access token could not be read.") from None
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise InvalidToken("issuer", "The access token has an unknown issuer.")
        # RFC 8725 section 3.11: explicit typing keeps one kind of JWT from passing for another.
        typ = header.get("typ")
        if not isinstance(typ, str) or _media_type(typ) not in issuer.token_types:
            raise InvalidToken("type", "The token's type is not accepted from this issuer.")
        key = await self.keys[issuer.issuer].get(kid)
        if key is None:
            raise InvalidToken("unknown_key", "The token is signed with an unknown key.")
        # aud may be a string or a list (RFC 7519 4.1.3); it must contain our audience.
        claims = decode_claims(
            token,
            key,
            issuer=issuer.issuer,
            leeway=self._leeway,
            require=REQUIRED_CLAIMS,
            audience=issuer.audience,
        )
        if issuer.allowed_azp is not None:
            # OpenID Connect's azp; RFC 9068 tokens name the client in client_id instead.
            client = claims.get("azp", claims.get("client_id"))
            if client not in issuer.allowed_azp:
                raise InvalidToken("azp", "The access token was issued to another client.")
        identity = identity_from_claims(issuer, claims)
        # As for our own tokens: a validly signed token that claims to live far longer than any
        # access token should is refused rather than trusted until its distant exp.
        if identity.exp - identity.iat > self._max_lifetime + self._leeway:
            raise InvalidToken("lifetime", "The access token's lifetime exceeds the maximum.")
        return identity

    async def verify_id_token(
        self, token: str, issuer: str, client_id: str, nonce: str
    ) -> dict[str, Any]:
        """The claims of an ID token ``issuer`` gave our ``client_id`` at the code exchange, checked
        as OpenID Connect Core section 3.1.3.7 says: signed (RS256, the issuer's own keys), ``iss``
        the issuer, ``aud`` containing the client, ``azp`` the client when present, ``exp`` and
        ``iat`` sane, and ``nonce`` the one this sign-in sent (no replayed ID token). InvalidToken
        otherwise. Its header ``typ`` is not read: ID tokens carry ``JWT`` or none at all."""
        if len(token) > self._max_bytes:
            raise InvalidToken("oversized", "The ID token is too large.")
        header = signed_header(token, "ID token")
        kid = key_id(header, "ID token")
        source = self.keys.get(issuer)
        if source is None:
            raise InvalidToken("kid", "The ID token does not name a known signing key.")
        key = await source.get(kid)
        if key is None:
            raise InvalidToken("unknown_key", "The ID token is signed with an unknown key.")
        try:
            claims = decode_claims(
                token,
                key,
                issuer=issuer,
                leeway=self._leeway,
                require=["exp", "iat", "iss", "aud", "sub", "nonce"],
                audience=client_id,
                what="ID token",
            )
        except InvalidToken as exc:
            raise InvalidToken("id_token", f"The ID token was refused: {exc.detail}") from None
        if "azp" in claims and claims["azp"] != client_id:
            raise InvalidToken("azp", "The ID token was issued to another client.")
        given = claims["nonce"]
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), nonce.encode()):
            raise InvalidToken("nonce", "The ID token's nonce is not this sign-in's.")
        if not isinstance(claims["sub"], str) or not _EXTERNAL_SUB.fullmatch(claims["sub"]):
            raise InvalidToken("claims", "The ID token has claims of the wrong type.")
        return claims


def identity_from_claims(issuer: TrustedIssuer, claims: dict[str, Any]) -> ExternalIdentity:
    """Build an ExternalIdentity, refusing claims of the wrong type or shape instead of guessing
    (RFC 8725 section 3.10). Nothing else is read: no name, email or username."""
    sub: Any = claims.get("sub")
    jti: Any = claims.get("jti")
    sid: Any = claims.get("sid")
    scope: Any = claims.get("scope", "")
    exp: Any = claims.get("exp")
    iat: Any = claims.get("iat")
    if (
        not (isinstance(sub, str) and _EXTERNAL_SUB.fullmatch(sub))
        or (jti is not None and not (isinstance(jti, str) and _IDENTIFIER.fullmatch(jti)))
        or (sid is not None and not (isinstance(sid, str) and _IDENTIFIER.fullmatch(sid)))
        or not (isinstance(scope, str) and (scope == "" or _SCOPE.fullmatch(scope)))
        or not _is_numeric_date(exp)
        or not _is_numeric_date(iat)
        or ("nbf" in claims and not _is_numeric_date(claims["nbf"]))
    ):
        raise InvalidToken("claims", "The access token has claims of the wrong type.")
    return ExternalIdentity(
        issuer=issuer.issuer,
        external_sub=sub,
        sub=stable_sub(issuer.issuer, sub),
        roles=issuer.roles_from(claims),
        scope=scope,
        sid=sid,
        exp=int(exp),
        iat=int(iat),
        jti=jti,
    )
