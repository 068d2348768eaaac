"""`make load`'s verdict: unexpected failures are the gate; latency is judged against this machine.

The rules are checked on their own (tools/load.py ``judge``), then one short real run, against a
stack of its own, with failures injected (the warehouse clerk's password is wrong): it must fail,
and say that the failure rule decided, after calibrating this machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from relayshop_devtools.devstack import free_port
from relayshop_devtools.repository import load_tool

ROOT = Path(__file__).resolve().parent.parent


load = load_tool("load")


def test_judge_passes_a_slow_machine_without_failures() -> None:
    # A slower laptop: p95 310 ms, which an absolute 200 ms would fail; it is 70 ms unloaded.
    passed, line = load.judge(load.Totals(2347, 0, 310.0), load.Rules(0.0, calibrated_p95_ms=70.0))
    assert passed, line
    assert line.startswith("passed: 0 unexpected failures in 2347 requests; p95 310 ms <= 350 ms")
    assert "by the relative rule (5 x 70 ms" in line


def test_judge_fails_latency_far_beyond_the_calibration() -> None:
    passed, line = load.judge(load.Totals(2347, 0, 400.0), load.Rules(0.0, calibrated_p95_ms=60.0))
    assert not passed
    assert line.startswith("FAILED by the relative rule")
    assert "p95 400 ms > 300 ms" in line


def test_judge_fails_any_unexpected_failure_however_fast() -> None:
    passed, line = load.judge(load.Totals(2347, 1, 5.0), load.Rules(0.0, calibrated_p95_ms=60.0))
    assert not passed
    assert line.startswith("FAILED by the failure rule: 1 unexpected failures in 2347 requests")


def test_judge_allows_the_failure_ratio_it_is_given() -> None:
    rules = load.Rules(0.01, calibrated_p95_ms=60.0)
    assert load.judge(load.Totals(1000, 10, 5.0), rules)[0]
    assert not load.judge(load.Totals(1000, 11, 5.0), rules)[0]


def test_judge_uses_the_absolute_threshold_when_set() -> None:
    rules = load.Rules(0.0, max_p95_ms=200.0, calibrated_p95_ms=60.0)
    passed, line = load.judge(load.Totals(2347, 0, 250.0), rules)
    assert not passed
    assert "FAILED by the absolute rule (LOAD_MAX_P95_MS=200): p95 250 ms > 200 ms" in line
    passed, line = load.judge(load.Totals(2347, 0, 150.0), rules)
    assert passed and "by the absolute rule" in line


def test_judge_fails_a_run_without_requests() -> None:
    passed, line = load.judge(load.Totals(0, 0, 0.0), load.Rules(0.0, calibrated_p95_ms=60.0))
    assert not passed and "no request was made" in line


def test_p95_of_samples() -> None:
    assert load.p95([float(n) for n in range(1, 101)]) == pytest.approx(95.05)


def test_a_real_run_with_injected_failures_fails(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LOAD_WAREHOUSE": "walt:not-walts-password",  # exactly one clerk: his sign-in fails
        "LOAD_MAX_P95_MS": "",  # the relative rule, whatever the caller's environment says
    }
    command = [
        sys.executable,
        str(ROOT / "tools" / "load.py"),
        f"--host=http://127.0.0.1:{free_port()}",  # nothing there: it starts its own stack
        "--users=3",
        "--spawn-rate=3",
        "--run-time=6s",
        "--calibration-rounds=3",
        f"--output={tmp_path}",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "load: calibrated: p95" in result.stdout, output
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith("load: FAILED by the failure rule: "), output
    assert "POST,/auth/token (password)" in (tmp_path / "relayshop_failures.csv").read_text()
