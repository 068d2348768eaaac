"""Tracing, logs and metrics of the platform: the span file, the decisions on spans, the JSON log
line, the access line, /metrics. Each test uses its own in-memory tracer provider, so nothing
depends on the process-wide one."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY
from relayshop_devtools.testing import TestKey
from relayshop_platform.errors import install_error_handlers
from relayshop_platform.logs import AccessLogMiddleware, JsonFormatter
from relayshop_platform.security import (
    CurrentUser,
    require_caller,
    require_roles,
    require_service,
)
from relayshop_platform.tokens import TokenVerifier
from relayshop_platform.tracing import JsonLinesSpanExporter, RedactQueryString, telemetry_config


class StaticKeys:
    def __init__(self, key: TestKey) -> None:
        self.key = key

    async def get(self, kid: str) -> Any | None:
        return self.key.public_key if kid == self.key.kid else None


def memory_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RedactQueryString())  # as tracing.setup_tracing does
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_exporter_writes_one_json_line_per_span_with_parent_links(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "orders.jsonl"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        parent.set_attribute("enduser.id", "u-1")
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT):
            pass
    provider.shutdown()

    child, parent_line = (json.loads(line) for line in path.read_text().splitlines())
    assert parent_line["name"] == "parent" and parent_line["parent_id"] is None
    assert parent_line["kind"] == "SERVER" and parent_line["attributes"] == {"enduser.id": "u-1"}
    assert child["parent_id"] == parent_line["span_id"]
    assert child["trace_id"] == parent_line["trace_id"] and len(child["trace_id"]) == 32
    assert child["kind"] == "CLIENT" and child["end_ns"] >= child["start_ns"]


def test_exporter_rotates_the_file_past_its_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "inventory.jsonl"
    exporter = JsonLinesSpanExporter(path, max_bytes=200)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for index in range(5):
        with provider.get_tracer("test").start_as_current_span(f"span-{index}"):
            pass
    provider.shutdown()
    rotated = path.with_name("inventory.jsonl.1")
    assert rotated.exists() and path.exists()
    names = [json.loads(line)["name"] for p in (rotated, path) for line in p.open()]
    assert names[-1] == "span-4" and len(path.read_text().splitlines()) < 5


@pytest.fixture(scope="module")
def key() -> TestKey:
    return TestKey()


def traced_app(key: TestKey, provider: TracerProvider) -> TestClient:
    app = FastAPI(telemetry={**telemetry_config(), "tracer_provider": provider})
    install_error_handlers(app)
    app.state.verifier = TokenVerifier(
        StaticKeys(key), issuer="http://localhost:8000/auth", audience="urn:relayshop:orders"
    )

    @app.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"sub": user.sub}

    @app.put("/stock", dependencies=[Depends(require_roles("warehouse"))])
    async def stock() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post(
        "/reserve", dependencies=[Depends(require_caller(services={"orders"}, roles={"customer"}))]
    )
    async def reserve() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/system", dependencies=[Depends(require_service(services={"orders"}))])
    async def system() -> dict[str, str]:
        return {"ok": "yes"}

    return TestClient(app)


def server_span(exporter: InMemorySpanExporter) -> dict[str, Any]:
    spans: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    (span,) = [s for s in spans if s.kind == SpanKind.SERVER]
    exporter.clear()
    return dict(span.attributes or {})


def test_one_server_span_per_request_named_by_route_and_none_for_probes(key: TestKey) -> None:
    provider, exporter = memory_provider()
    client = traced_app(key, provider)
    token = key.mint(roles=["customer"])
    client.post("/reserve?access_token=secret-in-query", headers={"Authorization": "Bearer x"})
    client.get("/me", headers={"Authorization": f"Bearer {token}"})
    client.get("/healthz")  # untraced, answered or not
    spans = exporter.get_finished_spans()
    assert [(span.name, span.kind) for span in spans] == [
        ("POST /reserve", SpanKind.SERVER),
        ("GET /me", SpanKind.SERVER),
    ]
    assert spans[0].attributes["url.query"] == "redacted"
    assert "secret-in-query" not in json.dumps([dict(span.attributes or {}) for span in spans])


def test_allowed_request_records_who_and_which_check_on_its_server_span(key: TestKey) -> None:
    provider, exporter = memory_provider()
    client = traced_app(key, provider)
    token = key.mint(sub="alice-id", roles=["customer", "support"])
    assert client.get("/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    attributes = server_span(exporter)
    assert attributes["relayshop.auth.check"] == "service"
    assert attributes["relayshop.auth.decision"] == "allow"
    assert attributes["enduser.id"] == "alice-id"
    assert attributes["enduser.role"] == "customer,support"
    assert token not in json.dumps(attributes)


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [("expired", 401, "expired"), ("missing", 401, "missing"), ("role", 403, "role")],
)
def test_refused_request_records_deny_and_reason(
    key: TestKey, case: str, status: int, reason: str
) -> None:
    provider, exporter = memory_provider()
    client = traced_app(key, provider)
    token = key.mint(exp=1_000_000, iat=999_000) if case == "expired" else key.mint()
    headers = {} if case == "missing" else {"Authorization": f"Bearer {token}"}
    assert client.put("/stock", headers=headers).status_code == status
    attributes = server_span(exporter)
    assert attributes["relayshop.auth.decision"] == "deny"
    assert attributes["relayshop.auth.reason"] == reason
    assert attributes["relayshop.auth.check"] == "service"


def test_internal_operation_records_the_calling_service_or_refuses_a_wrong_one(
    key: TestKey,
) -> None:
    provider, exporter = memory_provider()
    client = traced_app(key, provider)
    user = key.mint(sub="alice-id")
    allowed = {"Authorization": f"Bearer {user}", "X-Service-Token": key.service_token("orders")}
    assert client.post("/reserve", headers=allowed).status_code == 200
    attributes = server_span(exporter)
    assert attributes["relayshop.auth.check"] == "internal_caller"
    assert attributes["relayshop.auth.decision"] == "allow"
    assert attributes["relayshop.caller"] == "orders"

    wrong = {"Authorization": f"Bearer {user}", "X-Service-Token": key.service_token("payments")}
    assert client.post("/reserve", headers=wrong).status_code == 403
    attributes = server_span(exporter)
    assert attributes["relayshop.auth.decision"] == "deny"
    assert attributes["relayshop.auth.reason"] == "caller"
    assert attributes["relayshop.caller"] == "payments"


def test_system_operation_records_the_calling_service_as_the_allowed_one(key: TestKey) -> None:
    provider, exporter = memory_provider()
    client = traced_app(key, provider)
    own_token = {"Authorization": f"Bearer {key.service_token('orders')}"}
    assert client.post("/system", headers=own_token).status_code == 200
    attributes = server_span(exporter)
    assert attributes["relayshop.auth.check"] == "system_caller"
    assert attributes["relayshop.auth.decision"] == "allow"
    assert attributes["enduser.id"] == "orders"


async def test_client_spans_never_keep_the_query_in_the_file_or_the_export(
    tmp_path: Path,
) -> None:
    """httpx's CLIENT span records ``http.url``: the query must be gone from it before any
    exporter (the span file, or the in-memory one standing in for OTLP) sees the span."""
    path = tmp_path / "orders.jsonl"
    provider, exporter = memory_provider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(path)))
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(200)))
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
    await client.get("http://inventory.internal/api/x?access_token=secret-in-query&a=1")
    await client.aclose()
    tracer = provider.get_tracer("test")
    for kind in (SpanKind.INTERNAL, SpanKind.PRODUCER, SpanKind.SERVER):
        attributes = {"url.full": "http://h/p?access_token=secret-in-query", "http.target": "/p?q"}
        with tracer.start_as_current_span("by hand", kind=kind, attributes=attributes):
            pass
    provider.shutdown()

    spans = exporter.get_finished_spans()
    assert spans[0].kind == SpanKind.CLIENT
    assert spans[0].attributes["http.url"] == "http://inventory.internal/api/x?redacted"
    assert [span.attributes["http.target"] for span in spans[1:]] == ["/p?redacted"] * 3
    assert "secret-in-query" not in json.dumps([dict(span.attributes or {}) for span in spans])
    assert "secret-in-query" not in path.read_text()
    assert len(path.read_text().splitlines()) == 4


def test_json_log_line_carries_the_current_trace_and_span_ids() -> None:
    provider, _ = memory_provider()
    formatter = JsonFormatter("orders")
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("world",), "status": 201})
    outside = json.loads(formatter.format(record))
    assert outside["trace_id"] is None and outside["message"] == "hello world"
    with provider.get_tracer("test").start_as_current_span("request") as span:
        line = json.loads(formatter.format(record))
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")
    assert line["service"] == "orders" and line["status"] == 201


def test_access_line_has_the_path_and_never_the_query_or_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.add_middleware(AccessLogMiddleware)
    before = REGISTRY.get_sample_value(
        "relayshop_http_requests_total",
        {"method": "GET", "route": "/things/{thing_id}", "status": "200"},
    )
    with caplog.at_level(logging.INFO, logger="relayshop_platform.logs"):
        response = TestClient(app).get(
            "/things/7?access_token=secret-in-query", headers={"Authorization": "Bearer secret-h"}
        )
    assert response.status_code == 200
    (record,) = [r for r in caplog.records if r.name == "relayshop_platform.logs"]
    line = JsonFormatter("test").format(record)
    assert json.loads(line)["path"] == "/things/7" and json.loads(line)["status"] == 200
    assert "secret" not in line
    after = REGISTRY.get_sample_value(
        "relayshop_http_requests_total",
        {"method": "GET", "route": "/things/{thing_id}", "status": "200"},
    )
    assert (after or 0) - (before or 0) == 1  # counted by route template, not by raw path


def test_sqlalchemy_spans_work_on_the_installed_sqlalchemy() -> None:
    """tracing.instrument_engine skips the instrumentation's version check: prove it works."""
    import asyncio

    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    provider, exporter = memory_provider()
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    instrumentor = SQLAlchemyInstrumentor()
    already = instrumentor.is_instrumented_by_opentelemetry
    if already:
        instrumentor.uninstrument()
    instrumentor.instrument(
        engine=engine.sync_engine, tracer_provider=provider, skip_dep_check=True
    )
    tracer = provider.get_tracer("test")

    async def query() -> None:
        with tracer.start_as_current_span("request"):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT :value"), {"value": "a-secret-value"})
        await engine.dispose()

    try:
        asyncio.run(query())
    finally:
        instrumentor.uninstrument()
    spans = exporter.get_finished_spans()
    request = next(s for s in spans if s.name == "request")
    statement = next(s for s in spans if (s.attributes or {}).get("db.statement"))
    assert statement.parent is not None
    assert statement.parent.span_id == request.context.span_id
    assert "a-secret-value" not in json.dumps(dict(statement.attributes or {}))


def test_trace_file_defaults_to_the_data_dir_unless_a_collector_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from relayshop_platform.settings import PlatformSettings

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("RELAYSHOP_TRACE_FILE", raising=False)
    settings = PlatformSettings(service_name="orders", data_dir=tmp_path)
    assert settings.effective_trace_file == tmp_path / "traces" / "orders.jsonl"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")
    assert PlatformSettings(service_name="orders").effective_trace_file is None
    monkeypatch.setenv("RELAYSHOP_TRACE_FILE", str(tmp_path / "both.jsonl"))
    assert PlatformSettings().effective_trace_file == tmp_path / "both.jsonl"
