"""The monthly token audit over 10M records and 100k distinct prompts: seconds to build it.

Builds a database of N usage rows over 40 days with P distinct prompt ids (bulk load,
then rollups rebuilt), then times `build_monthly_report` for the full month, and, in
the same run, the baseline: the top-prompts GROUP BY over the month's raw records.

    python bench/report.py [--records 10000000] [--prompts 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import load
from sqlalchemy import func, select

from finops.render.report_html import render_html
from finops.settings import Settings
from finops.storage.tables import usage_records
from finops.usecases.audit.monthly import build_monthly_report
from finops.usecases.ledger import Ledger


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--prompts", type=int, default=100_000)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    db = args.data / f"report-{args.records}-{args.prompts}.db"
    if not db.exists():
        args.data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        load(db, args.records, prompts=args.prompts)
        print(
            f"loaded {args.records:,} records with {args.prompts:,} prompts in {time.perf_counter() - t:.0f} s"
        )
    ledger = Ledger.open(Settings(database_url=f"sqlite:///{db}"), create=True)
    t = time.perf_counter()
    report = build_monthly_report(ledger, month="2026-11", tz=ZoneInfo("UTC"), top=20)
    built = time.perf_counter() - t
    t = time.perf_counter()
    html = render_html(report)
    rendered = time.perf_counter() - t
    u = usage_records.c
    lo, hi = 1793491200 * 1_000_000, 1796083200 * 1_000_000  # November 2026, UTC
    cost = func.sum(u.cost_nanos)
    t = time.perf_counter()
    with ledger.engine.connect() as conn:
        raw = conn.execute(
            select(u.prompt_id, cost)
            .where(u.ts_us >= lo, u.ts_us < hi)
            .group_by(u.prompt_id)
            .order_by(cost.desc())
            .limit(20)
        ).all()
    baseline = time.perf_counter() - t
    ledger.close()
    assert [p.prompt for p in report.top_prompts] == [r[0] for r in raw], "top prompts differ from raw"
    print(f"records: {args.records:,}; prompts: {args.prompts:,}; month 2026-11")
    print(f"build_monthly_report:     {built:6.2f} s   (target < 10 s)")
    print(f"render_html:              {rendered:6.2f} s   ({len(html) / 1024:.0f} KiB)")
    print(f"raw top-prompts GROUP BY: {baseline:6.2f} s   (baseline, one of the report's ~20 queries)")


if __name__ == "__main__":
    main()
