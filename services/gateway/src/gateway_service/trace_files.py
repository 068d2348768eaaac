"""Read one trace back from the span files, for the console's hop inspector (GET /bff/trace/{id}).

Every service appends its finished spans as JSON lines to <trace_dir>/<service>.jsonl (the
platform's tracing.py). This module finds the lines of one trace in all of those files and
normalises them to one flat shape, reading defensively: a half-written last line, an unknown
field or a file rotated away mid-read costs that line, never the answer.

    {"trace_id", "span_id", "parent_id", "name", "service", "kind",
     "start_ns", "end_ns", "status", "attributes"}

Attribute values that look like a JWT are replaced before anything leaves the gateway: a span
should never hold a token, and the browser must never receive one even if a span did.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.?[A-Za-z0-9_-]*")
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def read_trace(trace_dir: Path, trace_id: str, max_bytes: int) -> list[dict[str, Any]]:
    """Every span of ``trace_id`` in ``trace_dir/*.jsonl``, oldest first. Blocking file I/O:
    call it through asyncio.to_thread."""
    if not TRACE_ID.match(trace_id):
        return []
    spans: list[dict[str, Any]] = []
    for path in sorted(trace_dir.glob("*.jsonl")):
        spans.extend(_spans_in(path, trace_id, max_bytes))
    spans.sort(key=lambda span: (span["start_ns"], span["end_ns"]))
    return spans


def _spans_in(path: Path, trace_id: str, max_bytes: int) -> list[dict[str, Any]]:
    needle = trace_id.encode()
    found: list[dict[str, Any]] = []
    try:
        with path.open("rb") as file:
            size = file.seek(0, 2)
            file.seek(max(0, size - max_bytes))
            if size > max_bytes:
                file.readline()  # we landed mid-line: skip to the next whole one
            for line in file:
                # The cheap substring test first: JSON-decode only this trace's lines.
                if needle not in line:
                    continue
                try:
                    raw = json.loads(line)
                except ValueError:
                    continue
                span = normalise(raw, default_service=path.stem)
                if span is not None and span["trace_id"] == trace_id:
                    found.append(span)
    except OSError:
        return []
    return found


def normalise(raw: Any, default_service: str = "") -> dict[str, Any] | None:
    """The flat shape above, from relayshop's span lines (or OpenTelemetry's own to_json)."""
    if not isinstance(raw, dict):
        return None
    context = _dict(raw.get("context"))
    resource = _dict(raw.get("resource"))
    resource_attributes = _dict(resource.get("attributes", resource))
    trace_id = _hex(raw.get("trace_id") or context.get("trace_id"))
    span_id = _hex(raw.get("span_id") or context.get("span_id"))
    if not trace_id or not span_id:
        return None
    attributes = _dict(raw.get("attributes"))
    status = raw.get("status")
    if isinstance(status, dict):
        status = status.get("status_code") or status.get("code") or ""
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": _hex(raw.get("parent_id") or raw.get("parent_span_id")) or None,
        "name": str(raw.get("name", "")),
        "service": str(
            raw.get("service") or (resource_attributes or {}).get("service.name") or default_service
        ),
        "kind": str(raw.get("kind", "")).removeprefix("SpanKind.").lower(),
        "start_ns": _ns(raw, "start"),
        "end_ns": _ns(raw, "end"),
        "status": str(status or "").removeprefix("StatusCode.").lower(),
        "attributes": {str(k): _scrub(v) for k, v in attributes.items()},
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _hex(value: Any) -> str:
    if isinstance(value, int):
        return format(value, "x")
    if isinstance(value, str):
        return value.lower().removeprefix("0x")
    return ""


def _ns(raw: dict[str, Any], which: str) -> int:
    for name in (f"{which}_ns", f"{which}_time_unix_nano", f"{which}_time_ns", f"{which}_time"):
        value = raw.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return 0


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _JWT.sub("[redacted token]", value)
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _scrub(str(value))
