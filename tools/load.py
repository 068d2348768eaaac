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

The verdict (one line, saying which rule decided), checked on Locust's "Aggregated" row:
    failures   unexpected failures / requests must not exceed LOAD_MAX_FAILURE_RATIO (default
               0.0: none at all). This is the gate: a wrong answer is wrong on any machine.
    latency    relative by default: before the load, a short calibration (LOAD_CALIBRATION_ROUNDS
               rounds, one request at a time, of a sign-in, the product list, the order list and
               one order) measures what this machine does unloaded; the run's p95 must stay within
               LOAD_P95_FACTOR times that p95. A slower laptop is slower in both, so it is judged
               against itself. LOAD_MAX_P95_MS sets an absolute p95 limit instead (no calibration).
The exit status is 1 when a rule fails (or when Locust itself failed), 0 otherwise.

Locust runs as ``python -m locust`` in its own process: it monkey-patches the standard library
with gevent, which must never happen inside this script or a pytest process.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    absolute = os.environ.get("LOAD_MAX_P95_MS")
    parser.add_argument("--max-p95-ms", type=float, default=float(absolute) if absolute else None)
    parser.add_argument("--p95-factor", type=float, default=float(env("LOAD_P95_FACTOR", "5")))
    parser.add_argument(
        "--calibration-rounds", type=int, default=int(env("LOAD_CALIBRATION_ROUNDS", "15"))
    )
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


def run_locust(opts: argparse.Namespace, host: str, log: Path | None = None) -> int:
    """Locust's exit status. Its own output goes to this terminal, or to ``log`` when given
    (tools/bench.py, which prints a table of its own)."""
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
    if log is None:
        return subprocess.call(command, env=child_env)  # noqa: S603 - our interpreter, our args
    with log.open("wb") as output:
        return subprocess.call(  # noqa: S603 - our interpreter, our args
            command, env=child_env, stdout=output, stderr=subprocess.STDOUT
        )


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


def p95(samples_ms: list[float]) -> float:
    return statistics.quantiles(samples_ms, n=20, method="inclusive")[-1]


def calibrate(host: str, rounds: int) -> float:
    """This machine's p95 with no load: ``rounds`` times, one request at a time, what a shopper
    does (sign in, list products, list orders, place an order). Returns milliseconds."""
    username, password = env("LOAD_SHOPPERS", "alice:alice-password").split(",")[0].split(":", 1)
    samples: list[float] = []
    with httpx.Client(base_url=host, timeout=30.0) as client:

        def timed(method: str, path: str, **kwargs: object) -> httpx.Response:
            started = time.perf_counter()
            response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
            samples.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            return response

        for _ in range(rounds):
            form = {"grant_type": "password", "username": username, "password": password}
            token = timed("POST", "/auth/token", data=form).json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            products = timed("GET", "/api/inventory/products").json()
            timed("GET", "/api/orders")
            sku = max(products, key=lambda product: product["stock"])["sku"]
            order = {"items": [{"sku": sku, "quantity": 1}], "payment_method": "pm_card_visa"}
            timed("POST", "/api/orders", json=order)
    return p95(samples)


@dataclass(frozen=True)
class Totals:
    requests: int
    failures: int
    p95_ms: float


@dataclass(frozen=True)
class Rules:
    max_failure_ratio: float
    max_p95_ms: float | None = None  # the absolute rule, when set
    p95_factor: float = 5.0  # otherwise the relative rule: factor x the calibrated p95
    calibrated_p95_ms: float | None = None


def judge(totals: Totals, rules: Rules) -> tuple[bool, str]:
    """Passed or not, and one line saying which rule decided. Unexpected failures are checked
    first: they fail a run whatever its speed."""
    ratio = totals.failures / totals.requests if totals.requests else 1.0
    failures = f"{totals.failures} unexpected failures in {totals.requests} requests"
    if totals.requests == 0:
        return False, "FAILED by the failure rule: no request was made"
    if ratio > rules.max_failure_ratio:
        return False, (
            f"FAILED by the failure rule: {failures} ({ratio:.2%} > {rules.max_failure_ratio:.2%})"
        )
    if rules.max_p95_ms is not None:
        limit, rule = rules.max_p95_ms, f"the absolute rule (LOAD_MAX_P95_MS={rules.max_p95_ms:g})"
    elif rules.calibrated_p95_ms is not None:
        limit = rules.p95_factor * rules.calibrated_p95_ms
        rule = (
            f"the relative rule ({rules.p95_factor:g} x {rules.calibrated_p95_ms:.0f} ms, "
            "this machine's p95 unloaded)"
        )
    else:
        raise ValueError("no latency rule: set max_p95_ms or calibrate")
    if totals.p95_ms > limit:
        return False, f"FAILED by {rule}: p95 {totals.p95_ms:.0f} ms > {limit:.0f} ms; {failures}"
    return True, f"passed: {failures}; p95 {totals.p95_ms:.0f} ms <= {limit:.0f} ms by {rule}"


def verdict(opts: argparse.Namespace, locust_status: int, calibrated_p95_ms: float | None) -> int:
    """Judge Locust's Aggregated row; the last line says whether the run passed and why."""
    rows = read_stats(opts.output / f"{PREFIX}_stats.csv")
    print_summary(rows)
    totals = [row for row in rows if row["Name"] == "Aggregated"]
    if not totals:
        print("load: FAILED: no Aggregated row in the statistics")
        return 1
    row = totals[0]
    result = Totals(int(row["Request Count"]), int(row["Failure Count"]), float(row["95%"]))
    rules = Rules(opts.max_failure_ratio, opts.max_p95_ms, opts.p95_factor, calibrated_p95_ms)
    print(
        f"\nload: {result.requests} requests, {float(row['Requests/s']):.0f} req/s, "
        f"p50 {row['50%']} ms, p95 {result.p95_ms:.0f} ms, p99 {row['99%']} ms"
    )
    print(f"load: reports in {opts.output}/ (report.html, {PREFIX}_*.csv, stats.json)")
    passed, line = judge(result, rules)
    if passed and locust_status not in (0, 1):  # 1 is Locust's "there were failures", judged
        passed, line = False, f"FAILED: locust exited with status {locust_status}"
    print(f"load: {line}" + ("" if passed else f" (see {PREFIX}_failures.csv)"))
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    opts = options(argv)
    for stale in opts.output.glob(f"{PREFIX}_*.csv"):
        stale.unlink()  # never judge a run by the files of the one before
    calibrated = None
    with gateway(opts) as host:
        if opts.max_p95_ms is None:
            calibrated = calibrate(host, opts.calibration_rounds)
            print(f"load: calibrated: p95 {calibrated:.0f} ms unloaded on this machine", flush=True)
        status = run_locust(opts, host)
    if not (opts.output / f"{PREFIX}_stats.csv").exists():
        print(f"load: FAILED: locust wrote no statistics (exit status {status})")
        return 1
    return verdict(opts, status, calibrated)


if __name__ == "__main__":
    sys.exit(main())
