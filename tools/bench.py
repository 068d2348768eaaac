"""make bench: how much the security costs, measured in one run on this machine, as one table.

    .venv/bin/python tools/bench.py            # about two minutes
    .venv/bin/python tools/bench.py --quick    # 1-second rounds: checks that every row works

It starts its own stacks (relayshop_devtools.devstack, under var/bench-stack, wiped first), one
at a time: relay mode (RELAYSHOP_TOKEN_MODE=relay: the user's token, addressed to every service,
travels unchanged), exchange mode (the default: each hop exchanges the token it received at auth
for one addressed to its callee, RFC 8693), then relay mode again (not with --quick), so that
both modes' place-order rounds are centred on the same moment of the run. It measures:
- place order, in each mode: POST /api/orders from 16 concurrent users (alice and bob), after
  walt restocked and a warm-up; every answer must be 201; the rate, latency and CPU of every
  service per order; exchange mode's rate against relay mode's;
- token exchange at auth: one exchange at a time, as the gateway asks for it, each with a fresh
  subject token (a refresh grant's), so that nothing along the way is cached: what a miss costs;
- the exchange caches under make load's Locust scenario (loadtests/locustfile.py), a short run
  against the exchange-mode stack: hits / (hits + misses) of relayshop_token_exchanges_total
  at every service that exchanges (/metrics), counted over the run;
and, on the exchange-mode stack:
- read path: GET /api/orders/{id} at 32 connections, through the gateway and straight at orders
  (with the user's token exchanged for orders, as the gateway does), alternated round by round
  so that drift hits both sides alike; the ratio of the two throughputs is the cost of the edge
  (token check, rules, one more hop);
- the stack's resident memory (VmRSS of every process and its children);
and in this process, token verification: first sight of a token (RS256 signature and claims)
and a cached one (dictionary hit plus the revocation-mirror check every request pays). The last
rows are the first stack's time to ready and the load generator's own CPU.

The load comes from a separate (forked) process: asyncio + aiohttp on uvloop, one coroutine per
connection. Its CPU use is reported, because this machine's 2 cores are shared by the generator
and every service: absolute numbers are those of a crowded laptop, the ratio is the fair figure.
Absolute numbers drift from run to run; compare ratios taken in the same run. Linux: memory and
CPU come from /proc. loadtests/README.md explains every row.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import load as load_tool  # tools/load.py: make load's Locust runner
from prometheus_client.parser import text_string_to_metric_families
from relayshop_devtools.devstack import Client, Stack, make_stack
from relayshop_devtools.testing import DEFAULT_ISSUER, TestKey
from relayshop_platform.catalogue import CATALOGUE, audience_of, exchange_targets
from relayshop_platform.relay import ACCESS_TOKEN_TYPE_URI, EXCHANGE_GRANT
from relayshop_platform.revocation import RevocationMirror
from relayshop_platform.tokens import TokenVerifier
from relayshop_platform.tracing import describe_sampling

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = "asyncio + aiohttp on uvloop, in 1 separate process"
RESTOCKED = ("KB-001", "MS-002", "CB-005")  # what the place-order load buys
HIGH_STOCK = 1_000_000  # inventory's MAX_STOCK: enough that nothing runs out during the run
RELAY, EXCHANGE = "relay", "exchange"  # the token modes (RELAYSHOP_TOKEN_MODE)


# -- the load generator (runs in a child process) ----------------------------------------------


@dataclass(frozen=True)
class Load:
    method: str
    url: str
    tokens: tuple[str, ...]  # connection i uses tokens[i % len(tokens)]
    expect: int
    connections: int
    seconds: float
    json_bodies: tuple[dict[str, Any], ...] = ()  # request j of a connection sends body j % len


@dataclass
class Result:
    count: int = 0
    errors: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def add(self, other: Result) -> None:
        self.count += other.count
        self.errors += other.errors
        self.elapsed += other.elapsed
        self.cpu_seconds += other.cpu_seconds
        self.latencies_ms += other.latencies_ms
        self.error_samples = (self.error_samples + other.error_samples)[:5]

    @property
    def per_second(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def record(self, started: float, status: int, expect: int, text: bytes) -> None:
        """One answer: its latency since ``started`` (perf_counter), and whether it was right."""
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.count += 1
        if status != expect:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{status} {text[:200]!r}")

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _drive(load: Load) -> Result:
    import aiohttp

    result = Result()
    deadline = time.perf_counter() + load.seconds
    connector = aiohttp.TCPConnector(limit=load.connections, limit_per_host=load.connections)

    async def worker(index: int, session: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {load.tokens[index % len(load.tokens)]}"}
        sent = 0
        while time.perf_counter() < deadline:
            body = load.json_bodies[sent % len(load.json_bodies)] if load.json_bodies else None
            sent += 1
            started = time.perf_counter()
            try:
                async with session.request(
                    load.method, load.url, headers=headers, json=body
                ) as response:
                    text = await response.read()
                    status = response.status
            except aiohttp.ClientError as exc:
                status, text = 0, repr(exc).encode()
            result.record(started, status, load.expect, text)

    async with aiohttp.ClientSession(connector=connector) as session:
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(i, session) for i in range(load.connections)))
        result.elapsed = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu
    return result


@dataclass(frozen=True)
class Exchanges:
    """RFC 8693 token exchanges at auth by service ``client``, one at a time, each subject token
    used once and never verified by auth before: nothing along the way is cached, so each one
    costs what a cache miss adds to the request that has it."""

    url: str  # auth's token endpoint
    client: tuple[str, str]  # the exchanging service's client id and secret (HTTP Basic)
    audience: str  # the callee the tokens are exchanged for
    subject_tokens: tuple[str, ...]


async def _drive_exchanges(job: Exchanges) -> Result:
    import aiohttp

    result = Result()
    headers = {"Authorization": aiohttp.encode_basic_auth(*job.client)}
    async with aiohttp.ClientSession() as session:
        cpu, started_all = time.process_time(), time.perf_counter()
        for subject_token in job.subject_tokens:
            form = {
                "grant_type": EXCHANGE_GRANT,
                "subject_token": subject_token,
                "subject_token_type": ACCESS_TOKEN_TYPE_URI,
                "audience": job.audience,
            }
            started = time.perf_counter()
            try:
                async with session.post(job.url, data=form, headers=headers) as response:
                    text = await response.read()
                    status = response.status
            except aiohttp.ClientError as exc:
                status, text = 0, repr(exc).encode()
            result.record(started, status, 200, text)
        result.elapsed = time.perf_counter() - started_all
        result.cpu_seconds = time.process_time() - cpu
    return result


def _child(drive: Callable[[Any], Awaitable[Result]], job: Any, pipe: Connection) -> None:
    import uvloop

    pipe.send(uvloop.run(drive(job)))
    pipe.close()


def _in_child(drive: Callable[[Any], Awaitable[Result]], job: Any) -> Result:
    """Run ``drive(job)`` in a child process, so the generator never shares this one's
    interpreter. Forked (Linux): this process has no threads, and the child starts in
    milliseconds."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(drive, job, sender), daemon=True)
    process.start()
    sender.close()
    result: Result = receiver.recv()
    process.join(10)
    return result


