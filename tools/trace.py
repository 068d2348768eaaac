"""Print one request as a waterfall tree in the terminal, from the span files of a local stack.

    make trace ID=4bf92f3577b34da6a3ce929d0e0e4736      (the X-Trace-Id of any response)
    make trace                                          (the latest traces, to pick one)
    .venv/bin/python tools/trace.py ID [--dir var/traces] [--wait 5] [--no-sql]

    trace 4bf92f35...  (61.2 ms, 12 spans)
    gateway    SERVER proxy POST                   |================| 61.2 ms  201  edge allow ..
    orders     └─ SERVER POST /api/orders          | ===============| 58.0 ms  201  service allow ..
    orders        ├─ CLIENT POST /api/inventory/.. |   ====         | 11.9 ms  201
    inventory     │  └─ SERVER POST /api/inven..   |   ===          | 10.1 ms  201  internal_caller

Every service appends its spans to <data_dir>/traces/<service>.jsonl (relayshop_platform.tracing);
this reads them all, keeps one trace's spans and draws the tree from the parent ids. Also a
library for tests: ``load_trace(directory, trace_id)`` and ``render(spans)``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
BAR_WIDTH = 28
Span = dict[str, Any]


def default_directory() -> Path:
    return Path(os.environ.get("RELAYSHOP_DATA_DIR", "var")) / "traces"


def span_files(directory: Path) -> list[Path]:
    # The rotated ".1" files too: a trace may straddle a rotation.
    return sorted(directory.glob("*.jsonl")) + sorted(directory.glob("*.jsonl.1"))


def read_spans(directory: Path, trace_id: str | None = None) -> list[Span]:
    """Every span in the files (of one trace, if given); a half-written last line is skipped."""
    needle = trace_id.encode() if trace_id else b""
    spans: list[Span] = []
    for path in span_files(directory):
        try:
            with path.open("rb") as file:
                for line in file:
                    if needle not in line:  # cheap: JSON-decode only this trace's lines
                        continue
                    try:
                        span = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(span, dict) and (not trace_id or span["trace_id"] == trace_id):
                        spans.append(span)
        except OSError:
            continue
    return spans


def load_trace(
    directory: Path,
    trace_id: str,
    *,
    wait_seconds: float = 0.0,
    services: set[str] | None = None,
) -> list[Span]:
    """The spans of one trace, waiting up to ``wait_seconds`` for the ones still being flushed
    (the root span, and a span from each of ``services`` if given)."""
    if not TRACE_ID.match(trace_id):
        raise ValueError(f"not a trace id (32 lowercase hex digits): {trace_id!r}")
    deadline = time.monotonic() + wait_seconds
    while True:
        spans = read_spans(directory, trace_id)
        if is_complete(spans, services) or time.monotonic() >= deadline:
            return spans
        time.sleep(0.1)


def is_complete(spans: list[Span], services: set[str] | None = None) -> bool:
    """Each service flushes its spans on its own schedule, a parent after its children: the
    trace is whole once it has one root, every HTTP call out has the callee's span under it,
    and (if given) every one of ``services`` is there."""
    ids = {span["span_id"] for span in spans}
    roots = [span for span in spans if span.get("parent_id") not in ids]
    parents = {span.get("parent_id") for span in spans}
    calls = [s for s in spans if s["kind"] == "CLIENT" and _url(s) and s["span_id"] not in parents]
    present = {span["service"] for span in spans}
    return len(roots) == 1 and not calls and (services is None or services <= present)


def tree(spans: list[Span]) -> list[tuple[str, Span]]:
    """(prefix, span) in display order: each span under its parent, siblings by start time.
    A span whose parent is not in the files (a caller outside, or lost) is shown as a root."""
    ids = {span["span_id"] for span in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        parent = span.get("parent_id") if span.get("parent_id") in ids else None
        children.setdefault(parent, []).append(span)
    for siblings in children.values():
        siblings.sort(key=lambda s: (s["start_ns"], s["end_ns"]))
    rows: list[tuple[str, Span]] = []

    def walk(parent: str | None, indent: str, is_root: bool) -> None:
        kids = children.get(parent, [])
        for index, span in enumerate(kids):
            last = index == len(kids) - 1
            branch = "" if is_root else ("└─ " if last else "├─ ")
            rows.append((indent + branch, span))
            walk(span["span_id"], indent + ("" if is_root else ("   " if last else "│  ")), False)

    walk(None, "", True)
    return rows


def decision(span: Span) -> str:
    """The authorization decision on a span, as one short phrase."""
    attributes = span.get("attributes", {})
    check = attributes.get("relayshop.auth.check")
    if not check:
        return ""
    words = [check, attributes.get("relayshop.auth.decision", "?")]
    if attributes.get("relayshop.auth.reason"):
        words.append(f"reason={attributes['relayshop.auth.reason']}")
    if attributes.get("enduser.id"):
        words.append(f"user={str(attributes['enduser.id'])[:8]}..")
    if attributes.get("enduser.role"):
        words.append(f"roles={attributes['enduser.role']}")
    if attributes.get("relayshop.caller"):
        words.append(f"caller={attributes['relayshop.caller']}")
    # The token this hop received: who it is for, what it allows, and who exchanged it.
    if attributes.get("relayshop.token.aud"):
        words.append(f"aud={attributes['relayshop.token.aud'].replace('urn:relayshop:', '')}")
    if attributes.get("relayshop.token.scope"):
        words.append(f"scope={attributes['relayshop.token.scope'].replace(' ', ',')}")
    if attributes.get("relayshop.token.act"):
        words.append(f"act={attributes['relayshop.token.act'].replace(',', '<')}")
    return " ".join(words)


_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?([\w.]+)", re.IGNORECASE)


def _url(span: Span) -> str:
    attributes = span.get("attributes", {})
    return str(attributes.get("url.full") or attributes.get("http.url") or "")


def operation(span: Span) -> str:
    """What the span did, in a few words. An HTTP CLIENT span is named by its method only (add
    where it went); a SQL span by the statement's verb and the database (say which table)."""
    attributes = span.get("attributes", {})
    if span.get("kind") == "CLIENT" and _url(span):
        return f"{span['name']} {urlsplit(_url(span)).path}"
    statement = str(attributes.get("db.statement", ""))
    if statement:
        table = _TABLE.search(statement)
        verb = statement.split(None, 1)[0].upper()
        return f"SQL {verb} {table.group(1) if table else ''}".rstrip()
    if attributes.get("db.system"):
        return f"SQL {span['name']}"  # "connect": a new connection from the pool
    return str(span["name"])


