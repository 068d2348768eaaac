"""Who may do what in Redis: one ACL user per service of the catalogue, named after it (Redis
ACLs, 6.2 and later).

    auth              reads and WRITES the revocations, PUBLISHES on their channel, keeps the
                      sign-in throttle's counters (its Lua scripts run under the same rules)
    every other service (gateway, orders, payments, inventory, ...)
                      read the revocations and follow the channel; nothing else
    gateway-console   the gateway's console sessions (relayshop:bff:*), and nothing else

The gateway signs in as two users, with its one password: Redis 6.2 cannot say "read-only" for
some keys and "read-write" for others within one user (7.0's %R~ can), and the gateway must write
its sessions without ever being able to write a revocation.

So a compromised orders, or anything holding its password, can neither revoke nor un-revoke a
token, nor forge a "keys changed" message: only auth can (OWASP, "least privilege"). Rules name
commands one by one rather than categories: a category grows with each Redis release, this list
does not. Only Redis 6.2 features are used (key patterns, ``&`` channel patterns, ``cmd|sub``), so
the same rules work on the embedded Redis (6.2), Debian's (7.0) and the official image (7.4).

    redis_server_args(passwords)    the ``--user ...`` arguments of redis-server (embedded Redis,
                                    compose's command line, the Kubernetes args)
    service_url(url, name, password)   a service's own REDIS_URL
    redis_connector(settings)       how a service opens its clients, as one of its users: what
                                    create_service_app uses unless a test passes its own

The ``default`` user (a connection that never authenticates) gets ``default_rules``: switched off,
or given a password for an operator or a test (``ADMIN``), or only PING for a health check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import redis.asyncio as aioredis

from .catalogue import AUTH, CATALOGUE, GATEWAY, Service
from .revocation import CHANNEL, JTI_KEY, NBF_KEY

if TYPE_CHECKING:
    from .settings import PlatformSettings

# Every service: follow the channel, load the full set, and name its connection (CLIENT LIST).
_FOLLOW_REVOCATIONS = (
    f"~{JTI_KEY}",
    f"~{NBF_KEY}",
    f"&{CHANNEL}",
    "+ping",
    "+client|setname",
    "+subscribe",
    "+unsubscribe",
    "+zrangebyscore",
    "+hgetall",
)
_TRANSACTIONS = ("+multi", "+exec", "+discard")
_SCRIPTS = ("+eval", "+evalsha", "+script|load")  # redis-py's Script: EVALSHA, loading on a miss

_AUTH = (
    *_FOLLOW_REVOCATIONS,
    *_TRANSACTIONS,
    *_SCRIPTS,
    "~relayshop:auth:*",  # the sign-in throttle (auth_service.throttle)
    "+publish",
    "+zadd",
    "+zremrangebyscore",
    "+hset",
    "+get",
    "+ttl",
    "+incr",
    "+expire",
    "+decr",
    "+del",
)
_CONSOLE = (
    "+ping",
    "+client|setname",
    *_TRANSACTIONS,
    *_SCRIPTS,
    "~relayshop:bff:*",  # the console's sessions and their locks (gateway_service.session)
    "+get",
    "+set",
    "+del",
    "+lpush",
    "+ltrim",
    "+lrange",
    "+pexpire",
)


# auth, the gateway and its console user, then every other service of the catalogue (each may
# only follow the revocations): the order of redis-server's --user arguments.
def acl_users(catalogue: Iterable[Service] = CATALOGUE) -> dict[str, tuple[str, ...]]:
    """Each ACL user of ``catalogue``'s services, with its rules."""
    return {
        AUTH: _AUTH,
        GATEWAY: _FOLLOW_REVOCATIONS,
        f"{GATEWAY}-console": _CONSOLE,
    } | {s.name: _FOLLOW_REVOCATIONS for s in catalogue if s.name not in (AUTH, GATEWAY)}


RULES: dict[str, tuple[str, ...]] = acl_users()
ADMIN = ("~*", "&*", "+@all")
HEALTH_CHECK = ("+ping",)


def user_rules(name: str, password: str, rules: tuple[str, ...]) -> list[str]:
    """One ACL user: reset to nothing (channels too: 6.2 allows every channel by default), then
    exactly ``rules``."""
    return [name, "reset", "on", f">{password}", "resetchannels", *rules]


def redis_server_args(
    passwords: Mapping[str, str],
    *,
    default_password: str | None = None,
    default_rules: tuple[str, ...] = (),
    users: Mapping[str, tuple[str, ...]] = RULES,
) -> list[str]:
    """``--user`` arguments for redis-server: the users of each service in ``passwords``
    (service name -> its password). Without ``default_password`` the default user is off."""
    args = ["--user", "default", "reset", "off"]
    if default_password is not None:
        args = ["--user", *user_rules("default", default_password, default_rules)]
    for user, rules in users.items():
        service = service_of(user)
        if service in passwords:
            args += ["--user", *user_rules(user, passwords[service], rules)]
    return args


def service_of(user: str) -> str:
    """The service an ACL user belongs to: "gateway-console" -> "gateway"."""
    return user.partition("-")[0]


def service_url(url: str, name: str, password: str) -> str:
    """``url`` with ``name`` and ``password`` as its credentials (any it had are replaced)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(name, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


class RedisConnect(Protocol):
    """Opens a new client to relayshop's Redis, signed in as ``user`` (None: the ACL user named
    after the service), with redis-py's ``options`` (timeouts, retries, client name)."""

    def __call__(self, user: str | None = None, /, **options: Any) -> aioredis.Redis: ...


def redis_connector(settings: PlatformSettings) -> RedisConnect:
    """REDIS_URL with the service's own credentials (settings.redis_connection_url)."""

    def connect(user: str | None = None, /, **options: Any) -> aioredis.Redis:
        return aioredis.from_url(settings.redis_connection_url(user), **options)

    return connect
