"""Logs as one JSON object per line, each with the trace_id and span_id of the request it is about.

    {"ts": "2025-01-01T12:00:00.123Z", "level": "INFO", "logger": "relayshop_platform.logs",
     "service": "orders", "message": "POST /api/orders 201", "trace_id": "4bf9...", "span_id":
     "00f0...", "method": "POST", "path": "/api/orders", "status": 201, "duration_ms": 41.2,
     "request_id": "..."}

setup_logging() sends every logger (uvicorn's too) through one handler on stderr.
AccessLogMiddleware writes the one access line per request (and feeds the request metrics,
metrics.py): the path, never the query string (RFC 6750 2.3 lets a token travel there) and never
a header. uvicorn's own access log is switched off for the same reason.
``RELAYSHOP_LOG_FORMAT=text`` reads better in a terminal; it carries the same fields.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import observe_request
from .settings import PlatformSettings

access_log = logging.getLogger(__name__)
# Requests neither logged nor counted: probes and scrapes arrive every few seconds and say nothing.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# What every LogRecord has; anything else on a record came from ``extra=`` and is logged too.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "color_message"}


def _trace_ids() -> tuple[str | None, str | None]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _trace_ids()  # formatted in the caller's context: its span
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "service": self.service,
            "message": record.getMessage(),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s " + service + " %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = _trace_ids()
        text = super().format(record)
        return f"{text} trace_id={trace_id} span_id={span_id}" if trace_id else text


_HANDLER_MARK = "_relayshop_handler"


def setup_logging(settings: PlatformSettings) -> None:
    """Idempotent: replaces the handler it installed before and leaves any other handler alone
    (pytest's log capture, for one)."""
    formatter_class = JsonFormatter if settings.log_format == "json" else TextFormatter
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_class(settings.service_name))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # uvicorn configured its loggers before it built our app: route them through our handler.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # uvicorn's access line carries the query string; ours (below) does not.
    logging.getLogger("uvicorn.access").disabled = True
    logging.captureWarnings(True)  # Python's warnings as log lines too, not raw stderr text
    # httpx logs every outgoing call at INFO; the CLIENT span of each call already tells it.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def log_request(method: str, path: str, status: int, seconds: float, request_id: str) -> None:
    access_log.info(
        "%s %s %d",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "request_id": request_id,
        },
    )


class AccessLogMiddleware:
    """Plain ASGI: one access line and one metrics observation per request.

    Installed inside RequestIdMiddleware (for the request id); FastAPI's telemetry wraps the whole
    middleware stack, so the line carries the request's trace_id and span_id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            seconds = time.perf_counter() - started
            route = scope.get("route")
            # The template, not the path: /api/orders/{order_id} is one time series, not one
            # per order. A path no route matched is "unmatched" for the same reason.
            template = getattr(route, "path", None) or "unmatched"
            observe_request(scope["method"], template, status, seconds)
            request_id = scope.get("state", {}).get("request_id", "")
            log_request(scope["method"], scope["path"], status, seconds, request_id)