def run_load(load: Load) -> Result:
    return _in_child(_drive, load)


def run_exchanges(job: Exchanges) -> Result:
    return _in_child(_drive_exchanges, job)


# -- token verification, in this process ---------------------------------------------------------


class _StaticKeys:
    def __init__(self, key: TestKey) -> None:
        self._kid, self._key = key.kid, key.public_key

    async def get(self, kid: str) -> Any | None:
        return self._key if kid == self._kid else None


def synced_mirror(revoked: int) -> RevocationMirror:
    """A mirror as a running service has it after its first sync, holding ``revoked`` jtis."""
    mirror = RevocationMirror("redis://127.0.0.1:1/0")  # never started: no connection made
    exp = time.time() + 300
    mirror.revoked_jti = {uuid.uuid4().hex: exp for _ in range(revoked)}
    mirror.synced = True
    mirror._lost_at = None  # what RevocationMirror._load() sets once it has synced
    return mirror


async def verification_cost(first: int, cached: int) -> tuple[float, float]:
    """Microseconds per verify(): for tokens never seen before, and for one seen before."""
    key = TestKey()
    verifier = TokenVerifier(
        _StaticKeys(key),
        issuer=DEFAULT_ISSUER,
        audience=audience_of("orders"),  # as orders checks a token (test tokens carry every aud)
        revocations=synced_mirror(revoked=1000),
        cache_size=first + 1,
    )
    tokens = [key.mint() for _ in range(first)]  # distinct jti, so each one is a first sight
    started = time.perf_counter_ns()
    for token in tokens:
        await verifier.verify(token)
    first_us = (time.perf_counter_ns() - started) / first / 1000
    token = tokens[0]
    started = time.perf_counter_ns()
    for _ in range(cached):
        await verifier.verify(token)
    cached_us = (time.perf_counter_ns() - started) / cached / 1000
    return first_us, cached_us


