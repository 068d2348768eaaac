"""The service catalogue: the one list of relayshop's services, and what each one is.

Everything else that names the services reads this list: the settings (which neighbours' URLs a
service reads), the gateway's routing table, auth's service clients and their secrets, the scopes,
the test and benchmark harness (devstack), `make run`'s Procfile, the banner and the tools. The
files other programs read from disk (docker-compose.yml, the Kubernetes manifests, the PostgreSQL
init script, .env.example, uv.lock) are written from it by `make generate`. Adding a service is
one entry here plus the service's own folder, then `make generate`; `make new-service
NAME=<name>` does all three (docs/adding-a-service.md).

Each entry says:
- ``name``: the service's name, also its OAuth client id (client_credentials), its Python package
  (``<name>_service``), its project (``relayshop-<name>``) and its host name in compose/Kubernetes;
- ``port``: where it listens under ``make run`` (and in compose and Kubernetes);
- ``prefix``: the path prefix the gateway routes to it, or None for the gateway itself. The path
  is never rewritten: the service serves the same paths on its own port;
- ``tables``: whether it owns tables (an Alembic environment in ``<name>_service/migrations``);
- ``calls``: the services it sends requests to. Its settings hold exactly these neighbours' URLs,
  auth gives it service tokens for exactly these callees, and it may exchange a user's token
  (RFC 8693) for exactly these audiences (``exchange_targets``);
- ``writers``: the roles whose users may be granted ``<name>:write``. Every role may be granted
  ``<name>:read``; the routes' own role rules still decide (scopes.py).
Its audience, ``urn:relayshop:<name>``, follows from the name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .roles import Role

# What a service uses; the rest is this module's own business.
__all__ = [
    "AUTH",
    "CATALOGUE",
    "GATEWAY",
    "SERVICES",
    "SERVICES_WITH_TABLES",
    "SERVICE_CLIENTS",
    "SERVICE_NAMES",
    "Service",
    "audience_of",
    "callers_of",
    "exchange_targets",
    "service",
    "with_gateway",
]


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    port: int
    prefix: str | None
    tables: bool
    calls: tuple[str, ...]
    writers: tuple[Role, ...] = ()

    @property
    def audience(self) -> str:
        return f"urn:relayshop:{self.name}"

    @property
    def scoped(self) -> bool:
        """A domain service under /api: its routes need ``<name>:read`` or ``<name>:write``."""
        return self.prefix is not None and self.prefix.startswith("/api/")

    @property
    def package(self) -> str:
        return f"{self.name}_service"

    @property
    def url_variable(self) -> str:
        """The environment variable that tells the services calling this one where it is."""
        return f"RELAYSHOP_{self.name.upper()}_URL"

    @property
    def local_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


GATEWAY = "gateway"
AUTH = "auth"

# The services behind the gateway, one entry each.
_BEHIND_THE_GATEWAY: tuple[Service, ...] = (
    Service(AUTH, 8001, "/auth", tables=True, calls=()),
    Service(
        "orders",
        8002,
        "/api/orders",
        tables=True,
        calls=(AUTH, "inventory", "payments"),
        writers=(Role.CUSTOMER, Role.ADMIN),
    ),
    Service(
        "payments",
        8003,
        "/api/payments",
        tables=True,
        calls=(AUTH, "inventory"),
        writers=(Role.ADMIN,),
    ),
    Service(
        "inventory",
        8004,
        "/api/inventory",
        tables=True,
        calls=(AUTH,),
        writers=(Role.WAREHOUSE, Role.ADMIN),
    ),
    # make new-service adds its entry above this line
)


def with_gateway(behind: tuple[Service, ...]) -> tuple[Service, ...]:
    """The whole catalogue: the gateway, which calls every service it routes to (its readiness
    check asks each of them too), then ``behind``."""
    return (
        Service(GATEWAY, 8000, None, tables=False, calls=tuple(s.name for s in behind)),
        *behind,
    )


CATALOGUE: tuple[Service, ...] = with_gateway(_BEHIND_THE_GATEWAY)

SERVICES: dict[str, Service] = {service.name: service for service in CATALOGUE}
SERVICE_NAMES: tuple[str, ...] = tuple(SERVICES)
# The services that own tables, each with its Alembic environment (migrate.py).
SERVICES_WITH_TABLES: tuple[str, ...] = tuple(s.name for s in CATALOGUE if s.tables)
# The OAuth clients auth accepts for client_credentials (RFC 6749 section 4.4): every service that
# calls another one. auth itself calls nobody.
SERVICE_CLIENTS: tuple[str, ...] = tuple(s.name for s in CATALOGUE if s.calls)


def service(name: str) -> Service:
    try:
        return SERVICES[name]
    except KeyError:
        raise KeyError(
            f"{name!r} is not in the service catalogue ({', '.join(SERVICES)})"
        ) from None


def callers_of(name: str) -> tuple[str, ...]:
    """The services that call ``name`` (the other side of ``calls``)."""
    return tuple(s.name for s in CATALOGUE if name in s.calls)


def audience_of(name: str) -> str:
    return service(name).audience


def exchange_targets(client: str) -> tuple[str, ...]:
    """The callees ``client`` may get tokens for: a service token (client_credentials with
    ``resource``, RFC 8707) or a user's token exchanged for it (RFC 8693). Its ``calls`` but
    auth, which is where tokens come from, not a resource. Nothing else may widen this."""
    if client not in SERVICES:
        return ()
    return tuple(callee for callee in SERVICES[client].calls if callee != AUTH)
