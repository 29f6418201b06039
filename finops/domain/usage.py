"""The usage record (docs/design.md §2): validation and normalisation of one LLM call.

``parse_usage`` turns one decoded JSON object into a ``UsageRecord`` or raises
``RecordError`` with a reason a person can act on. Counts are inclusive, as
OpenAI and OpenTelemetry count them: ``input_tokens`` includes cache reads and
writes, ``output_tokens`` includes reasoning. Provider-native usage objects
(OpenAI Chat Completions and Responses, Anthropic Messages, Gemini
``usageMetadata``) are normalised to that.

Hand-written rather than a pydantic model: it runs once per ingested line and
is the hot path of ingest (see bench/ingest.py).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from finops.domain.providers import canonical_provider, infer_provider
from finops.domain.text import TextError, check_name, check_text, has_forbidden, named, shown

__all__ = [
    "COUNT_FIELDS",
    "MAX_TOKENS_PER_REQUEST",
    "SERVICE_TIERS",
    "RecordError",
    "UsageRecord",
    "parse_timestamp",
    "parse_usage",
]

SERVICE_TIERS = ("standard", "batch", "flex", "priority")
_TIER_ALIASES = {
    "standard": "standard",
    "default": "standard",
    "auto": "standard",
    "on_demand": "standard",
    "batch": "batch",
    "batches": "batch",
    "flex": "flex",
    "priority": "priority",
    "scale": "priority",
}
_STATUS_ALIASES = {
    "ok": "ok",
    "success": "ok",
    "succeeded": "ok",
    "completed": "ok",
    "error": "error",
    "failed": "error",
    "failure": "error",
}
COUNT_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
)
#: No single call has a context this large; above it a count is a bug upstream, not usage.
MAX_TOKENS_PER_REQUEST = 10_000_000
#: One record may sum many calls (a gateway's minute), not more: cost and sums stay in 64 bits.
MAX_REQUESTS = 1_000_000
#: A call that took longer than 24 days is a bug upstream.
MAX_LATENCY_MS = 2**31 - 1
_MIN_TS = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TS = datetime(2100, 1, 1, tzinfo=UTC)
_MAX_ID = 256
_NO_TAGS: Mapping[str, str] = {}
_STR_ONLY = {str}
_NAMES = ("model", "provider", "flow")  # never blank: people read them in tables and alerts


class RecordError(ValueError):
    """A record that cannot be stored; ``reason`` goes to the dead-letter table."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class UsageRecord:
    """One LLM call, or one bucket of a provider's usage report, normalised.

    Treat as immutable. (Not ``frozen``: a frozen dataclass sets each of these
    fields through ``object.__setattr__``, which doubles the cost of ingest's hot path.)
    """

    id: str
    ts: datetime  # aware, UTC
    model: str
    provider: str
    flow: str = "unassigned"
    tags: Mapping[str, str] = field(default_factory=dict)
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    service_tier: str = "standard"
    requests: int = 1
    status: str = "ok"
    prompt_id: str | None = None
    user_hash: str | None = None
    trace_id: str | None = None
    session_id: str | None = None
    latency_ms: int | None = None
    tool_calls: int | None = None
    #: The admission-control hold this call's cost settles (finops.usecases.admission); not stored.
    reservation_id: str | None = field(default=None, compare=False)
    #: The prompt's text, only while the record is being ingested: it is fingerprinted and
    #: counted, never stored (unless the operator opts in to a redacted preview).
    prompt_text: str | None = field(default=None, compare=False, repr=False)


