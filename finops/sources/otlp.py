"""OpenTelemetry traces (OTLP/JSON ``ExportTraceServiceRequest``) as usage records.

A span is an LLM call when it carries GenAI usage attributes
(``gen_ai.usage.input_tokens`` / ``output_tokens``, or the older ``prompt_tokens`` /
``completion_tokens``); other spans are skipped, not rejected. The record id is
``traceId:spanId`` (stable across re-exports), the time the span's end. The flow comes
from the ``finops.flow`` attribute of the span, else of its resource; ``finops.tag.KEY``
attributes become tags. Pure: the HTTP API (issue 5) and ``finops ingest --kind otlp`` share it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["span_records"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COUNTS = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
    "cached_input_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
    ),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.reasoning_tokens"),
}


def _value(value: Mapping[str, Any]) -> Any:
    """An OTLP AnyValue as Python (int64 arrives as a JSON string)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return value["doubleValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [_value(v) for v in value["arrayValue"].get("values", [])]
    return None


def _attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    out: dict[str, Any] = {}
    for item in items:
        if (
            isinstance(item, Mapping)
            and isinstance(item.get("key"), str)
            and isinstance(item.get("value"), Mapping)
        ):
            out[item["key"]] = _value(item["value"])
    return out


def _first(attrs: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if attrs.get(name) is not None:
            return attrs[name]
    return None


def _ts(span: Mapping[str, Any]) -> str | None:
    nanos: Any = span.get("endTimeUnixNano") or span.get("startTimeUnixNano")
    try:
        value = int(nanos)
    except (TypeError, ValueError):
        return None
    try:
        return (_EPOCH + timedelta(microseconds=value // 1000)).isoformat()
    except OverflowError:  # past the year 9999: the record is rejected for its missing ts
        return None


def span_records(request: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Yield (location, usage record) per span; ``None`` for spans that are not LLM calls.

    The record is in finops's canonical shape, to be validated by ``parse_usage`` like any other.
    """
    for r_index, resource_spans in enumerate(request.get("resourceSpans") or []):
        resource = _attributes((resource_spans.get("resource") or {}).get("attributes"))
        for s_index, scope in enumerate(resource_spans.get("scopeSpans") or []):
            for index, span in enumerate(scope.get("spans") or []):
                where = f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{index}]"
                attrs = {**resource, **_attributes(span.get("attributes"))}
                if _first(attrs, _COUNTS["input_tokens"] + _COUNTS["output_tokens"]) is None:
                    yield where, None
                    continue
                record: dict[str, Any] = {
                    "id": f"{span.get('traceId', '')}:{span.get('spanId', '')}",
                    "ts": _ts(span),
                    "model": _first(attrs, ("gen_ai.response.model", "gen_ai.request.model")),
                    "provider": _first(attrs, ("gen_ai.provider.name", "gen_ai.system")),
                    "flow": attrs.get("finops.flow") or "unassigned",
                    "trace_id": span.get("traceId") or None,
                    "session_id": attrs.get("gen_ai.conversation.id") or attrs.get("session.id"),
                    "status": "error"
                    if (span.get("status") or {}).get("code") in (2, "STATUS_CODE_ERROR")
                    else "ok",
                    "tags": {
                        k.removeprefix("finops.tag."): v
                        for k, v in attrs.items()
                        if k.startswith("finops.tag.")
                    },
                }
                tier = attrs.get("gen_ai.openai.response.service_tier") or attrs.get(
                    "openai.response.service_tier"
                )
                if tier:
                    record["service_tier"] = tier
                for name, keys in _COUNTS.items():
                    value = _first(attrs, keys)
                    if value is not None:
                        record[name] = value
                yield where, record
