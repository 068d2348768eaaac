"""The last process of `make run`: waits until the gateway is ready, then says where things are.

It stays alive afterwards (honcho stops the whole system when any process exits).
"""

from __future__ import annotations

import os
import signal
import time

import httpx
from relayshop_platform.catalogue import CATALOGUE, GATEWAY

ACCOUNTS = [
    ("alice", "alice-password", "customer"),
    ("bob", "bob-password", "customer"),
    ("carol", "carol-password", "support (reads every order and payment)"),
    ("walt", "walt-password", "warehouse (manages stock)"),
    ("admin", "admin-password", "admin (everything)"),
]


def main() -> None:
    gateway = os.environ.get("RELAYSHOP_GATEWAY_URL", "http://127.0.0.1:8000")
    started = time.monotonic()
    last = ""
    while True:
        try:
            response = httpx.get(f"{gateway}/readyz", timeout=2.0)
            if response.status_code == 200:
                break
            last = response.text
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() - started > 60:
            print(f"relayshop is not ready after 60 s: {last}", flush=True)
            started = time.monotonic()
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    lines = [
        "",
        f"relayshop is ready ({elapsed:.1f} s)",
        f"  gateway (the only public entry point)  {gateway}",
        f"  API docs per service                   {gateway}/docs, and on each service's port:",
        *(f"    {s.name:<34} {s.local_url}/docs" for s in CATALOGUE if s.name != GATEWAY),
        f"  readiness                              {gateway}/readyz",
        "  demo accounts (password grant at POST /auth/token):",
        *(f"    {user:<6} {password:<15} {roles}" for user, password, roles in ACCOUNTS),
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
