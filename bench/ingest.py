"""Ingest throughput: JSONL -> validated, priced rows in SQLite, against a raw executemany baseline.

Both run in this process on the same machine and the same rows:
- finops: `ingest_paths` (decode, validate, price, dedupe, rollups, batched transactions);
- baseline: `sqlite3.executemany` of the equivalent already-built rows into a table with
  the same columns and unique key, in the same batch size, one commit a batch.
Then peak RSS of `finops ingest` on a larger file, in a child process.

    python bench/ingest.py [--records 1000000] [--rss-records 5000000]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from _data import write_jsonl

from finops.domain.usage import parse_usage
from finops.settings import Settings
from finops.storage.ledger import PricedRecord, usage_row
from finops.storage.tables import USAGE_COLUMNS
from finops.usecases.ingest import ingest_paths
from finops.usecases.ledger import Ledger
from finops.usecases.pricing import price_record

BATCH = 5000


def baseline(path: Path, db: Path, ledger: Ledger) -> tuple[float, int]:
    """Rows built outside the clock, then only sqlite3.executemany + commit is timed."""
    rows = []
    with path.open("rb") as f:
        for line in f:
            rec = parse_usage(orjson.loads(line))
            cost, match = price_record(ledger.book, rec)
            rows.append(
                usage_row(PricedRecord(rec, cost, match.version if match else None, "x"), "default", 0)
            )
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    cols = ", ".join(USAGE_COLUMNS)
    conn.execute(f"CREATE TABLE usage_records (id INTEGER PRIMARY KEY, {cols}, UNIQUE (source, record_id))")
    conn.execute("CREATE INDEX ix_ts ON usage_records (ts_us)")
    sql = f"INSERT INTO usage_records ({cols}) VALUES ({', '.join('?' * len(USAGE_COLUMNS))})"
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i : i + BATCH])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, len(rows)


def finops_ingest(path: Path, db: Path) -> tuple[float, int]:
    ledger = Ledger.open(Settings(database_url=f"sqlite:///{db}"), create=True)
    start = time.perf_counter()
    summary = ingest_paths(ledger, [path], batch_size=BATCH)
    elapsed = time.perf_counter() - start
    ledger.close()
    assert summary.rejected == 0
    return elapsed, summary.stored


def peak_rss(path: Path, db: Path) -> float:
    """Peak RSS of `finops ingest`: the larger of the ingesting process (RUSAGE_SELF) and its
    parser process (RUSAGE_CHILDREN, measured by the ingesting process, which is small).

    RUSAGE_CHILDREN would also count the pages a forked child shares with this
    (large) parent before it execs, which is not the ingest's memory.
    """
    probe = (
        "import resource, runpy, sys\n"
        "sys.argv = ['finops', 'ingest', '-q', sys.argv[1]]\n"
        "try:\n    runpy.run_module('finops', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,\n"
        "          resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss), file=sys.stderr)\n"
    )
    env = {**os.environ, "FINOPS_DATABASE_URL": f"sqlite:///{db}"}
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return int(done.stderr.strip().splitlines()[-1]) / 1024  # KiB -> MiB (Linux)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rss-records", type=int, default=5_000_000, help="0 to skip the RSS run")
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    path = write_jsonl(args.data / f"usage-{args.records}.jsonl", args.records)
    with tempfile.TemporaryDirectory() as tmp:
        rss = None
        if args.rss_records:
            # First, while this process is small: Linux carries a process's peak RSS across
            # fork and exec, so a child forked later from the 1M rows below would report them.
            big = write_jsonl(args.data / f"usage-{args.rss_records}.jsonl", args.rss_records, seed=2)
            rss = peak_rss(big, Path(tmp) / "rss.db")
        ledger = Ledger.open(Settings(database_url=f"sqlite:///{Path(tmp) / 'book.db'}"), create=True)
        base_s, base_n = baseline(path, Path(tmp) / "raw.db", ledger)
        ledger.close()
        fin_s, fin_n = finops_ingest(path, Path(tmp) / "finops.db")
        assert base_n == fin_n == args.records
        print(f"records:              {args.records:,}")
        print(f"raw executemany:      {base_n / base_s:>10,.0f} rows/s   ({base_s:.1f} s)")
        print(f"finops ingest:        {fin_n / fin_s:>10,.0f} records/s ({fin_s:.1f} s)")
        print(f"ratio finops/raw:     {base_s / fin_s:.3f}   (target >= 0.25)")
        if rss is not None:
            print(
                f"peak RSS, {args.rss_records:,} lines: {rss:,.0f} MiB (target < 200 MiB; the larger of "
                "the ingesting and the parser process)"
            )


if __name__ == "__main__":
    main()
