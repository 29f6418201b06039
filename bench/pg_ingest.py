"""Ingest into PostgreSQL: finops against raw COPY of the same rows, and against finops on SQLite.

All in one run, on the same JSONL (bench/_data.py, default 300k records), in this process:
- finops-PG: ``ingest_paths`` (what ``finops ingest`` calls: decode, validate, price, dedupe,
  rollups, one transaction a batch) into a fresh PostgreSQL database at the head schema;
- finops-SQLite: the same into a fresh SQLite file;
- raw COPY: the same rows as finops stores them (the 26 ``USAGE_COLUMNS``, built by the use
  case's own prepare step, ``prepare_lines`` + ``to_rows``, outside the clock), psycopg 3
  ``COPY ... FROM STDIN`` in finops's batch size, one commit a batch, into
  (1) a plain table of those columns without any index, in a fresh database, and
  (2) finops's own ``usage_records`` in a fresh head-schema database (its primary key, unique
  key and indexes; nothing else: no dedupe, no rollups).
Each path starts from a fresh database (created and migrated outside the clock, dropped after);
the order of the paths rotates between runs; medians of ``--runs``. It also prints the CPU each
finops path used per record: this process, its parser process, and the database server.
Targets (issue 15): finops-PG >= 0.25 x raw COPY, and finops-PG >= finops-SQLite.

By default every process may run on every CPU, so on a small machine PostgreSQL's server takes
CPU from finops. ``--separate-cores`` (a local server, Linux, allowed to set CPU affinity) runs
finops on CPU 0 and the server on CPU 1, as when the database has a machine of its own: finops
then has the same one CPU with either database.

    python bench/pg_ingest.py [--records 300000] [--runs 3] [--admin URL] [--separate-cores]

The server comes from --admin, FINOPS_BENCH_POSTGRES_URL or FINOPS_TEST_POSTGRES_URL (a URL of
any database on it); without one it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _data import write_jsonl
from sqlalchemy import create_engine, make_url, text

from finops.settings import Settings
from finops.sources.jsonl import Line
from finops.storage.tables import USAGE_COLUMNS
from finops.usecases.ingest import DEFAULT_SOURCE, chunked, ingest_paths, prepare_lines, to_rows
from finops.usecases.ledger import Ledger


def admin_url(given: str | None) -> str | None:
    return given or os.environ.get("FINOPS_BENCH_POSTGRES_URL") or os.environ.get("FINOPS_TEST_POSTGRES_URL")


def conninfo(url: str) -> str:
    """A SQLAlchemy URL as psycopg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_pg(admin: str) -> Iterator[str]:
    """A new database at finops's head schema (migrated here, untimed), dropped afterwards."""
    name = f"finops_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        Ledger.open(Settings(database_url=url), create=True).close()
        yield url
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


#: CPU seconds of the last finops ingest per path: this process, its parser processes, and the
#: database's server processes (PostgreSQL on this machine only): what a 2-core machine shares.
CPU: dict[str, list[tuple[float, float, float]]] = {}


def _own_cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _server_cpu(ledger: Ledger) -> float:
    """CPU seconds of the server processes serving this database's connections (their whole
    lives: the ingest opened them), read from /proc; 0 when the server is not on this machine."""
    if ledger.engine.dialect.name != "postgresql":
        return 0.0
    with ledger.engine.connect() as conn:
        pids = conn.scalars(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).all()
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def finops_ingest(url: str, path: Path, n: int, label: str) -> float:
    ledger = Ledger.open(Settings(database_url=url), create=True)
    own, kids = _own_cpu()
    start = time.perf_counter()
    summary = ingest_paths(ledger, [path])
    elapsed = time.perf_counter() - start
    own2, kids2 = _own_cpu()
    CPU.setdefault(label, []).append((own2 - own, kids2 - kids, _server_cpu(ledger)))
    ledger.close()
    assert summary.stored == n and summary.rejected == 0, summary
    return elapsed


PG, LITE = "finops ingest -> PostgreSQL", "finops ingest -> SQLite"


def finops_pg(admin: str, path: Path, n: int) -> float:
    with fresh_pg(admin) as url:
        return finops_ingest(url, path, n, PG)


def finops_sqlite(path: Path, n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'finops.db'}"
        Ledger.open(Settings(database_url=url), create=True).close()
        return finops_ingest(url, path, n, LITE)


def prepared_rows(admin: str, path: Path, batch: int) -> list[list[tuple[Any, ...]]]:
    """The rows finops would store, in finops's batches: its prepare step, outside any clock."""
    with fresh_pg(admin) as url:
        ledger = Ledger.open(Settings(database_url=url))
        lines = (Line(str(path), i + 1, t) for i, t in enumerate(path.read_text().splitlines()))
        out = [
            to_rows(prepare_lines(ledger.book, ledger.user_key, chunk), DEFAULT_SOURCE).rows
            for chunk in chunked(lines, batch)
        ]
        ledger.close()
    return out


def raw_copy(url: str, table: str, batches: list[list[tuple[Any, ...]]]) -> float:
    cols = ", ".join(USAGE_COLUMNS)
    with psycopg.connect(conninfo(url)) as conn, conn.cursor() as cur:
        start = time.perf_counter()
        for rows in batches:
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.commit()
        elapsed = time.perf_counter() - start
        cur.execute(f"SELECT count(*) FROM {table}")
        stored = cur.fetchone()[0]  # type: ignore[index]
    assert stored == sum(len(b) for b in batches), stored
    return elapsed


