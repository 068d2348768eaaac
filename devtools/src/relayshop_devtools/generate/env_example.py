""".env.example from the settings classes, so it can never drift from what the code reads
(make generate; tests/deploy/test_generated.py fails when the file is out of date)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from relayshop_platform.catalogue import CATALOGUE, Service
from relayshop_platform.settings import PlatformSettings

from . import demo

# Read per other service (RELAYSHOP_ORDERS_URL, ...): listed one variable a line instead.
PER_SERVICE_FIELDS = ("service_urls", "client_secrets")
HEADER = """\
# Every setting relayshop reads, with its default. Copy to .env and edit what you need
# (honcho loads .env under `make run`; compose reads it too). Variables are per process:
# RELAYSHOP_CLIENT_SECRET, DATABASE_URL and the like mean "this service's own".
# RELAYSHOP_ENV=production, the default when unset, refuses every demo secret and the demo
# accounts; `make run`, the tests and compose's demo set development (or test) explicitly.
"""


COMPOSE_HEADER = """
## docker compose only: secrets that docker-compose.yml requires (${VAR:?}). Demo values, so that
## `cp .env.example .env && docker compose up` works; use your own anywhere but your laptop.
## They are URL-safe because the passwords go into connection URLs.
POSTGRES_PASSWORD=postgres-demo-password
"""


def compose_secrets(catalogue: tuple[Service, ...] = CATALOGUE) -> str:
    """One database password per service with tables, then Redis, then one client secret per
    service: the service catalogue decides which."""
    lines = [
        f"{s.name.upper()}_DB_PASSWORD={demo.db_password(s.name)}" for s in catalogue if s.tables
    ]
    lines.append("REDIS_PASSWORD=redis-demo-password")
    lines += [f"{s.name.upper()}_REDIS_PASSWORD={demo.redis_password(s.name)}" for s in catalogue]
    lines += [f"{s.name.upper()}_CLIENT_SECRET={demo.client_secret(s.name)}" for s in catalogue]
    return COMPOSE_HEADER + "\n".join(lines) + "\n"


def env_names(settings: type[PlatformSettings], name: str, field: Any) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{settings.model_config.get('env_prefix', '')}{name}".upper()]


def render_default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        import json

        return json.dumps(list(value) if not isinstance(value, dict) else value)
    return str(value)


def build(catalogue: tuple[Service, ...] = CATALOGUE) -> str:
    lines = [HEADER]
    seen: set[str] = set()
    for service in catalogue:
        module = importlib.import_module(f"{service.package}.config")
        settings_class = next(
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, PlatformSettings)
            and value.__module__ == module.__name__
        )
        section = []
        for name, field in settings_class.model_fields.items():
            if name in PER_SERVICE_FIELDS:
                defaults = settings_class.per_service_variables().items()
                section += [f"# {key}={default}" for key, default in defaults]
                continue
            names = env_names(settings_class, name, field)
            key = names[0]
            if key in seen and name not in ("client_secret", "service_name", "port"):
                continue
            seen.add(key)
            default = field.get_default(call_default_factory=True)
            section.append(f"# {key}={render_default(default)}")
        lines.append(f"\n## {service.name} ({settings_class.__name__})")
        lines.extend(section)
    return "\n".join(lines) + "\n" + compose_secrets(catalogue)


def outputs(root: Path, catalogue: tuple[Service, ...]) -> dict[Path, str]:
    return {root / ".env.example": build(catalogue)}
