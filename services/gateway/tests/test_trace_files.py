"""trace_files: one trace read back from the span files, defensively and without tokens."""

from __future__ import annotations

import json
from pathlib import Path

from gateway_service.trace_files import read_trace

TRACE = "0af7651916cd43dd8448eb211c80319c"
OTHER = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(trace_id: str, span_id: str, start: int, **extra: object) -> str:
    line = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": None,
        "name": "GET /api/orders",
        "service": "orders",
        "kind": "SERVER",
        "start_ns": start,
        "end_ns": start + 10,
        "attributes": {"relayshop.auth.decision": "allow"},
        "status": "UNSET",
        **extra,
    }
    return json.dumps(line) + "\n"


def test_read_trace_collects_one_trace_from_every_file_in_time_order(tmp_path: Path) -> None:
    (tmp_path / "orders.jsonl").write_text(span(TRACE, "b" * 16, 20) + span(OTHER, "c" * 16, 5))
    (tmp_path / "gateway.jsonl").write_text(span(TRACE, "a" * 16, 10, service="gateway"))
    spans = read_trace(tmp_path, TRACE, max_bytes=1_000_000)
    assert [s["span_id"] for s in spans] == ["a" * 16, "b" * 16]
    assert spans[0]["service"] == "gateway" and spans[1]["kind"] == "server"


def test_read_trace_skips_broken_lines_and_scrubs_tokens(tmp_path: Path) -> None:
    leaked = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
    good = span(TRACE, "a" * 16, 1, attributes={"note": f"Bearer {leaked}"})
    (tmp_path / "orders.jsonl").write_text(good + '{"trace_id": "' + TRACE + '", "span')
    spans = read_trace(tmp_path, TRACE, max_bytes=1_000_000)
    assert len(spans) == 1
    assert "eyJ" not in json.dumps(spans)


def test_read_trace_reads_only_the_tail_of_a_big_file(tmp_path: Path) -> None:
    old = span(TRACE, "a" * 16, 1)
    new = span(TRACE, "b" * 16, 2)
    (tmp_path / "orders.jsonl").write_text(old * 50 + new)
    spans = read_trace(tmp_path, TRACE, max_bytes=len(new) + 10)
    assert [s["span_id"] for s in spans] == ["b" * 16]


def test_read_trace_refuses_a_malformed_trace_id(tmp_path: Path) -> None:
    (tmp_path / "orders.jsonl").write_text(span(TRACE, "a" * 16, 1))
    assert read_trace(tmp_path, "../../etc/passwd", max_bytes=1000) == []
    assert read_trace(tmp_path / "missing", TRACE, max_bytes=1000) == []