def status_of(span: Span) -> str:
    attributes = span.get("attributes", {})
    code = attributes.get("http.response.status_code") or attributes.get("http.status_code")
    return str(code) if code else ""


def render(spans: list[Span], *, sql: bool = True) -> str:
    if not spans:
        return "(no spans)"
    if not sql:
        spans = [s for s in spans if not s.get("attributes", {}).get("db.system")]
    start = min(s["start_ns"] for s in spans)
    total = max(max(s["end_ns"] for s in spans) - start, 1)
    rows = tree(spans)
    label_width = min(max(len(p) + len(s["kind"]) + len(operation(s)) + 1 for p, s in rows), 72)
    service_width = max(len(str(s["service"])) for s in spans)
    lines = [f"trace {spans[0]['trace_id']}  ({total / 1e6:.1f} ms, {len(spans)} spans)"]
    for prefix, span in rows:
        label = f"{prefix}{span['kind']} {operation(span)}"
        if len(label) > label_width:
            label = label[: label_width - 2] + ".."
        begin = int((span["start_ns"] - start) / total * BAR_WIDTH)
        length = max(1, round((span["end_ns"] - span["start_ns"]) / total * BAR_WIDTH))
        bar = (" " * begin + "=" * length).ljust(BAR_WIDTH)[:BAR_WIDTH]
        millis = (span["end_ns"] - span["start_ns"]) / 1e6
        extra = "  ".join(part for part in (status_of(span), decision(span)) if part)
        if span.get("status") == "ERROR":
            extra = f"ERROR {extra}"
        lines.append(
            f"{span['service']:<{service_width}}  {label:<{label_width}} |{bar}| "
            f"{millis:7.1f} ms  {extra}".rstrip()
        )
    return "\n".join(lines)


def latest_traces(directory: Path, count: int = 10) -> str:
    """The most recent requests that entered from outside (root SERVER spans), newest last.
    (Background work, such as inventory's expiry sweep, makes root spans of its own.)"""
    roots = [s for s in read_spans(directory) if not s.get("parent_id") and s["kind"] == "SERVER"]
    roots.sort(key=lambda s: s["start_ns"])
    lines = [
        f"{s['trace_id']}  {s['service']:<9} {s['name']:<40} {status_of(s):>3} "
        f"{(s['end_ns'] - s['start_ns']) / 1e6:7.1f} ms"
        for s in roots[-count:]
    ]
    return "\n".join(lines) or f"(no spans in {directory})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("trace_id", nargs="?", help="the X-Trace-Id of a response")
    parser.add_argument("--dir", type=Path, default=None, help="span files (default var/traces)")
    parser.add_argument("--wait", type=float, default=2.0, help="seconds to wait for spans")
    parser.add_argument("--no-sql", action="store_true", help="hide the SQL statement spans")
    args = parser.parse_args(argv)
    directory = args.dir or default_directory()
    if not args.trace_id:
        print(latest_traces(directory))
        print("\nmake trace ID=<one of the trace ids above>")
        return 0
    trace_id = args.trace_id.strip().lower()
    try:
        spans = load_trace(directory, trace_id, wait_seconds=args.wait)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not spans:
        print(f"no spans of trace {trace_id} in {directory}", file=sys.stderr)
        return 1
    print(render(spans, sql=not args.no_sql))
    return 0


if __name__ == "__main__":
    sys.exit(main())
