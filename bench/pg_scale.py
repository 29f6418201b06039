"""finops on a PostgreSQL ledger of 100M usage records: spend, budget check/reserve, the monthly
report and retention, each timed in a fresh child process with its peak RSS; the database's size.

Generation (not through ingest: 100M records at ingest speed would take hours):
- a database migrated to finops's head schema (``open_ledger(create=True)``);
- 13 x 1024 record shapes from bench/_data.py (flows, models in the price catalog, tags, prompt
  ids, statuses, service tiers), 1024 per UTC month, priced by finops's own ingest prepare step
  (``prepare_lines`` + ``to_rows``) at that month's date, with their price versions recorded;
  the shapes go in with COPY;
- N rows expanded server-side, ``INSERT ... SELECT FROM generate_series`` in chunks of 1M on
  ``--jobs`` connections: record ids ``req_<20 hex>``, timestamps in time order over the 13 UTC
  months ending now (the oldest month is whole, so retention can remove it), the shape picked by a
  hash of the row number within the row's month. When the table ``usage_record_keys`` exists
  (the partitioned schema), every row gets its key row in the same statement;
- the secondary indexes and unique constraints are dropped before the load and built again
  after it, from their own definitions (``pg_get_indexdef``/``pg_get_constraintdef``), so the
  schema ends as the migrations made it; then ``rebuild_rollups`` (finops's own, in one
  transaction, with work_mem raised for it) and VACUUM ANALYZE.

Measurements (each in ``python bench/pg_scale.py --child ...``, so ``ru_maxrss`` is its own):
- spend: ``run_spend`` of ``finops spend --by flow --month <newest complete month>``
  (``spend_query`` as the CLI builds it), 5 warm-up then 50 timed; median, p99;
- check: ``check_flow`` as ``finops check`` does it, 40 budgets read from YAML (one per flow,
  half block, some with monthly caps, three time zones), random flows; 20 warm-up, 200 timed;
- reserve: ``admission.reserve`` (a write transaction: locks, reads spend and holds, inserts the
  hold), same budgets, $0.01 estimates; 20 warm-up, 200 timed;
- report: ``build_monthly_report`` + ``render_html`` for the newest complete month, one run;
- retention: ``run_retention`` (what the daemon's retention job calls) with ``retention_days``
  set so the horizon is the start of the second month: exactly the oldest month goes. Which
  path ran (row DELETE or partition drop) is read from the schema and printed.

    python bench/pg_scale.py [--records 1000000] [--jobs 2] [--db finops_scale] [--keep]
    python bench/pg_scale.py --db finops_scale --measure-only [--skip-retention]   # re-measure

The server comes from --admin, FINOPS_BENCH_POSTGRES_URL or FINOPS_TEST_POSTGRES_URL (a URL of
any database on it; the bench creates and drops its own). Without one it says so and exits 0.
An existing database of that name is refused unless --replace (or measured: --measure-only). Generation
stops with a one-line message when the disk has less than --min-free-gb left.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson
import psycopg
from _data import FLOWS, records
from sqlalchemy import create_engine, make_url, text

from finops.storage.db import open_ledger
from finops.storage.ledger import rebuild_rollups, record_price_versions
from finops.storage.retention import FINAL_KEY
from finops.storage.tables import USAGE_COLUMNS

#: Template columns: everything but what each generated row gets of its own.
OWN = ("source", "record_id", "ts_us", "hour", "ingested_us")
SHAPE = tuple(c for c in USAGE_COLUMNS if c not in OWN)
SHAPES_PER_MONTH = 1024
MONTHS = 13
CHUNK = 1_000_000
SOURCE = "default"
US = 1_000_000


def admin_url(given: str | None) -> str | None:
    return given or os.environ.get("FINOPS_BENCH_POSTGRES_URL") or os.environ.get("FINOPS_TEST_POSTGRES_URL")


def db_url(admin: str, name: str) -> str:
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def conninfo(url: str) -> str:
    """A SQLAlchemy URL as psycopg takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def month_starts(now: datetime) -> list[datetime]:
    """The first instants of the 13 UTC months ending with the one ``now`` is in, and the next."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = [first]
    for _ in range(MONTHS):
        prev = out[0] - timedelta(days=1)
        out.insert(0, prev.replace(day=1))
    out = out[1:]  # 13 starts, the last being the current month
    nxt = (first + timedelta(days=32)).replace(day=1)
    return [*out, nxt]


def us(t: datetime) -> int:
    return int(t.timestamp()) * US


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


# --------------------------------------------------------------------------- generation


def price_shapes(url: str, starts: Sequence[datetime]) -> list[tuple[Any, ...]]:
    """(month index, k, *SHAPE) rows, priced by finops's ingest prepare step at that month's date."""
    from finops.settings import Settings
    from finops.sources.jsonl import Line
    from finops.usecases.ingest import prepare_lines, to_rows
    from finops.usecases.ledger import Ledger

    ledger = Ledger.open(Settings(database_url=url))
    out: list[tuple[Any, ...]] = []
    at = [USAGE_COLUMNS.index(c) for c in SHAPE]
    unpriced = 0
    for m, start in enumerate(starts[:MONTHS]):
        lines = []
        for k, rec in enumerate(records(SHAPES_PER_MONTH, seed=100 + m)):
            rec["ts"] = (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
            lines.append(Line("shapes", k + 1, orjson.dumps(rec).decode()))
        prepared = prepare_lines(ledger.book, ledger.user_key, lines)
        assert not prepared.rejections, prepared.rejections[:3]
        with ledger.engine.begin() as conn:
            record_price_versions(conn, prepared.matches.values(), now_us=time.time_ns() // 1000)
        for k, row in enumerate(to_rows(prepared, SOURCE).rows):
            unpriced += row[USAGE_COLUMNS.index("cost_nanos")] is None
            out.append((m, k, *(row[i] for i in at)))
    ledger.close()
    if unpriced:
        log(f"note: {unpriced} of {len(out)} shapes are unpriced (their model has no price at that date)")
    return out


def index_plan(cur: psycopg.Cursor[Any], tables: Sequence[str]) -> tuple[list[str], list[str]]:
    """Statements that drop, and that rebuild, every index, primary key and unique constraint of
    ``tables`` (no foreign key refers to them)."""
    drop: list[str] = []
    build: list[str] = []
    for table in tables:
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY conname",
            (table,),
        )
        for name, definition in cur.fetchall():
            drop.append(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            build.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cur.execute(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) ORDER BY 1",
            (table,),
        )
        for name, definition in cur.fetchall():
            drop.append(f"DROP INDEX {name}")
            # a partitioned table's index reads "ON ONLY parent": built again on every partition
            build.append(definition.replace(" ON ONLY ", " ON ", 1))
    return drop, build


def schema_indexes(cur: psycopg.Cursor[Any], tables: Sequence[str]) -> list[str]:
    """The definitions of the indexes of ``tables`` (a partitioned table's, not its partitions')."""
    cur.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = ANY(%s::regclass[]) ORDER BY 1",
        (list(tables),),
    )
    return [r[0] for r in cur.fetchall()]


def partitions_short_of_indexes(cur: psycopg.Cursor[Any]) -> list[str]:
    """Partitions of usage_records with fewer indexes than their parent (none, when rebuilt right)."""
    cur.execute(
        "SELECT p.relid::text FROM pg_partition_tree('usage_records') p WHERE p.isleaf AND "
        "(SELECT count(*) FROM pg_index WHERE indrelid = p.relid) < "
        "(SELECT count(*) FROM pg_index WHERE indrelid = 'usage_records'::regclass)"
    )
    return [r[0] for r in cur.fetchall()]


def has_table(cur: psycopg.Cursor[Any], name: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    row = cur.fetchone()
    return bool(row and row[0])


def is_partitioned(cur: psycopg.Cursor[Any]) -> bool:
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'usage_records'::regclass)"
    )
    row = cur.fetchone()
    return bool(row and row[0])


def ensure_partitions(url: str, starts: Sequence[datetime], now: datetime) -> None:
    """On the partitioned schema: each generated month's partition, made by finops's own helper
    (so retention can drop the oldest whole), and the months ahead the daemon would make."""
    from finops.storage import partitions  # migration 0008 (issue 15)

    engine = create_engine(url)
    with engine.begin() as conn:
        for start in starts[:MONTHS]:
            partitions.create_month_partition(conn, us(start))
        partitions.ensure_partitions(conn, now)
    engine.dispose()


def insert_sql(keys: bool) -> str:
    shape = ", ".join(f"t.{c}" for c in SHAPE)
    cols = ", ".join(("source", "record_id", "ts_us", "hour", *SHAPE, "ingested_us"))
    select = (
        f"SELECT '{SOURCE}', 'req_' || substr(md5(s.g::text), 1, 20), s.ts, s.ts / 3600000000 * 3600, {shape}, "
        "LEAST(s.ts + 1000000 + (hashint8(s.g + 7)::bigint + 2147483648) %% 59000000, %(now)s) "
        "FROM (SELECT g, %(lo)s::bigint + g * %(step)s::bigint + (hashint8(g)::bigint + 2147483648) %% %(step)s AS ts "
        "      FROM generate_series(%(a)s::bigint, %(b)s::bigint - 1) AS g) s "
        "JOIN bench_shapes t ON t.m = width_bucket(s.ts, %(bounds)s::bigint[]) - 1 "
        f"AND t.k = (hashint8(s.g) & {SHAPES_PER_MONTH - 1})"
    )
    if not keys:
        return f"INSERT INTO usage_records ({cols}) {select}"
    return (
        f"WITH ins AS (INSERT INTO usage_records ({cols}) {select} RETURNING source, record_id, ts_us) "
        "INSERT INTO usage_record_keys (source, record_id, ts_us) SELECT source, record_id, ts_us FROM ins"
    )


def generate(url: str, n: int, jobs: int, now: datetime, min_free_gb: float) -> dict[str, float]:
    starts = month_starts(now)
    lo, hi = us(starts[0]), int(now.timestamp()) * US - 60 * US
    step = (hi - lo) // n
    assert step >= 1, "too many records for the span"
    bounds = [us(s) for s in starts]
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    shapes = price_shapes(url, starts)
    with psycopg.connect(conninfo(url), autocommit=True) as c, c.cursor() as cur:
        keys = has_table(cur, "usage_record_keys")
        partitioned = is_partitioned(cur)
        cur.execute(
            "CREATE UNLOGGED TABLE bench_shapes AS SELECT 0::int AS m, 0::int AS k, "
            f"{', '.join(SHAPE)} FROM usage_records WITH NO DATA"
        )
        with cur.copy(f"COPY bench_shapes (m, k, {', '.join(SHAPE)}) FROM STDIN") as copy:
            for row in shapes:
                copy.write_row(row)
        cur.execute("CREATE UNIQUE INDEX ON bench_shapes (m, k)")
        cur.execute("ANALYZE bench_shapes")
        tables = ["usage_records", *(["usage_record_keys"] if keys else [])]
        before = schema_indexes(cur, tables)
        drop, build = index_plan(cur, tables)
        for stmt in drop:
            cur.execute(stmt)
    if partitioned:
        ensure_partitions(url, starts, now)
    timings["shapes (priced by finops) + drop indexes"] = time.perf_counter() - t0
    log(
        f"schema: usage_records {'partitioned' if partitioned else 'a single table'}; "
        f"usage_record_keys {'filled' if keys else 'absent'}; {len(drop)} indexes/constraints dropped for the load"
    )

    sql = insert_sql(keys)
    chunks = list(range(0, n, CHUNK))
    lock = threading.Lock()
    done = [0]
    failure: list[BaseException] = []
    t1 = time.perf_counter()

    def worker() -> None:
        with psycopg.connect(conninfo(url)) as c, c.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            c.commit()
            while not failure:
                with lock:
                    if not chunks:
                        return
                    a = chunks.pop(0)
                free = shutil.disk_usage("/").free / 2**30
                if free < min_free_gb:
                    failure.append(
                        SystemExit(f"stopped: only {free:.1f} GB free on / (--min-free-gb {min_free_gb})")
                    )
                    return
                b = min(a + CHUNK, n)
                try:
                    cur.execute(
                        sql,
                        {"lo": lo, "step": step, "a": a, "b": b, "bounds": bounds, "now": hi + 60 * US},
                    )
                    c.commit()
                except BaseException as exc:  # reported by the main thread
                    failure.append(exc)
                    return
                with lock:
                    done[0] += b - a
                    if done[0] % (10 * CHUNK) < CHUNK or done[0] == n:
                        rate = done[0] / (time.perf_counter() - t1)
                        log(f"  {done[0]:,} rows, {rate:,.0f} rows/s, {free:.1f} GB free")

    threads = [threading.Thread(target=worker) for _ in range(max(1, jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if failure:
        raise failure[0]
    timings[f"rows (INSERT ... SELECT generate_series, {jobs} jobs)"] = time.perf_counter() - t1
    log(f"generated {n:,} rows at {n / (time.perf_counter() - t1):,.0f} rows/s")

    t2 = time.perf_counter()
    with psycopg.connect(conninfo(url), autocommit=True) as c, c.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '1GB'")
        for stmt in build:
            t = time.perf_counter()
            cur.execute(stmt)
            log(f"  built in {time.perf_counter() - t:.0f} s: {stmt[:110]}")
        after = schema_indexes(cur, tables)
        short = partitions_short_of_indexes(cur)
        cur.execute("DROP TABLE bench_shapes")
    if short:
        raise SystemExit(f"partitions without every index after the rebuild: {short}")
    if sorted(before) != sorted(after):
        raise SystemExit(f"the indexes differ after the rebuild: {sorted(set(before) ^ set(after))}")
    timings["indexes and constraints rebuilt"] = time.perf_counter() - t2

    t3 = time.perf_counter()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL work_mem = '512MB'")
        hourly = rebuild_rollups(conn)
    engine.dispose()
    timings["rebuild_rollups (finops's)"] = time.perf_counter() - t3
    log(f"rollups rebuilt: {hourly:,} hourly rows")
    t4 = time.perf_counter()
    with psycopg.connect(conninfo(url), autocommit=True) as c, c.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    timings["VACUUM ANALYZE"] = time.perf_counter() - t4
    return timings


# --------------------------------------------------------------------------- measurements (children)

BUDGET_ZONES = ("UTC", "Europe/Berlin", "America/New_York")


def write_budgets(folder: Path) -> None:
    """One budget per flow, as tests write them: half block, every third with a monthly cap."""
    lines = ["budgets:"]
    for i, flow in enumerate(FLOWS):
        lines += [
            f"  - flow: {flow}",
            "    owner: '@owner'",
            f"    daily_cap_usd: {100000 + i}",
            f"    on_breach: {'block' if i % 2 else 'alert'}",
            f"    timezone: {BUDGET_ZONES[i % 3]}",
        ]
        if i % 3 == 0:
            lines.append(f"    monthly_cap_usd: {3000000 + i}")
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def child(kind: str, url: str, month: str, budgets: Path | None, retention_days: int) -> dict[str, Any]:
    """One measurement in this (fresh) process; what it found, with this process's peak RSS."""
    from finops.settings import Settings
    from finops.usecases.ledger import Ledger

    out: dict[str, Any] = {}
    if kind == "spend":
        from finops.domain.periods import month_range
        from finops.usecases.spend import run_spend
        from finops.usecases.spend_request import spend_query

        utc = ZoneInfo("UTC")
        start, end = month_range(month, utc)
        engine = open_ledger(url)
        times = []
        for i in range(55):
            t = time.perf_counter()
            query = spend_query(
                by="flow", start=start, end=end, tz=utc, flows=(), models=(), providers=(), tags=(), top=None
            )
            with engine.connect() as conn:
                result = run_spend(conn, query)
            if i >= 5:
                times.append(time.perf_counter() - t)
        engine.dispose()
        out.update(times=times, groups=len(result.rows), total=int(result.total["cost_nanos"]))
    elif kind in ("check", "reserve"):
        from finops.usecases.admission import ReserveRequest, reserve
        from finops.usecases.budgets import budgets_in_force, check_flow

        assert budgets is not None
        ledger = Ledger.open(Settings(database_url=url, budgets_dir=budgets))
        found = budgets_in_force(ledger, budgets)
        assert not found.broken and len(found.budgets) == len(FLOWS), found.messages
        rng = random.Random(3)
        times = []
        decisions: dict[str, int] = {}
        for i in range(220):
            flow = rng.choice(FLOWS)
            t = time.perf_counter()
            if kind == "check":
                with ledger.engine.connect() as conn:
                    decision = check_flow(
                        conn,
                        found.budgets,
                        flow=flow,
                        tags={},
                        now=datetime.now(UTC),
                        estimate_usd=Decimal("0.01"),
                    ).decision
            else:
                req = ReserveRequest(flow=flow, estimate_usd=Decimal("0.01"), ttl_s=60)
                decision = reserve(ledger, found.budgets, req, source="bench").decision
            if i >= 20:
                times.append(time.perf_counter() - t)
                decisions[decision] = decisions.get(decision, 0) + 1
        ledger.close()
        out.update(times=times, decisions=decisions)
    elif kind == "report":
        from finops.render.report_html import render_html
        from finops.usecases.audit.monthly import build_monthly_report

        assert budgets is not None
        ledger = Ledger.open(Settings(database_url=url, budgets_dir=budgets))
        t = time.perf_counter()
        report = build_monthly_report(ledger, month=month, tz=ZoneInfo("UTC"), top=20)
        built = time.perf_counter() - t
        html = render_html(report)
        out.update(times=[time.perf_counter() - t], built=built, html_kib=len(html) // 1024)
        ledger.close()
    elif kind == "retention":
        import finops.usecases.retention as uc

        # Partitioned, the use case drops the month, then prunes its idempotency keys in
        # transactions of their own: time that second part apart (a pass-through wrapper).
        pruning = [0.0]
        first_prune: list[float] = []  # when the retention transaction had committed
        prune = getattr(uc, "prune_keys", None)
        if prune is not None:

            def timed(*a: Any, **k: Any) -> Any:
                t = time.perf_counter()
                if not first_prune:
                    first_prune.append(t)
                try:
                    return prune(*a, **k)
                finally:
                    pruning[0] += time.perf_counter() - t

            uc.prune_keys = timed  # type: ignore[attr-defined,unused-ignore]
        ledger = Ledger.open(Settings(database_url=url, retention_days=retention_days))
        t = time.perf_counter()
        result = uc.run_retention(ledger, now=datetime.now(UTC))
        end = time.perf_counter()
        closed = (first_prune[0] if first_prune else end) - t  # the watermark, the drop, the commit
        out.update(times=[closed], result=repr(result), prune_s=pruning[0], after_s=end - t - closed)
        ledger.close()
    else:
        raise SystemExit(f"unknown measurement {kind!r}")
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(
    kind: str, url: str, month: str, budgets: Path, retention_days: int = 0, timeout: float | None = None
) -> dict[str, Any] | None:
    """The measurement's findings; ``None`` when it ran past ``timeout`` (killed: its transaction
    rolls back)."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--url",
        url,
        "--month",
        month,
        "--budgets",
        str(budgets),
        "--retention-days",
        str(retention_days),
    ]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(f"the {kind} measurement failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- sizes


#: The tables holding a table's rows: its partitions, or itself when it has none.
LEAVES = (
    "SELECT relid FROM pg_partition_tree(%(t)s::regclass) WHERE isleaf "
    "UNION SELECT %(t)s::regclass WHERE NOT EXISTS "
    "(SELECT 1 FROM pg_partitioned_table WHERE partrelid = %(t)s::regclass)"
)


def sizes(url: str, n: int | None) -> list[str]:
    with psycopg.connect(conninfo(url), autocommit=True) as c, c.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        total = cur.fetchone()[0]  # type: ignore[index]
        cur.execute("SELECT count(*) FROM usage_records")
        rows = cur.fetchone()[0]  # type: ignore[index]
        out = [
            f"database size: {total / 2**30:.2f} GiB for {rows:,} usage rows "
            f"({total / 2**20 / max(rows, 1) * 1e6:,.0f} MiB per million rows"
            + (f"; generated {n:,})" if n is not None else ")")
        ]
        names = [
            "usage_records",
            "usage_record_keys",
            "rollups_hourly",
            "rollups_daily",
            "prompt_rollups_daily",
        ]
        out.append(
            f"  {'table':<22} {'heap+toast':>11} {'indexes':>10} {'total':>10} {'MiB/M rows':>11}  parts"
        )
        for name in names:
            cur.execute("SELECT to_regclass(%s)", (name,))
            if cur.fetchone()[0] is None:  # type: ignore[index]
                continue
            cur.execute(
                "SELECT count(*), coalesce(sum(pg_table_size(r)), 0), coalesce(sum(pg_indexes_size(r)), 0) "
                f"FROM ({LEAVES}) AS leaves(r)",
                {"t": name},
            )
            parts, heap, idx = (int(x) for x in cur.fetchone())  # type: ignore[union-attr]
            tot = heap + idx
            out.append(
                f"  {name:<22} {heap / 2**30:>9.2f} G {idx / 2**30:>8.2f} G {tot / 2**30:>8.2f} G "
                f"{tot / 2**20 / max(rows, 1) * 1e6:>11,.1f}  {parts}"
            )
        cur.execute(
            "SELECT regexp_replace(indexrelid::regclass::text, '^usage_records_(p[0-9]{6}|default)_', "
            "'usage_records_*_') AS name, sum(pg_relation_size(indexrelid)) FROM pg_index "
            f"WHERE indrelid IN ({LEAVES}) GROUP BY 1 ORDER BY 2 DESC",
            {"t": "usage_records"},
        )
        out.append(
            "  usage_records indexes (all partitions): "
            + ", ".join(f"{i} {s / 2**30:.2f} G" for i, s in cur.fetchall())
        )
    return out


# --------------------------------------------------------------------------- main


def create_database(admin: str, name: str, *, replace: bool) -> None:
    """A new database; one of that name is dropped only with ``replace`` (it may be an hour of
    generation someone is measuring)."""
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if exists and not replace:
            engine.dispose()
            raise SystemExit(
                f"pg_scale: the database {name} exists: measure it with --measure-only, "
                "name another with --db, or add --replace to drop it"
            )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def drop_database(admin: str, name: str) -> None:
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextmanager
def budgets_folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        write_budgets(Path(tmp))
        yield Path(tmp)


def row_count(url: str, lo_us: int, hi_us: int) -> int:
    with psycopg.connect(conninfo(url)) as c, c.cursor() as cur:
        cur.execute("SELECT count(*) FROM usage_records WHERE ts_us >= %s AND ts_us < %s", (lo_us, hi_us))
        return int(cur.fetchone()[0])  # type: ignore[index]


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--jobs", type=int, default=2, help="parallel generating connections")
    ap.add_argument("--db", default="finops_scale", help="the database to build")
    ap.add_argument(
        "--admin", help="a URL on the server (default FINOPS_BENCH_POSTGRES_URL, then FINOPS_TEST_...)"
    )
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument("--replace", action="store_true", help="drop an existing --db first (else refuse)")
    ap.add_argument("--measure-only", action="store_true", help="measure an existing --db, no generation")
    ap.add_argument("--skip-retention", action="store_true", help="leave the oldest month in place")
    ap.add_argument("--min-free-gb", type=float, default=5.0)
    ap.add_argument(
        "--retention-timeout", type=float, default=1800, help="stop (roll back) retention after this many s"
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--month", help=argparse.SUPPRESS)
    ap.add_argument("--budgets", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--retention-days", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.month, args.budgets, args.retention_days)))
        return
    admin = admin_url(args.admin)
    if not admin:
        print("pg_scale: skipped (set FINOPS_BENCH_POSTGRES_URL to a PostgreSQL server to run it)")
        return
    url = db_url(admin, args.db)
    now = datetime.now(UTC)
    starts = month_starts(now)
    newest_complete = f"{starts[-3]:%Y-%m}"
    print(f"machine: {machine()}; free on /: {shutil.disk_usage('/').free / 2**30:.0f} GB")
    timings: dict[str, float] = {}
    if not args.measure_only:
        need = args.records * 600 / 2**30  # 440 bytes a row measured at 1M, keys, rollups, WAL
        free = shutil.disk_usage("/").free / 2**30
        if free - need < args.min_free_gb:
            raise SystemExit(
                f"pg_scale: {args.records:,} records need about {need:.0f} GB, only {free:.0f} GB free on /: "
                "use fewer --records or free space"
            )
        create_database(admin, args.db, replace=args.replace)
        open_ledger(url, create=True).dispose()
        log(f"database {args.db} created at finops's head schema; generating {args.records:,} records")
        timings = generate(url, args.records, args.jobs, now, args.min_free_gb)
        print("generation:")
        for what, s in timings.items():
            print(f"  {what:<48} {s:8.1f} s")
    size_lines = sizes(url, None if args.measure_only else args.records)
    for line in size_lines:
        print(line, flush=True)
    results: list[tuple[str, str, str, str, str, float]] = []

    def add(row: tuple[str, str, str, str, str, float]) -> None:
        results.append(row)  # and at once, should a later measurement not end
        log(
            f"  {row[0]}: {row[1]} median, {row[2]} p99, target {row[3]}, pass {row[4]}, RSS {row[5]:.0f} MiB"
        )

    with budgets_folder() as folder:
        print(f"measuring on {args.db} ({machine()}); month {newest_complete}, each in a fresh process")

        def ms(x: float) -> str:
            return f"{x * 1000:.2f} ms"

        r = run_child("spend", url, newest_complete, folder)
        assert r is not None
        med, p99 = statistics.median(r["times"]), pct(r["times"], 0.99)
        add(
            (
                f"spend --by flow --month {newest_complete}",
                ms(med),
                ms(p99),
                "< 20 ms",
                str(med < 0.020),
                r["rss_mib"],
            )
        )
        for kind in ("check", "reserve"):
            r = run_child(kind, url, newest_complete, folder)
            assert r is not None
            p50, p99 = pct(r["times"], 0.5), pct(r["times"], 0.99)
            label = f"budget {kind} ({len(r['times'])} calls, {r['decisions']})"
            add((label, ms(p50), ms(p99), "p99 < 10 ms", str(p99 < 0.010), r["rss_mib"]))
        r = run_child("report", url, newest_complete, folder)
        assert r is not None
        add(
            (
                f"monthly report {newest_complete} (build {r['built']:.2f} s + HTML {r['html_kib']} KiB)",
                f"{r['times'][0]:.2f} s",
                "-",
                "< 60 s",
                str(r["times"][0] < 60),
                r["rss_mib"],
            )
        )
        if not args.skip_retention:
            with psycopg.connect(conninfo(url)) as c, c.cursor() as cur:
                partitioned = is_partitioned(cur)
                # from the rollups: partitioned, the raw time index is BRIN, which cannot give a min
                # and from the watermark: rollups stay after retention, raw records before it do not
                cur.execute(
                    "SELECT greatest((SELECT min(hour) FROM rollups_hourly WHERE records > 0), "
                    "(SELECT value::bigint / 1000000 FROM finops_meta WHERE key = %s))",
                    (FINAL_KEY,),
                )
                oldest_s = cur.fetchone()[0]  # type: ignore[index]
            oldest = datetime.fromtimestamp(oldest_s, UTC)
            first = oldest.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            second = (first + timedelta(days=32)).replace(day=1)
            today = now.replace(hour=0, minute=0, second=0, microsecond=0)
            days = (today - second).days
            in_month = row_count(url, us(first), us(second))
            in_next = row_count(url, us(second), us((second + timedelta(days=32)).replace(day=1)))
            limit = args.retention_timeout
            r = run_child("retention", url, newest_complete, folder, retention_days=days, timeout=limit)
            how = "partition drop" if partitioned else "row DELETE (single table)"
            label = f"retention of {first:%Y-%m} ({in_month:,} rows, {how}"
            if r is None:
                gone = row_count(url, 0, us(second)) == 0
                add(
                    (
                        f"{label}; {'ended just after the limit' if gone else 'stopped at the limit, rolled back'})",
                        f"> {limit:.0f} s",
                        "-",
                        "< 5 s",
                        "False",
                        float("nan"),
                    )
                )
            else:
                left = row_count(url, 0, us(second))
                next_left = row_count(url, us(second), us((second + timedelta(days=32)).replace(day=1)))
                assert left == 0 and next_left == in_next, (left, next_left, in_next)
                add(
                    (
                        f"{label}: the retention transaction, watermark + drop + commit)",
                        f"{r['times'][0]:.2f} s",
                        "-",
                        "< 5 s",
                        str(r["times"][0] < 5),
                        r["rss_mib"],
                    )
                )
                if r["after_s"]:
                    add(
                        (
                            "  then its idempotency keys pruned, 50,000 a transaction "
                            f"(statements {r['prune_s']:.1f} s; ingest not held)",
                            f"{r['after_s']:.2f} s",
                            "-",
                            "-",
                            "-",
                            r["rss_mib"],
                        )
                    )
                print(f"  retention result: {r['result']}")
    width = max(len(r[0]) for r in results)
    print(f"\n{'what':<{width}}  {'median':>10}  {'p99':>10}  {'target':>12}  {'pass':>5}  {'peak RSS':>9}")
    for what, med_s, p99_s, target, ok, rss in results:
        print(f"{what:<{width}}  {med_s:>10}  {p99_s:>10}  {target:>12}  {ok:>5}  {float(rss):>6.0f} MiB")
    print()
    for line in size_lines:
        print(line)
    if args.keep or args.measure_only:
        print(f"kept database {args.db}")
    else:
        drop_database(admin, args.db)
        print(f"dropped database {args.db}")


if __name__ == "__main__":
    main()
