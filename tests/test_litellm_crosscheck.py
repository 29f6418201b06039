"""After `finops prices import` of LiteLLM's catalog, every chat model costs what docs/design.md §3 says.

The expected cost is computed here, independently, from the raw LiteLLM entry
(its per-token keys and suffixes), not through finops's importer or rate cards.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.storage.tables import usage_records
from finops.usecases.ingest import ingest_paths
from tests.conftest import LITELLM_CATALOG, make_ledger, needs_litellm_catalog, write_jsonl

pytestmark = needs_litellm_catalog
CATALOG = LITELLM_CATALOG
_TIER_SUFFIX = {"standard": "", "batch": "_batches", "flex": "_flex", "priority": "_priority"}
_ABOVE = re.compile(
    r"^(?:input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|"
    r"cache_creation_input_token_cost(?:_above_1hr)?|output_cost_per_reasoning_token|"
    r"input_cost_per_token_cache_hit)_above_(\d+)k_tokens"
)
SCENARIOS: list[dict[str, Any]] = [
    {"input_tokens": 1_234, "output_tokens": 567},
    {
        "input_tokens": 10_000,
        "cached_input_tokens": 6_000,
        "cache_write_tokens": 1_500,
        "cache_write_1h_tokens": 500,
        "output_tokens": 2_000,
        "reasoning_tokens": 1_200,
    },
    {
        "input_tokens": 150_000,
        "cached_input_tokens": 20_000,
        "output_tokens": 4_000,
        "reasoning_tokens": 3_000,
    },
    {
        "input_tokens": 210_000,
        "cached_input_tokens": 50_000,
        "cache_write_tokens": 10_000,
        "output_tokens": 3_000,
        "reasoning_tokens": 1_000,
    },
    {
        "input_tokens": 600_000,
        "cached_input_tokens": 100_000,
        "cache_write_1h_tokens": 7_000,
        "output_tokens": 9_000,
    },
    {"input_tokens": 8_000, "cached_input_tokens": 1_000, "output_tokens": 700, "service_tier": "batch"},
    {"input_tokens": 300_000, "cached_input_tokens": 1_000, "output_tokens": 700, "service_tier": "batch"},
    {
        "input_tokens": 9_000,
        "cached_input_tokens": 4_000,
        "output_tokens": 900,
        "reasoning_tokens": 100,
        "service_tier": "priority",
    },
    {"input_tokens": 280_000, "output_tokens": 900, "service_tier": "priority"},
    {"input_tokens": 7_000, "cached_input_tokens": 3_000, "output_tokens": 800, "service_tier": "flex"},
]


def _num(spec: dict[str, Any], key: str) -> Decimal | None:
    value = spec.get(key)
    return (
        value
        if isinstance(value, Decimal)
        else (Decimal(value) if isinstance(value, int) and not isinstance(value, bool) else None)
    )


def _thresholds(spec: dict[str, Any]) -> list[int]:
    return sorted({int(m.group(1)) * 1000 for k in spec if (m := _ABOVE.match(k))}, reverse=True)


def _raw(spec: dict[str, Any], bases: tuple[str, ...], tier: str, h: int) -> Decimal | None:
    """docs/design.md §3 resolution of one rate, straight from LiteLLM keys."""
    above = f"_above_{h // 1000}k_tokens" if h else ""

    def standard() -> Decimal | None:
        for base in bases:
            value = _num(spec, base + above) if h else None
            if value is not None:
                return value
        for base in bases:
            value = _num(spec, base)
            if value is not None:
                return value
        return None

    if tier == "standard":
        return standard()
    for base in bases:
        value = _num(spec, base + above + _TIER_SUFFIX[tier])
        if value is not None:
            return value
    value = standard()
    return value * Decimal("0.5") if value is not None and tier == "batch" else value


def expected_cost(spec: dict[str, Any], usage: dict[str, Any]) -> Decimal:
    tier = usage.get("service_tier", "standard")
    inp = usage["input_tokens"]
    h = next((t for t in _thresholds(spec) if inp > t), 0)
    rate_in = _raw(spec, ("input_cost_per_token",), tier, h)
    rate_out = _raw(spec, ("output_cost_per_token",), tier, h)
    assert rate_in is not None and rate_out is not None
    rate_cr = _raw(spec, ("cache_read_input_token_cost", "input_cost_per_token_cache_hit"), tier, h)
    rate_cr = rate_in if rate_cr is None else rate_cr  # a free cache read (0) is a price, not a gap
    rate_cw = _raw(spec, ("cache_creation_input_token_cost",), tier, h)
    rate_cw = rate_in if rate_cw is None else rate_cw
    rate_cw1h = _raw(spec, ("cache_creation_input_token_cost_above_1hr",), tier, h)
    rate_cw1h = rate_cw if rate_cw1h is None else rate_cw1h
    rate_reason = _raw(spec, ("output_cost_per_reasoning_token",), tier, h)
    rate_reason = rate_out if rate_reason is None else rate_reason
    cached = usage.get("cached_input_tokens", 0)
    w5 = usage.get("cache_write_tokens", 0)
    w1h = usage.get("cache_write_1h_tokens", 0)
    out = usage["output_tokens"]
    reasoning = usage.get("reasoning_tokens", 0)
    return (
        (inp - cached - w5 - w1h) * rate_in
        + cached * rate_cr
        + w5 * rate_cw
        + w1h * rate_cw1h
        + (out - reasoning) * rate_out
        + reasoning * rate_reason
    )


def _chat_entries(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        key: spec
        for key, spec in data.items()
        if isinstance(spec, dict)
        and spec.get("mode") == "chat"
        and _num(spec, "input_cost_per_token") is not None
        and _num(spec, "output_cost_per_token") is not None
        and isinstance(spec.get("litellm_provider"), str)
    }


def test_every_litellm_chat_model_costs_what_design_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = json.loads(CATALOG.read_text(), parse_float=Decimal)
    entries = _chat_entries(data)
    assert len(entries) > 3000
    db = tmp_path / "x.db"
    monkeypatch.setenv("FINOPS_DATABASE_URL", f"sqlite:///{db}")
    result = CliRunner().invoke(app, ["prices", "import", str(CATALOG), "--effective-from", "2026-11-15"])
    assert result.exit_code == 0, result.output
    assert "Imported" in result.output

    records, expected = [], {}
    for n, (key, spec) in enumerate(sorted(entries.items())):
        for s, scenario in enumerate(SCENARIOS):
            rid = f"{n}-{s}"
            records.append(
                {
                    "id": rid,
                    "ts": "2026-11-20T12:00:00Z",
                    "model": key,
                    "provider": spec["litellm_provider"],
                    **scenario,
                }
            )
            expected[rid] = (key, expected_cost(spec, scenario))
    ledger = make_ledger(f"sqlite:///{db}")
    summary = ingest_paths(ledger, [write_jsonl(tmp_path / "u.jsonl", records)])
    assert (summary.stored, summary.rejected, summary.unpriced) == (len(records), 0, 0)
    with ledger.engine.connect() as conn:
        stored = {
            rid: cost
            for rid, cost in conn.execute(select(usage_records.c.record_id, usage_records.c.cost_nanos))
        }
    ledger.close()
    nano = Decimal("1e-9")
    wrong = [
        (key, rid, str(cost), stored[rid])
        for rid, (key, cost) in expected.items()
        if abs(Decimal(stored[rid]) * nano - cost) > nano
    ]
    assert not wrong, f"{len(wrong)} of {len(expected)} costs differ, e.g. {wrong[:5]}"
