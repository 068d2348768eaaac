"""make load: Locust headless against relayshop, failing the run when it is too slow or wrong.

    .venv/bin/python tools/load.py                       # 50 users, spawn rate 10, 60 s
    .venv/bin/python tools/load.py --users 20 --run-time 30s

It uses the stack at RELAYSHOP_GATEWAY_URL (default http://127.0.0.1:8000) when its /readyz
answers 200, for instance one ``make run`` started. Otherwise it starts its own fresh stack
(relayshop_devtools.devstack, under var/load-stack, wiped first) and stops it afterwards; that
stack issues 30-second access tokens (LOAD_TOKEN_TTL_SECONDS), so that the shoppers' refreshes
and the intruders' expired tokens happen within a one-minute run.

Output under var/load/ (LOAD_OUTPUT_DIR): relayshop_stats.csv, relayshop_failures.csv,
relayshop_exceptions.csv, relayshop_stats_history.csv, report.html and stats.json.

Thresholds (environment), checked on Locust's "Aggregated" row:
    LOAD_MAX_FAILURE_RATIO   unexpected failures / requests, default 0.0 (none at all)
    LOAD_MAX_P95_MS          95th percentile response time, default 200
The exit status is 1 when one is passed (or when Locust itself failed), 0 otherwise.

Locust runs as ``python -m locust`` in its own process: it monkey-patches the standard library
with gevent, which must never happen inside this script or a pytest process.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
from relayshop_devtools.devstack import make_stack
from relayshop_platform.tracing import describe_sampling

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
PREFIX = "relayshop"


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=env("RELAYSHOP_GATEWAY_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--users", default=env("LOAD_USERS", "50"))
    parser.add_argument("--spawn-rate", default=env("LOAD_SPAWN_RATE", "10"))
    parser.add_argument("--run-time", default=env("LOAD_RUN_TIME", "60s"))
    parser.add_argument("--processes", default=env("LOAD_PROCESSES", "1"))
    parser.add_argument(
        "--max-failure-ratio", type=float, default=float(env("LOAD_MAX_FAILURE_RATIO", "0.0"))
    )
    parser.add_argument("--max-p95-ms", type=float, default=float(env("LOAD_MAX_P95_MS", "200")))
    parser.add_argument("--output", type=Path, default=Path(env("LOAD_OUTPUT_DIR", "var/load")))
    parser.add_argument("--token-ttl", default=env("LOAD_TOKEN_TTL_SECONDS", "30"))
    return parser.parse_args(argv)


def is_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/readyz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def gateway(opts: argparse.Namespace) -> Iterator[str]:
    """The running stack's gateway URL, or the gateway of a stack started for this run."""
    if is_ready(opts.host):
        print(
            f"load: using the running stack at {opts.host} (tracing: its own setting)", flush=True
        )
        yield opts.host
        return
    print(f"load: nothing ready at {opts.host}; starting a stack in var/load-stack", flush=True)
    print(f"load: tracing: {describe_sampling(os.environ)}", flush=True)
    data_dir = ROOT / "var" / "load-stack"
    shutil.rmtree(data_dir, ignore_errors=True)  # every run starts from the seeded demo data
    stacks = make_stack(data_dir, env={"RELAYSHOP_ACCESS_TOKEN_TTL_SECONDS": opts.token_ttl})
    stack = next(stacks)
    try:
        yield stack.url("gateway")
    finally:
        stacks.close()  # stops every process the stack started


def run_locust(opts: argparse.Namespace, host: str) -> int:
    opts.output.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--users",
        str(opts.users),
        "--spawn-rate",
        str(opts.spawn_rate),
        "--run-time",
        str(opts.run_time),
        "--stop-timeout",
        "10",
        "--only-summary",
        "--csv",
        str(opts.output / PREFIX),
        "--html",
        str(opts.output / "report.html"),
        "--json-file",
        str(opts.output / "stats"),
    ]
    if str(opts.processes) != "1":
        command += ["--processes", str(opts.processes)]
    # The locustfile reads its target from LOCUST_HOST too; RELAYSHOP_* stays as the user set it.
    child_env = {**os.environ, "LOCUST_HOST": host}
    return subprocess.call(command, env=child_env)  # noqa: S603 - our interpreter, our args


def read_stats(stats_csv: Path) -> list[dict[str, str]]:
    with stats_csv.open(newline="") as handle:
        return list(csv.DictReader(handle))


def print_summary(rows: list[dict[str, str]]) -> None:
    """One line per request name: what ran, how often it failed, how fast it was."""
    width = max(len(f"{row['Type']} {row['Name']}") for row in rows)
    print(f"\n{'request':<{width}}  {'count':>7}  {'failed':>6}  {'p50 ms':>7}  {'p95 ms':>7}")
    for row in rows:
        label = f"{row['Type']} {row['Name']}".strip()
        print(
            f"{label:<{width}}  {row['Request Count']:>7}  {row['Failure Count']:>6}  "
            f"{row['50%']:>7}  {row['95%']:>7}"
        )


def verdict(opts: argparse.Namespace, locust_status: int) -> int:
    """Compare the Aggregated row with the thresholds; print why the run fails, if it does."""
    rows = read_stats(opts.output / f"{PREFIX}_stats.csv")
    print_summary(rows)
    totals = [row for row in rows if row["Name"] == "Aggregated"]
    if not totals:
        print("load: FAILED: no Aggregated row in the statistics")
        return 1
    row = totals[0]
    requests, failures = int(row["Request Count"]), int(row["Failure Count"])
    ratio = failures / requests if requests else 1.0
    p95 = float(row["95%"])
    problems = []
    if requests == 0:
        problems.append("no request was made")
    if ratio > opts.max_failure_ratio:
        problems.append(f"failure ratio {ratio:.4f} > {opts.max_failure_ratio}")
    if p95 > opts.max_p95_ms:
        problems.append(f"p95 {p95:.0f} ms > {opts.max_p95_ms:.0f} ms")
    print(
        f"\nload: {requests} requests, {failures} unexpected failures ({ratio:.2%}), "
        f"{float(row['Requests/s']):.0f} req/s, p50 {row['50%']} ms, p95 {p95:.0f} ms, "
        f"p99 {row['99%']} ms; thresholds: failures <= {opts.max_failure_ratio:.2%}, "
        f"p95 <= {opts.max_p95_ms:.0f} ms"
    )
    print(f"load: reports in {opts.output}/ (report.html, {PREFIX}_*.csv, stats.json)")
    if problems:
        print("load: FAILED: " + "; ".join(problems) + f" (see {PREFIX}_failures.csv)")
        return 1
    if locust_status not in (0, 1):  # 1 is Locust's "there were failures", judged above
        print(f"load: FAILED: locust exited with status {locust_status}")
        return 1
    print("load: passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    opts = options(argv)
    for stale in opts.output.glob(f"{PREFIX}_*.csv"):
        stale.unlink()  # never judge a run by the files of the one before
    with gateway(opts) as host:
        status = run_locust(opts, host)
    if not (opts.output / f"{PREFIX}_stats.csv").exists():
        print(f"load: FAILED: locust wrote no statistics (exit status {status})")
        return 1
    return verdict(opts, status)


if __name__ == "__main__":
    sys.exit(main())
