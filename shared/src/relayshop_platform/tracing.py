"""One ``setup_tracing()`` call per process, configured by the standard ``OTEL_*`` variables.

    OTEL_TRACES_SAMPLER=parentbased_traceidratio  OTEL_TRACES_SAMPLER_ARG=0.01   sample 1 %
    OTEL_SDK_DISABLED=true                        no tracing at all (nothing instrumented)
    OTEL_EXPORTER_OTLP_ENDPOINT=http://jaeger:4318  spans to a collector (docker compose)
    RELAYSHOP_TRACE_FILE=...                      spans as JSON lines (the embedded default is
                                                  <data_dir>/traces/<service>.jsonl; `make trace`)

The SDK reads the sampler itself. Context travels as W3C Trace Context (``traceparent``) on every
hop: the gateway's proxy injects it, FastAPI's own telemetry extracts it (``telemetry_config``),
and the instrumented httpx client injects it again on each service-to-service call, so one request
is one trace:

    gateway SERVER -> orders SERVER -> orders CLIENT -> inventory SERVER -> ...

Each service also writes its authorization decision on its SERVER span (security.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from fastapi.telemetry import TelemetryConfig
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.propagate import set_global_textmap
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_NAMESPACE, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .settings import PlatformSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)
# Spans reach the file this soon after they end (the SDK's default is 5 s): `make demo` prints a
# trace right after the request. OTEL_BSP_SCHEDULE_DELAY still overrides it.
FILE_FLUSH_MILLIS = 500
_configured = False


def tracing_enabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def describe_sampling(environ: Mapping[str, str]) -> str:
    """Which spans a process with this environment records, in words: tracing costs CPU, so a
    benchmark says which setting it measured."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off (OTEL_SDK_DISABLED=true)"
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip()
    if not sampler:
        return "every request (OTEL_TRACES_SAMPLER unset: parentbased_always_on, the default)"
    argument = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    return f"OTEL_TRACES_SAMPLER={sampler}" + (
        f" OTEL_TRACES_SAMPLER_ARG={argument}" if argument else ""
    )


def setup_tracing(settings: PlatformSettings) -> None:
    """The process-wide tracer provider: once per process, whatever number of apps it builds."""
    global _configured
    if _configured or not tracing_enabled():
        return
    _configured = True
    resource = Resource.create(
        {
            SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", settings.service_name),
            SERVICE_NAMESPACE: "relayshop",
            "deployment.environment.name": settings.env,
        }
    )
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    provider.add_span_processor(RedactQueryString())  # first: before any exporter sees a span
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace_file = settings.effective_trace_file
    if trace_file is not None:
        delay = None if "OTEL_BSP_SCHEDULE_DELAY" in os.environ else FILE_FLUSH_MILLIS
        exporter = JsonLinesSpanExporter(trace_file, max_bytes=settings.trace_file_max_bytes)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
    trace.set_tracer_provider(provider)
    if "OTEL_PROPAGATORS" not in os.environ:
        # W3C Trace Context only. The SDK's default also forwards W3C Baggage, which would carry
        # whatever a client on the internet put in it to every service inside.
        set_global_textmap(TraceContextTextMapPropagator())


# Probes and scrapes make no span: one every few seconds per service would bury the requests.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def telemetry_config() -> TelemetryConfig:
    """For ``FastAPI(telemetry=...)``: FastAPI's own OpenTelemetry support makes the SERVER span of
    each request, continuing the caller's ``traceparent`` and named after the route template
    (``POST /api/orders``). It takes the route from FastAPI's own routing, where the
    opentelemetry-instrumentation-fastapi middleware matched every request against the routes a
    second time: a traced GET /api/inventory/products/{sku} cost 1,870 us of CPU with it, 1,330
    now (1,160 untraced; loadtests/README.md).
    Nothing else: no span per dependency, endpoint or serialization, and no OpenTelemetry metrics
    or logs (Prometheus /metrics and the JSON logs are metrics.py and logs.py)."""
    return {
        "tracing": True,  # a no-op while no tracer provider is set (OTEL_SDK_DISABLED=true)
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "exclude": lambda scope: scope.get("path") in UNTRACED_PATHS,
    }


