"""The compose smoke test's parts that run without Docker (the whole runs in CI: `make
compose-smoke`): the OTLP sink standing in for Jaeger, fed by the real OTLP exporter over a real
socket; which Debian archive debootstrap uses; and that the CI override reads exactly what the
smoke test sets, and the secrets file covers every secret docker-compose.yml requires."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from relayshop_devtools.devstack import free_port
from relayshop_devtools.repository import load_tool

ROOT = Path(__file__).resolve().parents[2]


def load_smoke() -> ModuleType:
    return load_tool("compose_smoke")


smoke = load_smoke()


@pytest.fixture
def sink() -> Iterator[tuple[str, str]]:
    otlp, query, health = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy/ci/otlp_sink.py"), str(otlp), str(query), str(health)]
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{health}/status").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "sink did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{otlp}", f"http://127.0.0.1:{query}"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0  # SIGTERM ends it cleanly (PID 1 in its container)


def export_span(endpoint: str, service: str, name: str) -> str:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{endpoint}/v1/traces")))
    with provider.get_tracer("test").start_as_current_span(name) as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    return trace_id


def test_sink_records_which_services_sent_spans_of_which_trace(sink: tuple[str, str]) -> None:
    otlp, query = sink
    first = export_span(otlp, "orders", "POST /api/orders")
    second = export_span(otlp, "payments", "charge")
    services = httpx.get(f"{query}/api/services").json()
    assert services["data"] == ["orders", "payments"]
    trace = httpx.get(f"{query}/api/traces/{first}").json()["data"][0]
    assert trace["traceID"] == first
    assert [p["serviceName"] for p in trace["processes"].values()] == ["orders"]
    assert first != second
    missing = httpx.get(f"{query}/api/traces/{'0' * 32}")
    assert missing.status_code == 404 and missing.json()["data"] is None


def test_sink_refuses_what_is_not_otlp(sink: tuple[str, str]) -> None:
    otlp, query = sink
    response = httpx.post(f"{otlp}/v1/traces", content=b"\xff\xff not protobuf")
    assert response.status_code == 400
    assert httpx.post(f"{otlp}/v1/logs", content=b"").status_code == 404
    assert httpx.get(f"{query}/api/services").json()["data"] == []


def test_debian_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/other.sources").write_text(
        "Types: deb\nURIs: https://example.invalid/node\nSuites: nodistro\nComponents: main\n"
    )
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\n# a comment: with a colon\nURIs: http://mirror.invalid/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n"
        "Components: main\n"
    )
    assert smoke.debian_mirror(tmp_path) == "http://mirror.invalid/debian"


def test_debian_mirror_from_one_line_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://old.invalid/debian buster main\n"
        "deb [arch=amd64] http://mirror.invalid/debian bookworm main contrib\n"
    )
    assert smoke.debian_mirror(tmp_path) == "http://mirror.invalid/debian"


def test_debian_mirror_missing_is_a_clear_failure(tmp_path: Path) -> None:
    with pytest.raises(smoke.SmokeFailed, match="no Debian bookworm"):
        smoke.debian_mirror(tmp_path)


def test_the_ci_override_reads_exactly_what_the_smoke_test_sets() -> None:
    override = (ROOT / "deploy/ci/compose.ci.yml").read_text()
    read = set(re.findall(r"\$\{([A-Z0-9_]+)", override))
    assert read == set(smoke.ci_variables("p", "u", "pg", "r", 1, 2))


def test_every_required_secret_gets_its_own_value(tmp_path: Path) -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", compose))
    assert "POSTGRES_PASSWORD" in required
    lines = smoke.secrets_env_file(tmp_path).read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines)
    assert set(values) == required
    assert len(set(values.values())) == len(values) and all(len(v) >= 32 for v in values.values())