def copy_plain(admin: str, batches: list[list[tuple[Any, ...]]]) -> float:
    with fresh_pg(admin) as url:
        with psycopg.connect(conninfo(url), autocommit=True) as conn:
            # the same 26 columns and types as usage_records, no key, no index
            conn.execute(
                f"CREATE TABLE raw_plain AS SELECT {', '.join(USAGE_COLUMNS)} FROM usage_records WITH NO DATA"
            )
        return raw_copy(url, "raw_plain", batches)


def copy_indexed(admin: str, batches: list[list[tuple[Any, ...]]]) -> float:
    with fresh_pg(admin) as url:
        return raw_copy(url, "usage_records", batches)


def _server_pids(admin: str) -> list[int]:
    """The local PostgreSQL server's processes: its postmaster (from postmaster.pid in its data
    directory) and every process it started."""
    engine = create_engine(admin)
    with engine.connect() as conn:
        data = Path(str(conn.scalar(text("SHOW data_directory"))))
    engine.dispose()
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == postmaster:
                pids.append(int(entry.name))
    return pids


@contextmanager
def separate_cores(admin: str) -> Iterator[str]:
    """Run finops (this process and its parser) on CPU 0 and the local PostgreSQL server on CPU
    1, as when the database has its own machine; the server's affinity is put back afterwards.
    The SQLite path then has CPU 0 only: the same finops host either way. A bench killed with
    SIGKILL cannot put it back: ``taskset -a -p -c 0-N <postmaster pid>`` does."""
    before: dict[int, set[int]] = {}
    for pid in _server_pids(admin):
        with suppress(ProcessLookupError):  # a backend that ended since the listing
            before[pid] = os.sched_getaffinity(pid)
    server = list(before)
    mine = os.sched_getaffinity(0)
    try:
        for pid in server:  # new backends are forked from the postmaster and inherit its CPU
            with suppress(ProcessLookupError):
                os.sched_setaffinity(pid, {1})
        os.sched_setaffinity(0, {0})
        yield f"finops on CPU 0, PostgreSQL ({len(server)} processes) on CPU 1"
    finally:
        os.sched_setaffinity(0, mine)
        for pid in [*server, *_server_pids(admin)]:
            with suppress(OSError):  # a backend that has ended meanwhile
                os.sched_setaffinity(pid, before.get(pid, mine))


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--admin", help="a URL on the server (default FINOPS_BENCH_POSTGRES_URL, then FINOPS_TEST_...)"
    )
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    ap.add_argument(
        "--separate-cores",
        action="store_true",
        help="finops on CPU 0, the (local) PostgreSQL server on CPU 1: the database on its own machine",
    )
    args = ap.parse_args()
    admin = admin_url(args.admin)
    if not admin:
        print("pg_ingest: skipped (set FINOPS_BENCH_POSTGRES_URL to a PostgreSQL server to run it)")
        return
    n = args.records
    path = write_jsonl(args.data / f"usage-{n}.jsonl", n)
    batch = Settings().ingest_batch_size
    batches = prepared_rows(admin, path, batch)
    assert sum(len(b) for b in batches) == n
    paths: list[tuple[str, Callable[[], float]]] = [
        (PG, lambda: finops_pg(admin, path, n)),
        (LITE, lambda: finops_sqlite(path, n)),
        ("raw COPY -> plain table, no index", lambda: copy_plain(admin, batches)),
        ("raw COPY -> usage_records (finops's indexes)", lambda: copy_indexed(admin, batches)),
    ]
    print(
        f"{n:,} records ({path.stat().st_size / 2**20:.0f} MiB JSONL), batches of {batch:,}, {args.runs} runs"
    )
    placement = separate_cores(admin) if args.separate_cores else nullcontext("every process on every CPU")
    with placement as where:
        print(f"before: {machine()}; {where}")
        times: dict[str, list[float]] = {label: [] for label, _ in paths}
        for run in range(args.runs):
            order = paths[run % len(paths) :] + paths[: run % len(paths)]
            for label, fn in order:
                times[label].append(fn())
            print(
                f"  run {run + 1}: "
                + "; ".join(f"{label}: {n / times[label][-1]:,.0f}/s" for label, _ in paths)
            )
        print(f"after:  {machine()}")
    rate = {label: n / statistics.median(ts) for label, ts in times.items()}
    width = max(len(label) for label in rate)
    print(f"\n{'path':<{width}}  {'records/s':>10}  {'median s':>9}  runs (s)")
    for label, ts in times.items():
        print(
            f"{label:<{width}}  {rate[label]:>10,.0f}  {statistics.median(ts):>9.2f}  "
            + " ".join(f"{t:.2f}" for t in ts)
        )
    pg, lite = rate[paths[0][0]], rate[paths[1][0]]
    plain, indexed = rate[paths[2][0]], rate[paths[3][0]]
    print()
    print(
        f"finops-PG / raw COPY (plain table):      {pg / plain:.3f}   (target >= 0.25: {'met' if pg / plain >= 0.25 else 'MISSED'})"
    )
    print(f"finops-PG / raw COPY (usage_records):    {pg / indexed:.3f}")
    print(
        f"finops-PG / finops-SQLite:               {pg / lite:.3f}   (target >= 1.0: {'met' if pg >= lite else 'MISSED'})"
    )
    print("\nCPU per record (median run):")
    for label, runs in CPU.items():
        own, kids, server = sorted(runs, key=sum)[len(runs) // 2]
        total = own + kids + server
        print(
            f"  {label:<{width}}  {total / n * 1e6:5.1f} us = this process {own / n * 1e6:.1f} + parser "
            f"{kids / n * 1e6:.1f} + database server {server / n * 1e6:.1f}  ({total:.1f} CPU s)"
        )


if __name__ == "__main__":
    main()
