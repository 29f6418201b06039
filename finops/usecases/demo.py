"""``finops demo``: a realistic month of sample usage, so a newcomer sees finops work in a minute.

The data is deterministic for a seed: six flows with their own models, daily
rhythm, weekday dips, cache use, batch and flex tiers, long-context calls, a
few failed calls, and one internal model with no price (shown as unpriced).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from finops.usecases.ingest import IngestSummary, ingest_objects
from finops.usecases.ledger import Ledger

__all__ = ["DEMO_SOURCE", "demo_records", "load_demo"]

DEMO_SOURCE = "demo"


@dataclass(frozen=True)
class _Flow:
    name: str
    team: str
    model: str
    provider: str
    calls_per_hour: int
    input_tokens: int
    output_tokens: int
    cache_share: float = 0.0  # share of input read from cache
    write_share: float = 0.0  # share of input written to cache
    reasoning_share: float = 0.0
    tier: str = "standard"
    long_context_rate: float = 0.0


_FLOWS = (
    _Flow("support-gpt-en", "support", "gpt-4o-2024-08-06", "openai", 60, 2400, 350, cache_share=0.6),
    _Flow("support-gpt-de", "support", "gpt-4o-mini", "openai", 25, 2200, 320, cache_share=0.5),
    _Flow("search-rerank", "search", "gemini-2.5-flash", "gcp.gemini", 120, 900, 40),
    _Flow(
        "code-review",
        "platform",
        "claude-sonnet-4-5-20250929",
        "anthropic",
        12,
        18000,
        1400,
        cache_share=0.55,
        write_share=0.15,
    ),
    _Flow("doc-qa", "legal", "gemini-2.5-pro", "gcp.gemini", 6, 60000, 900, long_context_rate=0.1),
    _Flow("nightly-summaries", "data", "gpt-4.1-mini", "openai", 40, 5000, 600, tier="batch"),
    _Flow("agent-planner", "platform", "o4-mini", "openai", 8, 7000, 2500, reasoning_share=0.7, tier="flex"),
    _Flow("intranet-bot", "it", "acme-llama-70b-internal", "self_hosted", 10, 1500, 300),
)


def _scaled(rng: random.Random, mean: int) -> int:
    return max(1, int(rng.lognormvariate(0, 0.5) * mean))


def demo_records(
    *, end: datetime, days: int = 30, seed: int = 7, scale: float = 1.0
) -> Iterator[dict[str, Any]]:
    """Usage records for ``days`` days up to ``end`` (UTC), as senders would post them."""
    start = (end - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    hour = start
    while hour < end:
        local_hour = (hour.hour + 1) % 24  # a European business day
        rhythm = 0.15 + (0.85 if 8 <= local_hour < 19 else 0.0)
        if hour.weekday() >= 5:
            rhythm *= 0.35
        for flow in _FLOWS:
            # one generator per hour and flow: a later run regenerates the same hours identically,
            # so running the demo twice stores nothing twice
            rng = random.Random(f"{seed}/{flow.name}/{hour.isoformat()}")  # noqa: S311 - sample data
            per_hour = flow.calls_per_hour * (1.0 if flow.tier == "batch" and local_hour < 6 else rhythm)
            if flow.tier == "batch" and local_hour >= 6:
                per_hour = 0
            calls = int(per_hour * scale * rng.uniform(0.7, 1.3))
            for n in range(calls):
                ts = hour + timedelta(seconds=rng.randrange(3600))
                if ts >= end:
                    continue
                inp = _scaled(rng, flow.input_tokens)
                if flow.long_context_rate and rng.random() < flow.long_context_rate:
                    inp = rng.randrange(200_001, 400_000)
                out = _scaled(rng, flow.output_tokens)
                cached = int(inp * flow.cache_share * rng.uniform(0.6, 1.0))
                written = int(inp * flow.write_share * rng.uniform(0.5, 1.0))
                written = min(written, inp - cached)
                ok = rng.random() > 0.02
                yield {
                    "id": f"demo-{flow.name}-{hour:%Y%m%d%H}-{n}",
                    "ts": ts.isoformat().replace("+00:00", "Z"),
                    "provider": flow.provider,
                    "model": flow.model,
                    "flow": flow.name,
                    "tags": {"team": flow.team, "env": "prod"},
                    "input_tokens": inp,
                    "cached_input_tokens": cached,
                    "cache_write_tokens": written,
                    "output_tokens": out,
                    "reasoning_tokens": int(out * flow.reasoning_share),
                    "service_tier": flow.tier,
                    "status": "ok" if ok else "error",
                    "prompt_id": f"{flow.name}/main@v{1 + (ts.day > 15)}",
                    "user": f"user-{rng.randrange(500)}",
                    "session_id": f"s-{rng.randrange(20_000)}",
                    "latency_ms": rng.randrange(200, 9000),
                    "tool_calls": rng.randrange(0, 4) if flow.name == "agent-planner" else 0,
                }
        hour += timedelta(hours=1)


def load_demo(
    ledger: Ledger, *, end: datetime | None = None, days: int = 30, scale: float = 1.0
) -> IngestSummary:
    """Ingest the demo month through the same path as real usage (idempotent: ids are fixed)."""
    end = end or datetime.now(UTC)
    total = IngestSummary()
    batch: list[dict[str, Any]] = []
    for record in demo_records(end=end.replace(minute=0, second=0, microsecond=0), days=days, scale=scale):
        batch.append(record)
        if len(batch) >= 5000:
            ingest_objects(ledger, batch, source=DEMO_SOURCE, location="demo", summary=total)
            batch = []
    if batch:
        ingest_objects(ledger, batch, source=DEMO_SOURCE, location="demo", summary=total)
    return total
