"""Synthetic usage for the benchmarks: realistic mixes, deterministic, generated fast."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

MODELS = (
    ("openai", "gpt-4o-2024-08-06"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o4-mini"),
    ("anthropic", "claude-sonnet-4-5-20250929"),
    ("anthropic", "claude-haiku-4-5"),
    ("gcp.gemini", "gemini-2.5-pro"),
    ("gcp.gemini", "gemini-2.5-flash"),
    ("openai", "gpt-4.1-mini"),
)
FLOWS = tuple(f"flow-{i:02d}" for i in range(40))
START = datetime(2026, 11, 1, tzinfo=UTC)


def records(n: int, *, seed: int = 1, days: int = 30) -> Iterator[dict]:
    """Records in time order, as logs arrive: each flow belongs to a team and uses two models."""
    rng = random.Random(seed)
    step = days * 86400 / n
    for i in range(n):
        f = rng.randrange(len(FLOWS))
        provider, model = MODELS[(f + rng.randrange(2)) % len(MODELS)]
        inp = rng.randrange(200, 30_000)
        out = rng.randrange(20, 3_000)
        yield {
            "id": f"r{seed}-{i}",
            "ts": (START + timedelta(seconds=int(i * step))).isoformat().replace("+00:00", "Z"),
            "provider": provider,
            "model": model,
            "flow": FLOWS[f],
            "tags": {"team": f"team-{f % 8}", "env": "prod"},
            "input_tokens": inp,
            "cached_input_tokens": rng.randrange(0, inp // 2),
            "output_tokens": out,
            "reasoning_tokens": rng.randrange(0, out // 3) if model.startswith("o4") else 0,
            "service_tier": "batch" if rng.random() < 0.1 else "standard",
            "status": "ok" if rng.random() > 0.02 else "error",
            "prompt_id": f"{FLOWS[f]}/prompt-{rng.randrange(5)}",  # a prompt template belongs to a flow
            "latency_ms": rng.randrange(100, 9000),
        }


def write_jsonl(path: Path, n: int, *, seed: int = 1) -> Path:
    if path.exists() and path.stat().st_size > 0 and path.with_suffix(".count").read_text() == str(n):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for rec in records(n, seed=seed):
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    path.with_suffix(".count").write_text(str(n))
    return path
