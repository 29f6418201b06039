"""Pricing speed: finops vs `litellm.cost_per_token` on the same 50k records, same prices.

Both price from the same catalog (the LiteLLM reference file: litellm loads it as
its cost map, finops imports it). litellm is a bench-only install, never a finops
dependency:  pip install litellm  (then run with LITELLM_LOCAL_MODEL_COST_MAP=True).

    python bench/pricing.py [--records 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from finops.domain.money import nanos_to_usd
from finops.domain.pricing import PriceBook
from finops.domain.pricing.litellm import entries_from_litellm
from finops.domain.usage import UsageRecord
from finops.usecases.pricing import price_record

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "litellm_model_prices.json"
MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-haiku-4-5"),
    ("gemini", "gemini/gemini-2.5-flash"),
    ("deepseek", "deepseek/deepseek-chat"),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    args = ap.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm  # bench-only

    litellm.model_cost = json.loads(REFERENCE.read_text())  # the same prices, as floats
    entries, _ = entries_from_litellm(
        json.loads(REFERENCE.read_text(), parse_float=Decimal),
        effective_from=date(2026, 1, 1),
        source="bench",
    )
    book = PriceBook(entries)
    rng = random.Random(5)
    ts = datetime(2026, 11, 1, tzinfo=UTC)
    work = []
    for i in range(args.records):
        provider, model = MODELS[i % len(MODELS)]
        inp = rng.randrange(100, 50_000)
        work.append(
            UsageRecord(
                id=str(i),
                ts=ts,
                model=model,
                provider=provider,
                input_tokens=inp,
                cached_input_tokens=rng.randrange(0, inp // 2),
                output_tokens=rng.randrange(10, 4000),
            )
        )

    start = time.perf_counter()
    ours = [price_record(book, r)[0] for r in work]
    finops_s = time.perf_counter() - start

    start = time.perf_counter()
    theirs = []
    for r in work:
        p, c = litellm.cost_per_token(
            model=r.model,
            prompt_tokens=r.input_tokens,
            completion_tokens=r.output_tokens,
            cache_read_input_tokens=r.cached_input_tokens,
            custom_llm_provider=r.provider,
        )
        theirs.append(p + c)
    litellm_s = time.perf_counter() - start

    assert all(c is not None for c in ours)
    total = nanos_to_usd(sum(c for c in ours if c is not None))
    their_total = Decimal(repr(sum(theirs)))
    worst = max(
        abs(nanos_to_usd(o) - Decimal(repr(t))) for o, t in zip(ours, theirs, strict=True) if o is not None
    )
    n = len(work)
    print(f"records:                 {n:,}")
    print(f"litellm.cost_per_token:  {n / litellm_s:>12,.0f} records/s ({litellm_s:.2f} s)")
    print(f"finops price_record:     {n / finops_s:>12,.0f} records/s ({finops_s:.2f} s)")
    print(f"speed-up finops/litellm: {litellm_s / finops_s:.1f}x   (target >= 50x)")
    print(f"total finops (exact):    ${total}")
    print(f"total litellm (float):   ${their_total}")
    print(f"largest per-record diff: ${worst:.12f}  (float rounding in litellm)")


if __name__ == "__main__":
    main()
