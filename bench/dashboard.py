"""Dashboard server time on the 10M-record database: `/`, `/flows/{flow}` and `/spend` (November
by flow), median and p99 of 50 requests each, against the `finops spend` query alone.

Uses the database bench/query.py builds (``bench/data/query-N.db``: built once, then reused by
every run and by the other benches), with eight budgets on bench flows in a temp folder so the
overview has tiles. The pages are asked in one process through the daemon's real ASGI app
(``create_app`` over a real ``Daemon``'s service, the garbage collector tuned as ``finops run``
tunes it, Starlette's TestClient from loopback): server time, without sockets or a browser. The
daemon's cycle is not started: its jobs (retention) must not change the database the other
benches share. The baseline, in the same run, is ``run_spend`` for the same question as
`/spend` on one connection. A page that does not answer 200 (one not built yet answers 501) is
reported with its status, not timed. Of 50 requests, the p99 is the slowest one.

    python bench/dashboard.py [--records 10000000] [--requests 50]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import load
from starlette.testclient import TestClient

from finops.daemon.cycle import Daemon
from finops.daemon.http.app import ApiState, create_app
from finops.daemon.serve import _quiet_gc
from finops.domain.money import format_usd
from finops.settings import Settings
from finops.storage.db import create_engine_for, upgrade
from finops.usecases.spend import SpendQuery, run_spend

TARGET_MS = 150.0
WARM_UP = 3
FLOW = "flow-07"
SPEND = "/spend?by=flow&period=month&month=2026-11&tz=UTC"


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def write_budgets(folder: Path) -> int:
    """Eight budgets on bench flows: tight and loose caps, alert and block, two time zones."""
    lines = ["budgets:"]
    for i in range(8):
        lines += [
            f"  - flow: flow-{i:02d}",
            '    owner: "@bench"',
            f"    daily_cap_usd: {(2, 50, 500, 5000)[i % 4]}",
            f"    timezone: {'Europe/Berlin' if i % 2 else 'UTC'}",
            f"    on_breach: {'block' if i % 3 == 0 else 'alert'}",
        ]
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")
    return 8


def timed(call: Callable[[], object], n: int) -> list[float]:
    for _ in range(WARM_UP):
        call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    db = args.data / f"query-{args.records}.db"
    if not db.exists():
        args.data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        load(db, args.records)
        print(f"loaded {args.records:,} records in {time.perf_counter() - t:.0f} s (kept in {db})")
    url = f"sqlite:///{db}"
    engine = create_engine_for(url)
    upgrade(engine)  # the dashboard's tables, if the database predates them

    utc = ZoneInfo("UTC")
    query = SpendQuery(
        group_by=("flow",), start=datetime(2026, 11, 1, tzinfo=utc), end=datetime(2026, 12, 1, tzinfo=utc)
    )
    with engine.connect() as conn:
        baseline = timed(lambda: run_spend(conn, query), args.requests)
        expected = run_spend(conn, query)
    engine.dispose()

    rows: list[tuple[str, list[float] | str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        budgets = write_budgets(Path(tmp))
        daemon = Daemon(Settings(database_url=url, budgets_dir=Path(tmp)))
        daemon.budgets.refresh()
        app = create_app(ApiState(daemon.service, daemon.tokens, daemon.metrics), dashboard=daemon.viewers)
        _quiet_gc()  # as `finops run` does once started (without it, a full collection sets p99)
        try:
            with TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000)) as client:
                for path in ("/", f"/flows/{FLOW}", SPEND):
                    first = client.get(path)
                    if first.status_code != 200:
                        found = re.search(r'<p class="error">(.*?)</p>', first.text, re.S)
                        reason = found.group(1) if found else first.reason_phrase
                        word = "not built" if first.status_code == 501 else reason
                        rows.append((path, f"{first.status_code}: {word} ({reason})"))
                        continue
                    if path == "/":
                        tiles = first.text.count('data-tile="budget:')
                        assert tiles == budgets, f"{tiles} budget tiles, {budgets} budgets"
                    if path == SPEND:  # the page's total is the query's, to the nano-dollar
                        total = format_usd(expected.total["cost_nanos"])
                        assert f'value="{total}"' in first.text, "the page's total is not run_spend's"
                    rows.append((path, timed(lambda p=path: client.get(p), args.requests)))
        finally:
            daemon.service.close()
            daemon.ledger.close()

    base_med, base_p99 = statistics.median(baseline) * 1000, pct(baseline, 0.99) * 1000
    print(
        f"records in database: {args.records:,}; {budgets} budgets; {args.requests} requests each after "
        f"{WARM_UP} warm-ups; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    head = f"{'what':<52} {'median':>9} {'p99':>9} {'med/query':>10} {'p99/query':>10}"
    print(f"{head}  p99 < {TARGET_MS:.0f} ms")
    for path, got in rows:
        if isinstance(got, str):
            print(f"{path:<52} {got}")
            continue
        med, p99 = statistics.median(got) * 1000, pct(got, 0.99) * 1000
        ok = "yes" if p99 < TARGET_MS else "NO"
        print(f"{path:<52} {med:7.1f}ms {p99:7.1f}ms {med / base_med:9.1f}x {p99 / base_p99:9.1f}x  {ok}")
    alone = "run_spend alone (the same question as /spend)"
    print(f"{alone:<52} {base_med:7.1f}ms {base_p99:7.1f}ms {1:9.1f}x {1:9.1f}x")


if __name__ == "__main__":
    main()
