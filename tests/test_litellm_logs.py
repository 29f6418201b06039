"""LiteLLM's StandardLoggingPayload and LiteLLM_SpendLogs rows as usage records.

Payloads follow LiteLLM's own shapes: ``litellm/types/utils.py`` (StandardLoggingPayload,
StandardLoggingMetadata, Usage) and ``schema.prisma`` (LiteLLM_SpendLogs), as its generic API
logger and a JSON export of the table write them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.domain.usage import parse_usage
from finops.sources.litellm_logs import litellm_objects, spend_log_records, standard_logging_records
from finops.storage.tables import dead_letters, usage_records
from finops.usecases.ingest import ingest_litellm_paths
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger

START = 1794000000.123456  # 2026-11-06T21:20:00.123456Z


def payload(**fields: Any) -> dict[str, Any]:
    """A StandardLoggingPayload as LiteLLM's proxy logs a chat completion (fields overridable)."""
    base: dict[str, Any] = {
        "id": "chatcmpl-AqYHf0sL7mNn3y",
        "trace_id": "7f1c2d3e-aaaa-bbbb-cccc-0123456789ab",
        "call_type": "acompletion",
        "stream": False,
        "response_cost": 0.0038368,
        "response_cost_failure_debug_info": None,
        "status": "success",
        "custom_llm_provider": "openai",
        "total_tokens": 2500,
        "prompt_tokens": 2000,
        "completion_tokens": 500,
        "startTime": START,
        "endTime": START + 0.83,
        "completionStartTime": START + 0.41,
        "response_time": 0.83,
        "model_map_information": {"model_map_key": "o3-mini", "model_map_value": None},
        "model": "o3-mini",
        "model_id": "8f2a...",
        "model_group": "reasoning-small",
        "api_base": "https://api.openai.com/v1",
        "metadata": {
            "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
            "user_api_key_alias": "support-bot-prod",
            "user_api_key_team_id": "team-7",
            "user_api_key_team_alias": "support",
            "user_api_key_user_id": "dana@example.com",
            "user_api_key_end_user_id": None,
            "spend_logs_metadata": None,
            "requester_ip_address": "10.0.0.7",
            "requester_metadata": {},
            "usage_object": {
                "prompt_tokens": 2000,
                "completion_tokens": 500,
                "total_tokens": 2500,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 320, "audio_tokens": 0},
            },
        },
        "cache_hit": None,
        "cache_key": None,
        "saved_cache_cost": 0.0,
        "request_tags": ["flow:support-gpt-en", "finops.tag.locale=en", "jobID:214590dsff09fds"],
        "end_user": "customer-42",
        "requester_ip_address": "10.0.0.7",
        "messages": [
            {"role": "system", "content": "You answer support tickets."},
            {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function"}]},
        ],
        "response": {
            "id": "chatcmpl-AqYHf0sL7mNn3y",
            "object": "chat.completion",
            "model": "o3-mini-2025-01-31",
            "service_tier": "default",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "It ships today."}}],
        },
        "error_str": None,
        "model_parameters": {"reasoning_effort": "medium"},
        "hidden_params": {
            "model_id": "8f2a...",
            "cache_key": None,
            "api_base": "https://api.openai.com/v1",
            "response_cost": "0.0038368",
            "litellm_model_name": "o3-mini",
        },
    }
    base.update(fields)
    return base


#: Anthropic through LiteLLM: raw usage input 50, cache reads 4000, cache writes 1000 (5m) + 200 (1h),
#: output 400. Current LiteLLM adds reads and writes into prompt_tokens (5250).
ANTHROPIC_USAGE = {
    "prompt_tokens": 5250,
    "completion_tokens": 400,
    "total_tokens": 5650,
    "prompt_tokens_details": {
        "cached_tokens": 4000,
        "cache_creation_tokens": 1200,
        "cache_creation_token_details": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 200},
    },
    "completion_tokens_details": {"reasoning_tokens": 0},
    "cache_creation_input_tokens": 1200,
    "cache_read_input_tokens": 4000,
}


