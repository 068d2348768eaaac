"""`make bench` still runs: tools/bench.py --quick against its own stacks (relay mode, then
exchange mode) prints every row.

No figure is checked (a timed assertion on a shared 2-core machine would be flaky); the targets
are the benchmark's to report. Runs as a subprocess, so nothing it imports leaks into pytest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROWS = (
    "read GET /api/orders/{id}, via gateway",
    "read GET /api/orders/{id}, direct to orders",
    "read path gateway/direct ratio",
    "CPU per read",
    "place order, relay mode, 16 users",
    "CPU per order, relay mode",
    "place order, exchange mode, 16 users",
    "CPU per order, exchange mode",
    "place order rate, exchange mode / relay mode",
    "token exchange at auth",
    "exchange cache hit ratio, Locust scenario",
    "the Locust run behind the hit ratio",
    "token verification, first sight",
    "token verification, cached",
    "stack resident memory",
    "stack start to ready",
    "load generator CPU",
)


def row(stdout: str, start: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith(start))


def test_bench_quick_prints_every_row(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench.py"), "--quick", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ROWS:
        assert name in result.stdout, f"missing row {name!r}:\n{result.stdout}"
    # Correctness, not speed: every order placed under concurrency was a 201, in both token
    # modes, and every token exchange at auth was granted.
    for start in ("place order, relay mode", "place order, exchange mode", "token exchange"):
        assert ", 0 errors" in row(result.stdout, start), result.stdout
    # The hit ratio was read from the services' counters: a percentage, not "none (0 hits".
    assert "% (" in row(result.stdout, "exchange cache hit ratio"), result.stdout
