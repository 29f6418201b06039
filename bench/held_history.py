"""Budget check and reserve on PostgreSQL as closed holds pile up: the same calls on a ledger whose
budgets have no past reservations, then after ``--history`` settled ones (what a day of a busy
gateway leaves) and ``--open`` holds in flight, measured in the same run (ratio).

Every reserve and check sums the holds of its budgets. Closed holds stay in the tables until
retention removes them, so that sum must start from the holds still open (a short index range),
never from every hold a budget ever had.

    python bench/held_history.py [--history 2000000] [--open 5000] [--calls 300]

The server comes from --admin, FINOPS_BENCH_POSTGRES_URL or FINOPS_TEST_POSTGRES_URL; without
one it says so and exits 0.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg_ingest import admin_url, fresh_pg
from pg_scale import FLOWS, pct, write_budgets
from sqlalchemy import inspect, text

from finops.settings import Settings
from finops.usecases.admission import ReserveRequest, reserve
from finops.usecases.budgets import budgets_in_force, check_flow
from finops.usecases.ledger import Ledger


def measure(ledger: Ledger, budgets: Path, calls: int) -> dict[str, list[float]]:
    found = budgets_in_force(ledger, budgets).budgets
    rng = random.Random(5)
    times: dict[str, list[float]] = {"check": [], "reserve": []}
    for i in range(calls + 20):
        flow = rng.choice(FLOWS)
        t = time.perf_counter()
        with ledger.engine.connect() as conn:  # as `finops check` (the daemon's check_ledger: no BEGIN)
            check_flow(conn, found, flow=flow, tags={}, now=datetime.now(UTC), estimate_usd=Decimal("0.01"))
        checked = time.perf_counter() - t
        req = ReserveRequest(
            flow=flow, estimate_usd=Decimal("0.01"), ttl_s=600, request_id=f"m{i}-{time.time()}"
        )
        t = time.perf_counter()
        assert reserve(ledger, found, req, source="bench").allow
        reserved = time.perf_counter() - t
        if i >= 20:
            times["check"].append(checked)
            times["reserve"].append(reserved)
    return times


def add_history(ledger: Ledger, closed: int, open_: int) -> float:
    """``closed`` past holds over every flow's budget, a fifth of them lapsed (expired unsettled)
    and the rest settled, and ``open_`` unexpired ones; with their budget links as the schema
    keeps them (before migration 0009 every hold kept its links; since, open and lapsed ones)."""
    now_us = time.time_ns() // 1000
    lapsed = closed // 5
    groups = (
        (closed - lapsed, "settled", now_us - 3_600_000_000),
        (lapsed, "lapsed", now_us - 3_600_000_000),
        (open_, "open", now_us + 600_000_000),
    )
    t = time.perf_counter()
    with ledger.engine.begin() as conn:
        carries = "estimate_nanos" in {c["name"] for c in inspect(conn).get_columns("reservation_budgets")}
        for n, status, expires in groups:
            params = {"status": status, "flows": len(FLOWS), "now": now_us, "exp": expires, "n": n}
            conn.execute(
                text(
                    "INSERT INTO reservations (id, source, request_id, flow, tags, estimate_nanos, status, "
                    "answer, created_us, expires_us) SELECT 'h' || :status || g, 'bench', NULL, "
                    "'flow-' || lpad((g % :flows)::text, 2, '0'), '{}', 10000000, :status, '{}', :now, :exp "
                    "FROM generate_series(1, :n) g"
                ),
                params,
            )
            if not carries:
                conn.execute(
                    text(
                        "INSERT INTO reservation_budgets (reservation_id, budget_key) SELECT 'h' || :status || g, "
                        "'flow-' || lpad((g % :flows)::text, 2, '0') FROM generate_series(1, :n) g"
                    ),
                    params,
                )
            elif status != "settled":
                conn.execute(
                    text(
                        "INSERT INTO reservation_budgets (reservation_id, budget_key, estimate_nanos, expires_us) "
                        "SELECT 'h' || :status || g, 'flow-' || lpad((g % :flows)::text, 2, '0'), 10000000, :exp "
                        "FROM generate_series(1, :n) g"
                    ),
                    params,
                )
    with ledger.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE reservations"))
        conn.execute(text("VACUUM ANALYZE reservation_budgets"))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--history", type=int, default=2_000_000, help="past holds added (a fifth lapsed)")
    ap.add_argument("--open", type=int, default=5_000, help="unexpired holds added")
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--admin")
    args = ap.parse_args()
    admin = admin_url(args.admin)
    if not admin:
        print("held_history: skipped (set FINOPS_BENCH_POSTGRES_URL to a PostgreSQL server to run it)")
        return
    with tempfile.TemporaryDirectory() as tmp, fresh_pg(admin) as url:
        folder = Path(tmp)
        write_budgets(folder)
        ledger = Ledger.open(Settings(database_url=url, budgets_dir=folder))
        before = measure(ledger, folder, args.calls)
        took = add_history(ledger, args.history, args.open)
        print(
            f"added {args.history:,} past holds (a fifth lapsed) and {args.open:,} open ones over {len(FLOWS)} budgets in {took:.1f} s"
        )
        after = measure(ledger, folder, args.calls)
        ledger.close()
    print(f"\n{'':28}{'no history':>22}{'with history':>24}   ratio (median)")
    for kind in ("check", "reserve"):
        a, b = before[kind], after[kind]
        print(
            f"{kind + f' ({args.calls} calls)':28}"
            f"{statistics.median(a) * 1e3:9.2f} ms p99 {pct(a, 99) * 1e3:6.2f}"
            f"{statistics.median(b) * 1e3:11.2f} ms p99 {pct(b, 99) * 1e3:6.2f}"
            f"   {statistics.median(b) / statistics.median(a):6.2f}x"
        )


if __name__ == "__main__":
    main()
