"""make bench: how much the security costs, measured in one run on this machine, as one table.

    .venv/bin/python tools/bench.py            # about a minute
    .venv/bin/python tools/bench.py --quick    # 1-second rounds: checks that every row works

It starts its own stack (relayshop_devtools.devstack, under var/bench-stack, wiped first), then:
- read path: GET /api/orders/{id} at 32 connections, through the gateway and straight at orders
  with the same token, alternated round by round so that drift hits both sides alike; the ratio
  of the two throughputs is the cost of the edge (token check, rules, one more hop);
- place order: POST /api/orders from 16 concurrent users (alice and bob), after walt restocked;
  every answer must be 201;
- token verification in this process: first sight of a token (RS256 signature and claims) and a
  cached one (dictionary hit plus the revocation-mirror check every request pays);
- the stack's resident memory (VmRSS of every process and its children) and its time to ready.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from relayshop_devtools.devstack import Client, Stack, make_stack
from relayshop_devtools.testing import DEFAULT_AUDIENCE, DEFAULT_ISSUER, TestKey
from relayshop_platform.revocation import RevocationMirror
from relayshop_platform.tokens import TokenVerifier
from relayshop_platform.tracing import describe_sampling

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = "asyncio + aiohttp on uvloop, in 1 separate process"
RESTOCKED = ("KB-001", "MS-002", "CB-005")  # what the place-order load buys
HIGH_STOCK = 1_000_000  # inventory's MAX_STOCK: enough that nothing runs out during the run


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
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.count += 1
            if status != load.expect:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"{status} {text[:200]!r}")

    async with aiohttp.ClientSession(connector=connector) as session:
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(i, session) for i in range(load.connections)))
        result.elapsed = time.perf_counter() - started
        result.cpu_seconds = time.process_time() - cpu
    return result


def _child(load: Load, pipe: Connection) -> None:
    import uvloop

    pipe.send(uvloop.run(_drive(load)))
    pipe.close()


def run_load(load: Load) -> Result:
    """Run ``load`` in a child process, so the generator never shares this one's interpreter.
    Forked (Linux): this process has no threads, and the child starts in milliseconds."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(load, sender), daemon=True)
    process.start()
    sender.close()
    result: Result = receiver.recv()
    process.join(10)
    return result


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
        audience=DEFAULT_AUDIENCE,
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


# -- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: float
    warmup: float
    read_connections: int
    order_users: int
    order_seconds: float
    first_tokens: int
    cached_calls: int
    data_dir: Path
    stack_env: dict[str, str]


def options(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1-second rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=3, help="gateway/direct pairs (3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round (5)")
    parser.add_argument("--connections", type=int, default=32, help="read path connections (32)")
    parser.add_argument("--order-users", type=int, default=16, help="place-order users (16)")
    parser.add_argument("--order-seconds", type=float, default=10.0, help="place-order time (10)")
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT / "var" / "bench-stack", help="the stack's files"
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
            first_tokens=100,
            cached_calls=20_000,
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
        first_tokens=2000,
        cached_calls=200_000,
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, all its threads included (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Side:
    """One side of the read-path comparison: the load's result and the CPU each service spent."""

    result: Result = field(default_factory=Result)
    cpu: dict[str, float] = field(default_factory=dict)

    def cpu_us_per_request(self, service: str) -> float:
        return self.cpu.get(service, 0.0) / max(self.result.count, 1) * 1e6


def read_path(stack: Stack, token: str, order_id: str, opts: Options) -> tuple[Side, Side]:
    path = f"/api/orders/{order_id}"
    targets = {"gateway": stack.url("gateway") + path, "direct": stack.url("orders") + path}
    pids = {name: stack.processes[name].pid for name in ("gateway", "orders")}

    def load(url: str, seconds: float) -> Load:
        return Load("GET", url, (token,), 200, opts.read_connections, seconds)

    for url in targets.values():  # warm both paths: connections, caches, first-sight tokens
        run_load(load(url, opts.warmup))
    sides = {name: Side() for name in targets}
    for index in range(opts.rounds):
        # Alternate which side goes first, so that a slow drift favours neither.
        order = ("gateway", "direct") if index % 2 == 0 else ("direct", "gateway")
        for name in order:
            before = {service: cpu_seconds(pid) for service, pid in pids.items()}
            sides[name].result.add(run_load(load(targets[name], opts.seconds)))
            for service, pid in pids.items():
                spent = cpu_seconds(pid) - before[service]
                sides[name].cpu[service] = sides[name].cpu.get(service, 0.0) + spent
    return sides["gateway"], sides["direct"]


def place_orders(stack: Stack, tokens: tuple[str, ...], opts: Options) -> Side:
    """Orders from concurrent users; the CPU of every service, to see where an order's cost goes."""
    bodies = tuple(
        {"items": [{"sku": sku, "quantity": 1}], "payment_method": "pm_card_visa"}
        for sku in RESTOCKED
    )
    url = stack.url("gateway") + "/api/orders"
    pids = {name: process.pid for name, process in stack.processes.items() if name != "redis"}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = run_load(Load("POST", url, tokens, 201, opts.order_users, opts.order_seconds, bodies))
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    return Side(result, cpu)


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


def main(argv: list[str] | None = None) -> int:
    opts = options(argv)
    first_us, cached_us = asyncio.run(verification_cost(opts.first_tokens, opts.cached_calls))
    with bench_stack(opts.data_dir, opts.stack_env) as (stack, ready_s, warm):
        client = Client(stack)
        alice, bob = client.access("alice"), client.access("bob")
        order_id = place_first_order(client, alice)
        gateway_side, direct_side = read_path(stack, alice, order_id, opts)
        restock(client)
        orders_side = place_orders(stack, (alice, bob), opts)
        memory, processes = resident_mb(stack)
    gateway, direct, orders = gateway_side.result, direct_side.result, orders_side.result
    order_cpu = ", ".join(
        f"{name} {orders_side.cpu_us_per_request(name) / 1000:.1f}"
        for name in ("gateway", "orders", "inventory", "payments", "auth")
    )
    ratio = gateway.per_second / direct.per_second if direct.per_second else 0.0
    generator_cpu = (gateway.cpu_seconds + direct.cpu_seconds) / (
        gateway.elapsed + direct.elapsed or 1.0
    )
    memory_mb = sum(memory.values())
    largest = max(memory, key=lambda label: memory[label])
    orders_ok = orders.per_second >= 150 and orders.percentile(0.99) < 300 and not orders.errors
    read_errors = gateway.errors + direct.errors
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
        (
            f"place order, {opts.order_users} users via gateway ({opts.order_seconds:g}s)",
            f"{orders.per_second:,.0f} orders/s, {latency(orders)}, {orders.errors} errors",
            ">= 150/s, p99 < 300 ms, 0 errors",
            mark(orders_ok),
        ),
        ("CPU per order, ms", order_cpu, "", ""),
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
            "stack start to ready (Redis + 5 services; bytecode cache "
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
    for sample in (gateway.error_samples + direct.error_samples + orders.error_samples)[:5]:
        print("error sample:", sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
