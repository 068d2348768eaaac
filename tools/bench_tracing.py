"""make bench-tracing: what tracing costs, measured: throughput with it off, fully sampled, at 1 %.

    .venv/bin/python tools/bench_tracing.py              # about 45 s
    .venv/bin/python tools/bench_tracing.py --seconds 2  # shorter rounds

Three stacks run side by side (relayshop_devtools.devstack, under var/bench-tracing, wiped first),
the same code with different standard OpenTelemetry settings:

    off       OTEL_SDK_DISABLED=true          nothing instrumented, no span made
    full      OTEL_TRACES_SAMPLER=parentbased_always_on   every request traced and exported
    1 %       OTEL_TRACES_SAMPLER=parentbased_traceidratio, OTEL_TRACES_SAMPLER_ARG=0.01

The load is GET /api/inventory/products through the gateway (edge check, proxy, inventory's own
check and one SQL query) from 32 connections, asyncio + aiohttp in a separate process. Rounds
alternate between the stacks so that drift on this shared 2-core machine hits all three alike.
Logs and metrics stay on in every stack: only tracing differs.
"""

from __future__ import annotations

import argparse
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

from bench import Load, Result, run_load  # the one load generator, tools/bench.py
from relayshop_devtools.devstack import Client, Stack

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/inventory/products"
CONFIGS: dict[str, dict[str, str]] = {
    "tracing off": {"OTEL_SDK_DISABLED": "true"},
    "full sampling": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    "1% sampling": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    },
}


def load(url: str, token: str, connections: int, seconds: float) -> Result:
    """One round of GETs from bench.py's load generator (a forked child process)."""
    return run_load(Load("GET", url, (token,), 200, connections, seconds))


def span_lines(stack: Stack) -> int:
    total = 0
    for path in (stack.data_dir / "traces").glob("*.jsonl"):
        with path.open("rb") as file:
            total += sum(1 for _ in file)
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per stack")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    base = ROOT / "var" / "bench-tracing"
    shutil.rmtree(base, ignore_errors=True)
    results = {name: Result() for name in CONFIGS}
    spans: dict[str, int] = {}
    with ExitStack() as stacks:
        started = time.perf_counter()
        running: dict[str, tuple[Stack, str]] = {}
        for index, (name, env) in enumerate(CONFIGS.items()):
            stack = stacks.enter_context(Stack(base / f"stack{index}", env=env))
            running[name] = (stack, Client(stack).access("alice"))
        print(f"3 stacks ready in {time.perf_counter() - started:.1f} s; warming up")
        for stack, token in running.values():
            load(stack.url("gateway") + PATH, token, args.connections, 1.0)
        before = {name: span_lines(stack) for name, (stack, _) in running.items()}
        for round_number in range(args.rounds):
            for name, (stack, token) in running.items():
                result = load(
                    stack.url("gateway") + PATH,
                    token,
                    args.connections,
                    args.seconds / args.rounds,
                )
                results[name].add(result)
                print(f"  round {round_number + 1} {name:<14} {result.per_second:8.0f} req/s")
        time.sleep(1.0)  # the last spans reach the files (500 ms flush)
        spans = {name: span_lines(stack) - before[name] for name, (stack, _) in running.items()}

    baseline = results["tracing off"].per_second or 1.0
    print(
        f"\nGET {PATH} through the gateway, {args.connections} connections, "
        f"{args.seconds:.0f} s per configuration ({args.rounds} alternating rounds)\n"
    )
    print(
        f"{'configuration':<15} {'req/s':>8} {'vs off':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'spans/request':>13}"
    )
    for name, result in results.items():
        per_request = spans[name] / result.count if result.count else 0.0
        print(
            f"{name:<15} {result.per_second:8.0f} {result.per_second / baseline:7.2f} "
            f"{result.percentile(0.5):7.1f} {result.percentile(0.99):7.1f} "
            f"{result.errors:>6} {per_request:13.2f}"
        )
    return 1 if any(result.errors for result in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
