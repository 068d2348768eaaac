"""A Keycloak-shaped identity provider for tests: discovery, JWKS, tokens as Keycloak mints them.

Never used by a running service. It serves, on a real socket (a free port on 127.0.0.1):

    GET /realms/<realm>/.well-known/openid-configuration     the discovery document
    GET /realms/<realm>/protocol/openid-connect/certs        the JWKS

and ``mint`` makes access tokens of exactly the shape Keycloak 26 issues, which is not RFC 9068's:
the header says ``typ: JWT``; the payload has ``typ: Bearer``, ``azp``, ``aud`` with ``account``,
the realm's default roles in ``realm_access``, ``resource_access.account``, ``sid``, and the
user's name and email (which relayshop must never copy). Tests change one thing and see what the
verifier makes of it. ``rotate`` replaces the signing key the way an administrator rotating
the realm's keys does.

    with KeycloakIssuer() as keycloak:
        token = keycloak.mint(roles=["customer"], audience=["urn:relayshop:gateway"])
"""

from __future__ import annotations

import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from typing import Any

import jwt

from .devstack import free_port
from .testing import DROP, JsonHandler, TestKey

__all__ = ["DROP", "KeycloakIssuer"]


class KeycloakIssuer:
    """One Keycloak realm on a free port. Counts the discovery and JWKS requests it answers."""

    def __init__(self, realm: str = "relayshop") -> None:
        self.realm = realm
        self.port = free_port()
        self.key = TestKey()
        # The keys the JWKS publishes: the signing key, plus retired ones still published.
        self.published: list[TestKey] = [self.key]
        # Keycloak publishes an encryption key beside its signing keys; a verifier ignores it.
        self.encryption_key = TestKey()
        # Tests may change the discovery document (say, a jwks_uri elsewhere) through this.
        self.discovery_overrides: dict[str, Any] = {}
        # Publish the keys without "alg", as Microsoft Entra ID does (Keycloak names it).
        self.jwks_without_alg = False
        self.discovery_requests = 0
        self.jwks_requests = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}/realms/{self.realm}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    def discovery(self) -> dict[str, Any]:
        """The parts of Keycloak's discovery document a resource server reads."""
        endpoints = f"{self.issuer}/protocol/openid-connect"
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{endpoints}/auth",
            "token_endpoint": f"{endpoints}/token",
            "introspection_endpoint": f"{endpoints}/token/introspect",
            "userinfo_endpoint": f"{endpoints}/userinfo",
            "end_session_endpoint": f"{endpoints}/logout",
            "jwks_uri": self.jwks_uri,
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public", "pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["plain", "S256"],
        }
        document.update(self.discovery_overrides)
        return document

    def jwks(self) -> dict[str, Any]:
        encryption = dict(self.encryption_key.jwk(), use="enc", alg="RSA-OAEP")
        keys = [key.jwk() for key in self.published]
        if self.jwks_without_alg:
            keys = [{name: value for name, value in key.items() if name != "alg"} for key in keys]
        return {"keys": [*keys, encryption]}

    def rotate(self, keep_old: bool = True) -> TestKey:
        """Sign with a new key from now on; the old one stays published unless ``keep_old``."""
        self.key = TestKey()
        self.published = [self.key, *self.published] if keep_old else [self.key]
        return self.key

    def claims(
        self,
        *,
        roles: list[str] | tuple[str, ...] = (),
        audience: list[str] | tuple[str, ...] = (),
        azp: str = "relayshop-console",
        client_roles: dict[str, list[str]] | None = None,
        username: str = "alice",
        **overrides: Any,
    ) -> dict[str, Any]:
        """A Keycloak access token's payload. ``roles`` are realm roles (Keycloak adds the
        realm's default ones), ``audience`` what an audience mapper adds beside ``account``,
        ``client_roles`` the ``resource_access`` roles of clients other than ``account``.
        ``overrides`` replace any claim (DROP leaves it out)."""
        now = int(time.time())
        # Keycloak writes a one-element aud as a string, several as a list.
        audiences = [*audience, "account"]
        resource_access: dict[str, Any] = {
            name: {"roles": list(names)} for name, names in (client_roles or {}).items()
        }
        resource_access["account"] = {
            "roles": ["manage-account", "manage-account-links", "view-profile"]
        }
        claims: dict[str, Any] = {
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
            "aud": audiences if len(audiences) > 1 else audiences[0],
            "sub": str(uuid.uuid4()),
            "typ": "Bearer",
            "azp": azp,
            "sid": str(uuid.uuid4()),
            "acr": "1",
            "allowed-origins": ["http://localhost:8000"],
            "realm_access": {
                "roles": [
                    *roles,
                    "offline_access",
                    "uma_authorization",
                    f"default-roles-{self.realm}",
                ]
            },
            "resource_access": resource_access,
            "scope": "openid profile email",
            "email_verified": True,
            "name": f"{username.title()} Example",
            "preferred_username": username,
            "given_name": username.title(),
            "family_name": "Example",
            "email": f"{username}@example.com",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not DROP}

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        headers: dict[str, Any] | None = None,
        key: TestKey | None = None,
        **claim_arguments: Any,
    ) -> str:
        """A signed token: ``claims`` as given, or ``self.claims(**claim_arguments)``.
        ``key`` signs instead of the realm's current key (its kid in the header)."""
        signer = key or self.key
        payload = claims if claims is not None else self.claims(**claim_arguments)
        header = {"typ": "JWT", "kid": signer.kid}
        header.update(headers or {})
        return jwt.encode(payload, signer.private_key, algorithm="RS256", headers=header)

    def start(self) -> KeycloakIssuer:
        issuer = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                prefix = f"/realms/{issuer.realm}"
                if self.path == f"{prefix}/.well-known/openid-configuration":
                    issuer.discovery_requests += 1
                    self._json(200, issuer.discovery())
                elif self.path == f"{prefix}/protocol/openid-connect/certs":
                    issuer.jwks_requests += 1
                    self._json(200, issuer.jwks())
                else:
                    self._json(404, {"error": "not found"})

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KeycloakIssuer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
