"""parse_usage (docs/design.md §2): the canonical record, and provider-native usage normalised to it."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from finops.domain.usage import MAX_TOKENS_PER_REQUEST, RecordError, UsageRecord, parse_usage

KEY = b"test-pseudonymisation-key"
TS = datetime(2026, 11, 3, 10, 15, tzinfo=UTC)

TIERS = "standard, batch, flex, priority"


def rec(**fields: Any) -> dict[str, Any]:
    """A minimal valid record, with ``fields`` on top (a value of ``...`` removes the key)."""
    out: dict[str, Any] = {"id": "req_01", "ts": "2026-11-03T10:15:00Z", "model": "gpt-4o"}
    out.update(fields)
    return {k: v for k, v in out.items() if v is not ...}


def rejected(obj: object, **kwargs: Any) -> str:
    with pytest.raises(RecordError) as info:
        parse_usage(obj, **kwargs)
    assert info.value.reason == str(info.value)
    return info.value.reason


def counts(r: UsageRecord) -> tuple[int, int, int, int, int, int]:
    return (
        r.input_tokens,
        r.cached_input_tokens,
        r.cache_write_tokens,
        r.cache_write_1h_tokens,
        r.output_tokens,
        r.reasoning_tokens,
    )


# --- the canonical record ------------------------------------------------------------------------


def test_canonical_record_from_the_design_is_kept_field_for_field() -> None:
    obj = {
        "id": "req_01HV",
        "ts": "2026-11-03T10:15:00Z",
        "provider": "openai",
        "model": "gpt-4o-2024-08-06",
        "flow": "support-gpt-en",
        "tags": {"team": "support", "locale": "en", "env": "prod"},
        "input_tokens": 1200,
        "cached_input_tokens": 800,
        "cache_write_tokens": 0,
        "cache_write_1h_tokens": 0,
        "output_tokens": 300,
        "reasoning_tokens": 120,
        "service_tier": "standard",
        "requests": 1,
        "prompt_id": "support/answer@v3",
        "prompt": "(optional text)",
        "user": "u-42",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "session_id": "s-9",
        "status": "ok",
        "latency_ms": 830,
        "tool_calls": 2,
    }
    r = parse_usage(obj, user_key=KEY)
    assert r == UsageRecord(
        id="req_01HV",
        ts=TS,
        model="gpt-4o-2024-08-06",
        provider="openai",
        flow="support-gpt-en",
        tags={"team": "support", "locale": "en", "env": "prod"},
        input_tokens=1200,
        cached_input_tokens=800,
        cache_write_tokens=0,
        cache_write_1h_tokens=0,
        output_tokens=300,
        reasoning_tokens=120,
        service_tier="standard",
        requests=1,
        status="ok",
        prompt_id="support/answer@v3",
        user_hash=hmac.new(KEY, b"u-42", hashlib.sha256).hexdigest()[:32],
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        session_id="s-9",
        latency_ms=830,
        tool_calls=2,
    )


def test_minimal_record_gets_the_documented_defaults() -> None:
    r = parse_usage(rec())
    assert (r.flow, dict(r.tags), counts(r)) == ("unassigned", {}, (0, 0, 0, 0, 0, 0))
    assert (r.service_tier, r.requests, r.status, r.user_hash, r.latency_ms, r.tool_calls) == (
        "standard",
        1,
        "ok",
        None,
        None,
        None,
    )


def test_numeric_id_becomes_a_string_and_model_is_stripped() -> None:
    r = parse_usage(rec(id=12345, model="  gpt-4o-mini "))
    assert (r.id, r.model) == ("12345", "gpt-4o-mini")


# --- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-03T10:15:00Z", TS),
        ("2026-11-03T10:15:00z", TS),
        ("2026-11-03T10:15:00+00:00", TS),
        ("2026-11-03T11:15:00+01:00", TS),
        ("2026-11-03T05:15:00-05:00", TS),
        ("2026-11-03T10:15:00.250Z", datetime(2026, 11, 3, 10, 15, 0, 250000, tzinfo=UTC)),
        (1793700900, TS),
        (1793700900.25, datetime(2026, 11, 3, 10, 15, 0, 250000, tzinfo=UTC)),
        (1793700900.0, TS),
        ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
    ],
)
def test_ts_forms_are_read_as_aware_utc(ts: object, expected: datetime) -> None:
    r = parse_usage(rec(ts=ts))
    assert r.ts == expected
    assert r.ts.tzinfo is UTC


@pytest.mark.parametrize(
    ("ts", "fragment"),
    [
        ("2026-11-03T10:15:00", "has no UTC offset"),
        ("2026-11-03", "has no UTC offset"),
        ("yesterday", "is not ISO 8601"),
        ("2026-13-01T00:00:00Z", "is not ISO 8601"),
        ("", "is not ISO 8601"),
        (None, "ts must be ISO 8601 or epoch seconds, got NoneType"),
        (True, "ts must be ISO 8601 or epoch seconds, got True"),
        ([1793700900], "got list"),
        ("1999-12-31T23:59:59Z", "is outside 2000..2100"),
        ("2100-01-01T00:00:00Z", "is outside 2000..2100"),
        (0, "is outside 2000..2100"),
        (4102444800, "is outside 2000..2100"),
        (1e20, "is not a plausible epoch time"),
        (float("nan"), "is not a plausible epoch time"),
        (float("inf"), "is not a plausible epoch time"),
    ],
)
def test_bad_ts_is_rejected_with_the_reason(ts: object, fragment: str) -> None:
    assert fragment in rejected(rec(ts=ts))


@pytest.mark.parametrize("ts", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_ts_at_the_edge_of_the_calendar_is_a_record_error(ts: str) -> None:
    assert "outside 2000..2100" in rejected(rec(ts=ts))


# --- required fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"id": ...}, "missing required field id (a stable, sender-chosen string)"),
        ({"id": ""}, "missing required field id (a stable, sender-chosen string)"),
        ({"id": True}, "missing required field id (a stable, sender-chosen string)"),
        ({"id": {"a": 1}}, "missing required field id (a stable, sender-chosen string)"),
        ({"ts": ...}, "missing required field ts (ISO 8601 with offset, or epoch seconds)"),
        ({"model": ...}, "missing required field model"),
        ({"model": "   "}, "missing required field model"),
        ({"model": 4}, "missing required field model"),
        ({"id": "x" * 257}, "id is longer than 256 characters"),
        ({"model": "m" * 201}, "model is longer than 200 characters"),
    ],
)
def test_required_fields_are_enforced_with_a_clear_reason(fields: dict[str, Any], reason: str) -> None:
    assert rejected(rec(**fields)) == reason


def test_a_record_that_is_not_an_object_is_rejected() -> None:
    assert rejected(["id", "ts"]) == "a usage record must be a JSON object, got list"


# --- counts --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"input_tokens": -1}, "input_tokens is negative (-1)"),
        ({"output_tokens": -5.0}, "output_tokens is negative (-5)"),
        ({"input_tokens": 12.5}, "input_tokens must be a whole number, got 12.5"),
        ({"output_tokens": True}, "output_tokens must be a whole number, got True"),
        ({"input_tokens": "1200"}, "input_tokens must be a whole number, got a text of 4 characters"),
        ({"input_tokens": float("inf")}, "input_tokens must be a whole number, got inf"),
        (
            {"input_tokens": 10, "cached_input_tokens": False},
            "cached_input_tokens must be a whole number, got False",
        ),
        (
            {"input_tokens": 10, "reasoning_tokens": 1, "output_tokens": 0.5},
            "output_tokens must be a whole number, got 0.5",
        ),
    ],
)
def test_negative_fractional_boolean_and_text_counts_are_rejected(
    fields: dict[str, Any], reason: str
) -> None:
    assert rejected(rec(**fields)) == reason


def test_integral_float_counts_are_accepted_as_ints() -> None:
    r = parse_usage(rec(input_tokens=1200.0, output_tokens=300.0))
    assert (r.input_tokens, r.output_tokens) == (1200, 300)
    assert type(r.input_tokens) is int


def test_absurd_counts_are_rejected_per_request() -> None:
    assert parse_usage(rec(input_tokens=MAX_TOKENS_PER_REQUEST)).input_tokens == 10_000_000
    reason = rejected(rec(input_tokens=MAX_TOKENS_PER_REQUEST + 1))
    assert reason == (
        "token counts (10000001 in, 0 out) are absurd for 1 request(s); at most 10,000,000 per request"
    )
    assert "absurd" in rejected(rec(output_tokens=10**15))
    bucket = parse_usage(rec(requests=3, input_tokens=30_000_000, output_tokens=30_000_000))
    assert (bucket.requests, bucket.input_tokens) == (3, 30_000_000)
    assert "absurd for 3 request(s)" in rejected(rec(requests=3, input_tokens=30_000_001))


def test_cache_reads_and_writes_above_input_are_rejected() -> None:
    ok = parse_usage(
        rec(input_tokens=1000, cached_input_tokens=600, cache_write_tokens=300, cache_write_1h_tokens=100)
    )
    assert counts(ok)[:4] == (1000, 600, 300, 100)
    reason = rejected(
        rec(input_tokens=1000, cached_input_tokens=600, cache_write_tokens=300, cache_write_1h_tokens=101)
    )
    assert reason == (
        "cache reads and writes (600+300+101) exceed input_tokens (1000); "
        "counts are inclusive: input_tokens is the whole prompt"
    )


def test_reasoning_above_output_is_rejected() -> None:
    assert parse_usage(rec(output_tokens=300, reasoning_tokens=300)).reasoning_tokens == 300
    assert rejected(rec(output_tokens=300, reasoning_tokens=301)) == (
        "reasoning_tokens (301) exceed output_tokens (300); output_tokens includes reasoning"
    )


def test_null_requests_means_the_default_one_request() -> None:
    assert parse_usage(rec(requests=None)).requests == 1


# --- provider, tier, status, tags ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("o3-mini", "openai"),
        ("claude-sonnet-4-5-20250929", "anthropic"),
        ("gemini-2.5-flash", "gcp.gemini"),
        ("models/gemini-2.5-pro", "gcp.gemini"),
        ("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "aws.bedrock"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "aws.bedrock"),
        ("vertex_ai/claude-sonnet-4-5@20250929", "gcp.vertex_ai"),
        ("azure/gpt-4o", "azure.ai.openai"),
        ("openai/gpt-4o", "openai"),
        ("mistral-large-latest", "mistral_ai"),
        ("deepseek-chat", "deepseek"),
        ("grok-4", "x_ai"),
        ("llama-3.1-70b-instruct", "unknown"),
    ],
)
def test_provider_is_inferred_from_the_model_name(model: str, provider: str) -> None:
    assert parse_usage(rec(model=model)).provider == provider


@pytest.mark.parametrize(
    ("given", "provider"),
    [
        ("google", "gcp.gemini"),
        ("gemini", "gcp.gemini"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("bedrock", "aws.bedrock"),
        ("azure", "azure.ai.openai"),
        ("mistral", "mistral_ai"),
        ("xai", "x_ai"),
        (" Anthropic ", "anthropic"),
        ("together_ai", "together_ai"),
    ],
)
def test_provider_aliases_become_canonical_names(given: str, provider: str) -> None:
    assert parse_usage(rec(provider=given, model="gpt-4o")).provider == provider


@pytest.mark.parametrize(
    ("name", "given", "value"),
    [
        *(
            ("service_tier", given, "standard")
            for given in ("default", "auto", "on_demand", "standard", None)
        ),
        ("service_tier", "scale", "priority"),
        ("service_tier", "PRIORITY", "priority"),
        ("service_tier", "batches", "batch"),
        ("service_tier", "flex", "flex"),
        *(("status", given, "ok") for given in ("ok", "success", "Succeeded", "completed", None)),
        *(("status", given, "error") for given in ("error", "failed", "FAILURE")),
    ],
)
def test_service_tier_and_status_aliases(name: str, given: str | None, value: str) -> None:
    assert getattr(parse_usage(rec(**{name: given})), name) == value


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"service_tier": "turbo"},
            "service_tier is not one of standard, batch, flex, priority, got a text of 5 characters",
        ),
        ({"status": "timeout"}, "status is not ok or error, got a text of 7 characters"),
        ({"provider": 7}, "provider must be a short string"),
        ({"provider": "p" * 65}, "provider must be a short string"),
    ],
)
def test_unknown_tier_status_or_provider_is_rejected(fields: dict[str, Any], reason: str) -> None:
    assert rejected(rec(**fields)) == reason


def test_tags_numbers_and_booleans_become_strings() -> None:
    r = parse_usage(rec(tags={"team": "support", "retries": 3, "ratio": 0.5, "canary": True, "prod": False}))
    assert r.tags == {"team": "support", "retries": "3", "ratio": "0.5", "canary": "true", "prod": "false"}


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"team": {"name": "support"}}, "tags.team must be a string, number or boolean"),
        ({"locales": ["en", "de"]}, "tags.locales must be a string, number or boolean"),
        ({"team": None}, "tags.team must be a string, number or boolean"),
        (["team"], "tags must be an object of strings, got list"),
        ({f"k{i}": "v" for i in range(65)}, "tags has 65 keys; at most 64"),
    ],
)
def test_nested_or_malformed_tags_are_rejected(tags: object, reason: str) -> None:
    assert rejected(rec(tags=tags)) == reason


def test_tags_checked_once_are_remembered_by_their_strings_only() -> None:
    """Ingest remembers tag objects it has checked (a hot path); a number or a boolean equal to a
    remembered string's neighbour (1 == True) must not come back as that string, and a refused
    object is refused every time."""
    assert parse_usage(rec(tags={"n": "1"})).tags == {"n": "1"}
    assert parse_usage(rec(tags={"n": 1})).tags == {"n": "1"}
    assert parse_usage(rec(tags={"n": True})).tags == {"n": "true"}
    assert parse_usage(rec(tags={"n": "true"})).tags == {"n": "true"}
    assert parse_usage(rec(tags={"n": 1.0})).tags == {"n": "1.0"}
    for bad in ({"n": ["1"]}, {"n": "a\x00b"}, {" ": "x"}):
        for _ in range(3):
            with pytest.raises(RecordError):
                parse_usage(rec(tags=bad))


def test_the_memory_of_checked_tags_stays_bounded() -> None:
    from finops.domain import usage

    for i in range(usage._TAGS_SEEN_MAX * 2 + 7):
        assert parse_usage(rec(tags={"i": str(i)})).tags == {"i": str(i)}
    assert 0 < len(usage._TAGS_SEEN) <= usage._TAGS_SEEN_MAX


# --- user pseudonymisation -----------------------------------------------------------------------


def test_user_is_pseudonymised_with_hmac_sha256() -> None:
    raw = "alice@example.com"
    r = parse_usage(rec(user=raw), user_key=KEY)
    full = hmac.new(KEY, raw.encode(), hashlib.sha256).hexdigest()
    assert full == hmac.new(b"test-pseudonymisation-key", b"alice@example.com", "sha256").hexdigest()
    assert r.user_hash == full[:32]  # the first 128 bits, as hex
    assert parse_usage(rec(user=raw), user_key=b"another-key").user_hash != r.user_hash
    assert raw not in repr(r)
    assert all(raw not in str(getattr(r, f.name)) for f in dataclasses.fields(r))
    numeric = parse_usage(rec(user=42), user_key=KEY)  # hashed as its text
    assert numeric.user_hash == hmac.new(KEY, b"42", hashlib.sha256).hexdigest()[:32]


def test_user_without_a_key_is_rejected() -> None:
    assert rejected(rec(user="u-42")) == "record has a user but no pseudonymisation key is configured"
    assert parse_usage(rec(user=""), user_key=None).user_hash is None


# --- provider-native usage -----------------------------------------------------------------------


def test_openai_chat_completions_prompt_tokens_include_cached_and_completion_includes_reasoning() -> None:
    usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 192,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    r = parse_usage(rec(model="o4-mini-2025-04-16", usage=usage, service_tier="default"))
    assert counts(r) == (2006, 1920, 0, 0, 300, 192)
    assert (r.provider, r.service_tier) == ("openai", "standard")


def test_openai_chat_completions_without_details_counts_zero_cached_and_reasoning() -> None:
    usage = {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
    assert counts(parse_usage(rec(usage=usage))) == (19, 0, 0, 0, 10, 0)


def test_openai_chat_cached_above_prompt_is_rejected() -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 101}}
    assert "exceed input_tokens (100)" in rejected(rec(usage=usage))


def test_openai_native_negative_count_names_the_usage_field() -> None:
    assert rejected(rec(usage={"prompt_tokens": -3, "completion_tokens": 1})) == (
        "usage.prompt_tokens is negative (-3)"
    )


def test_openai_responses_usage_details() -> None:
    usage = {
        "input_tokens": 5200,
        "input_tokens_details": {"cached_tokens": 4096},
        "output_tokens": 870,
        "output_tokens_details": {"reasoning_tokens": 640},
        "total_tokens": 6070,
    }
    assert counts(parse_usage(rec(model="gpt-5", usage=usage))) == (5200, 4096, 0, 0, 870, 640)


def test_anthropic_input_excludes_cache_reads_and_writes() -> None:
    usage = {
        "input_tokens": 2095,
        "output_tokens": 503,
        "cache_creation_input_tokens": 2051,
        "cache_read_input_tokens": 4102,
        "server_tool_use": {"web_search_requests": 0},
        "service_tier": "standard",
    }
    r = parse_usage(rec(model="claude-sonnet-4-5-20250929", usage=usage))
    assert counts(r) == (2095 + 4102 + 2051, 4102, 2051, 0, 503, 0)
    assert (r.input_tokens, r.provider) == (8248, "anthropic")


def test_anthropic_cache_creation_splits_5m_and_1h_writes() -> None:
    usage = {
        "input_tokens": 50,
        "output_tokens": 200,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 10000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        "service_tier": "standard",
    }
    r = parse_usage(rec(model="claude-opus-4-5", usage=usage))
    assert counts(r) == (50 + 10000 + 3000, 10000, 1000, 2000, 200, 0)


def test_anthropic_split_without_total_is_used_as_is() -> None:
    usage = {
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 700},
    }
    assert counts(parse_usage(rec(model="claude-haiku-4-5", usage=usage))) == (710, 0, 0, 700, 1, 0)


def test_anthropic_split_that_does_not_add_up_is_rejected() -> None:
    usage = {
        "input_tokens": 50,
        "output_tokens": 200,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 1999},
    }
    assert rejected(rec(model="claude-opus-4-5", usage=usage)) == (
        "usage.cache_creation splits 1000+1999 tokens but cache_creation_input_tokens is 3000"
    )


def test_anthropic_service_tier_is_taken_from_usage_unless_the_record_names_one() -> None:
    usage = {
        "input_tokens": 100,
        "output_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "service_tier": "priority",
    }
    model = "claude-sonnet-4-5"
    assert parse_usage(rec(model=model, usage=usage)).service_tier == "priority"
    assert parse_usage(rec(model=model, usage=usage, service_tier="batch")).service_tier == "batch"
    usage["service_tier"] = "express"
    assert "service_tier is not one of standard, batch, flex, priority, got a text of 7" in rejected(
        rec(model=model, usage=usage)
    )


GEMINI_CAMEL = {
    "promptTokenCount": 12000,
    "cachedContentTokenCount": 8000,
    "candidatesTokenCount": 1179,
    "thoughtsTokenCount": 1136,
    "totalTokenCount": 14315,
    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12000}],
    "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 8000}],
}
GEMINI_SNAKE = {
    "prompt_token_count": 12000,
    "cached_content_token_count": 8000,
    "candidates_token_count": 1179,
    "thoughts_token_count": 1136,
    "total_token_count": 14315,
    "tool_use_prompt_token_count": None,
}


@pytest.mark.parametrize("key", ["usage", "usageMetadata"])
@pytest.mark.parametrize("meta", [GEMINI_CAMEL, GEMINI_SNAKE], ids=["camelCase", "snake_case"])
def test_gemini_candidates_exclude_thoughts(key: str, meta: dict[str, Any]) -> None:
    r = parse_usage(rec(model="gemini-2.5-pro", **{key: meta}))
    assert counts(r) == (12000, 8000, 0, 0, 1179 + 1136, 1136)
    assert r.input_tokens + r.output_tokens == 14315  # the provider's totalTokenCount
    assert r.provider == "gcp.gemini"


def test_gemini_missing_counts_are_zero() -> None:
    meta = {"promptTokenCount": 8, "totalTokenCount": 8}
    r = parse_usage(rec(model="gemini-2.5-flash", usageMetadata=meta))
    assert counts(r) == (8, 0, 0, 0, 0, 0)


def test_gemini_tool_use_prompt_counts_as_input() -> None:
    meta = {
        "promptTokenCount": 300,
        "toolUsePromptTokenCount": 450,
        "candidatesTokenCount": 90,
        "totalTokenCount": 840,
    }
    r = parse_usage(rec(model="gemini-2.5-flash", usageMetadata=meta))
    assert counts(r) == (750, 0, 0, 0, 90, 0)


def test_gemini_cached_above_prompt_is_rejected() -> None:
    meta = {"promptTokenCount": 100, "cachedContentTokenCount": 101, "candidatesTokenCount": 1}
    assert "exceed input_tokens (100)" in rejected(rec(model="gemini-2.5-pro", usageMetadata=meta))


def test_usage_without_known_counts_is_rejected() -> None:
    assert "usage has no token counts finops knows" in rejected(rec(usage={"total_tokens": 29}))
    assert rejected(rec(usage=[19, 10])) == "usage must be an object"
