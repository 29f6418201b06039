"""FOCUS export speed: `finops export focus` for a month against the spend query of the same month.

Ingests N realistic records of November 2026 (bench/_data.py: 40 flows, 8 models, cached input,
reasoning, batch) into a finops SQLite database once (``bench/data/focus-N.db``), then times in the
same run, median of 3:
- baseline: ``run_spend`` for the month by flow (rollups and raw edges);
- ``focus_export`` for the month by day (raw records summed per hour and group, split per class);
- writing the CSV;
and checks the file's BilledCost adds up to the spend total. Peak RSS is printed too.

    python bench/export_focus.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import write_jsonl

from finops.render.focus import write_csv
from finops.settings import Settings
from finops.usecases.export_focus import focus_export
from finops.usecases.ingest import ingest_paths
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, run_spend


def _median(f: object, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = f()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    db = args.data / f"focus-{args.records}.db"
    settings = Settings(database_url=f"sqlite:///{db}", user_hash_secret="bench")
    if not db.exists():
        args.data.mkdir(parents=True, exist_ok=True)
        lines = write_jsonl(args.data / f"focus-{args.records}.jsonl", args.records)
        ledger = Ledger.open(settings, create=True)
        t = time.perf_counter()
        ingest_paths(ledger, [lines])
        ledger.close()
        print(f"ingested {args.records:,} records in {time.perf_counter() - t:.0f} s")
    ledger = Ledger.open(settings)
    utc = ZoneInfo("UTC")
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
    query = SpendQuery(group_by=("flow",), start=start, end=end, tz=utc)
    with ledger.engine.connect() as conn:
        base, spend = _median(lambda: run_spend(conn, query))
    took, export = _median(lambda: focus_export(ledger, "2026-11", tz=utc))
    with tempfile.TemporaryDirectory() as tmp:
        wrote, _ = _median(lambda: write_csv(export.rows, Path(tmp) / "nov.csv"))  # type: ignore[union-attr]
        size = (Path(tmp) / "nov.csv").stat().st_size
    total = sum(Decimal(r["BilledCost"]) for r in export.rows)  # type: ignore[union-attr]
    exact = total * 10**9 == spend.total["cost_nanos"]  # type: ignore[union-attr]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"FOCUS export of November 2026, {export.records:,} priced records, median of 3")  # type: ignore[union-attr]
    print(f"{'what':<44}{'time':>10}{'ratio':>9}")
    print(f"{'baseline: run_spend --by flow --month':<44}{base * 1000:>8.1f}ms{1:>8.1f}x")
    print(f"{'focus_export (rows in memory)':<44}{took * 1000:>8.1f}ms{took / base:>8.0f}x")
    print(f"{'write the CSV':<44}{wrote * 1000:>8.1f}ms{wrote / base:>8.0f}x")
    print(
        f"rows: {len(export.rows):,}; CSV {size / 1e6:.1f} MB; BilledCost sum equals the spend total: {exact}"
    )  # type: ignore[union-attr]
    print(f"peak RSS of this process: {peak:.0f} MB; {export.records / took:,.0f} records/s")  # type: ignore[union-attr]
    ledger.close()


if __name__ == "__main__":
    main()
