"""LiteLLM's logs as usage records: ``StandardLoggingPayload`` and ``LiteLLM_SpendLogs`` rows.

What LiteLLM writes (read in BerriAI/litellm, 2025-2026):

- ``StandardLoggingPayload`` (``litellm/types/utils.py``; docs ``docs/my-website/docs/proxy/
  logging_spec.md``) is the object every logging callback gets. The generic API logger
  (``litellm/integrations/generic_api/generic_api_callback.py``) posts it as a JSON array by default
  (``log_format`` ``json_array``), or as NDJSON, or one object per request (``single``).
  Fields used here: ``id`` (the provider's response id, else LiteLLM's call id), ``trace_id``,
  ``call_type`` (``acompletion``, ``aresponses``, ``anthropic_messages``, ``aembedding``...),
  ``status`` (``success``/``failure``), ``custom_llm_provider``, ``model``, ``model_group``,
  ``prompt_tokens``/``completion_tokens``/``total_tokens``, ``startTime``/``endTime`` (epoch seconds,
  floats), ``cache_hit``, ``request_tags``, ``end_user``, ``messages``, ``response`` (the
  OpenAI-shaped response, with ``usage``), ``model_parameters``, ``hidden_params``
  (``litellm_model_name``, ``usage_object``) and ``metadata`` (``StandardLoggingMetadata``:
  ``user_api_key_alias``, ``user_api_key_team_id``, ``user_api_key_team_alias``,
  ``user_api_key_end_user_id``, ``spend_logs_metadata``, ``requester_metadata``, ``usage_object``).
- ``LiteLLM_SpendLogs`` (``schema.prisma``; written by ``litellm/proxy/spend_tracking/
  spend_tracking_utils.py`` ``get_logging_payload``): ``request_id`` (the same id as the payload's
  ``id``; ``{id}_cache_hit{time}`` for cache hits), ``call_type``, ``spend``, ``prompt_tokens``,
  ``completion_tokens``, ``startTime``/``endTime`` (Prisma ``DateTime``: UTC, stored without offset),
  ``request_duration_ms``, ``model``, ``model_group``, ``custom_llm_provider``, ``team_id``,
  ``end_user``, ``cache_hit`` (the string ``"True"``/``"False"``), ``request_tags`` (JSON list),
  ``messages`` (``{}`` unless prompts are stored), ``session_id`` (the payload's ``trace_id``),
  ``status`` and ``metadata`` (JSON: ``SpendLogsMetadata`` with ``usage_object``, and
  ``additional_usage_values``: the usage object minus the three ``*_tokens`` totals).

Where the token kinds are. LiteLLM's usage (``litellm.Usage``) is OpenAI-shaped: ``prompt_tokens``
includes cache reads (``prompt_tokens_details.cached_tokens``, also ``cache_read_input_tokens``),
``completion_tokens`` includes ``completion_tokens_details.reasoning_tokens``. Anthropic cache
writes are ``cache_creation_input_tokens`` (also ``prompt_tokens_details.cache_creation_tokens``),
split by ``prompt_tokens_details.cache_creation_token_details.ephemeral_{5m,1h}_input_tokens``.
LiteLLM's Anthropic transformation adds the writes into ``prompt_tokens`` in current (and 2024)
releases, but some 2025 releases did not; so when ``prompt_tokens`` is smaller than reads + writes
the writes were left out and are added here. Likewise when reasoning exceeds ``completion_tokens``
(Gemini thoughts counted apart), output = completion + reasoning. A usage object in a provider's
own shape (Responses ``input_tokens``, Anthropic, Gemini) is passed on as ``usage`` for
``parse_usage`` to normalise, so the counting rules stay in ``finops/domain/usage.py``.

Mapping decisions:

- **id** = ``id`` / ``request_id``: stable across re-deliveries, and the same for both kinds, so a
  call logged by the callback and exported again from the spend logs under the same ``--source``
  is stored once (the spend-log copy, with fewer details, is reported as a conflict). Use the
  spend logs to backfill what came before the callback.
- **ts** = ``startTime``, converted through its decimal text (no float rounding), microseconds kept;
  an ISO string without offset is UTC, as Prisma stores it. **latency_ms** = end - start.
- **provider** = ``custom_llm_provider`` (aliases in ``finops/domain/providers.py``: ``vertex_ai`` ->
  ``gcp.vertex_ai``, ``bedrock`` -> ``aws.bedrock``...); **model** = ``model`` without a
  ``provider/`` prefix that repeats the provider. **service_tier** from the response, else the usage,
  else the requested one (spend-log rows carry none: standard).
- **flow**, first found: a request tag ``finops.flow=NAME`` or ``flow:NAME`` (keys and teams can
  carry default tags in LiteLLM), ``metadata.spend_logs_metadata.finops_flow``,
  ``metadata.requester_metadata.finops_flow``; else ``unassigned``. Team and key are not guessed as
  flows: they become tags, which budgets can match.
- **tags**: ``team`` (team alias, else team id), ``key_alias``, ``model_group``, and each request
  tag ``finops.tag.KEY=VALUE``. **user** = ``end_user`` (pseudonymised by ``parse_usage``);
  **trace_id** = ``trace_id`` / ``session_id``. **status** ``failure`` -> ``error``; a failed call
  with no tokens is still a record (one request, $0).
- **prompt** (fingerprinted, then dropped): the text messages of a chat call, when logged.
  ``response`` text, keys, IPs and LiteLLM's ``response_cost``/``spend`` are never copied: finops
  prices every call itself, and reconciliation compares with the provider's bill, not LiteLLM's.
- **Skipped** (``None``): LiteLLM cache hits (no provider call) and call types that are not
  token-priced LLM calls (images, audio, moderation, files, batches, MCP tools...). Embeddings are
  kept: they are priced per input token (unpriced until the book has them).

Pure: the HTTP API (``POST /v1/litellm``) and ``finops ingest --kind litellm`` share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from finops.domain.providers import canonical_provider

__all__ = ["KINDS", "litellm_objects", "spend_log_records", "standard_logging_records"]

#: ``standard``: StandardLoggingPayload objects; ``spendlogs``: LiteLLM_SpendLogs rows.
KINDS = ("standard", "spendlogs")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CHAT_CALLS = frozenset(
    {
        "completion",
        "acompletion",
        "text_completion",
        "atext_completion",
        "responses",
        "aresponses",
        "anthropic_messages",
        "generate_content",
        "agenerate_content",
        "generate_content_stream",
        "agenerate_content_stream",
    }
)
_EMBEDDING_CALLS = frozenset({"embedding", "aembedding"})
_PROXIED_CALL = "pass_through_endpoint"  # kept when LiteLLM counted tokens for it
_TIERS = frozenset({"default", "auto", "standard", "flex", "priority", "batch", "scale", "on_demand"})
_REDACTED = "redacted-by-litellm"


def _map(value: Any) -> Mapping[str, Any]:
    """A JSON object, also when a database export left it as JSON text."""
    if isinstance(value, str) and value[:1] == "{":
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    if isinstance(value, str) and value[:1] == "[":
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _whole(value: Any) -> int | None:
    """A count as an int, or None when it is not one (parse_usage then says why)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _instant(value: Any) -> datetime | None:
    """Epoch seconds (via their decimal text: 1794000000.123456 stays .123456) or ISO 8601; naive is UTC."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            micros = (Decimal(repr(value)) * 1_000_000).to_integral_value(ROUND_HALF_EVEN)
            return _EPOCH + timedelta(microseconds=int(micros))
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip())
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, InvalidOperation):
        return None
    return None


def _ts(value: Any) -> Any:
    """``ts`` for the record: ISO text when readable, else the value as sent (parse_usage says why)."""
    instant = _instant(value)
    return instant.isoformat() if instant is not None else value


def _latency_ms(start: Any, end: Any) -> int | None:
    first, last = _instant(start), _instant(end)
    if first is None or last is None or last < first:
        return None
    return (last - first) // timedelta(milliseconds=1)


def _first_count(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return 0


def _litellm_counts(usage: Mapping[str, Any]) -> dict[str, Any]:
    """finops's inclusive counts from LiteLLM's OpenAI-shaped ``Usage`` (see the module docstring)."""
    details = _map(usage.get("prompt_tokens_details"))
    raw = {
        "input_tokens": usage.get("prompt_tokens") or 0,
        "cached_input_tokens": _first_count(
            usage.get("cache_read_input_tokens"), details.get("cached_tokens")
        ),
        "cache_write_tokens": _first_count(
            usage.get("cache_creation_input_tokens"), details.get("cache_creation_tokens")
        ),
        "output_tokens": usage.get("completion_tokens") or 0,
        "reasoning_tokens": _first_count(
            _map(usage.get("completion_tokens_details")).get("reasoning_tokens")
        ),
    }
    counts = {name: _whole(value) for name, value in raw.items()}
    prompt, reads, writes = (
        counts["input_tokens"],
        counts["cached_input_tokens"],
        counts["cache_write_tokens"],
    )
    completion, reasoning = counts["output_tokens"], counts["reasoning_tokens"]
    if prompt is None or reads is None or writes is None or completion is None or reasoning is None:
        return raw  # not whole numbers: parse_usage rejects them by name
    split = _map(details.get("cache_creation_token_details") or usage.get("cache_creation_token_details"))
    hour = _whole(split.get("ephemeral_1h_input_tokens")) or 0
    if hour > writes:
        hour = 0
    if prompt < reads + writes:  # this LiteLLM release left the cache writes out of prompt_tokens
        prompt += writes
    if completion < reasoning:  # reasoning counted apart (Gemini thoughts)
        completion += reasoning
    out: dict[str, Any] = {
        "input_tokens": prompt,
        "cached_input_tokens": reads,
        "cache_write_tokens": writes - hour,
        "cache_write_1h_tokens": hour,
        "output_tokens": completion,
        "reasoning_tokens": reasoning,
    }
    return out


def _counts(usage: Mapping[str, Any], prompt: Any, completion: Any) -> dict[str, Any]:
    """Count fields (or a provider-shaped ``usage``) for the record; totals when there is no usage."""
    if "prompt_tokens" in usage or "completion_tokens" in usage:
        return _litellm_counts(usage)
    if usage:
        return {"usage": dict(usage)}
    return {"input_tokens": prompt or 0, "output_tokens": completion or 0}


def _model(model: Any, provider: str | None) -> Any:
    """``anthropic/claude-...`` -> ``claude-...`` when the prefix is the provider itself."""
    if not isinstance(model, str) or "/" not in model or not provider:
        return model
    prefix, rest = model.split("/", 1)
    same = prefix == provider or canonical_provider(prefix) == canonical_provider(provider)
    return rest if same and rest else model


def _flow(request_tags: list[Any], metadata: Mapping[str, Any]) -> str | None:
    for tag in request_tags:
        if isinstance(tag, str):
            for prefix in ("finops.flow=", "flow:"):
                if tag.startswith(prefix) and tag[len(prefix) :].strip():
                    return tag[len(prefix) :].strip()
    for key in ("spend_logs_metadata", "requester_metadata"):
        flow = _text(_map(metadata.get(key)).get("finops_flow"))
        if flow:
            return flow
    return None


def _tags(
    request_tags: list[Any], metadata: Mapping[str, Any], team_id: Any, model_group: Any
) -> dict[str, str]:
    tags: dict[str, str] = {}
    team = _text(metadata.get("user_api_key_team_alias")) or _text(team_id)
    if team:
        tags["team"] = team
    key_alias = _text(metadata.get("user_api_key_alias"))
    if key_alias:
        tags["key_alias"] = key_alias
    group = _text(model_group)
    if group:
        tags["model_group"] = group
    for tag in request_tags:
        if isinstance(tag, str) and tag.startswith("finops.tag."):
            key, sep, value = tag.removeprefix("finops.tag.").partition("=")
            if sep and key and value:
                tags[key] = value
    return tags


def _prompt(messages: Any) -> str | list[dict[str, Any]] | None:
    """The text of the messages, for fingerprinting: tool calls and images have none."""
    if isinstance(messages, str):
        text = messages.strip()
        if text[:1] == "[":
            return _prompt(_list(text))
        return None if not text or text == "{}" or text == _REDACTED else messages
    if not isinstance(messages, list):
        return None
    kept: list[dict[str, Any]] = []
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else message
        if isinstance(content, list):
            parts = [p for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
            content = [{"type": "text", "text": p["text"]} for p in parts] or None
        if isinstance(content, str | list) and content and content != _REDACTED:
            kept.append(
                {"role": message.get("role") if isinstance(message, Mapping) else None, "content": content}
            )
    return kept or None


def _tier(*candidates: Any) -> str | None:
    for value in candidates:
        if isinstance(value, str) and value.lower() in _TIERS:
            return value.lower()
    return None


def _tool_calls(response: Mapping[str, Any]) -> int | None:
    choices = response.get("choices")
    if not isinstance(choices, list):
        return None
    return sum(
        len(_list(_map(choice.get("message")).get("tool_calls")))
        for choice in choices
        if isinstance(choice, Mapping)
    )


def _priced_call(call_type: Any, prompt: Any, completion: Any) -> bool:
    """Whether this log entry is a token-priced LLM call (unknown call types are not)."""
    if call_type is None or call_type == "":
        return True  # older payloads: assume a completion
    name = str(call_type).removeprefix("litellm.")
    if name in _CHAT_CALLS or name in _EMBEDDING_CALLS:
        return True
    return name == _PROXIED_CALL and bool(_whole(prompt) or _whole(completion))


def _cache_hit(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _record(
    *,
    rid: Any,
    start: Any,
    end: Any,
    duration_ms: Any,
    provider_raw: Any,
    model: Any,
    counts: dict[str, Any],
    metadata: Mapping[str, Any],
    request_tags: list[Any],
    team_id: Any,
    model_group: Any,
    status: Any,
    user: Any,
    trace_id: Any,
    call_type: Any,
    messages: Any,
    tier: str | None,
) -> dict[str, Any]:
    provider = _text(provider_raw)
    record: dict[str, Any] = {
        "id": rid,
        "model": _model(model, provider),
        "flow": _flow(request_tags, metadata) or "unassigned",
        "tags": _tags(request_tags, metadata, team_id, model_group),
        "status": status or "ok",
        **counts,
    }
    if start is not None:
        record["ts"] = _ts(start)
    if provider:
        record["provider"] = provider
    latency = _whole(duration_ms)
    record["latency_ms"] = latency if latency is not None else _latency_ms(start, end)
    if tier:
        record["service_tier"] = tier
    if user is not None and user != "":
        record["user"] = user
    if trace_id is not None and trace_id != "":
        record["trace_id"] = trace_id
    if str(call_type or "").removeprefix("litellm.") not in _EMBEDDING_CALLS:
        prompt = _prompt(messages)
        if prompt is not None:
            record["prompt"] = prompt
    return record


def _from_payload(item: Mapping[str, Any]) -> dict[str, Any] | None:
    call_type = item.get("call_type")
    if _cache_hit(item.get("cache_hit")) or not _priced_call(
        call_type, item.get("prompt_tokens"), item.get("completion_tokens")
    ):
        return None
    metadata = _map(item.get("metadata"))
    hidden = _map(item.get("hidden_params"))
    response = _map(item.get("response"))
    usage = (
        _map(metadata.get("usage_object")) or _map(response.get("usage")) or _map(hidden.get("usage_object"))
    )
    record = _record(
        rid=item.get("id"),
        start=item.get("startTime"),
        end=item.get("endTime"),
        duration_ms=None,
        provider_raw=item.get("custom_llm_provider"),
        model=item.get("model") or hidden.get("litellm_model_name"),
        counts=_counts(usage, item.get("prompt_tokens"), item.get("completion_tokens")),
        metadata=metadata,
        request_tags=_list(item.get("request_tags")),
        team_id=metadata.get("user_api_key_team_id"),
        model_group=item.get("model_group"),
        status=item.get("status"),
        user=item.get("end_user") or metadata.get("user_api_key_end_user_id"),
        trace_id=item.get("trace_id"),
        call_type=call_type,
        messages=item.get("messages"),
        tier=_tier(
            response.get("service_tier"),
            usage.get("service_tier"),
            _map(item.get("model_parameters")).get("service_tier"),
        ),
    )
    calls = _tool_calls(response)
    if calls:
        record["tool_calls"] = calls
    return record


def _from_spend_log(row: Mapping[str, Any]) -> dict[str, Any] | None:
    call_type = row.get("call_type")
    if _cache_hit(row.get("cache_hit")) or not _priced_call(
        call_type, row.get("prompt_tokens"), row.get("completion_tokens")
    ):
        return None
    metadata = _map(row.get("metadata"))
    usage = _map(metadata.get("usage_object"))
    if not usage and _map(metadata.get("additional_usage_values")):
        # LiteLLM split its usage object: the three totals are columns, the rest is here.
        usage = {
            **_map(metadata.get("additional_usage_values")),
            "prompt_tokens": row.get("prompt_tokens"),
            "completion_tokens": row.get("completion_tokens"),
        }
    return _record(
        rid=row.get("request_id"),
        start=row.get("startTime"),
        end=row.get("endTime"),
        duration_ms=row.get("request_duration_ms"),
        provider_raw=row.get("custom_llm_provider"),
        model=row.get("model"),
        counts=_counts(usage, row.get("prompt_tokens"), row.get("completion_tokens")),
        metadata=metadata,
        request_tags=_list(row.get("request_tags")),
        team_id=row.get("team_id"),
        model_group=row.get("model_group"),
        status=row.get("status") or metadata.get("status"),
        user=row.get("end_user"),
        trace_id=row.get("session_id"),
        call_type=call_type,
        messages=row.get("messages"),
        tier=_tier(usage.get("service_tier")),
    )


def _each(obj: object, name: str) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, list):
        for index, item in enumerate(obj):
            yield f"{name}[{index}]", item
    else:
        yield name, obj


def standard_logging_records(obj: object) -> Iterator[tuple[str, Any]]:
    """Yield (location, record) for one ``StandardLoggingPayload`` or a JSON array of them.

    The record is a canonical dict for ``parse_usage``; ``None`` for a log entry that is not a
    billed LLM call (skip it); an item that is not a JSON object is yielded as is, for
    ``parse_usage`` to reject with that reason.
    """
    for where, item in _each(obj, "payload"):
        yield where, _from_payload(item) if isinstance(item, Mapping) else item


def spend_log_records(obj: object) -> Iterator[tuple[str, Any]]:
    """Yield (location, record) for one ``LiteLLM_SpendLogs`` row (keys as the Prisma columns) or a
    list of them; same contract as ``standard_logging_records``."""
    for where, item in _each(obj, "row"):
        yield where, _from_spend_log(item) if isinstance(item, Mapping) else item


def litellm_objects(obj: object, kind: str) -> Iterator[tuple[str, Any]]:
    """Records from a decoded body of the given kind (``standard`` or ``spendlogs``).

    Raises ``ValueError`` for another kind.
    """
    if kind == "standard":
        return standard_logging_records(obj)
    if kind == "spendlogs":
        return spend_log_records(obj)
    raise ValueError(f"unknown LiteLLM log kind {kind!r}: expected one of {', '.join(KINDS)}")
