"""Admission control over HTTP: reserve+settle pairs against the real daemon, with the in-process
``check_flow`` as the baseline measured in the same run.

For each database (a SQLite file; PostgreSQL when --postgres or FINOPS_TEST_POSTGRES_URL is
given), a fresh daemon (`python -m finops run`) with one blocking budget whose cap is far above
what the run spends, so nothing is denied. At 1, 8 and 32 concurrent clients, each client loops:
POST /v1/budgets/{flow}/reserve (estimate $0.01), then POST /v1/usage with one record worth
exactly $0.01 carrying the reservation_id (the settlement). Pairs/s over the whole load, and
p50/p99 of reserve and of settle. At the end the ledger must show every pair: spend = pairs x
$0.01, nothing held. Baseline: `check_flow` in this process on the same database (the budget
arithmetic alone, no HTTP, no write). Targets at 32 clients on SQLite: >= 1,000 pairs/s and p99
< 15 ms (reserve and settle each).

    python bench/admission.py [--pairs 3000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import gc
import http.client
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from _daemon import CENT_RECORD, FLOW, TOKEN, daemon, fresh_database, targets, write_budget

from finops.domain.money import usd_to_nanos
from finops.settings import Settings
from finops.usecases.budgets import budgets_in_force, check_flow
from finops.usecases.ledger import Ledger

CLIENTS = (1, 8, 32)
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


class Load:
    """``pairs`` reserve+settle pairs shared by ``clients`` threads, each on its own keep-alive
    connection (http.client: lean, so the client threads leave the cores to the daemon)."""

    def __init__(self, port: int, pairs: int, clients: int) -> None:
        self.port, self.clients = port, clients
        self.left = pairs
        self.lock = threading.Lock()
        self.reserve_s: list[float] = []
        self.settle_s: list[float] = []
        self.denied = 0

    def _take(self) -> bool:
        with self.lock:
            self.left -= 1
            return self.left >= 0

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        reserve_body = orjson.dumps({"estimate_usd": "0.01", "ttl_s": 300})
        mine_r: list[float] = []
        mine_s: list[float] = []
        try:
            while self._take():
                started = time.perf_counter()
                conn.request("POST", f"/v1/budgets/{FLOW}/reserve", body=reserve_body, headers=HEADERS)
                answer = conn.getresponse()
                doc = orjson.loads(answer.read())
                mine_r.append(time.perf_counter() - started)
                assert answer.status == 200, doc
                if not doc["allow"]:
                    with self.lock:
                        self.denied += 1
                    continue
                record = {
                    **CENT_RECORD,
                    "id": f"pair-{uuid.uuid4().hex}",
                    "ts": datetime.now(UTC).isoformat(),
                    "flow": FLOW,
                    "reservation_id": doc["reservation_id"],
                }
                started = time.perf_counter()
                conn.request("POST", "/v1/usage", body=orjson.dumps([record]), headers=HEADERS)
                answer = conn.getresponse()
                doc = orjson.loads(answer.read())
                mine_s.append(time.perf_counter() - started)
                assert answer.status == 200 and doc["stored"] == 1, doc
        finally:
            conn.close()
            with self.lock:
                self.reserve_s += mine_r
                self.settle_s += mine_s

    def run(self) -> float:
        # The client's own garbage collections would show up as server latency: keep them out.
        gc.collect()
        gc.freeze()
        threads = [threading.Thread(target=self._client) for _ in range(self.clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - start


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


def ledger_now(url: str, budgets: Path) -> tuple[int, int, list[float]]:
    """Spend and held on the bench budget now, and ``check_flow`` timings (the baseline)."""
    ledger = Ledger.open(Settings(database_url=url))
    found = budgets_in_force(ledger, budgets).budgets
    times = []
    with ledger.engine.connect() as conn:
        for _ in range(500):
            started = time.perf_counter()
            result = check_flow(
                conn, found, flow=FLOW, tags={}, now=datetime.now(UTC), estimate_usd=Decimal("0.01")
            )
            times.append(time.perf_counter() - started)
    ledger.close()
    state = result.states[0]
    return state.spend_nanos, result.held[state.budget.key], times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3000, help="reserve+settle pairs per concurrency level")
    ap.add_argument("--postgres", help="a PostgreSQL server URL (default: FINOPS_TEST_POSTGRES_URL)")
    args = ap.parse_args()
    print(f"{args.pairs:,} reserve+settle pairs per level; estimate and actual cost $0.01 each")
    for label, admin_url in targets(args.postgres):
        with tempfile.TemporaryDirectory() as tmp_name, fresh_database(Path(tmp_name), admin_url, "a") as url:
            folder = Path(tmp_name)
            write_budget(folder, "1000000")  # far above the run: nothing is denied
            print(f"{label}:")
            total = 0
            with daemon(url, folder) as port:
                for clients in CLIENTS:
                    load = Load(port, args.pairs, clients)
                    elapsed = load.run()
                    assert load.denied == 0, load.denied
                    total += len(load.settle_s)
                    print(
                        f"  {clients:>2} clients: {len(load.settle_s) / elapsed:7,.0f} pairs/s; "
                        f"reserve p50 {pct(load.reserve_s, 0.5):5.2f} ms p99 {pct(load.reserve_s, 0.99):6.2f} ms; "
                        f"settle p50 {pct(load.settle_s, 0.5):5.2f} ms p99 {pct(load.settle_s, 0.99):6.2f} ms"
                    )
            spend, held, base = ledger_now(url, folder)
        assert spend == total * usd_to_nanos(Decimal("0.01")) and held == 0, (spend, held, total)
        print(f"  ledger after the run: {total:,} pairs, spend exactly ${Decimal(spend) / 10**9}, held $0")
        print(
            f"  baseline check_flow in process: p50 {pct(base, 0.5):.2f} ms, p99 {pct(base, 0.99):.2f} ms; "
            f"reserve p50 at 32 clients = {pct(load.reserve_s, 0.5) / pct(base, 0.5):.1f}x check_flow p50"
        )
        ok = (
            len(load.settle_s) / elapsed >= 1000
            and max(pct(load.reserve_s, 0.99), pct(load.settle_s, 0.99)) < 15
        )
        if label == "sqlite":
            print(f"  target at 32 clients (>= 1,000 pairs/s, p99 < 15 ms): {'met' if ok else 'MISSED'}")
            # Little's law: 32 clients with no pause between requests keep 32 requests in flight,
            # so the mean latency is 32 / requests per second, whatever the server does.
            print(
                f"  Little's law at 32 clients: mean latency = 32 / {2 * len(load.settle_s) / elapsed:,.0f} req/s "
                f"= {32 / (2 * len(load.settle_s) / elapsed) * 1000:.1f} ms; a mean under 15 ms needs >= 1,067 pairs/s"
            )


if __name__ == "__main__":
    main()
