"""`make bench` still runs: tools/bench.py --quick against its own stack prints every row.

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
    "CPU per order",
    "place order, 16 users",
    "token verification, first sight",
    "token verification, cached",
    "stack resident memory",
    "stack start to ready",
    "load generator CPU",
)


def test_bench_quick_prints_every_row(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench.py"), "--quick", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for row in ROWS:
        assert row in result.stdout, f"missing row {row!r}:\n{result.stdout}"
    # Correctness, not speed: every order placed under concurrency was a 201.
    orders = next(line for line in result.stdout.splitlines() if line.startswith("place order"))
    assert ", 0 errors" in orders, result.stdout