# -- the stack -----------------------------------------------------------------------------------


def _descendants(roots: list[int]) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # Field 4 of /proc/<pid>/stat is the parent; the name in () may hold spaces.
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = set(roots), list(roots)
    while todo:
        pid = todo.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found)


def resident_mb(stack: Stack) -> tuple[dict[str, float], int]:
    """VmRSS in MB of each stack process with all its children, and how many processes."""
    by_label: dict[str, float] = {}
    count = 0
    for label, process in stack.processes.items():
        pids = _descendants([process.pid])
        count += len(pids)
        total_kb = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
            except OSError:
                continue
        by_label[label] = total_kb / 1024
    return by_label, count


def place_first_order(client: Client, token: str) -> str:
    body = {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": "pm_card_visa"}
    response = client.request("POST", "/api/orders", token, json=body)
    if response.status_code != 201:
        raise SystemExit(
            f"could not place the order to read: {response.status_code} {response.text}"
        )
    return str(response.json()["id"])


def restock(client: Client) -> None:
    walt = client.access("walt")
    for sku in RESTOCKED:
        response = client.request(
            "PUT", f"/api/inventory/products/{sku}/stock", walt, json={"stock": HIGH_STOCK}
        )
        if response.status_code != 200:
            raise SystemExit(f"restock of {sku} failed: {response.status_code} {response.text}")


def exchanged(client: Client, token: str, callee: str) -> str:
    """``token`` exchanged at auth for one that ``callee`` accepts, as the gateway exchanges it."""
    response = client.exchange(token, audience_of(callee), by="gateway")
    if response.status_code != 200:
        raise SystemExit(f"exchange for {callee} failed: {response.status_code} {response.text}")
    return str(response.json()["access_token"])


def fresh_user_tokens(client: Client, count: int) -> tuple[str, ...]:
    """``count`` access tokens of one user that auth has never verified: a sign-in (carol, whom
    no other load uses), then a chain of refresh grants, each giving a new access token."""
    answer = client.token("carol")
    tokens, refresh = [answer["access_token"]], answer["refresh_token"]
    while len(tokens) < count:
        response = client.http.post(
            client.stack.url("auth") + "/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh},
        )
        if response.status_code != 200:
            raise SystemExit(f"refresh failed: {response.status_code} {response.text}")
        tokens.append(response.json()["access_token"])
        refresh = response.json()["refresh_token"]
    return tuple(tokens)


# -- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: float
    warmup: float
    read_connections: int
    order_users: int
    order_seconds: float
    relay_stacks: int  # relay-mode stacks: one before the exchange-mode stack, maybe one after
    first_tokens: int
    cached_calls: int
    exchanges: int  # token exchanges timed one at a time, each with a fresh subject token
    locust_users: int
    locust_seconds: float
    data_dir: Path
    stack_env: dict[str, str]


def options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1-second rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="gateway/direct pairs (3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round (5)")
    parser.add_argument("--connections", type=int, default=32, help="read path connections (32)")
    parser.add_argument("--order-users", type=int, default=16, help="place-order users (16)")
    parser.add_argument(
        "--order-seconds", type=float, default=10.0, help="place-order time per token mode (10)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=ROOT / "var" / "bench-stack",
        help="the stacks' files, one directory per token mode",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every service of the stack, e.g. OTEL_TRACES_SAMPLER=always_off",
    )
    args = parser.parse_args(argv)
    stack_env = dict(item.split("=", 1) for item in args.env)
    if args.quick:
        return Options(
            rounds=1,
            seconds=1.0,
            warmup=0.5,
            read_connections=args.connections,
            order_users=args.order_users,
            order_seconds=1.0,
            relay_stacks=1,
            first_tokens=100,
            cached_calls=20_000,
            exchanges=30,
            locust_users=10,
            locust_seconds=5.0,
            data_dir=args.data_dir,
            stack_env=stack_env,
        )
    return Options(
        rounds=args.rounds,
        seconds=args.seconds,
        warmup=1.0,
        read_connections=args.connections,
        order_users=args.order_users,
        order_seconds=args.order_seconds,
        relay_stacks=2,
        first_tokens=2000,
        cached_calls=200_000,
        exchanges=300,
        locust_users=20,
        locust_seconds=20.0,
        data_dir=args.data_dir,
        stack_env=stack_env,
    )


