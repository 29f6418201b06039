"""Replicas: 1, 2 and 4 `finops run` daemons on ONE PostgreSQL database, all through one PgBouncer
in transaction pooling mode, with clients posting batches to them and budgets that breach.

For each replica count, in this run: a fresh database, migrated through the pooler; N real daemons
(`python -m finops run`, FINOPS_CYCLE_S=1) reaching it through PgBouncer (tests/pgbouncer.py,
Debian's pgbouncer 1.18, `pool_mode = transaction`); a fake Slack (tests/slack_fake.py) that counts
posts; client threads POSTing pre-encoded batches of 500 records to /v1/usage, spread round-robin
over the daemons, and one batch in ten posted a second time, to another daemon (the same one when
there is only one), at once. Records are dated today and priced at exactly $0.01 each, on four
flows whose daily budgets are crossed several times over, so every threshold alert fires while
the replicas compete to send it.

Checked at each count (the run fails otherwise): usage_records holds exactly the distinct ids sent;
the batches' answers stored each id once between them; the hourly rollups sum to the raw records
(count and nano-dollars); spend is exactly distinct ids x $0.01; every alert in the outbox is sent,
Slack received exactly one post per alert, and no post twice. Printed: records/s at each count
(distinct records stored over the wall time of the load) and the machine's core count.

    python bench/pg_replicas.py [--records 60000] [--replicas 1,2,4] [--clients 4]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the PgBouncer harness, the Slack fake

import httpx
import orjson
from _daemon import TOKEN, free_port, fresh_database
from sqlalchemy import func, select

from finops.settings import Settings
from finops.storage.tables import alert_outbox, rollups_hourly, usage_records
from finops.usecases.ledger import Ledger
from tests.pgbouncer import PgBouncer
from tests.slack_fake import TOKEN as SLACK_TOKEN
from tests.slack_fake import FakeSlack

BATCH = 500
FLOWS = ("replica-a", "replica-b", "replica-c", "replica-d")
CHANNEL = "#bench-alerts"
CENT_NANOS = 10_000_000  # gpt-4o-2024-08-06: 1,000 output tokens cost exactly $0.01


def write_budgets(folder: Path, records: int) -> None:
    """A daily cap per flow at a fifth of what the run spends on it: 50%, 80% and 100% all cross."""
    cap = max(1, records // len(FLOWS) // 100 // 5)
    lines = ["budgets:"]
    for flow in FLOWS:
        lines += [
            f"  - flow: {flow}",
            '    owner: "@owner"',
            f'    slack_channel: "{CHANNEL}"',
            f"    daily_cap_usd: {cap}",
            "    thresholds: [0.5, 0.8, 1.0]",
            "    on_breach: alert",
        ]
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")


def batches(records: int, run: str) -> list[bytes]:
    """Pre-encoded batches of 500 records dated now (today's spend), ids unique to this run."""
    ts = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    out = []
    for start in range(0, records, BATCH):
        items = [
            {
                "id": f"{run}-{i}",
                "ts": ts,
                "provider": "openai",
                "model": "gpt-4o-2024-08-06",
                "flow": FLOWS[i % len(FLOWS)],
                "input_tokens": 0,
                "output_tokens": 1000,
            }
            for i in range(start, min(records, start + BATCH))
        ]
        out.append(orjson.dumps(items))
    return out


class Daemons:
    """N `finops run` processes on free ports, started together; stopped with SIGTERM (must exit 0)."""

    def __init__(self, count: int, url: str, folder: Path, slack: FakeSlack) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.folder = folder
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update(
            FINOPS_INGEST_TOKENS=f"bench={TOKEN}",
            FINOPS_LOG_FORMAT="json",
            FINOPS_CYCLE_S="1",
            FINOPS_SLACK_BOT_TOKEN=SLACK_TOKEN,
            FINOPS_SLACK_BASE_URL=slack.base_url,
            FINOPS_USER_HASH_SECRET="bench-secret",
        )
        self.procs = []
        for n, port in enumerate(self.ports):
            with (folder / f"daemon{n}.log").open("ab") as log:
                command = [sys.executable, "-m", "finops", "run", "--port", str(port), "--db", url]
                self.procs.append(
                    subprocess.Popen(
                        [*command, "--budgets", str(folder)], env=env, stdout=log, stderr=log, cwd=folder
                    )
                )
        for n, (proc, port) in enumerate(zip(self.procs, self.ports, strict=True)):
            for _ in range(600):
                if proc.poll() is not None:
                    raise RuntimeError((folder / f"daemon{n}.log").read_text()[-3000:])
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for n, proc in enumerate(self.procs):
            assert proc.wait(60) == 0, (self.folder / f"daemon{n}.log").read_text()[-3000:]


def load(ports: list[int], bodies: list[bytes], clients: int) -> tuple[float, int, int]:
    """Post every batch (one in ten twice, to two daemons at once); (seconds, stored, posted records)."""
    work: list[tuple[int, bytes]] = []
    rotation = itertools.cycle(range(len(ports)))
    for i, body in enumerate(bodies):
        first = next(rotation)
        work.append((ports[first], body))
        if i % 10 == 0:  # the duplicate goes next in the queue: another client takes it at once
            work.append((ports[(first + 1) % len(ports)], body))
    queue = list(reversed(work))
    lock = threading.Lock()
    totals = {"stored": 0, "posted": 0}
    failures: list[str] = []

    def client() -> None:
        conns: dict[int, http.client.HTTPConnection] = {}
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        try:
            while True:
                with lock:
                    if not queue or failures:
                        return
                    port, body = queue.pop()
                conn = conns.setdefault(port, http.client.HTTPConnection("127.0.0.1", port, timeout=300))
                conn.request("POST", "/v1/usage", body=body, headers=headers)
                answer = conn.getresponse()
                content = answer.read()
                with lock:
                    if answer.status != 200:
                        failures.append(f"{answer.status}: {content[:300]!r}")
                        return
                    doc = orjson.loads(content)
                    totals["stored"] += doc["stored"]
                    totals["posted"] += body.count(b'"id":')
        finally:
            for conn in conns.values():
                conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    assert not failures, failures[:3]
    return elapsed, totals["stored"], totals["posted"]


def ledger_state(url: str) -> dict[str, int]:
    ledger = Ledger.open(Settings(database_url=url, user_hash_secret="bench-secret"))
    try:
        with ledger.engine.connect() as conn:
            raw = conn.execute(
                select(
                    func.count(),
                    func.count(func.distinct(usage_records.c.record_id)),
                    func.coalesce(func.sum(usage_records.c.cost_nanos), 0),
                )
            ).one()
            roll = conn.execute(
                select(
                    func.coalesce(func.sum(rollups_hourly.c.records), 0),
                    func.coalesce(func.sum(rollups_hourly.c.cost_nanos), 0),
                )
            ).one()
            status = Counter(s for (s,) in conn.execute(select(alert_outbox.c.status)))
    finally:
        ledger.close()
    return {
        "rows": int(raw[0]),
        "distinct": int(raw[1]),
        "cost": int(raw[2]),
        "rollup_records": int(roll[0]),
        "rollup_cost": int(roll[1]),
        "alerts": sum(status.values()),
        "sent": status.get("sent", 0),
    }


def wait_for_alerts(url: str, slack: FakeSlack, timeout_s: float = 60) -> dict[str, int]:
    """Until every alert in the outbox is sent and Slack has had no new post for 3 cycles."""
    deadline = time.monotonic() + timeout_s
    seen, quiet_since = -1, time.monotonic()
    while True:
        state = ledger_state(url)
        posts = len(slack.posts(CHANNEL))
        if posts != seen:
            seen, quiet_since = posts, time.monotonic()
        if state["alerts"] and state["sent"] == state["alerts"] and time.monotonic() - quiet_since > 3:
            return state
        if time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def _load() -> str:
    """The 1-minute load average: other work on the machine moves every figure here."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=60_000, help="distinct records per replica count")
    ap.add_argument("--replicas", default="1,2,4")
    ap.add_argument("--clients", type=int, default=4, help="client threads posting batches")
    ap.add_argument("--pool-size", type=int, default=20, help="PgBouncer server connections for the database")
    ap.add_argument("--postgres", default=os.environ.get("FINOPS_TEST_POSTGRES_URL"))
    args = ap.parse_args()
    if not args.postgres:
        raise SystemExit("give --postgres URL or set FINOPS_TEST_POSTGRES_URL")
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        os.environ.pop(name, None)  # slack-sdk ignores NO_PROXY
    counts = [int(c) for c in args.replicas.split(",")]
    cores = os.cpu_count() or 1
    print(
        f"{args.records:,} distinct records per run in batches of {BATCH} (one batch in ten posted twice, "
        f"to two daemons), {args.clients} client threads; daemons reach PostgreSQL through one PgBouncer "
        f"(transaction pooling, {args.pool_size} server connections); {len(FLOWS)} daily budgets crossed "
        f"5x (thresholds 50/80/100%); this machine: {cores} cores, load average {_load()}"
    )
    rates: dict[int, float] = {}
    with PgBouncer(pool_size=args.pool_size) as bouncer:
        for count in counts:
            with ExitStack() as stack:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                direct = stack.enter_context(fresh_database(tmp, args.postgres, "replicas"))
                url = bouncer.url(direct)
                Ledger.open(Settings(database_url=url, user_hash_secret="bench-secret"), create=True).close()
                write_budgets(tmp, args.records)
                slack = FakeSlack()
                stack.callback(slack.close)
                bodies = batches(args.records, f"r{count}")
                daemons = Daemons(count, url, tmp, slack)
                try:
                    elapsed, stored, posted = load(daemons.ports, bodies, args.clients)
                    state = wait_for_alerts(url, slack)
                finally:
                    daemons.stop()
                posts = slack.posts(CHANNEL)
                texts = Counter(f"{p.text}{orjson.dumps(p.blocks).decode()}" for p in posts)
            problems = []
            if not state["rows"] == state["distinct"] == args.records:
                problems.append(
                    f"usage_records {state['rows']} rows, {state['distinct']} distinct, sent {args.records}"
                )
            if stored != args.records:
                problems.append(f"answers stored {stored}, distinct ids sent {args.records}")
            if (state["rollup_records"], state["rollup_cost"]) != (state["rows"], state["cost"]):
                problems.append(
                    f"rollups {state['rollup_records']}/{state['rollup_cost']} != raw {state['rows']}/{state['cost']}"
                )
            if state["cost"] != args.records * CENT_NANOS:
                problems.append(f"spend {state['cost']} nanos, expected {args.records * CENT_NANOS}")
            if not state["alerts"] or state["sent"] != state["alerts"] or len(posts) != state["alerts"]:
                problems.append(
                    f"alerts: {state['alerts']} in the outbox, {state['sent']} sent, {len(posts)} Slack posts"
                )
            if any(n > 1 for n in texts.values()):
                problems.append(
                    f"a Slack post arrived more than once: {[t[:80] for t, n in texts.items() if n > 1]}"
                )
            rates[count] = args.records / elapsed
            print(
                f"  {count} replica{'s' if count > 1 else ' '}: {rates[count]:7,.0f} records/s "
                f"({args.records:,} stored of {posted:,} posted in {elapsed:.1f} s); usage_records "
                f"{state['rows']:,} = distinct ids; rollups = raw; alerts {state['alerts']} in the outbox, "
                f"{len(posts)} Slack posts, none twice: {'ok' if not problems else 'FAILED'} (load {_load()})"
            )
            if problems:
                raise SystemExit("  " + "\n  ".join(problems))
    base = rates[counts[0]]
    print(
        "  relative to " + f"{counts[0]}: " + ", ".join(f"{c} -> {rates[c] / base:.2f}x" for c in counts[1:])
    )
    print(
        f"On {cores} cores the daemons, the clients, PgBouncer and PostgreSQL share the same CPUs: more "
        "replicas cannot add throughput beyond what those cores allow. These figures show correctness "
        "under concurrency (each record stored once, each alert sent once) and the cost of coordinating "
        "replicas, not scaling; scaling needs the replicas on their own machines. Where other work "
        "loads the machine (see the load average), more daemon processes also take a larger share "
        "of the CPUs from it, which a ratio above 1 may show instead of scaling."
    )


if __name__ == "__main__":
    main()