def _lower_z(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        return None


def parse_timestamp(value: object) -> datetime:
    """ISO 8601 with an offset (``Z`` allowed) or epoch seconds, as an aware UTC datetime."""
    if isinstance(value, bool):
        raise RecordError(f"ts must be ISO 8601 or epoch seconds, got {shown(value)}")
    if isinstance(value, int | float):
        try:
            ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=round(value * 1_000_000))
        except (OverflowError, ValueError) as exc:
            raise RecordError(f"ts {shown(value)} is not a plausible epoch time") from exc
    elif isinstance(value, str):
        text = value.strip()
        parsed: datetime | None
        try:
            parsed = datetime.fromisoformat(text)  # Python 3.11 reads a trailing Z too
        except ValueError:
            parsed = _lower_z(text) if text[-1:] == "z" else None
        if parsed is None:
            raise RecordError("ts is not ISO 8601 (e.g. 2026-11-03T10:15:00Z)")
        if parsed.tzinfo is None:
            raise RecordError("ts has no UTC offset; add Z or +01:00")
        ts = parsed
        if ts.tzinfo is not UTC:
            try:
                ts = ts.astimezone(UTC)
            except OverflowError:
                raise RecordError("ts is outside 2000..2100") from None
    else:
        raise RecordError(f"ts must be ISO 8601 or epoch seconds, got {type(value).__name__}")
    if not _MIN_TS <= ts < _MAX_TS:
        raise RecordError(f"ts is outside 2000..2100, got the year {ts.year}")
    return ts


#: Above this a count is not a count (and would overflow a 64-bit column or a sum of them).
MAX_COUNT = 10**15


def _count(obj: Mapping[str, Any], name: str, label: str | None = None, maximum: int = MAX_COUNT) -> int:
    value = obj.get(name)
    if value is None:
        return 0
    if value.__class__ is int and 0 <= value <= maximum:  # the common case, first
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{label or name} must be a whole number, got {shown(value)}")
    if isinstance(value, float):
        if not value.is_integer():
            raise RecordError(f"{label or name} must be a whole number, got {shown(value)}")
        value = int(value)
    if value < 0:
        raise RecordError(f"{label or name} is negative ({shown(value)})")
    if value > maximum:
        raise RecordError(f"{label or name} is larger than {maximum:,}")
    return value