def anthropic_payload(**fields: Any) -> dict[str, Any]:
    item = payload(
        id="msg_01XFDUDYJgAACzvnptvVoYEL",
        custom_llm_provider="anthropic",
        model="claude-sonnet-4-5-20250929",
        model_group="claude",
        prompt_tokens=5250,
        completion_tokens=400,
        total_tokens=5650,
        request_tags=["finops.flow=code-review"],
        response={"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "usage": ANTHROPIC_USAGE},
    )
    item["metadata"] = {**item["metadata"], "usage_object": ANTHROPIC_USAGE}
    item.update(fields)
    return item


def failure_payload() -> dict[str, Any]:
    return payload(
        id="b980db26-9512-45cc-b1da-c511a363b83f",
        status="failure",
        model="gpt-4o",
        prompt_tokens=0,
        completion_tokens=0,
        total_tokens=0,
        response_cost=0.0,
        response=None,
        metadata={"user_api_key_team_alias": "support", "usage_object": None},
        error_str="litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached",
        error_information={"error_code": "429", "error_class": "RateLimitError", "llm_provider": "openai"},
    )


def embedding_payload() -> dict[str, Any]:
    return payload(
        id="e6a0c1e4-embed",
        call_type="aembedding",
        model="text-embedding-3-small",
        prompt_tokens=8,
        completion_tokens=0,
        total_tokens=8,
        messages=["Where is my order?"],
        response={"object": "list", "usage": {"prompt_tokens": 8, "total_tokens": 8}},
        metadata={"usage_object": {"prompt_tokens": 8, "completion_tokens": 0, "total_tokens": 8}},
    )


def only(found: Iterator[tuple[str, Any]]) -> dict[str, Any]:
    (where, record), *rest = list(found)
    assert not rest and record is not None, where
    assert isinstance(record, dict)
    return record


def test_openai_payload_keeps_cached_and_reasoning_tokens() -> None:
    record = only(standard_logging_records(payload()))
    assert record["id"] == "chatcmpl-AqYHf0sL7mNn3y"
    assert record["ts"] == "2026-11-06T21:20:00.123456+00:00"  # no float rounding of the microseconds
    assert (record["provider"], record["model"], record["flow"]) == ("openai", "o3-mini", "support-gpt-en")
    assert record["tags"] == {
        "team": "support",
        "key_alias": "support-bot-prod",
        "model_group": "reasoning-small",
        "locale": "en",
    }
    assert (
        record["input_tokens"],
        record["cached_input_tokens"],
        record["cache_write_tokens"],
        record["output_tokens"],
        record["reasoning_tokens"],
    ) == (2000, 1024, 0, 500, 320)
    assert (record["latency_ms"], record["service_tier"], record["status"]) == (830, "default", "success")
    assert (record["user"], record["trace_id"]) == ("customer-42", "7f1c2d3e-aaaa-bbbb-cccc-0123456789ab")
    # prompt text for the fingerprint only; nothing of the response, keys or addresses
    assert record["prompt"] == [
        {"role": "system", "content": "You answer support tickets."},
        {"role": "user", "content": [{"type": "text", "text": "Where is my order?"}]},
    ]
    assert "It ships today" not in json.dumps(record) and "10.0.0.7" not in json.dumps(record)
    assert "response_cost" not in record and "dana@example.com" not in json.dumps(record)
    parsed = parse_usage(record, user_key=b"k")
    assert (parsed.status, parsed.service_tier, parsed.prompt_text) == (
        "ok",
        "standard",
        "You answer support tickets.\nWhere is my order?",
    )


@pytest.mark.parametrize("prompt_tokens", [5250, 4050], ids=["writes-in-prompt", "writes-left-out"])
def test_anthropic_cache_writes_and_reads_from_either_litellm_convention(prompt_tokens: int) -> None:
    usage = {**ANTHROPIC_USAGE, "prompt_tokens": prompt_tokens}
    if prompt_tokens == 4050:  # 2025 releases: no cache_creation details, writes not in prompt_tokens
        usage["prompt_tokens_details"] = {"cached_tokens": 4000}
    item = anthropic_payload()
    item["metadata"]["usage_object"] = usage
    record = parse_usage(only(standard_logging_records(item)), user_key=b"k")
    assert (record.provider, record.model, record.flow) == (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "code-review",
    )
    expected_1h = 200 if prompt_tokens == 5250 else 0
    assert (
        record.input_tokens,
        record.cached_input_tokens,
        record.cache_write_tokens + record.cache_write_1h_tokens,
        record.cache_write_1h_tokens,
        record.output_tokens,
    ) == (5250, 4000, 1200, expected_1h, 400)


def test_usage_in_a_providers_own_shape_is_normalised_by_parse_usage() -> None:
    raw = {
        "input_tokens": 50,
        "cache_read_input_tokens": 4000,
        "cache_creation_input_tokens": 1200,
        "output_tokens": 400,
    }
    item = anthropic_payload(call_type="anthropic_messages", response=None)
    item["metadata"]["usage_object"] = raw
    record = only(standard_logging_records(item))
    assert record["usage"] == raw
    parsed = parse_usage(record, user_key=b"k")
    assert (parsed.input_tokens, parsed.cached_input_tokens, parsed.cache_write_tokens) == (5250, 4000, 1200)


def test_failures_embeddings_and_what_is_skipped() -> None:
    batch = [
        failure_payload(),
        embedding_payload(),
        payload(id="img-1", call_type="aimage_generation", prompt_tokens=0, completion_tokens=0),
        payload(id="chatcmpl-cached", cache_hit=True),
        payload(id="mcp-1", call_type="call_mcp_tool"),
    ]
    found = dict(standard_logging_records(batch))
    assert list(found) == ["payload[0]", "payload[1]", "payload[2]", "payload[3]", "payload[4]"]
    assert found["payload[2]"] is None and found["payload[3]"] is None and found["payload[4]"] is None
    failed = parse_usage(found["payload[0]"], user_key=b"k")
    assert (failed.status, failed.requests, failed.input_tokens, failed.output_tokens) == ("error", 1, 0, 0)
    embedded = parse_usage(found["payload[1]"], user_key=b"k")
    assert (embedded.model, embedded.input_tokens, embedded.prompt_text) == (
        "text-embedding-3-small",
        8,
        None,
    )


def spend_log_row(**fields: Any) -> dict[str, Any]:
    """A LiteLLM_SpendLogs row as `SELECT row_to_json(s) FROM "LiteLLM_SpendLogs" s` exports it."""
    row: dict[str, Any] = {
        "request_id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "call_type": "acompletion",
        "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
        "spend": 0.0123,
        "total_tokens": 5650,
        "prompt_tokens": 5250,
        "completion_tokens": 400,
        "startTime": "2026-11-06T21:20:00.123",
        "endTime": "2026-11-06T21:20:02.523",
        "request_duration_ms": 2400,
        "completionStartTime": "2026-11-06T21:20:00.900",
        "model": "anthropic/claude-sonnet-4-5",
        "model_id": "",
        "model_group": "claude",
        "custom_llm_provider": "anthropic",
        "api_base": "https://api.anthropic.com/v1/messages",
        "user": "dana@example.com",
        "metadata": {
            "user_api_key_alias": "review-bot",
            "user_api_key_team_alias": None,
            "status": "success",
            "additional_usage_values": {"completion_tokens_details": None, "prompt_tokens_details": None},
            "usage_object": ANTHROPIC_USAGE,
        },
        "cache_hit": "False",
        "cache_key": "Cache OFF",
        "request_tags": ["finops.flow=code-review"],
        "team_id": "team-9",
        "organization_id": None,
        "end_user": "",
        "requester_ip_address": None,
        "messages": {},
        "response": {},
        "session_id": "2f0d8c1e-1111-2222-3333-444455556666",
        "status": "success",
        "mcp_namespaced_tool_name": None,
        "agent_id": None,
        "proxy_server_request": {},
    }
    row.update(fields)
    return row


def test_spend_log_rows_with_usage_object_or_only_additional_usage_values() -> None:
    older = spend_log_row(
        request_id="chatcmpl-older",
        model="gpt-4o",
        custom_llm_provider="openai",
        prompt_tokens=1200,
        completion_tokens=300,
        startTime="2026-11-06 21:20:00.5",
        request_tags='["flow:support-gpt-en"]',  # a CSV export keeps JSON columns as text
        metadata=json.dumps(
            {
                "user_api_key_team_alias": "support",
                "additional_usage_values": {
                    "prompt_tokens_details": {"cached_tokens": 800},
                    "completion_tokens_details": {"reasoning_tokens": 0},
                },
            }
        ),
        request_duration_ms=None,
        endTime="2026-11-06 21:20:01.33",
    )
    first, second = (record for _, record in spend_log_records([spend_log_row(), older]))
    assert first is not None and second is not None
    assert first["ts"] == "2026-11-06T21:20:00.123000+00:00"  # Prisma DateTime: UTC without offset
    assert (first["model"], first["flow"], first["tags"]["team"], first["latency_ms"]) == (
        "claude-sonnet-4-5",
        "code-review",
        "team-9",
        2400,
    )
    assert "user" not in first  # end_user is empty; LiteLLM's internal user is not copied
    assert (first["cache_write_tokens"], first["cache_write_1h_tokens"], first["trace_id"]) == (
        1000,
        200,
        "2f0d8c1e-1111-2222-3333-444455556666",
    )
    assert (second["input_tokens"], second["cached_input_tokens"], second["output_tokens"]) == (
        1200,
        800,
        300,
    )
    assert (second["flow"], second["tags"], second["latency_ms"]) == (
        "support-gpt-en",
        {"team": "support", "model_group": "claude"},
        830,
    )
    cache_hit = spend_log_row(request_id="chatcmpl-x_cache_hit1794000000.5", cache_hit="True")
    assert list(spend_log_records(cache_hit)) == [("row", None)]


def test_litellm_objects_picks_the_kind() -> None:
    assert only(litellm_objects(payload(), "standard"))["id"] == "chatcmpl-AqYHf0sL7mNn3y"
    assert only(litellm_objects(spend_log_row(), "spendlogs"))["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    with pytest.raises(ValueError, match="unknown LiteLLM log kind"):
        list(litellm_objects({}, "langfuse"))


def stored(ledger: Ledger) -> dict[str, Any]:
    with ledger.engine.connect() as conn:
        return {row.record_id: row for row in conn.execute(select(usage_records))}


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    led = make_ledger(sqlite_url)
    yield led
    led.close()


def test_generic_logger_batches_are_priced_and_stored_once(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "litellm.jsonl"
    batch = [payload(), anthropic_payload(), failure_payload(), embedding_payload()]
    skipped = payload(id="img-1", call_type="aimage_generation")
    path.write_text(json.dumps(batch) + "\n" + json.dumps(skipped) + "\n")  # json_array, then `single`
    summary = ingest_litellm_paths(ledger, [path], kind="standard", source="litellm")
    assert (summary.read, summary.stored, summary.skipped, summary.rejected) == (4, 4, 1, 0)
    rows = stored(ledger)
    # o3-mini: 976 × $1.10 + 1024 × $0.55 + 500 × $4.40 per million (reasoning priced as output)
    assert rows["chatcmpl-AqYHf0sL7mNn3y"].cost_nanos == 3_836_800
    # claude-sonnet-4-5: 50 × $3 + 4000 × $0.30 + 1000 × $3.75 + 200 × $6 (1h writes) + 400 × $15
    assert rows["msg_01XFDUDYJgAACzvnptvVoYEL"].cost_nanos == 12_300_000
    failed = rows["b980db26-9512-45cc-b1da-c511a363b83f"]
    assert (failed.status, failed.requests, failed.cost_nanos) == ("error", 1, 0)
    assert rows["e6a0c1e4-embed"].cost_nanos is None  # no embedding price in the default book: unpriced
    assert summary.unpriced_models
    assert rows["chatcmpl-AqYHf0sL7mNn3y"].user_hash not in (None, "customer-42")
    assert rows["chatcmpl-AqYHf0sL7mNn3y"].prompt_id is not None

    again = ingest_litellm_paths(ledger, [path], kind="standard", source="litellm")
    assert (again.stored, again.duplicates, again.conflicts) == (0, 4, 0)
    assert len(stored(ledger)) == 4


def test_spend_log_export_is_priced_like_the_callback(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "spendlogs.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in [spend_log_row(), spend_log_row(request_id="r2", cache_hit="True")])
    )
    summary = ingest_litellm_paths(ledger, [path], kind="spendlogs", source="litellm")
    assert (summary.stored, summary.skipped) == (1, 1)
    row = stored(ledger)["msg_01XFDUDYJgAACzvnptvVoYEL"]
    assert (row.provider, row.model, row.flow, row.cost_nanos) == (
        "anthropic",
        "claude-sonnet-4-5",
        "code-review",
        12_300_000,
    )


def test_a_bad_entry_is_a_dead_letter_and_the_others_are_stored(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "litellm.jsonl"
    bad_counts = payload(id="chatcmpl-bad")
    bad_counts["metadata"] = {"usage_object": {"prompt_tokens": 10, "completion_tokens": -3}}
    lines = [
        json.dumps([payload(), bad_counts, payload(id=None), "not an object"]),
        "{not json",
        "42",
    ]
    path.write_text("\n".join(lines) + "\n")
    summary = ingest_litellm_paths(ledger, [path], kind="standard")
    assert (summary.stored, summary.rejected) == (1, 5)
    with ledger.engine.connect() as conn:
        letters = {(r.location, r.reason) for r in conn.execute(select(dead_letters))}
    reasons = {reason for _, reason in letters}
    assert any(r.startswith("output_tokens is negative") for r in reasons), reasons
    assert "missing required field id (a stable, sender-chosen string)" in reasons
    assert "a usage record must be a JSON object, got str" in reasons
    assert "not a LiteLLM log object or a JSON array of them" in reasons
    assert any(r.startswith("invalid JSON") for r in reasons)
    assert any(loc.endswith("litellm.jsonl:1 payload[1]") for loc, _ in letters)


def test_unknown_kind_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    from finops.errors import IngestError

    with pytest.raises(IngestError, match="unknown LiteLLM log kind"):
        ingest_litellm_paths(ledger, [tmp_path], kind="langfuse")


def test_cli_ingest_kind_litellm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'l.db'}")
    monkeypatch.delenv("FINOPS_PRICE_OVERRIDES", raising=False)
    path = tmp_path / "litellm.jsonl"
    path.write_text(json.dumps([payload(), anthropic_payload(), payload(id="c", cache_hit=True)]) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--kind", "litellm", str(path)])
    assert result.exit_code == 0, result.output
    assert "stored 2, duplicates 0" in result.stdout
    assert "1 log entries were not billed LLM calls" in result.stdout
    doc = json.loads(runner.invoke(app, ["spend", "--by", "flow", "--format", "json"]).stdout)
    costs = {r["flow"]: r["cost_usd"] for r in doc["rows"]}
    assert costs == {"support-gpt-en": "0.003836800", "code-review": "0.012300000"}
    spend_logs = tmp_path / "spend.jsonl"
    spend_logs.write_text(json.dumps(spend_log_row()) + "\n")
    result = runner.invoke(
        app, ["ingest", "--kind", "litellm-spendlogs", "--source", "default", str(spend_logs)]
    )
    assert result.exit_code == 0, result.output
    # the same call as the callback's (same id, same source): kept once; the differences are a conflict
    assert "stored 0" in result.stdout and "1 of them is a conflict" in result.stdout