# Span attributes that may hold a URL's query string: the query alone (``url.query``), or whole
# URLs and request targets, old and new semantic conventions (httpx's CLIENT spans set http.url).
_QUERY_ONLY = ("url.query",)
_WITH_QUERY = ("url.full", "http.url", "http.target")
REDACTED = "redacted"


class RedactQueryString(SpanProcessor):
    """Spans keep the path, never the query, whatever their kind (SERVER, CLIENT, ...): RFC 6750
    section 2.3 lets clients put an access token in ``?access_token=`` (relayshop refuses it, but
    a client may still send one, and a URL we call might carry one). Added first, so the span
    file and the OTLP exporter both only ever see the redacted value. Instrumentations set these
    attributes when they start a span, which is when this runs."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attributes = span.attributes
        if not attributes:
            return
        for name in _QUERY_ONLY:
            if name in attributes:
                span.set_attribute(name, REDACTED)
        for name in _WITH_QUERY:
            value = attributes.get(name)
            if isinstance(value, str) and "?" in value:
                span.set_attribute(name, value.partition("?")[0] + "?" + REDACTED)


def instrument_http_client(client: httpx.AsyncClient) -> None:
    """A CLIENT span per call and ``traceparent`` injected into it. Works on any httpx transport
    (it wraps the transport's handle_async_request), the aiohttp one of relay.py included."""
    if tracing_enabled():
        HTTPXClientInstrumentor.instrument_client(client)


def instrument_engine(engine: AsyncEngine | None) -> None:
    """A span per SQL statement (the statement with its placeholders, never the values), and
    none per pool checkout."""
    if engine is None or not tracing_enabled():
        return
    import sqlalchemy.engine.base
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.instrumentation.utils import unwrap

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        return  # one engine per process in a service; a second app in a test goes untraced
    # skip_dep_check: the instrumentation declares "sqlalchemy < 2.1" but its event hooks work on
    # 2.1 unchanged (shared/tests/test_tracing.py proves it on every run).
    instrumentor.instrument(engine=engine.sync_engine, skip_dep_check=True)
    # instrument() also wraps every Engine.connect() in a "connect" span. In a pooled service that
    # is a checkout of an open connection, not database work, and a span each made up a third of
    # an order's spans and cost as much CPU as a statement's (tools/bench.py, "place order").
    unwrap(sqlalchemy.engine.base.Engine, "connect")


def current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


# ---- the embedded default: finished spans as JSON lines ---------------------------------------


def span_to_dict(span: ReadableSpan) -> dict[str, Any]:
    """One span as `make trace` reads it (ids in the hex form of the W3C traceparent)."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": format(context.trace_id, "032x") if context else None,
        "span_id": format(context.span_id, "016x") if context else None,
        "parent_id": format(parent.span_id, "016x") if parent else None,
        "name": span.name,
        "service": span.resource.attributes.get(SERVICE_NAME),
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per span to a file, one file per service.

    The BatchSpanProcessor calls export() from its own thread, so the event loop never waits on
    the disk. Each batch is one write() on an O_APPEND descriptor: whole lines, even when two
    replicas of a service share the file (local filesystems append each write() atomically).
    """

    def __init__(self, path: Path, *, max_bytes: int = 50_000_000) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return self._fd

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        data = b"".join(orjson.dumps(span_to_dict(span), default=str) + b"\n" for span in spans)
        try:
            with self._lock:
                fd = self._open()
                if os.fstat(fd).st_size > self.max_bytes:
                    fd = self._rotate()
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
        except OSError as exc:
            log.warning("could not write spans to %s: %s", self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _rotate(self) -> int:
        """Keep one old file. A replica that finds the file already rotated just reopens."""
        assert self._fd is not None
        ours = os.fstat(self._fd).st_ino
        self._close()
        try:
            if os.stat(self.path).st_ino == ours:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass
        return self._open()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def shutdown(self) -> None:
        with self._lock:
            self._close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export() is written through
