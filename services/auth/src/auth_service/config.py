"""The auth service's settings: one pydantic-settings class on top of the platform's.

Every field is an environment variable ``RELAYSHOP_<FIELD>``, e.g.
``RELAYSHOP_ACCESS_TOKEN_TTL_SECONDS``.
``RELAYSHOP_ENV=production`` refuses the demo client secrets (see ``secret_fields``) and the demo
accounts (``RELAYSHOP_SEED_DEMO_USERS`` must be false there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from relayshop_platform.catalogue import AUTH, CATALOGUE, GATEWAY, SERVICE_CLIENTS, audience_of
from relayshop_platform.settings import PlatformSettings

# The services that may ask for a client_credentials token (RFC 6749 section 4.4): the catalogue's.
SERVICE_CLIENT_IDS = SERVICE_CLIENTS
# The docs' Swagger UI runs on each service's own port; it posts to /auth/token from there.
LOCAL_DOCS_ORIGINS = [
    f"http://{host}:{service.port}" for host in ("localhost", "127.0.0.1") for service in CATALOGUE
]


def client_secret_variable(client_id: str) -> str:
    return f"RELAYSHOP_{client_id.upper()}_CLIENT_SECRET"


def demo_client_secret(client_id: str) -> str:
    return f"{client_id}-demo-secret"


class AuthSettings(PlatformSettings):
    service_name: str = "auth"
    port: int = 8001
    client_secret: str = "auth-demo-secret"

    # access_token_ttl_seconds (how long access tokens live) is a platform setting: every
    # verifier bounds a token's lifetime by it.
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    # Private signing keys live here (0700 dir, 0600 files). Default: <data_dir>/keys.
    keys_dir: Path | None = None

    # Secrets of the service clients auth accepts (hashed with argon2id when seeded), one variable
    # per client: RELAYSHOP_<CLIENT>_CLIENT_SECRET, default "<client>-demo-secret" (refused in
    # production). Read with service_client_secrets().
    client_secrets: dict[str, str] = Field(default_factory=dict)

    seed_demo_users: bool = True

    # Online guessing defence (OWASP Authentication Cheat Sheet): failures counted in Redis per
    # username and per client address within a sliding-from-first-failure window.
    login_max_failures_per_username: int = Field(default=10, ge=1)
    login_max_failures_per_address: int = Field(default=50, ge=1)
    login_failure_window_seconds: int = Field(default=300, ge=1)

    cors_origins: list[str] = LOCAL_DOCS_ORIGINS
    redis_timeout_seconds: float = 2.0

    @property
    def audience(self) -> str:
        """Auth's own bearer-token endpoints (userinfo, logout, the admin operations) take the
        user's token as signed in, through the gateway: the front door's audience. Auth is the
        token service, not a resource behind it (RFC 8693 section 1: a security token service)."""
        return audience_of(GATEWAY)

    def user_token_audience(self) -> str | list[str]:
        """The ``aud`` of a signed-in user's token. Exchange mode: the gateway alone (each hop
        behind it gets a token exchanged for it). Relay mode: every service that verifies
        tokens, since the one token travels to all of them (the TokenRelay pattern)."""
        if self.token_mode == "relay":
            return [s.audience for s in CATALOGUE if s.name != AUTH]
        return audience_of(GATEWAY)

    @property
    def key_directory(self) -> Path:
        return self.keys_dir if self.keys_dir is not None else self.data_dir / "keys"

    @model_validator(mode="before")
    @classmethod
    def _client_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict) and "client_secrets" not in data:
            data["client_secrets"] = {
                client: os.environ.get(client_secret_variable(client), demo_client_secret(client))
                for client in SERVICE_CLIENT_IDS
            }
        return data

    @classmethod
    def per_service_variables(cls) -> dict[str, str]:
        secrets = {client_secret_variable(c): demo_client_secret(c) for c in SERVICE_CLIENT_IDS}
        return super().per_service_variables() | secrets

    def service_client_secrets(self) -> dict[str, str]:
        return {
            client_id: self.client_secrets.get(client_id, "") for client_id in SERVICE_CLIENT_IDS
        }

    def secret_fields(self) -> dict[str, str]:
        secrets = super().secret_fields()
        secrets.update(
            {
                f"{client_id}_client_secret": value
                for client_id, value in self.service_client_secrets().items()
            }
        )
        return secrets

    @model_validator(mode="after")
    def _refuse_demo_users_in_production(self) -> AuthSettings:
        if self.env == "production" and self.seed_demo_users:
            raise ValueError(
                "RELAYSHOP_ENV=production refuses the demo accounts: "
                "set RELAYSHOP_SEED_DEMO_USERS=false"
            )
        return self


def get_settings() -> AuthSettings:
    """Fresh settings from the environment (read once per app, in create_app)."""
    return AuthSettings()
