"""Sustained HTTP ingest into the daemon (batches of 500), against JSONL ingest of the same records.

For each database (SQLite file, PostgreSQL when FINOPS_TEST_POSTGRES_URL is set), in this run:
- baseline: `ingest_paths` of the records as a JSONL file into a fresh database (what
  `finops ingest FILE` does);
- finops run: the real daemon (`python -m finops run`) on a free port, fresh database; client
  threads POST pre-encoded batches of 500 to /v1/usage over keep-alive connections; every answer
  must be 200 with all 500 stored. Records/s over the whole load, and per-request p50/p99.
The ratio HTTP/JSONL is the figure (target >= 0.5). The clients share the machine's two cores.
Then, on the loaded database with 40 budgets: GET /v1/budgets/{flow}/check, one client, p50/p99,
against `check_flow` called in this process on the same database (the HTTP and daemon overhead).

    python bench/http_ingest.py [--records 200000] [--clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import orjson
from _data import FLOWS, write_jsonl
from sqlalchemy import create_engine, text

from finops.settings import Settings
from finops.usecases.budgets import budgets_in_force, check_flow
from finops.usecases.ingest import ingest_paths
from finops.usecases.ledger import Ledger

BATCH = 500
TOKEN = "bench-token-0123456789abcdef"


def jsonl_rate(path: Path, url: str) -> tuple[float, int]:
    ledger = Ledger.open(Settings(database_url=url), create=True)
    start = time.perf_counter()
    summary = ingest_paths(ledger, [path])
    elapsed = time.perf_counter() - start
    ledger.close()
    assert summary.rejected == 0, summary.reasons
    return elapsed, summary.stored


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_budgets(folder: Path) -> None:
    lines = ["budgets:"]
    for i, flow in enumerate(FLOWS):
        lines += [
            f"  - flow: {flow}",
            '    owner: "@owner"',
            f"    daily_cap_usd: {5 if i % 2 else 500}",
            "    timezone: Europe/Berlin",
            f"    on_breach: {'block' if i % 2 else 'alert'}",
        ]
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")


def check_latency(port: int, calls: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times = []
    try:
        for i in range(calls):
            started = time.perf_counter()
            conn.request(
                "GET", f"/v1/budgets/{FLOWS[i % len(FLOWS)]}/check?estimate_usd=0.01", headers=headers
            )
            answer = conn.getresponse()
            body = answer.read()
            times.append(time.perf_counter() - started)
            assert answer.status == 200 and b'"decision"' in body, body[:300]
    finally:
        conn.close()
    return sorted(times)


def check_in_process(url: str, budgets: Path, calls: int) -> list[float]:
    ledger = Ledger.open(Settings(database_url=url), create=True)
    found = budgets_in_force(ledger, budgets).budgets
    times = []
    with ledger.engine.connect() as conn:
        for i in range(calls):
            started = time.perf_counter()
            check_flow(
                conn,
                found,
                flow=FLOWS[i % len(FLOWS)],
                tags={},
                now=datetime.now(UTC),
                estimate_usd=Decimal("0.01"),
            )
            times.append(time.perf_counter() - started)
    ledger.close()
    return sorted(times)


def http_rate(
    path: Path, url: str, clients: int, tmp: Path, checks: int
) -> tuple[float, int, list[float], list[float]]:
    bodies = []
    with path.open("rb") as f:
        lines = f.read().splitlines()
    for i in range(0, len(lines), BATCH):
        bodies.append(b"[" + b",".join(lines[i : i + BATCH]) + b"]")
    port = _free_port()
    env = {**os.environ, "FINOPS_INGEST_TOKENS": f"bench={TOKEN}", "FINOPS_LOG_FORMAT": "json"}
    with (tmp / "daemon.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "finops",
                "run",
                "--init",
                "--port",
                str(port),
                "--db",
                url,
                "--budgets",
                str(tmp),
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    queue = list(reversed(bodies))
    lock = threading.Lock()
    latencies: list[float] = []
    stored = [0]

    def worker() -> None:
        # http.client, not httpx: the clients share this machine's two cores with the daemon, and
        # a lean client leaves more of them to what is measured (real clients run elsewhere).
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while True:
                with lock:
                    if not queue:
                        return
                    body = queue.pop()
                started = time.perf_counter()
                conn.request("POST", "/v1/usage", body=body, headers=headers)
                answer = conn.getresponse()
                content = answer.read()
                took = time.perf_counter() - started
                assert answer.status == 200, content[:500]
                doc = orjson.loads(content)
                with lock:
                    latencies.append(took)
                    stored[0] += doc["stored"]
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    check_times = check_latency(port, checks)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    return elapsed, stored[0], sorted(latencies), check_times


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def fresh_postgres(admin_url: str) -> tuple[str, str]:
    name = f"finops_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


def drop_postgres(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--checks", type=int, default=1000, help="budget checks over HTTP after the load")
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    path = write_jsonl(args.data / f"usage-{args.records}.jsonl", args.records)
    targets: list[tuple[str, str | None]] = [("sqlite", None)]
    admin = os.environ.get("FINOPS_TEST_POSTGRES_URL")
    if admin:
        targets.append(("postgresql", admin))
    print(f"records: {args.records:,} in batches of {BATCH}; {args.clients} client threads")
    for label, admin_url in targets:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            made: list[str] = []

            def database(
                kind: str, tmp: Path = tmp, admin_url: str | None = admin_url, made: list[str] = made
            ) -> str:
                if admin_url is None:
                    return f"sqlite:///{tmp / kind}.db"
                url, name = fresh_postgres(admin_url)
                made.append(name)
                return url

            try:
                file_s, file_n = jsonl_rate(path, database("file"))
                write_budgets(tmp)
                http_db = database("http")
                http_s, http_n, lat, checks = http_rate(path, http_db, args.clients, tmp, args.checks)
                direct = check_in_process(http_db, tmp, args.checks)
            finally:
                for name in made:
                    assert admin_url is not None
                    drop_postgres(admin_url, name)
        assert file_n == http_n == args.records, (file_n, http_n)
        file_rate, http_rate_ = file_n / file_s, http_n / http_s
        print(f"{label}:")
        print(f"  JSONL ingest (baseline): {file_rate:>9,.0f} records/s ({file_s:.1f} s)")
        print(f"  HTTP POST /v1/usage:     {http_rate_:>9,.0f} records/s ({http_s:.1f} s)")
        print(
            f"  request latency: p50 {_pct(lat, 0.5):.1f} ms, p99 {_pct(lat, 0.99):.1f} ms ({len(lat)} requests)"
        )
        print(f"  ratio HTTP/JSONL: {http_rate_ / file_rate:.2f}   (target >= 0.5)")
        print(
            f"  budget check over HTTP: p50 {_pct(checks, 0.5):.2f} ms, p99 {_pct(checks, 0.99):.2f} ms "
            f"({len(checks)} calls); check_flow in process: p50 {_pct(direct, 0.5):.2f} ms, "
            f"p99 {_pct(direct, 0.99):.2f} ms"
        )


if __name__ == "__main__":
    main()
