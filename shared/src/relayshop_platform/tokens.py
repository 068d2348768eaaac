"""Verify an access token locally and turn it into a Principal.

The checks follow RFC 8725 (JWT best current practices) and RFC 9068 (JWT access tokens):
- ``alg`` must be in ALLOWED_ALGORITHMS, fixed here in code, never taken from the token (8725 3.1);
- ``typ`` must be ``at+jwt`` (9068 section 4), so an ID token or other JWT is not accepted as one;
- ``kid`` selects a key from the configured JWKS; ``jku``, ``x5u``, ``jwk`` and ``x5c`` are refused
  rather than followed (8725 3.10), and unknown ``crit`` extensions are refused (RFC 7515 4.1.11);
- ``iss``, ``exp``, ``iat``, ``nbf`` with a small leeway, and the required claims of RFC 9068
  section 2.2, are checked by PyJWT;
- ``aud`` (a string or an array, RFC 7519 4.1.3) must contain this service's own audience,
  ``urn:relayshop:<service>`` (RFC 9068 section 4): a token addressed to orders is refused at
  inventory and payments, however valid it is otherwise;
- ``act`` (RFC 8693 section 4.1, the services a token was exchanged by, nested) and
  ``derived_from`` (the ``jti`` of every token it was exchanged from) are read, so a route can see
  who acts for the user and a revocation of the original token reaches its derivatives;
- every claim must then have its registered type and a sane shape, or the token is refused: a
  ``sub`` of ``null``, ``true``, ``""`` or ``"x' OR '1'='1"`` is never turned into an identity,
  even under a valid signature (RFC 8725 section 3.10: do not trust received claims);
- ``exp - iat`` may not exceed the configured access-token lifetime (plus leeway): a validly
  signed token that claims to live for a year came from a misconfigured or compromised issuer;
- revocation (revoked ``jti`` or ``derived_from``, per-user not-before) is checked on every call,
  cached or not.

Verified tokens are cached (bounded in number, and never past ``exp`` nor past the maximum
lifetime from the moment they were cached) so that the second sight of a token costs a
dictionary lookup plus the revocation check.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAudienceError,
    InvalidIssuedAtError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)
from jwt.types import Options

from .errors import InvalidToken

ALLOWED_ALGORITHMS = ("RS256",)
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "client_id"]
SERVICE_ROLE = "service"
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
# A kid names one of our keys (an RFC 7638 thumbprint, base64url): anything else, such as a path,
# SQL or shell metacharacters, is refused before it is looked up or could trigger a JWKS refetch.
_KID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# Identifiers (sub, jti, sid, client_id): opaque ids, never quotes, spaces or control characters,
# so one cannot smuggle SQL, markup or a forged log line in through a claim.
_IDENTIFIER = re.compile(r"[A-Za-z0-9._~:@+/=-]{1,255}")
# RFC 6749 section 3.3: scope = scope-token *( SP scope-token ), scope-token = 1*NQSCHAR.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")
_ROLE = re.compile(r"[a-z][a-z0-9_-]{0,63}")


# An exchanged token's act chain and derived_from list grow by one per hop (gateway -> orders ->
# payments -> inventory is three): far more than that is a forged or runaway token.
MAX_CHAIN = 8


@dataclass(frozen=True, slots=True)
class Principal:
    """Who the token speaks for. ``is_service`` marks a client_credentials token.

    ``actors``: the act chain, nearest first (the service that exchanged this token, then the one
    before it...); empty for a token nobody exchanged. ``derived_from``: the ``jti`` of each
    token this one was exchanged from, oldest first."""

    sub: str
    roles: tuple[str, ...]
    scope: str
    jti: str
    exp: int
    iat: int
    sid: str | None = None
    client_id: str | None = None
    audience: tuple[str, ...] = ()
    actors: tuple[str, ...] = ()
    derived_from: tuple[str, ...] = ()

    @property
    def is_service(self) -> bool:
        return SERVICE_ROLE in self.roles

    def has_any_role(self, roles: Collection[str]) -> bool:
        return any(role in roles for role in self.roles)


class KeySource(Protocol):
    async def get(self, kid: str) -> Any | None: ...


class RevocationCheck(Protocol):
    def check(self, principal: Principal) -> None: ...


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: int = 5,
        max_token_bytes: int = 8192,
        revocations: RevocationCheck | None = None,
        cache_size: int = 10_000,
        max_lifetime_seconds: int = 3600,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self.revocations = revocations
        self._max_lifetime = max_lifetime_seconds
        # token -> (principal, until): until is exp, or sooner if exp were ever further off than
        # the maximum lifetime (the lifetime check refuses such a token, this bounds the cache).
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str, audience: str | None = None) -> Principal:
        """The token's principal, or InvalidToken. ``audience``: the one to require instead of
        this service's own (auth checks a subject token against the exchanging client's)."""
        if len(token) > self._max_bytes:
            raise InvalidToken("oversized", "The access token is too large.")
        cached = self._cache.get(token)
        if cached is not None and cached[1] > time.time():
            principal = cached[0]
            self._cache.move_to_end(token)
        else:
            principal = await self._verify_signed(token)
            self._remember(token, principal)
        # RFC 7519 4.1.3 and RFC 9068 section 4: refuse a token whose aud does not name us. Checked
        # here rather than by PyJWT so that one cached verification serves any audience asked for.
        if (audience or self._audience) not in principal.audience:
            raise InvalidToken("audience", "The access token is for another audience.")
        if self.revocations is not None:
            self.revocations.check(principal)
        return principal

    def _remember(self, token: str, principal: Principal) -> None:
        self._cache[token] = (principal, min(principal.exp, time.time() + self._max_lifetime))
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self) -> None:
        self._cache.clear()

    async def _verify_signed(self, token: str) -> Principal:
        header = signed_header(token)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("type", "The token is not an access token (typ must be at+jwt).")
        key = await self._keys.get(key_id(header))
        if key is None:
            raise InvalidToken("unknown_key", "The token is signed with an unknown key.")
        # aud is required here and compared in verify(), against the audience asked for.
        claims = decode_claims(
            token, key, issuer=self._issuer, leeway=self._leeway, require=REQUIRED_CLAIMS
        )
        principal = principal_from_claims(claims)
        # No standard caps a JWT's lifetime (RFC 7519 4.1.4); we do, at every hop, so a token
        # minted for far longer than auth ever issues (a compromised or misconfigured issuer)
        # is refused here rather than trusted until its distant exp.
        if principal.exp - principal.iat > self._max_lifetime + self._leeway:
            raise InvalidToken("lifetime", "The access token's lifetime exceeds the maximum.")
        return principal


def signed_header(token: str, what: str = "token") -> dict[str, Any]:
    """The JOSE header, read before any key is chosen: a JWS with an algorithm from the
    allow-list fixed in code, never the token's choice (RFC 8725 section 3.1)."""
    try:
        header: dict[str, Any] = jwt.get_unverified_header(token)
    except PyJWTError:
        raise InvalidToken("malformed", f"The {what} is not a signed JWT.") from None
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise InvalidToken("algorithm", f"The {what}'s signing algorithm is not accepted.")
    return header


