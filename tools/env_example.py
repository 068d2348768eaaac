"""Write .env.example from the settings classes, so it can never drift from what the code reads.

.venv/bin/python tools/env_example.py > .env.example
(tests/deploy/test_env_example.py fails when the file is out of date)
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

SERVICES = ("auth", "gateway", "orders", "payments", "inventory")
HEADER = """\
# Every setting relayshop reads, with its default. Copy to .env and edit what you need
# (honcho loads .env under `make run`; compose reads it too). Variables are per process:
# RELAYSHOP_CLIENT_SECRET, DATABASE_URL and the like mean "this service's own".
# RELAYSHOP_ENV=production, the default when unset, refuses every demo secret and the demo
# accounts; `make run`, the tests and compose's demo set development (or test) explicitly.
"""


COMPOSE = """
## docker compose only: secrets that docker-compose.yml requires (${VAR:?}). Demo values, so that
## `cp .env.example .env && docker compose up` works; use your own anywhere but your laptop.
## They are URL-safe because the passwords go into connection URLs.
POSTGRES_PASSWORD=postgres-demo-password
AUTH_DB_PASSWORD=auth-demo-db-password
ORDERS_DB_PASSWORD=orders-demo-db-password
PAYMENTS_DB_PASSWORD=payments-demo-db-password
INVENTORY_DB_PASSWORD=inventory-demo-db-password
REDIS_PASSWORD=redis-demo-password
AUTH_REDIS_PASSWORD=auth-redis-demo-password
GATEWAY_REDIS_PASSWORD=gateway-redis-demo-password
ORDERS_REDIS_PASSWORD=orders-redis-demo-password
PAYMENTS_REDIS_PASSWORD=payments-redis-demo-password
INVENTORY_REDIS_PASSWORD=inventory-redis-demo-password
AUTH_CLIENT_SECRET=auth-demo-secret
GATEWAY_CLIENT_SECRET=gateway-demo-secret
ORDERS_CLIENT_SECRET=orders-demo-secret
PAYMENTS_CLIENT_SECRET=payments-demo-secret
INVENTORY_CLIENT_SECRET=inventory-demo-secret
"""


def env_names(settings: type[BaseSettings], name: str, field: Any) -> list[str]:
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


def build() -> str:
    lines = [HEADER]
    seen: set[str] = set()
    for service in SERVICES:
        module = importlib.import_module(f"{service}_service.config")
        settings_class = next(
            value
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value.__module__ == module.__name__
        )
        section = []
        for name, field in settings_class.model_fields.items():
            names = env_names(settings_class, name, field)
            key = names[0]
            if key in seen and name not in ("client_secret", "service_name", "port"):
                continue
            seen.add(key)
            default = field.get_default(call_default_factory=True)
            section.append(f"# {key}={render_default(default)}")
        lines.append(f"\n## {service} ({settings_class.__name__})")
        lines.extend(section)
    return "\n".join(lines) + "\n" + COMPOSE


if __name__ == "__main__":
    print(build(), end="")
