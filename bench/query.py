"""Spend query speed: `finops spend --by flow --month` over 10M records, rollups vs raw GROUP BY.

Loads N raw usage rows into a finops SQLite database (bulk insert, then
`rebuild_rollups`, as `finops db rebuild-rollups` does), then times in the same run:
- finops: `run_spend(--by flow --month 2026-11)` (rollups + raw edges), median of repeats;
- baseline: the same GROUP BY flow over the raw records;
- the whole `finops spend` command in a subprocess (includes Python start-up).

    python bench/query.py [--records 10000000]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from finops.storage.db import create_engine_for, upgrade
from finops.storage.ledger import rebuild_rollups
from finops.storage.tables import USAGE_COLUMNS, usage_records
from finops.usecases.spend import SpendQuery, run_spend

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "o4-mini", "gpt-4.1-mini")


def load(db: Path, n: int, *, prompts: int = 0) -> None:
    """N raw usage rows over 40 days (50 flows), then rollups rebuilt; ``prompts`` distinct prompt ids."""
    engine = create_engine_for(f"sqlite:///{db}")
    upgrade(engine)
    engine.dispose()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    rng = random.Random(9)
    start_us = int(datetime(2026, 10, 25, tzinfo=UTC).timestamp() * 1_000_000)
    span = 40 * 86400 * 1_000_000
    sql = f"INSERT INTO usage_records ({', '.join(USAGE_COLUMNS)}) VALUES ({', '.join('?' * len(USAGE_COLUMNS))})"
    batch = []
    for i in range(n):
        ts = start_us + i * span // n
        f = rng.randrange(50)
        batch.append(
            (
                "bench",
                f"q{i}",
                ts,
                ts // 3_600_000_000 * 3600,
                "openai",
                MODELS[(f + i % 2) % 6],
                f"flow-{f:02d}",
                f'{{"team":"t{f % 8}"}}',
                "standard",
                "ok",
                1,
                2000,
                500,
                0,
                0,
                300,
                0,
                rng.randrange(1, 5_000_000),
                "v",
                f"prompt-{rng.randrange(prompts)}" if prompts else None,
                None,
                None,
                None,
                None,
                None,
                0,
            )
        )
        if len(batch) == 100_000:
            conn.execute("BEGIN")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
            batch.clear()
    if batch:
        conn.execute("BEGIN")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
    conn.close()
    engine = create_engine_for(f"sqlite:///{db}")
    with engine.begin() as c:
        rebuild_rollups(c)
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    db = args.data / f"query-{args.records}.db"
    if not db.exists():
        args.data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        load(db, args.records)
        print(f"loaded {args.records:,} records in {time.perf_counter() - t:.0f} s")
    engine = create_engine_for(f"sqlite:///{db}")
    upgrade(engine)  # a database built by an older finops
    utc = ZoneInfo("UTC")
    query = SpendQuery(
        group_by=("flow",), start=datetime(2026, 11, 1, tzinfo=utc), end=datetime(2026, 12, 1, tzinfo=utc)
    )
    times = []
    with engine.connect() as conn:
        for _ in range(15):
            t = time.perf_counter()
            result = run_spend(conn, query)
            times.append(time.perf_counter() - t)
        lo, hi = int(query.start.timestamp() * 1e6), int(query.end.timestamp() * 1e6)  # type: ignore[union-attr]
        u = usage_records.c
        raw = (
            select(u.flow, func.sum(u.cost_nanos), func.count())
            .where(u.ts_us >= lo, u.ts_us < hi)
            .group_by(u.flow)
        )
        raw_times = []
        for _ in range(3):
            t = time.perf_counter()
            raw_rows = {f: int(c) for f, c, _ in conn.execute(raw)}
            raw_times.append(time.perf_counter() - t)
        in_month = conn.scalar(select(func.count()).where(u.ts_us >= lo, u.ts_us < hi))
    engine.dispose()
    assert {r.keys["flow"]: r.sums["cost_nanos"] for r in result.rows} == raw_rows, "rollups != raw"
    env = {**os.environ, "FINOPS_DATABASE_URL": f"sqlite:///{db}"}
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "finops", "spend", "--by", "flow", "--month", "2026-11"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cli = time.perf_counter() - t
    ours, base = statistics.median(times), statistics.median(raw_times)
    print(f"records in database:      {args.records:,} ({in_month:,} in 2026-11)")
    print(f"finops spend (query):     {ours * 1000:8.1f} ms median of 15   (target < 100 ms)")
    print(f"raw GROUP BY flow:        {base * 1000:8.1f} ms median of 3")
    print(f"speed-up:                 {base / ours:8.0f}x                  (target >= 50x)")
    print(f"`finops spend` command:   {cli * 1000:8.1f} ms incl. Python start-up and imports")


if __name__ == "__main__":
    main()
