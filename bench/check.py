"""`finops check` latency on a 10M-record database: p50/p99 in-process, and the command's wall time.

Uses the database bench/query.py builds (run that first, or this builds it), 50 budgets
(one per flow, half of them `on_breach: block`), and asks for a random flow each time.
The baseline, measured in the same run, is the same day's spend summed from raw records.

    python bench/check.py [--records 10000000] [--calls 2000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import load
from sqlalchemy import func, select

from finops.config.budget_spec import parse_budget
from finops.storage.db import create_engine_for, upgrade
from finops.storage.tables import usage_records
from finops.usecases.budgets import check_flow


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    db = args.data / f"query-{args.records}.db"
    if not db.exists():
        args.data.mkdir(parents=True, exist_ok=True)
        load(db, args.records)
    engine = create_engine_for(f"sqlite:///{db}")
    upgrade(engine)  # the budgets tables, if the database predates them
    budgets = [
        parse_budget(
            flow=f"flow-{i:02d}",
            owner="@owner",
            daily_cap_usd=5 if i % 2 else 500,
            timezone="Europe/Berlin",
            on_breach="block" if i % 2 else "alert",
        )
        for i in range(50)
    ]
    now = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)  # inside the data's span
    rng = random.Random(1)
    times: list[float] = []
    decisions = {"allow": 0, "deny": 0}
    with engine.connect() as conn:
        for _ in range(args.calls):
            flow = f"flow-{rng.randrange(50):02d}"
            t = time.perf_counter()
            result = check_flow(conn, budgets, flow=flow, tags={}, now=now)
            times.append(time.perf_counter() - t)
            decisions[result.decision] += 1
        state = check_flow(conn, budgets, flow="flow-07", tags={}, now=now).states[0]
        u = usage_records.c
        raw_times = []
        for _ in range(3):
            t = time.perf_counter()
            raw = conn.scalar(
                select(func.sum(u.cost_nanos)).where(
                    u.flow == "flow-07",
                    u.ts_us >= int(state.start.timestamp() * 1e6),
                    u.ts_us < int(state.end.timestamp() * 1e6),
                )
            )
            raw_times.append(time.perf_counter() - t)
    engine.dispose()
    assert raw == state.spend_nanos, (raw, state.spend_nanos)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "b.yaml").write_text(
            "budgets:\n  - flow: flow-07\n    owner: '@o'\n    daily_cap_usd: 500\n    on_breach: block\n"
        )
        env = {**os.environ, "FINOPS_DATABASE_URL": f"sqlite:///{db}", "FINOPS_BUDGETS_DIR": tmp}
        cli = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "finops", "check", "flow-07"],
                env=env,
                stdout=subprocess.DEVNULL,
                check=False,
            )
            cli.append(time.perf_counter() - t)
    print(f"records in database:     {args.records:,}; 50 budgets; {args.calls:,} checks ({decisions})")
    print(f"check_flow p50:          {pct(times, 0.50) * 1000:7.2f} ms")
    print(f"check_flow p99:          {pct(times, 0.99) * 1000:7.2f} ms   (target < 50 ms)")
    print(f"raw SUM for the same day:{statistics.median(raw_times) * 1000:8.1f} ms (baseline)")
    print(f"speed-up p50 vs raw:     {statistics.median(raw_times) / pct(times, 0.5):7.0f}x")
    print(f"`finops check` command:  {statistics.median(cli) * 1000:7.0f} ms median incl. Python start-up")


if __name__ == "__main__":
    main()