def _sub(obj: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    inner = obj.get(name)
    return inner if isinstance(inner, Mapping) else {}


def _text(
    obj: Mapping[str, Any], name: str, limit: int = 512, *, check: Callable[[str, str, int], str] = check_text
) -> str | None:
    """An optional text field (a number is taken as its digits), checked by ``check``.

    A plain string within ``limit`` is returned as is: :func:`parse_usage` scans all of a
    record's texts for forbidden characters in one pass (the hot path of ingest)."""
    value = obj.get(name)
    if value is None or value == "":
        return None
    if value.__class__ is str and len(value) <= limit and check is not _any_text:
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(f"{name} must be a string, got {type(value).__name__}")
    text = value if isinstance(value, str) else str(value) if abs(value) < 10**64 else "?" * (limit + 1)
    try:
        return check(text, name, limit)
    except TextError as exc:
        raise RecordError(str(exc)) from None


def _check_texts(texts: Mapping[str, str | None]) -> None:
    """Name the field at fault, once the one-pass scan in :func:`parse_usage` found one."""
    for name, text in texts.items():
        if text is not None:
            try:
                (check_name if name in _NAMES else check_text)(text, name, len(text))
            except TextError as exc:
                raise RecordError(str(exc)) from None


def _any_text(value: str, name: str, limit: int) -> str:
    """No rule but the length: for ``user``, which is hashed and never stored or shown."""
    if len(value) > limit:
        raise TextError(f"{name} is longer than {limit} characters")
    return value


def _normalise_usage(usage: Mapping[str, Any]) -> dict[str, int | str]:
    """Counts in finops's inclusive convention from a provider's own usage object."""
    if "promptTokenCount" in usage or "prompt_token_count" in usage or "candidatesTokenCount" in usage:
        g = {k.replace("_", "").lower(): v for k, v in usage.items()}
        prompt = _count(g, "prompttokencount", "usage.promptTokenCount")
        tool_prompt = _count(g, "tooluseprompttokencount", "usage.toolUsePromptTokenCount")
        cached = _count(g, "cachedcontenttokencount", "usage.cachedContentTokenCount")
        thoughts = _count(g, "thoughtstokencount", "usage.thoughtsTokenCount")
        candidates = _count(g, "candidatestokencount", "usage.candidatesTokenCount")
        return {
            "input_tokens": prompt + tool_prompt,
            "cached_input_tokens": cached,
            "output_tokens": candidates + thoughts,
            "reasoning_tokens": thoughts,
        }
    if "prompt_tokens" in usage or "completion_tokens" in usage:  # OpenAI Chat Completions
        return {
            "input_tokens": _count(usage, "prompt_tokens", "usage.prompt_tokens"),
            "cached_input_tokens": _count(
                _sub(usage, "prompt_tokens_details"),
                "cached_tokens",
                "usage.prompt_tokens_details.cached_tokens",
            ),
            "output_tokens": _count(usage, "completion_tokens", "usage.completion_tokens"),
            "reasoning_tokens": _count(
                _sub(usage, "completion_tokens_details"),
                "reasoning_tokens",
                "usage.completion_tokens_details.reasoning_tokens",
            ),
        }
    if (
        "cache_read_input_tokens" in usage
        or "cache_creation_input_tokens" in usage
        or ("cache_creation" in usage)
    ):  # Anthropic Messages: input_tokens EXCLUDES cache reads and writes
        base = _count(usage, "input_tokens", "usage.input_tokens")
        reads = _count(usage, "cache_read_input_tokens", "usage.cache_read_input_tokens")
        writes = _count(usage, "cache_creation_input_tokens", "usage.cache_creation_input_tokens")
        split = _sub(usage, "cache_creation")
        w5 = _count(split, "ephemeral_5m_input_tokens", "usage.cache_creation.ephemeral_5m_input_tokens")
        w1h = _count(split, "ephemeral_1h_input_tokens", "usage.cache_creation.ephemeral_1h_input_tokens")
        if split:
            if "cache_creation_input_tokens" in usage and w5 + w1h != writes:
                raise RecordError(
                    f"usage.cache_creation splits {w5}+{w1h} tokens but "
                    f"cache_creation_input_tokens is {writes}"
                )
        else:
            w5 = writes
        out: dict[str, int | str] = {
            "input_tokens": base + reads + w5 + w1h,
            "cached_input_tokens": reads,
            "cache_write_tokens": w5,
            "cache_write_1h_tokens": w1h,
            "output_tokens": _count(usage, "output_tokens", "usage.output_tokens"),
        }
        if isinstance(usage.get("service_tier"), str):
            out["service_tier"] = usage["service_tier"]
        return out
    if "input_tokens" in usage or "output_tokens" in usage:  # OpenAI Responses (inclusive)
        return {
            "input_tokens": _count(usage, "input_tokens", "usage.input_tokens"),
            "cached_input_tokens": _count(
                _sub(usage, "input_tokens_details"),
                "cached_tokens",
                "usage.input_tokens_details.cached_tokens",
            ),
            "output_tokens": _count(usage, "output_tokens", "usage.output_tokens"),
            "reasoning_tokens": _count(
                _sub(usage, "output_tokens_details"),
                "reasoning_tokens",
                "usage.output_tokens_details.reasoning_tokens",
            ),
        }
    raise RecordError(
        "usage has no token counts finops knows (OpenAI prompt_tokens/input_tokens, "
        "Anthropic cache_*_input_tokens, Gemini promptTokenCount)"
    )


#: Tag objects already checked, by their items: a service sends a few distinct ones, and checking
#: one took ~6 us of ingest's ~30 us a record. Only objects of strings are kept, so a hit has
#: the same strings (a string never equals a number); bounded in count and size, whatever the input.
_TAGS_SEEN: dict[tuple[tuple[str, str], ...], Mapping[str, str]] = {}
_TAGS_SEEN_MAX = 4096
#: Only objects of at most this many characters (keys and values) are remembered: a service's
#: few tag objects are small, and 4,096 of the largest valid ones would hold ~150 MB.
_TAGS_SEEN_CHARS = 512


def _tags(value: object) -> Mapping[str, str]:
    if not value:
        return _NO_TAGS
    key = None
    if value.__class__ is dict:
        try:
            key = tuple(value.items())
            seen = _TAGS_SEEN.get(key)
        except TypeError:  # a list or an object inside: unhashable, refused below
            key = seen = None
        if seen is not None:
            return seen
    if not isinstance(value, Mapping):
        raise RecordError(f"tags must be an object of strings, got {type(value).__name__}")
    if len(value) > 64:
        raise RecordError(f"tags has {len(value)} keys; at most 64")
    values = value.values()
    if (
        set(map(type, values)) == _STR_ONLY
        and max(map(len, values)) <= 256
        and max(map(len, value)) <= 128
        and not has_forbidden(" ".join(value) + " " + " ".join(values))
        and all(map(str.strip, value))
    ):
        # A copy, not the caller's object: a caller that changes its object afterwards must not
        # change this record, nor what the memo gives a later record (never checked then).
        checked = dict(value)
        if key is not None and sum(map(len, checked)) + sum(map(len, values)) <= _TAGS_SEEN_CHARS:
            if len(_TAGS_SEEN) >= _TAGS_SEEN_MAX:
                _TAGS_SEEN.clear()
            _TAGS_SEEN[key] = checked
        return checked  # JSON object keys are strings already; the whole check runs in C
    tags: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, Mapping | list) or item is None:
            raise RecordError(f"tags.{named(str(key))} must be a string, number or boolean")
        if isinstance(item, bool):
            text = str(item).lower()
        elif isinstance(item, str):
            text = item
        else:
            text = str(item) if abs(item) < 10**64 else "?" * 257
        try:
            check_name(str(key), "a tag key", 128)
            check_text(text, f"tags.{named(str(key))}", 256)
        except TextError as exc:
            raise RecordError(str(exc)) from None
        tags[str(key)] = text
    return tags


