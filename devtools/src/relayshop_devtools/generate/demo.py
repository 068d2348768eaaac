"""The demo secrets the generated files carry (.env.example's compose part, the Kubernetes demo
overlay), one convention for each: URL-safe (they go into connection URLs), obviously demo, and
refused where RELAYSHOP_ENV=production. `make run` uses the same ones (embedded_redis.py)."""

from __future__ import annotations

from ..embedded_redis import demo_password as redis_password

__all__ = ["client_secret", "db_password", "redis_password"]


def db_password(service: str) -> str:
    return f"{service}-demo-db-password"


def client_secret(service: str) -> str:
    return f"{service}-demo-secret"