def key_id(header: dict[str, Any], what: str = "token") -> str:
    """The ``kid`` that picks one of the configured keys. Keys named inside the token (``jku``,
    ``x5u``, ``jwk``, ``x5c``) would let its author choose the key, so they are refused rather
    than followed (RFC 8725 section 3.10), and so is any critical extension (RFC 7515 4.1.11)."""
    if any(name in header for name in _FORBIDDEN_HEADERS):
        raise InvalidToken("key_reference", f"Keys named inside a {what} are never trusted.")
    if "crit" in header:
        raise InvalidToken("crit", f"The {what} uses an unsupported critical extension.")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise InvalidToken("kid", f"The {what} does not name a known signing key.")
    return kid


def decode_claims(
    token: str,
    key: Any,
    *,
    issuer: str,
    leeway: float,
    require: list[str],
    audience: str | None = None,
    what: str = "access token",
) -> dict[str, Any]:
    """PyJWT's signature and registered-claim checks (RS256 only), each failure turned into
    InvalidToken with its reason word. ``audience``: checked here when given (string or list
    ``aud`` containing it, RFC 7519 4.1.3); otherwise only required, for the caller to judge.
    ``what`` names the token in the messages."""
    # verify_aud off only when no audience is given: aud is still required, the caller judges it.
    options: Options = {"require": require, "verify_aud": audience is not None}
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(ALLOWED_ALGORITHMS),
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options=options,
        )
    except ExpiredSignatureError:
        raise InvalidToken("expired", f"The {what} has expired.") from None
    except (ImmatureSignatureError, InvalidIssuedAtError):
        raise InvalidToken("not_yet_valid", f"The {what} is not valid yet.") from None
    except InvalidAudienceError:
        raise InvalidToken("audience", f"The {what} is for another audience.") from None
    except InvalidIssuerError:
        raise InvalidToken("issuer", f"The {what} has an unknown issuer.") from None
    except MissingRequiredClaimError as exc:
        raise InvalidToken("missing_claim", f"The {what} lacks '{exc.claim}'.") from None
    except InvalidSignatureError:
        raise InvalidToken("signature", f"The {what}'s signature is invalid.") from None
    except PyJWTError:
        raise InvalidToken("malformed", f"The {what} could not be read.") from None
    return claims


