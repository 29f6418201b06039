"""Issue 11's table re-measured: how far concurrent clients overrun a $1.00 blocking cap when
they `check` before each call, and when they `reserve`.

One daemon (`python -m finops run`, a SQLite file; PostgreSQL too when --postgres or
FINOPS_TEST_POSTGRES_URL is given) with a $1.00 `on_breach: block` budget per run, each on its
own flow. N clients each loop until their first deny:
- check: GET /v1/budgets/{flow}/check?estimate_usd=0.01, a 50 ms "LLM call", then POST /v1/usage
  with a record worth exactly $0.01;
- reserve: POST /v1/budgets/{flow}/reserve {"estimate_usd": "0.01"}, the same 50 ms call, then
  the same record carrying the reservation_id (the settlement).
Printed: calls allowed and the flow's spend at the end, both ways side by side. A cap holds
when reserve allows exactly 100 calls and ends at exactly $1.00 at every concurrency.

    python bench/admission_overrun.py [--postgres URL]
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
from _daemon import CENT_RECORD, TOKEN, daemon, fresh_database, targets

CLIENTS = (1, 8, 32)
MODES = ("check", "reserve")
CALL_S = 0.05
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def write_budgets(folder: Path) -> None:
    """A $1.00 blocking cap on each run's own flow (UTC day: today's spend is the run's)."""
    lines = ["budgets:"]
    for mode in MODES:
        for clients in CLIENTS:
            lines += [f"  - flow: {mode}-{clients}", '    owner: "@owner"', "    daily_cap_usd: 1.00"]
            lines.append("    on_breach: block")
    (folder / "overrun.yaml").write_text("\n".join(lines) + "\n")


def _ask(conn: http.client.HTTPConnection, method: str, path: str, body: object = None) -> Any:
    conn.request(method, path, body=None if body is None else orjson.dumps(body), headers=HEADERS)
    answer = conn.getresponse()
    doc = orjson.loads(answer.read())
    assert answer.status == 200, doc
    return doc


def client(port: int, mode: str, flow: str, allowed: list[int], lock: threading.Lock) -> None:
    """Ask, make the call, post its usage; until the first deny."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        while True:
            if mode == "check":
                doc = _ask(conn, "GET", f"/v1/budgets/{flow}/check?estimate_usd=0.01")
            else:
                doc = _ask(
                    conn, "POST", f"/v1/budgets/{flow}/reserve", {"estimate_usd": "0.01", "ttl_s": 120}
                )
            if not doc["allow"]:
                return
            with lock:
                allowed[0] += 1
            time.sleep(CALL_S)  # the LLM call
            record = {
                **CENT_RECORD,
                "id": uuid.uuid4().hex,
                "ts": datetime.now(UTC).isoformat(),
                "flow": flow,
            }
            if mode == "reserve":
                record["reservation_id"] = doc["reservation_id"]
            assert _ask(conn, "POST", "/v1/usage", [record])["stored"] == 1
    finally:
        conn.close()


def run(port: int, mode: str, clients: int) -> tuple[int, str, str]:
    """Calls allowed, and the flow's spend and held at the end."""
    flow = f"{mode}-{clients}"
    allowed, lock = [0], threading.Lock()
    threads = [
        threading.Thread(target=client, args=(port, mode, flow, allowed, lock)) for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        doc = _ask(conn, "GET", f"/v1/budgets/{flow}/check")
    finally:
        conn.close()
    return allowed[0], doc["spend_usd"], doc["held_usd"]


def _usd(amount: str) -> str:
    """Exact dollars, in cents when they are whole cents (they are: every call costs $0.01)."""
    value = Decimal(amount)
    return f"${value:.2f}" if value == value.quantize(Decimal("0.01")) else f"${value}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", help="a PostgreSQL server URL (default: FINOPS_TEST_POSTGRES_URL)")
    args = ap.parse_args()
    for label, admin_url in targets(args.postgres):
        with tempfile.TemporaryDirectory() as tmp_name, fresh_database(Path(tmp_name), admin_url, "o") as url:
            folder = Path(tmp_name)
            write_budgets(folder)
            results = {}
            with daemon(url, folder) as port:
                for clients in CLIENTS:
                    for mode in MODES:
                        results[mode, clients] = run(port, mode, clients)
        print(f"{label}: $1.00 blocking cap, estimate and actual cost $0.01, a {CALL_S * 1000:.0f} ms call")
        print("| concurrent clients | check: calls allowed | check: spend at the end "
              "| reserve: calls allowed | reserve: spend at the end |")  # fmt: skip
        print("|---|---|---|---|---|")
        for clients in CLIENTS:
            c_calls, c_spend, _ = results["check", clients]
            r_calls, r_spend, r_held = results["reserve", clients]
            assert Decimal(r_held) == 0, r_held  # every hold was settled
            print(f"| {clients} | {c_calls} | {_usd(c_spend)} | {r_calls} | {_usd(r_spend)} |")


if __name__ == "__main__":
    main()