# Bytecode of the stack's processes, kept out of the source tree. A user's Python caches it next
# to the sources after the first start; a machine with PYTHONDONTWRITEBYTECODE=1 would compile
# every module of every service from source at every start (seconds each, on 2 cores).
PYCACHE = ROOT / "var" / "pycache"


@contextlib.contextmanager
def bench_stack(data_dir: Path, extra_env: dict[str, str]) -> Iterator[tuple[Stack, float, bool]]:
    """A fresh stack, its seconds from start to ready (every /readyz is 200), and whether the
    bytecode cache was warm."""
    shutil.rmtree(data_dir, ignore_errors=True)
    warm = PYCACHE.is_dir()
    env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(PYCACHE), **extra_env}
    started = time.perf_counter()
    stacks = make_stack(data_dir, env=env)
    stack = next(stacks)
    ready = time.perf_counter() - started
    try:
        yield stack, ready, warm
    finally:
        stacks.close()  # stops every process the stack started


def mode_stack(
    opts: Options, mode: str
) -> contextlib.AbstractContextManager[tuple[Stack, float, bool]]:
    """bench_stack with every service in token mode ``mode`` (relay or exchange)."""
    return bench_stack(opts.data_dir / mode, {**opts.stack_env, "RELAYSHOP_TOKEN_MODE": mode})


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, all its threads included (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Side:
    """One side of a comparison: the load's result and the CPU each service spent."""

    result: Result = field(default_factory=Result)
    cpu: dict[str, float] = field(default_factory=dict)

    def add(self, other: Side) -> None:
        self.result.add(other.result)
        for service, spent in other.cpu.items():
            self.cpu[service] = self.cpu.get(service, 0.0) + spent

    def cpu_us_per_request(self, service: str) -> float:
        return self.cpu.get(service, 0.0) / max(self.result.count, 1) * 1e6

    def cpu_ms_per_request(self) -> float:
        """CPU of every service measured, per request."""
        return sum(self.cpu.values()) / max(self.result.count, 1) * 1e3


def with_cpu(pids: dict[str, int], load: Load) -> Side:
    """``load`` run, and the CPU each of ``pids`` spent meanwhile."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = run_load(load)
    return Side(result, {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()})


def read_path(
    stack: Stack, token: str, token_at_orders: str, order_id: str, opts: Options
) -> tuple[Side, Side]:
    """Reads via the gateway with ``token``, and straight at orders with ``token_at_orders``
    (the token orders accepts: in exchange mode, the user's token exchanged for orders)."""
    path = f"/api/orders/{order_id}"
    targets = {
        "gateway": (stack.url("gateway") + path, token),
        "direct": (stack.url("orders") + path, token_at_orders),
    }
    pids = {name: stack.processes[name].pid for name in ("gateway", "orders")}

    def load(side: str, seconds: float) -> Load:
        url, bearer = targets[side]
        return Load("GET", url, (bearer,), 200, opts.read_connections, seconds)

    for side in targets:  # warm both paths: connections, caches, first-sight tokens
        run_load(load(side, opts.warmup))
    sides = {side: Side() for side in targets}
    for index in range(opts.rounds):
        # Alternate which side goes first, so that a slow drift favours neither.
        order = ("gateway", "direct") if index % 2 == 0 else ("direct", "gateway")
        for side in order:
            sides[side].add(with_cpu(pids, load(side, opts.seconds)))
    return sides["gateway"], sides["direct"]


def place_orders(stack: Stack, tokens: tuple[str, ...], opts: Options, seconds: float) -> Side:
    """Orders from concurrent users; the CPU of every service, to see where an order's cost goes."""
    bodies = tuple(
        {"items": [{"sku": sku, "quantity": 1}], "payment_method": "pm_card_visa"}
        for sku in RESTOCKED
    )
    url = stack.url("gateway") + "/api/orders"
    pids = {name: process.pid for name, process in stack.processes.items() if name != "redis"}
    load = Load("POST", url, tokens, 201, opts.order_users, seconds, bodies)
    return with_cpu(pids, load)


def order_round(stack: Stack, tokens: tuple[str, ...], opts: Options, seconds: float) -> Side:
    """The place-order load, after walt restocked and a warm-up that is not counted (a fresh
    stack's first orders open connections and fetch the tokens for the next hops)."""
    restock(Client(stack))
    place_orders(stack, tokens, opts, opts.warmup)
    return place_orders(stack, tokens, opts, seconds)


def relay_round(opts: Options, seconds: float) -> tuple[Side, float, bool]:
    """A relay-mode stack of its own for one place-order round; and as bench_stack, its start
    to ready and whether the bytecode cache was warm."""
    with mode_stack(opts, RELAY) as (stack, ready_s, warm):
        client = Client(stack)
        tokens = (client.access("alice"), client.access("bob"))
        return order_round(stack, tokens, opts, seconds), ready_s, warm


def exchange_cost(stack: Stack, client: Client, count: int) -> Result:
    """``count`` token exchanges at auth as the gateway asks for them (a user's token for
    orders), one at a time, each with a fresh subject token: what a cache miss costs."""
    subject_tokens = fresh_user_tokens(client, count)
    return run_exchanges(
        Exchanges(
            url=stack.url("auth") + "/auth/token",
            client=("gateway", "gateway-demo-secret"),  # the seeded demo client's secret
            audience=audience_of("orders"),
            subject_tokens=subject_tokens,
        )
    )


# The services that exchange tokens for their callees (gateway, orders, payments).
EXCHANGERS = tuple(entry.name for entry in CATALOGUE if exchange_targets(entry.name))


def exchange_counts(stack: Stack) -> dict[tuple[str, str], float]:
    """relayshop_token_exchanges_total of each service that exchanges, by (service, result):
    result is hit (cached), miss (exchanged at auth), refused or error."""
    counts: dict[tuple[str, str], float] = {}
    for service in EXCHANGERS:
        text = httpx.get(stack.url(service) + "/metrics", timeout=10.0).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "relayshop_token_exchanges_total":
                    key = (service, sample.labels["result"])
                    counts[key] = counts.get(key, 0.0) + sample.value
    return counts


@dataclass
class CacheUse:
    """How the exchange caches served a Locust run: counts by (service, result), and the run."""

    counts: dict[tuple[str, str], float]
    requests: int
    failures: int

    def total(self, result: str, service: str | None = None) -> float:
        return sum(
            count
            for (name, outcome), count in self.counts.items()
            if outcome == result and service in (None, name)
        )

    def hit_ratio(self, service: str | None = None) -> float | None:
        """hits / (hits + misses), of one service or of all; None when it exchanged nothing."""
        hits, misses = self.total("hit", service), self.total("miss", service)
        return hits / (hits + misses) if hits + misses else None


def cache_under_locust(stack: Stack, opts: Options) -> CacheUse:
    """A short run of make load's Locust scenario (loadtests/locustfile.py) through the gateway,
    and what the exchange caches did meanwhile: the counters' growth over the run."""
    output = opts.data_dir / "locust"
    locust_opts = load_tool.options(
        [
            *("--users", str(opts.locust_users), "--spawn-rate", "10"),
            *("--run-time", f"{opts.locust_seconds:g}s", "--processes", "1"),
            *("--output", str(output)),
        ]
    )
    before = exchange_counts(stack)
    status = load_tool.run_locust(locust_opts, stack.url("gateway"), log=output / "locust.log")
    after = exchange_counts(stack)
    stats = output / f"{load_tool.PREFIX}_stats.csv"
    if not stats.exists():
        raise SystemExit(f"locust wrote no statistics (exit status {status}): {output}/locust.log")
    total = next(row for row in load_tool.read_stats(stats) if row["Name"] == "Aggregated")
    counts = {key: count - before.get(key, 0.0) for key, count in after.items()}
    return CacheUse(counts, int(total["Request Count"]), int(total["Failure Count"]))


def mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("measure", "result", "target", "")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def latency(result: Result) -> str:
    return f"p50 {result.percentile(0.5):.1f} ms, p99 {result.percentile(0.99):.1f} ms"


def percent(ratio: float | None) -> str:
    return "none" if ratio is None else f"{ratio:.1%}"


def order_rows(mode: str, side: Side, rounds: str) -> list[tuple[str, str, str, str]]:
    """The place-order row and the CPU-per-order row of one token mode."""
    orders = side.result
    ok = orders.per_second >= 150 and orders.percentile(0.99) < 300 and not orders.errors
    by_service = ", ".join(
        f"{name} {side.cpu_us_per_request(name) / 1000:.1f}"
        for name in ("gateway", "orders", "inventory", "payments", "auth")
    )
    return [
        (
            f"place order, {mode} mode, 16 users via gateway ({rounds})",
            f"{orders.per_second:,.0f} orders/s, {latency(orders)}, {orders.errors} errors",
            ">= 150/s, p99 < 300 ms, 0 errors",
            mark(ok),
        ),
        (
            f"CPU per order, {mode} mode, ms",
            f"{side.cpu_ms_per_request():.1f} in all: {by_service}",
            "",
            "",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    opts = options(argv)
    first_us, cached_us = asyncio.run(verification_cost(opts.first_tokens, opts.cached_calls))
    shutil.rmtree(opts.data_dir, ignore_errors=True)
    # The two token modes, one stack at a time (both at once would share the 2 cores): relay,
    # exchange, then relay again (not in --quick), so that each mode's orders are centred on the
    # same moment and a drift of the machine's load favours neither (the exchange-mode stack
    # runs about as long before its orders, the read path, as after them, the exchange timing and
    # Locust). That stack, in the default mode that make run starts, measures everything else.
    relay_seconds = opts.order_seconds / opts.relay_stacks
    relay_side, ready_s, warm = relay_round(opts, relay_seconds)  # the run's first start
    with mode_stack(opts, EXCHANGE) as (stack, _, _):
        client = Client(stack)
        alice, bob = client.access("alice"), client.access("bob")
        order_id = place_first_order(client, alice)
        # Straight at orders, the token orders accepts: alice's, exchanged as the gateway does.
        gateway_side, direct_side = read_path(
            stack, alice, exchanged(client, alice, "orders"), order_id, opts
        )
        exchange_side = order_round(stack, (alice, bob), opts, opts.order_seconds)
        memory, processes = resident_mb(stack)
        exchange_call = exchange_cost(stack, client, opts.exchanges)
        cache = cache_under_locust(stack, opts)
    for _ in range(opts.relay_stacks - 1):
        relay_side.add(relay_round(opts, relay_seconds)[0])
    gateway, direct = gateway_side.result, direct_side.result
    relay, exchange = relay_side.result, exchange_side.result
    ratio = gateway.per_second / direct.per_second if direct.per_second else 0.0
    mode_ratio = exchange.per_second / relay.per_second if relay.per_second else 0.0
    generator_cpu = (gateway.cpu_seconds + direct.cpu_seconds) / (
        gateway.elapsed + direct.elapsed or 1.0
    )
    memory_mb = sum(memory.values())
    largest = max(memory, key=lambda label: memory[label])
    read_errors = gateway.errors + direct.errors
    relay_rounds = (
        f"{opts.relay_stacks}x{relay_seconds:g}s, before and after exchange"
        if opts.relay_stacks > 1
        else f"{relay_seconds:g}s"
    )
    cache_by_service = ", ".join(f"{name} {percent(cache.hit_ratio(name))}" for name in EXCHANGERS)
    rows = [
        (
            "read GET /api/orders/{id}, via gateway",
            f"{gateway.per_second:,.0f} req/s, {latency(gateway)}",
            "",
            "",
        ),
        (
            "read GET /api/orders/{id}, direct to orders",
            f"{direct.per_second:,.0f} req/s, {latency(direct)}",
            "",
            "",
        ),
        (
            f"read path gateway/direct ratio ({opts.read_connections} conns, "
            f"{opts.rounds}x{opts.seconds:g}s each, alternated)",
            f"{ratio:.2f} ({read_errors} errors)",
            ">= 0.80",
            mark(ratio >= 0.8 and not read_errors),
        ),
        (
            "CPU per read: via gateway = gateway + orders; direct = orders",
            f"{gateway_side.cpu_us_per_request('gateway'):,.0f} + "
            f"{gateway_side.cpu_us_per_request('orders'):,.0f} us; "
            f"{direct_side.cpu_us_per_request('orders'):,.0f} us",
            "",
            "",
        ),
        *order_rows(RELAY, relay_side, relay_rounds),
        *order_rows(EXCHANGE, exchange_side, f"{opts.order_seconds:g}s"),
        (
            "place order rate, exchange mode / relay mode",
            f"{mode_ratio:.2f}",
            ">= 0.80",
            mark(mode_ratio >= 0.8),
        ),
        (
            f"token exchange at auth, measured: {exchange_call.count} fresh subject tokens, "
            "one at a time",
            f"{latency(exchange_call)}, {exchange_call.errors} errors",
            "",
            "",
        ),
        (
            f"exchange cache hit ratio, Locust scenario ({opts.locust_users} users, "
            f"{opts.locust_seconds:g}s, exchange mode)",
            f"{percent(cache.hit_ratio())} ({cache.total('hit'):,.0f} hits, "
            f"{cache.total('miss'):,.0f} misses): {cache_by_service}",
            "",
            "",
        ),
        (
            "the Locust run behind the hit ratio",
            f"{cache.requests:,} requests, {cache.failures} unexpected failures; "
            f"{cache.total('refused') + cache.total('error'):,.0f} exchanges refused or failed",
            "",
            "",
        ),
        (
            "token verification, first sight (RS256 + claims + revocation)",
            f"{first_us:.1f} us/call",
            "< 200 us",
            mark(first_us < 200),
        ),
        (
            "token verification, cached (cache hit + revocation mirror)",
            f"{cached_us:.2f} us/call",
            "< 10 us",
            mark(cached_us < 10),
        ),
        (
            f"stack resident memory ({processes} processes, after the load)",
            f"{memory_mb:,.0f} MB (largest: {largest} {memory[largest]:.0f} MB)",
            "< 600 MB",
            mark(memory_mb < 600),
        ),
        (
            "stack start to ready (Redis + 5 services, the run's first; bytecode cache "
            + ("warm)" if warm else "cold: first run compiles)"),
            f"{ready_s:.1f} s",
            "< 10 s",
            mark(ready_s < 10),
        ),
        ("load generator CPU (share of one core, read path)", f"{generator_cpu:.0%}", "", ""),
    ]
    print(
        f"relayshop bench: {os.cpu_count()} cores shared by the stack and the load generator "
        f"({GENERATOR})"
    )
    if opts.stack_env:
        print("stack settings: " + " ".join(f"{k}={v}" for k, v in opts.stack_env.items()))
    print("tracing: " + describe_sampling({**os.environ, **opts.stack_env}))
    print(table(rows))
    samples = [
        *gateway.error_samples,
        *direct.error_samples,
        *relay.error_samples,
        *exchange.error_samples,
        *exchange_call.error_samples,
    ]
    for sample in samples[:5]:
        print("error sample:", sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
