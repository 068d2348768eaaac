"""Verify an access token locally and turn it into a Principal.

The checks follow RFC 8725 (JWT best current practices) and RFC 9068 (JWT access tokens):
- ``alg`` must be in ALLOWED_ALGORITHMS, fixed here in code, never taken from the token (8725 3.1);
- ``typ`` must be ``at+jwt`` (9068 section 4), so an ID token or other JWT is not accepted as one;
- ``kid`` selects a key from the configured JWKS; ``jku``, ``x5u``, ``jwk`` and ``x5c`` are refused
  rather than followed (8725 3.10), and unknown ``crit`` extensions are refused (RFC 7515 4.1.11);
- ``iss``, ``aud`` (a single string, strictly), ``exp``, ``iat``, ``nbf`` with a small leeway, and
  the required claims, are checked by PyJWT;
- revocation (revoked ``jti``, per-user not-before) is checked on every call, cached or not.

Verified tokens are cached (bounded, never past ``exp``) so that the second sight of a token costs
a dictionary lookup plus the revocation check.
"""

from __future__ import annotations

import time
from collections import OrderedDict
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

from .errors import InvalidToken

ALLOWED_ALGORITHMS = ("RS256",)
ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
SERVICE_ROLE = "service"
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who the token speaks for. ``is_service`` marks a client_credentials token."""

    sub: str
    roles: tuple[str, ...]
    scope: str
    jti: str
    exp: int
    iat: int
    sid: str | None = None
    client_id: str | None = None

    @property
    def is_service(self) -> bool:
        return SERVICE_ROLE in self.roles

    def has_any_role(self, roles: set[str] | frozenset[str] | tuple[str, ...]) -> bool:
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
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self.revocations = revocations
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, token: str) -> Principal:
        if len(token) > self._max_bytes:
            raise InvalidToken("oversized", "The access token is too large.")
        principal = self._cache.get(token)
        if principal is not None and principal.exp > time.time():
            self._cache.move_to_end(token)
        else:
            principal = await self._verify_signed(token)
            self._remember(token, principal)
        if self.revocations is not None:
            self.revocations.check(principal)
        return principal

    def _remember(self, token: str, principal: Principal) -> None:
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def forget(self) -> None:
        self._cache.clear()

    async def _verify_signed(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise InvalidToken("malformed", "The access token is not a signed JWT.") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidToken("algorithm", "The token's signing algorithm is not accepted.")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise InvalidToken("type", "The token is not an access token (typ must be at+jwt).")
        if any(name in header for name in _FORBIDDEN_HEADERS):
            raise InvalidToken("key_reference", "Keys named inside a token are never trusted.")
        if "crit" in header:
            raise InvalidToken("crit", "The token uses an unsupported critical extension.")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 128:
            raise InvalidToken("kid", "The token does not name a known signing key.")
        key = await self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown_key", "The token is signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
        except ExpiredSignatureError:
            raise InvalidToken("expired", "The access token has expired.") from None
        except (ImmatureSignatureError, InvalidIssuedAtError):
            raise InvalidToken("not_yet_valid", "The access token is not valid yet.") from None
        except InvalidAudienceError:
            raise InvalidToken("audience", "The access token is for another audience.") from None
        except InvalidIssuerError:
            raise InvalidToken("issuer", "The access token has an unknown issuer.") from None
        except MissingRequiredClaimError as exc:
            raise InvalidToken("missing_claim", f"The access token lacks '{exc.claim}'.") from None
        except InvalidSignatureError:
            raise InvalidToken("signature", "The access token's signature is invalid.") from None
        except PyJWTError:
            raise InvalidToken("malformed", "The access token could not be read.") from None
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build a Principal, refusing claims of the wrong type instead of guessing."""
    sub, jti, scope = claims.get("sub"), claims.get("jti"), claims.get("scope", "")
    roles, sid, client_id = claims.get("roles", []), claims.get("sid"), claims.get("client_id")
    exp, iat = claims.get("exp"), claims.get("iat")
    if (
        not isinstance(sub, str)
        or not sub
        or not isinstance(jti, str)
        or not jti
        or not isinstance(scope, str)
        or not isinstance(roles, list)
        or not all(isinstance(role, str) for role in roles)
        or (sid is not None and not isinstance(sid, str))
        or (client_id is not None and not isinstance(client_id, str))
        or isinstance(exp, bool)
        or isinstance(iat, bool)
        or not isinstance(exp, int | float)
        or not isinstance(iat, int | float)
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
    )