def _is_identifier(value: Any) -> bool:
    return isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None


def _is_numeric_date(value: Any) -> bool:
    # RFC 7519 section 2: a JSON number of seconds. bool is an int in Python: refuse it explicitly.
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _actors(act: Any) -> tuple[str, ...] | None:
    """RFC 8693 4.1: ``{"sub": "orders", "act": {"sub": "gateway"}}`` -> ("orders", "gateway");
    None when the claim is not such a chain of identifiers."""
    chain: list[str] = []
    while act is not None:
        if not isinstance(act, dict) or not _is_identifier(act.get("sub")):
            return None
        if len(chain) >= MAX_CHAIN or set(act) - {"sub", "act"}:
            return None
        chain.append(act["sub"])
        act = act.get("act")
    return tuple(chain)


def _audiences(aud: Any) -> tuple[str, ...] | None:
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not values or len(values) > 32:
        return None
    if not all(isinstance(value, str) and 0 < len(value) <= 255 for value in values):
        return None
    return tuple(values)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build a Principal, refusing claims of the wrong type or shape instead of guessing."""
    # Any, not "Any | None": each value is checked below before it is used.
    sub: Any = claims.get("sub")
    jti: Any = claims.get("jti")
    client_id: Any = claims.get("client_id")
    exp: Any = claims.get("exp")
    iat: Any = claims.get("iat")
    scope: Any = claims.get("scope", "")
    roles: Any = claims.get("roles", [])
    sid: Any = claims.get("sid")
    audience = _audiences(claims.get("aud"))
    actors = _actors(claims.get("act"))
    derived: Any = claims.get("derived_from", [])
    if (
        audience is None
        or actors is None
        or not isinstance(derived, list)
        or len(derived) > MAX_CHAIN
        or not all(_is_identifier(jti) for jti in derived)
    ):
        raise InvalidToken("claims", "The access token has claims of the wrong type.")
    if (
        not _is_identifier(sub)
        or not _is_identifier(jti)
        or not _is_identifier(client_id)
        or ("sid" in claims and not _is_identifier(sid))  # optional; if present, a real one
        or ("scope" in claims and not (isinstance(scope, str) and _SCOPE.fullmatch(scope)))
        or not isinstance(roles, list)
        or not all(isinstance(role, str) and _ROLE.fullmatch(role) for role in roles)
        or not _is_numeric_date(exp)
        or not _is_numeric_date(iat)
        or ("nbf" in claims and not _is_numeric_date(claims["nbf"]))
    ):
        raise InvalidToken("claims", "The access token has claims of the wrong type.")
    return Principal(
        sub=sub,
        roles=tuple(roles),
        scope=scope,
        jti=jti,
        exp=int(exp),
        iat=int(iat),
        sid=sid,
        client_id=client_id,
        audience=audience,
        actors=actors,
        derived_from=tuple(derived),
    )
