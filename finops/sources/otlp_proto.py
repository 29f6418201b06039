"""OTLP/HTTP protobuf (``application/x-protobuf``, the default protocol of OpenTelemetry's exporters)
decoded into the OTLP/JSON shape that :func:`finops.sources.otlp.span_records` reads.

Protobuf's JSON mapping writes ``bytes`` as base64, but OTLP/JSON writes trace and span ids as
hex (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): the ids are converted,
so a span exported once as protobuf and once as JSON has the same record id (stored once).
Enums stay integers, as OTLP/JSON requires.
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

__all__ = ["count_spans", "decode_export_request", "encode_export_response"]

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex(value: Any) -> Any:
    return base64.b64decode(value).hex() if isinstance(value, str) else value


def _parse(body: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise ValueError(f"not a protobuf ExportTraceServiceRequest: {exc}") from None
    return message


def count_spans(body: bytes) -> int:
    """Spans in a request, counted before anything is built from them (a body of millions of
    empty spans is refused before it costs gigabytes as dicts)."""
    message = _parse(body)
    return sum(len(scope.spans) for rs in message.resource_spans for scope in rs.scope_spans)


def decode_export_request(body: bytes) -> dict[str, Any]:
    """Raises ``ValueError`` with the reason when the body is not an ExportTraceServiceRequest."""
    message = _parse(body)
    doc: dict[str, Any] = MessageToDict(message, use_integers_for_enums=True)
    for resource_spans in doc.get("resourceSpans", []):
        for scope in resource_spans.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for name in _ID_FIELDS:
                    if name in span:
                        span[name] = _hex(span[name])
                for link in span.get("links", []):
                    for name in ("traceId", "spanId"):
                        if name in link:
                            link[name] = _hex(link[name])
    return doc


def encode_export_response(rejected: int, message: str) -> bytes:
    """An ExportTraceServiceResponse; ``partial_success`` only when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return bytes(response.SerializeToString())
