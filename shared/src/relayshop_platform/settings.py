"""One typed settings base for every service (pydantic-settings).

Every value comes from an environment variable named ``RELAYSHOP_<FIELD>`` (``DATABASE_URL`` and
``REDIS_URL`` also work unprefixed); ``.env.example`` lists them all with their defaults.
``RELAYSHOP_ENV=production`` (the default when unset) refuses to start with any of the demo
secrets or the demo accounts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from fastapi import Request
from pydantic import AliasChoices, Field, IPvAnyNetwork, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .catalogue import AUTH, CATALOGUE, Service, service
from .issuers import TrustedIssuers

# What a service uses; the rest is this module's own business.
__all__ = [
    "PlatformSettings",
    "get_app_settings",
    "neighbours",
]

DEMO_SECRET_MARKER = "demo"


def neighbours(name: str, catalogue: Iterable[Service] = CATALOGUE) -> tuple[Service, ...]:
    """The services ``name`` calls (the catalogue's ``calls``) but auth, whose address is the
    ``auth_url`` setting of every service. ``catalogue``: another than relayshop's (make
    generate renders one with a service that is not installed yet)."""
    by_name = {s.name: s for s in catalogue}
    calls = by_name[name].calls if name in by_name else ()
    return tuple(by_name[callee] for callee in calls if callee != AUTH)


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAYSHOP_", extra="ignore")

    service_name: str = "relayshop"
    # Unset means production: a fork deployed without thinking refuses the demo secrets and the
    # demo accounts instead of running with them. `make run`, the tests and compose's demo say
    # development (or test) explicitly.
    env: Literal["development", "test", "production"] = "production"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "RELAYSHOP_DATABASE_URL")
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "RELAYSHOP_REDIS_URL"),
    )
    # This service's own Redis ACL password: set, the service signs in to Redis as the user named
    # after it (redis_acl.py says what each may do: only auth writes revocations). Unset, it
    # connects as REDIS_URL says.
    redis_password: str | None = None

    # Where auth, the token service, lives (internal URL, not the public gateway): JWKS, tokens.
    auth_url: str = service(AUTH).local_url
    # Where the other services this one calls live: the catalogue's ``calls``, each read from
    # RELAYSHOP_<NAME>_URL (default http://127.0.0.1:<its port>). Nothing else: a service holds
    # only the addresses of its own neighbours. Read them with ``url(name)``.
    service_urls: dict[str, str] = Field(default_factory=dict)

    # Upgrade the database schema (Alembic, migrate.py) in the lifespan, before serving. True
    # suits in-process apps (tests). Wherever a separate step runs `python -m
    # relayshop_platform.migrate <name>` first (Procfile, devstack, compose, k8s initContainers),
    # it is false, and Alembic is never imported by the serving process: ~10 MB less per service.
    migrate_on_start: bool = True

    # What a valid access token must say (RFC 9068 section 4): this issuer, and this service's
    # own audience among its aud (the ``audience`` property, from the catalogue).
    issuer: str = "http://localhost:8000/auth"
    # How a user's token travels past the gateway (docs/architecture.md, "Two token modes"):
    # exchange: each hop exchanges the token it received for one addressed to the next hop alone
    #           (RFC 8693), so a token taken from one service works nowhere else;
    # relay:    the user's token carries every audience and is relayed unchanged (TokenRelay).
    token_mode: Literal["exchange", "relay"] = "exchange"
    leeway_seconds: int = 5
    # Auth issues access tokens for this long; every hop refuses one whose exp - iat exceeds it
    # (plus the leeway), and keeps none in its verified-token cache for longer. Short-lived
    # access tokens keep revocation cheap; refresh tokens carry the long session.
    access_token_ttl_seconds: int = Field(default=300, ge=1, le=3600)
    # Bounded work for hostile input: no honest access token is anywhere near this size.
    max_token_bytes: int = 8192
    jwks_min_refetch_seconds: float = 5.0
    # Every service refetches the JWKS this often, whatever Redis announced: the longest a
    # retired key stays trusted when its announcement is lost.
    jwks_refresh_seconds: float = Field(default=60.0, gt=0)
    # How long a service keeps trusting its revocation mirror while Redis is unreachable
    # (see the README, "When Redis is down"). After that it fails closed with 503.
    revocation_max_staleness_seconds: float = 30.0

    # This service's own OAuth client (client_credentials), used to prove which service calls.
    client_id: str | None = None
    client_secret: str = "demo-service-secret"

    http_timeout_seconds: float = 5.0
    http_connect_timeout_seconds: float = 1.0
    http_max_connections: int = 200

    # Observability (tracing.py, logs.py). Sampling and collectors are OpenTelemetry's own OTEL_*
    # variables. Spans go to this JSON-lines file, which `make trace` reads; unset, they go to
    # <data_dir>/traces/<service>.jsonl, unless OTEL_EXPORTER_OTLP_ENDPOINT names a collector.
    trace_file: Path | None = None
    # Past this size the trace file is rotated to <file>.1 (one old file kept).
    trace_file_max_bytes: int = 50_000_000
    # "json": one JSON object per line with trace_id and span_id; "text": the same, for humans.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Proxies whose X-Forwarded-For is believed (auth's sign-in throttle counts per client
    # address): the gateway's address, or in a cluster the whole pod range. Addresses or CIDRs,
    # a JSON list. uvicorn's FORWARDED_ALLOW_IPS (--forwarded-allow-ips) must name the same.
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default=["127.0.0.1/32", "::1/128"], validate_default=True
    )
    # Who may read /metrics (metrics.py): loopback, plus the private ranges (RFC 1918) where
    # Prometheus scrapes pod IPs inside a cluster. Anyone else gets 404. JSON list of CIDRs.
    metrics_allowed_networks: list[IPvAnyNetwork] = Field(
        default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
        validate_default=True,
    )
    # Other identity providers whose access tokens are accepted (issuers.py says what each entry
    # means and how such a token is checked). A JSON list; empty: only auth's own tokens.
    trusted_issuers: TrustedIssuers = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _neighbour_urls(cls, data: Any) -> Any:
        if isinstance(data, dict) and "service_urls" not in data:
            name = data.get("service_name") or cls.model_fields["service_name"].default
            data["service_urls"] = {
                n.name: os.environ.get(n.url_variable, n.local_url) for n in neighbours(name)
            }
        return data

    @classmethod
    def per_service_variables(cls) -> dict[str, str]:
        """The environment variables read one per other service rather than one per field, with
        their defaults: what tools/compose_check.py and `make generate` need to know."""
        name = cls.model_fields["service_name"].default
        return {n.url_variable: n.local_url for n in neighbours(name)}

    def url(self, name: str) -> str:
        """The internal URL of a service this one calls, without a trailing slash."""
        if name == AUTH:
            return self.auth_url.rstrip("/")
        try:
            return self.service_urls[name].rstrip("/")
        except KeyError:
            raise KeyError(
                f"{self.service_name} does not call {name} (see the service catalogue's calls)"
            ) from None

    @property
    def audience(self) -> str:
        """The audience a token must name to be accepted here: ``urn:relayshop:<service>``."""
        return f"urn:relayshop:{self.service_name}"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / (self.service_name + '.db')}"

    @property
    def effective_trace_file(self) -> Path | None:
        """Where spans are written as JSON lines, or None when they go to a collector only."""
        if self.trace_file is not None:
            return self.trace_file
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return None
        return self.data_dir / "traces" / f"{self.service_name}.jsonl"

    def redis_connection_url(self, user: str | None = None) -> str:
        """REDIS_URL, signed in as ``user`` (default: the ACL user named after this service)
        when this service has a Redis password."""
        if self.redis_password is None:
            return self.redis_url
        from .redis_acl import service_url

        return service_url(self.redis_url, user or self.service_name, self.redis_password)

    @property
    def jwks_url(self) -> str:
        return f"{self.auth_url}/auth/.well-known/jwks.json"

    @property
    def token_url(self) -> str:
        return f"{self.auth_url}/auth/token"

    def secret_fields(self) -> dict[str, str]:
        """The settings that must never hold a demo value in production."""
        secrets = {"client_secret": self.client_secret}
        if self.redis_password is not None:
            secrets["redis_password"] = self.redis_password
        return secrets

    @model_validator(mode="after")
    def _refuse_demo_secrets_in_production(self) -> PlatformSettings:
        if self.env == "production":
            weak = [
                name
                for name, value in self.secret_fields().items()
                if DEMO_SECRET_MARKER in value.lower() or len(value) < 16
            ]
            if weak:
                raise ValueError(
                    f"RELAYSHOP_ENV=production refuses demo or short secrets: {', '.join(weak)}"
                )
        return self


def get_app_settings(request: Request) -> PlatformSettings:
    """The settings the app was built with. Each service declares its typed alias:
    ``Settings = Annotated[OrdersSettings, Depends(get_app_settings)]`` (its config.py)."""
    settings: PlatformSettings = request.app.state.settings
    return settings
