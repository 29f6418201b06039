"""OpenTelemetry GenAI spans (OTLP/JSON) as usage records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.sources.otlp import span_records


def attr(key: str, value: object) -> dict[str, object]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}  # int64 is a string in OTLP/JSON
    return {"key": key, "value": {"stringValue": value}}


EXPORT = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [
                    attr("service.name", "support-bot"),
                    attr("finops.flow", "support-gpt-en"),
                    attr("finops.tag.team", "support"),
                ]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "openai.instrumentation"},
                    "spans": [
                        {
                            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                            "spanId": "00f067aa0ba902b7",
                            "name": "chat gpt-4o",
                            "startTimeUnixNano": "1794000000000000000",
                            "endTimeUnixNano": "1794000000830000000",
                            "attributes": [
                                attr("gen_ai.operation.name", "chat"),
                                attr("gen_ai.provider.name", "openai"),
                                attr("gen_ai.request.model", "gpt-4o"),
                                attr("gen_ai.response.model", "gpt-4o-2024-08-06"),
                                attr("gen_ai.usage.input_tokens", 1200),
                                attr("gen_ai.usage.output_tokens", 300),
                                attr("gen_ai.usage.cache_read.input_tokens", 800),
                                attr("gen_ai.usage.reasoning.output_tokens", 120),
                            ],
                        },
                        {
                            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                            "spanId": "00f067aa0ba902b8",
                            "name": "chat claude",
                            "endTimeUnixNano": "1794000001000000000",
                            "status": {"code": 2},
                            "attributes": [
                                attr("gen_ai.system", "anthropic"),
                                attr("gen_ai.request.model", "claude-sonnet-4-5"),
                                attr("gen_ai.usage.prompt_tokens", 1000),
                                attr("gen_ai.usage.completion_tokens", 100),
                                attr("finops.flow", "code-review"),
                            ],
                        },
                        {
                            "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                            "spanId": "00f067aa0ba902b9",
                            "name": "GET /tickets",
                            "endTimeUnixNano": "1794000002000000000",
                            "attributes": [attr("http.method", "GET")],
                        },
                    ],
                }
            ],
        }
    ]
}


def test_genai_spans_become_usage_records_and_other_spans_are_skipped() -> None:
    found = list(span_records(EXPORT))
    assert [r is None for _, r in found] == [False, False, True]
    first, second = found[0][1], found[1][1]
    assert first is not None and second is not None
    assert first["id"] == "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7"
    assert (first["model"], first["provider"], first["flow"], first["tags"]) == (
        "gpt-4o-2024-08-06",
        "openai",
        "support-gpt-en",
        {"team": "support"},
    )
    assert (
        first["input_tokens"],
        first["cached_input_tokens"],
        first["output_tokens"],
        first["reasoning_tokens"],
    ) == (1200, 800, 300, 120)
    assert first["ts"] == "2026-11-06T21:20:00.830000+00:00" and first["status"] == "ok"  # span end
    assert (second["provider"], second["flow"], second["status"], second["input_tokens"]) == (
        "anthropic",
        "code-review",
        "error",
        1000,
    )


def test_ingest_kind_otlp_stores_each_span_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'o.db'}")
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps(EXPORT) + "\n" + json.dumps(EXPORT) + "\n")  # an exporter retry
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "--kind", "otlp", str(path)])
    assert result.exit_code == 0, result.output
    assert "stored 2, duplicates 2" in result.stdout and "2 spans were not LLM calls" in result.stdout
    doc = json.loads(runner.invoke(app, ["spend", "--by", "flow", "--format", "json"]).stdout)
    rows = {r["flow"]: r for r in doc["rows"]}
    # gpt-4o: 400 × $2.50 + 800 × $1.25 + 300 × $10 per million = $0.005
    assert rows["support-gpt-en"]["cost_usd"] == "0.005000000"
    assert (
        rows["code-review"]["cost_usd"] == "0.004500000"
    )  # claude-sonnet-4-5: 1000 × $3 + 100 × $15 per million