_MAX_PROMPT = 4_000_000


def _prompt_text(prompt: object) -> str | None:
    """A prompt as text: a string, or chat messages (``[{"role": ..., "content": ...}]``)."""
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, list):
        parts = []
        for message in prompt:
            content = message.get("content") if isinstance(message, Mapping) else message
            if isinstance(content, list):  # content parts: keep the text ones
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
            if not isinstance(content, str):
                raise RecordError("prompt must be text or a list of messages with text content")
            parts.append(content)
        text = "\n".join(parts)
    else:
        raise RecordError("prompt must be text or a list of messages")
    if len(text) > _MAX_PROMPT:
        raise RecordError(f"prompt is longer than {_MAX_PROMPT:,} characters")
    return text or None


def parse_usage(obj: object, *, user_key: bytes | None = None) -> UsageRecord:
    """Validate and normalise one decoded JSON object.

    ``user_key`` is the HMAC key that pseudonymises ``user``; a record carrying a
    user is refused without one, so a raw user id can never reach storage.
    Raises ``RecordError`` with the reason.
    """
    if not isinstance(obj, Mapping):
        raise RecordError(f"a usage record must be a JSON object, got {type(obj).__name__}")
    rid = obj.get("id")
    if rid is None or rid == "" or isinstance(rid, bool) or not isinstance(rid, str | int):
        raise RecordError("missing required field id (a stable, sender-chosen string)")
    rid = _text(obj, "id", _MAX_ID)
    assert rid is not None
    if "ts" not in obj:
        raise RecordError("missing required field ts (ISO 8601 with offset, or epoch seconds)")
    ts = parse_timestamp(obj["ts"])
    model = obj.get("model")
    if not isinstance(model, str) or not model.strip():
        raise RecordError("missing required field model")
    if model[0].isspace() or model[-1].isspace():
        model = model.strip()
    if len(model) > 200:
        raise RecordError("model is longer than 200 characters")

    provider_raw = obj.get("provider")
    if provider_raw is not None and (not isinstance(provider_raw, str) or len(provider_raw) > 64):
        raise RecordError("provider must be a short string")
    provider = canonical_provider(provider_raw) if provider_raw else infer_provider(model) or "unknown"

    native = obj.get("usage")
    if native is None:
        native = obj.get("usageMetadata")
    tier_hint = None
    if native is None or not obj.keys().isdisjoint(COUNT_FIELDS):
        inp = _count(obj, "input_tokens")
        cached = _count(obj, "cached_input_tokens")
        w5 = _count(obj, "cache_write_tokens")
        w1h = _count(obj, "cache_write_1h_tokens")
        out = _count(obj, "output_tokens")
        reasoning = _count(obj, "reasoning_tokens")
    else:
        if not isinstance(native, Mapping):
            raise RecordError("usage must be an object")
        counts = _normalise_usage(native)
        inp = int(counts.get("input_tokens", 0))
        cached = int(counts.get("cached_input_tokens", 0))
        w5 = int(counts.get("cache_write_tokens", 0))
        w1h = int(counts.get("cache_write_1h_tokens", 0))
        out = int(counts.get("output_tokens", 0))
        reasoning = int(counts.get("reasoning_tokens", 0))
        tier_hint = counts.get("service_tier")
    if cached + w5 + w1h > inp:
        raise RecordError(
            f"cache reads and writes ({cached}+{w5}+{w1h}) exceed input_tokens ({inp}); "
            "counts are inclusive: input_tokens is the whole prompt"
        )
    if reasoning > out:
        raise RecordError(
            f"reasoning_tokens ({reasoning}) exceed output_tokens ({out}); output_tokens includes reasoning"
        )

    requests = 1 if obj.get("requests") is None else _count(obj, "requests", maximum=MAX_REQUESTS)
    limit = MAX_TOKENS_PER_REQUEST * max(requests, 1)
    if inp > limit or out > limit:
        raise RecordError(
            f"token counts ({inp} in, {out} out) are absurd for {max(requests, 1)} request(s); "
            f"at most {MAX_TOKENS_PER_REQUEST:,} per request"
        )

    tier_raw: Any = obj.get("service_tier") or tier_hint or "standard"
    tier = (
        (_TIER_ALIASES.get(tier_raw) or _TIER_ALIASES.get(tier_raw.lower()))
        if isinstance(tier_raw, str)
        else None
    )
    if tier is None:
        raise RecordError(f"service_tier is not one of {', '.join(SERVICE_TIERS)}, got {shown(tier_raw)}")
    status_raw: Any = obj.get("status") or "ok"
    status = (
        (_STATUS_ALIASES.get(status_raw) or _STATUS_ALIASES.get(status_raw.lower()))
        if isinstance(status_raw, str)
        else None
    )
    if status is None:
        raise RecordError(f"status is not ok or error, got {shown(status_raw)}")

    flow = _text(obj, "flow", 128, check=check_name) or "unassigned"
    user = _text(obj, "user", check=_any_text)
    user_hash = None
    if user is not None:
        if user_key is None:
            raise RecordError("record has a user but no pseudonymisation key is configured")
        user_hash = hmac.new(user_key, user.encode(), hashlib.sha256).hexdigest()[:32]
    latency = tool_calls = None
    if obj.get("latency_ms") is not None:
        latency = _count(obj, "latency_ms", maximum=MAX_LATENCY_MS)
    if obj.get("tool_calls") is not None:
        tool_calls = _count(obj, "tool_calls", maximum=MAX_REQUESTS)

    prompt_id, trace_id, session_id = (
        _text(obj, "prompt_id"),
        _text(obj, "trace_id"),
        _text(obj, "session_id"),
    )
    # Every text in one scan (the hot path); the slow path names the field at fault.
    joined = (
        f"{rid} {model} {provider_raw or ''} {flow} {prompt_id or ''} {trace_id or ''} {session_id or ''}"
    )
    if has_forbidden(joined) or not flow.strip() or (provider_raw and not provider_raw.strip()):
        texts = {"id": rid, "model": model, "provider": provider_raw or None, "flow": flow}
        _check_texts({**texts, "prompt_id": prompt_id, "trace_id": trace_id, "session_id": session_id})
    reservation_id = _text(obj, "reservation_id", 64) if "reservation_id" in obj else None
    if reservation_id is not None and has_forbidden(reservation_id):
        raise RecordError("reservation_id contains a control character")
    prompt = obj.get("prompt")
    prompt_text = _prompt_text(prompt) if prompt is not None else None
    return UsageRecord(
        reservation_id=reservation_id,
        prompt_text=prompt_text,
        id=rid,
        ts=ts,
        model=model,
        provider=provider,
        flow=flow,
        tags=_tags(obj.get("tags")),
        input_tokens=inp,
        cached_input_tokens=cached,
        cache_write_tokens=w5,
        cache_write_1h_tokens=w1h,
        output_tokens=out,
        reasoning_tokens=reasoning,
        service_tier=tier,
        requests=requests,
        status=status,
        prompt_id=prompt_id,
        user_hash=user_hash,
        trace_id=trace_id,
        session_id=session_id,
        latency_ms=latency,
        tool_calls=tool_calls,
    )
