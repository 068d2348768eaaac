"""CI only: an OTLP/HTTP sink standing in for Jaeger in the compose smoke test.

No image registry is reachable where CI runs, so there is no Jaeger image. This sink answers the
two things the compose stack and the smoke test need from Jaeger, on the same ports:
  - 4318  OTLP over HTTP (``POST /v1/traces``, protobuf, gzip or not), where the services export;
  - 16686 a sliver of Jaeger's query API, in Jaeger's shape, so the smoke test asks what it would
          ask a real Jaeger: ``GET /api/services`` (every ``service.name`` that sent a span) and
          ``GET /api/traces/<trace id>`` (which services sent spans of that trace);
  - 13133 ``GET /status``, the health check port of Jaeger v2.
It runs in the gateway's image (whose virtualenv has opentelemetry-proto, the OTLP protobuf
classes, because the exporter needs them), so it brings no dependency of its own. It keeps service
names and trace ids only, never span contents: no attribute is stored or printed.
"""

from __future__ import annotations

import gzip
import json
import signal
import sys
import threading
from collections import Counter, OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

SPANS: Counter[str] = Counter()  # service name -> spans received
TRACES: OrderedDict[str, set[str]] = OrderedDict()  # trace id -> services, the newest last
MAX_TRACES = 10_000
LOCK = threading.Lock()
MAX_BODY = 16 * 1024 * 1024


def record(request: ExportTraceServiceRequest) -> None:
    for resource_spans in request.resource_spans:
        attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        name = attributes.get("service.name", "unknown_service")
        for scope in resource_spans.scope_spans:
            SPANS[name] += len(scope.spans)
            for span in scope.spans:
                TRACES.setdefault(span.trace_id.hex(), set()).add(name)
    while len(TRACES) > MAX_TRACES:
        TRACES.popitem(last=False)


class Handler(BaseHTTPRequestHandler):
    def send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        if self.path != "/v1/traces":
            self.send(404, b"", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            self.send(400, b"", "text/plain")
            return
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception:  # a DecodeError: not OTLP protobuf
            self.send(400, b"", "text/plain")
            return
        with LOCK:
            record(request)
        self.send(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        if self.path == "/status":
            self.send(200, b'{"status": "ok"}', "application/json")
        elif self.path == "/api/services":
            with LOCK:
                data: dict[str, object] = {"data": sorted(SPANS), "spans": dict(SPANS)}
            self.send(200, json.dumps(data).encode(), "application/json")
        elif self.path.startswith("/api/traces/"):
            trace_id = self.path.removeprefix("/api/traces/").lower()
            with LOCK:
                services = sorted(TRACES.get(trace_id, ()))
            if not services:
                data = {"data": None, "errors": [{"code": 404, "msg": "trace not found"}]}
                self.send(404, json.dumps(data).encode(), "application/json")
                return
            processes = {f"p{i}": {"serviceName": name} for i, name in enumerate(services, 1)}
            data = {"data": [{"traceID": trace_id, "processes": processes}]}
            self.send(200, json.dumps(data).encode(), "application/json")
        else:
            self.send(404, b"", "text/plain")

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per export would drown the container's log


def main() -> None:
    # Jaeger's ports; a test passes free ones: otlp_sink.py OTLP_PORT QUERY_PORT HEALTH_PORT
    ports = [int(port) for port in sys.argv[1:4]] or [4318, 16686, 13133]
    servers = [ThreadingHTTPServer(("0.0.0.0", port), Handler) for port in ports]  # noqa: S104
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    # PID 1 in its container: without a handler, SIGTERM (docker compose down) would be ignored.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("OTLP sink on ports {} (OTLP/HTTP), {} (query), {} (/status)".format(*ports), flush=True)
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
