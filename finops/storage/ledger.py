"""Writing the ledger: usage rows, their hourly rollups and dead letters, in one transaction.

A batch is idempotent on (source, record id): a record already stored with the
same content (``CONTENT_COLUMNS``: what the sender said, not its price) is a
duplicate (no change); with other content, a conflict (a dead letter, the
stored row untouched). Only rows this transaction really
inserted (``INSERT .. ON CONFLICT DO NOTHING RETURNING``) reach the rollups, so
two replicas writing the same records at once still count each one once.
Rows are locked in key order, table by table, so two transactions that each write one
batch never deadlock (the daemon's groups write several in one transaction, and can:
daemon/group_commit.py writes such a group again one request at a time).

SQLite has one writer at a time and takes rows by ``executemany``; the rollups
are summed in Python. PostgreSQL takes a batch in bulk: the rows are COPied into a
temporary staging table that lives only as long as the transaction (safe behind a
pooler in transaction mode), then one statement claims their keys, stores the new
rows and adds exactly those to the rollups (:data:`PG_STAGE_NEW_TO_LEDGER`, or
:data:`PG_STAGE_TO_LEDGER` when some ids are stored already). A value the database
refuses fails the COPY or the statement as it failed an INSERT, and
:func:`write_rows_isolating` isolates it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from finops.domain.pricing import PriceMatch, entry_to_mapping
from finops.domain.text import escaped
from finops.domain.usage import UsageRecord
from finops.errors import ConfigError
from finops.storage.db import describe_db_error
from finops.storage.partitions import DEFAULT_PARTITION
from finops.storage.retention import final_before_us, hold_retention_lock
from finops.storage.sql import dialect_insert
from finops.storage.tables import (
    CONTENT_COLUMNS,
    PROMPT_KEYS,
    PROMPT_SUMS,
    ROLLUP_DAILY_KEYS,
    ROLLUP_KEYS,
    ROLLUP_SUMS,
    USAGE_COLUMNS,
    dead_letters,
    price_versions,
    prompt_rollups_daily,
    prompts,
    rollups_daily,
    rollups_hourly,
    source_activity,
    usage_records,
)

__all__ = [
    "BatchOutcome",
    "PricedRecord",
    "Rejection",
    "add_to_rollups",
    "rebuild_rollups",
    "record_price_versions",
    "record_prompts",
    "refused_by_database",
    "usage_row",
    "write_batch",
    "write_dead_letters",
    "write_rows",
    "write_rows_isolating",
]

_CHUNK = 900  # bound parameters per IN (...) query, under every driver's limit
_REASON_LIMIT = 4000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CONTENT_AT = tuple(USAGE_COLUMNS.index(c) for c in CONTENT_COLUMNS)
_SQLITE_INSERT = (
    f"INSERT INTO usage_records ({', '.join(USAGE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(USAGE_COLUMNS))}) ON CONFLICT (source, record_id) DO NOTHING"
)


@dataclass(slots=True)
class PricedRecord:
    """A valid record with its cost (``None``: unpriced) and where it came from."""

    record: UsageRecord
    cost_nanos: int | None
    price_version: str | None
    location: str
    line: int | None = None


@dataclass(slots=True)
class Rejection:
    """A line or record that was not stored, and why."""

    location: str
    line: int | None
    reason: str
    digest: str  # of the input (finops.domain.digest): never its text
    record_id: str | None = None


@dataclass(slots=True)
class BatchOutcome:
    """What a batch changed."""

    stored: int = 0
    duplicates: int = 0
    cost_nanos: int = 0
    unpriced: int = 0
    conflicts: list[Rejection] = field(default_factory=list)
    too_old: list[Rejection] = field(default_factory=list)  # before the retention watermark
    unpriced_models: Counter[str] = field(default_factory=Counter)  # provider/model of stored unpriced rows
    inserted: dict[str, int | None] = field(default_factory=dict)  # record id -> cost, of rows stored

    def add(self, other: BatchOutcome) -> None:
        """Count ``other`` (a part of the same batch, written apart) in this one."""
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.cost_nanos += other.cost_nanos
        self.unpriced += other.unpriced
        self.conflicts.extend(other.conflicts)
        self.too_old.extend(other.too_old)
        self.unpriced_models.update(other.unpriced_models)
        self.inserted.update(other.inserted)


def _tags_json(tags: Any) -> str:
    """Canonical JSON (sorted keys, no spaces, UTF-8): equal tags are equal strings."""
    if not tags:
        return "{}"
    return orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode()


def usage_row(item: PricedRecord, source: str, now_us: int) -> tuple[Any, ...]:
    """A record as a tuple in ``USAGE_COLUMNS`` order."""
    r = item.record
    ts_us = (r.ts - _EPOCH) // _MICROSECOND
    return (
        source,
        r.id,
        ts_us,
        ts_us // 3_600_000_000 * 3600,
        r.provider,
        r.model,
        r.flow,
        _tags_json(r.tags),
        r.service_tier,
        r.status,
        r.requests,
        r.input_tokens,
        r.cached_input_tokens,
        r.cache_write_tokens,
        r.cache_write_1h_tokens,
        r.output_tokens,
        r.reasoning_tokens,
        item.cost_nanos,
        item.price_version,
        r.prompt_id,
        r.user_hash,
        r.trace_id,
        r.session_id,
        r.latency_ms,
        r.tool_calls,
        now_us,
    )


def _content(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(row[i] for i in _CONTENT_AT)


def _stored_content(conn: Connection, source: str, ids: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    found: dict[str, tuple[Any, ...]] = {}
    t = usage_records.c
    cols = [t[c] for c in CONTENT_COLUMNS]
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        from sqlalchemy.dialects import postgresql
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        # PostgreSQL: one array parameter; an IN list of thousands makes a query psycopg parses slowly
        match = (
            t.record_id == any_(bindparam("ids", list(chunk), type_=postgresql.ARRAY(String)))
            if postgres
            else t.record_id.in_(chunk)
        )
        rows = conn.execute(select(*cols).where(t.source == source, match))
        found.update({row[0]: tuple(row) for row in rows})
    return found


def _too_old(row: tuple[Any, ...], where: tuple[str, int | None], final_us: int) -> Rejection:
    rid = row[1]
    final = (_EPOCH + timedelta(microseconds=final_us)).isoformat()
    return Rejection(
        location=where[0],
        line=where[1],
        record_id=rid,
        reason=f"too old: usage before {final} is final (raw records past FINOPS_RETENTION_DAYS are "
        "deleted and their totals closed), so this record was not stored",
        digest=_row_digest(row),
    )


def _row_digest(row: tuple[Any, ...]) -> str:
    """A refused row's digest: its content is validated already (user and prompt hashed)."""
    return "sha256:" + hashlib.sha256(repr(_content(row)).encode()).hexdigest()[:32]


def _conflict(row: tuple[Any, ...], where: tuple[str, int | None]) -> Rejection:
    rid = row[1]
    return Rejection(
        location=where[0],
        line=where[1],
        record_id=rid,
        reason=f"conflict: id {rid!r} was already stored with different content; "
        "the stored record is kept (send a new id for a new call)",
        digest=_row_digest(row),
    )


def add_to_rollups(conn: Connection, rows: Iterable[Sequence[Any]], *, sign: int = 1) -> None:
    """Add (or with ``sign=-1`` subtract) usage rows (``USAGE_COLUMNS`` order) to their rollups:
    hourly and daily per (flow, provider, model, tier, status, tags), and daily per prompt."""
    sums: dict[tuple[Any, ...], list[int]] = {}
    by_prompt: dict[tuple[Any, ...], list[int]] = {}
    newest: dict[str, tuple[int, int]] = {}  # source -> (newest ts_us, last ingested_us)
    for row in rows:
        if sign == 1:
            seen = newest.get(row[0])
            ts, ingested = row[2], row[25]
            newest[row[0]] = (ts, ingested) if seen is None else (max(seen[0], ts), max(seen[1], ingested))
        key = (row[3], row[6], row[4], row[5], row[8], row[9], row[7])  # ROLLUP_KEYS order
        acc = sums.get(key)
        if acc is None:
            acc = sums[key] = [0] * 11
        cost = row[17]
        acc[0] += 1
        acc[1] += row[10]
        acc[2] += row[11]
        acc[3] += row[12]
        acc[4] += row[13]
        acc[5] += row[14]
        acc[6] += row[15]
        acc[7] += row[16]
        pkey = (row[3] // 86400 * 86400, row[19] or "", row[6], row[4], row[5])  # PROMPT_KEYS order
        pacc = by_prompt.get(pkey)
        if pacc is None:
            pacc = by_prompt[pkey] = [0] * 7
        pacc[0] += 1
        pacc[1] += row[10]
        pacc[2] += row[11]
        pacc[3] += row[12]
        pacc[4] += row[15]
        if cost is None:
            acc[9] += 1
            acc[10] += row[10]
            pacc[6] += 1
        else:
            acc[8] += cost
            pacc[5] += cost
    if not sums:
        return
    if sign == 1:
        _note_sources(conn, newest)
    daily: dict[tuple[Any, ...], list[int]] = {}
    for key, acc in sums.items():
        day_key = (key[0] // 86400 * 86400, *key[1:])
        total = daily.get(day_key)
        if total is None:
            daily[day_key] = list(acc)
        else:
            for i, value in enumerate(acc):
                total[i] += value
    tables = (("rollups_hourly", sums), ("rollups_daily", daily), ("prompt_rollups_daily", by_prompt))
    if conn.dialect.name == "postgresql":
        for table, buckets in tables:
            _pg_upsert_buckets(conn, table, buckets, sign)
        return
    paramstyle = conn.dialect.paramstyle
    for table, buckets in tables:
        if sign == 1:
            params = [key + tuple(acc) for key, acc in buckets.items()]
        else:
            params = [key + tuple(-value for value in acc) for key, acc in buckets.items()]
        conn.exec_driver_sql(_rollup_upsert(table, paramstyle), params)


_ROLLUP_SHAPES = {
    "rollups_hourly": (rollups_hourly, ROLLUP_KEYS, ROLLUP_SUMS),
    "rollups_daily": (rollups_daily, ROLLUP_DAILY_KEYS, ROLLUP_SUMS),
    "prompt_rollups_daily": (prompt_rollups_daily, PROMPT_KEYS, PROMPT_SUMS),
}


def _pg_upsert_buckets(
    conn: Connection, name: str, buckets: Mapping[tuple[Any, ...], list[int]], sign: int
) -> None:
    """PostgreSQL: COPY a rollup table's buckets into a staging table, then add them all with one
    upsert. In key order, as the row-by-row upsert was: concurrent writers never deadlock."""
    table, keys, measures = _ROLLUP_SHAPES[name]
    stage = f"finops_stage_{name}"
    columns = ", ".join(
        [*(f"{k} {_pg_type(table.c[k].type)}" for k in keys), *(f"{m} bigint" for m in measures)]
    )
    if sign == 1:
        rows: Iterable[tuple[Any, ...]] = (key + tuple(acc) for key, acc in buckets.items())
    else:
        rows = (key + tuple(-value for value in acc) for key, acc in buckets.items())
    _pg_stage(conn, stage, columns, rows)
    conn.exec_driver_sql(
        _pg_rollup_upsert(name, keys, measures, f"SELECT {', '.join((*keys, *measures))} FROM {stage}")
    )


def _note_sources(conn: Connection, newest: Mapping[str, tuple[int, int]]) -> None:
    """Move each source's newest usage time forward (never back) for the freshness tiles."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    greatest = "MAX" if conn.dialect.name == "sqlite" else "GREATEST"
    conn.exec_driver_sql(
        f"INSERT INTO source_activity (source, newest_ts_us, last_ingest_us) VALUES ({mark}, {mark}, {mark}) "
        "ON CONFLICT (source) DO UPDATE SET "
        f"newest_ts_us = {greatest}(source_activity.newest_ts_us, excluded.newest_ts_us), "
        f"last_ingest_us = {greatest}(source_activity.last_ingest_us, excluded.last_ingest_us)",
        [(source, ts, ingested) for source, (ts, ingested) in sorted(newest.items())],
    )


def _rollup_upsert(table: str, paramstyle: str) -> str:
    """One statement for both databases: add a bucket's sums to its rollup row, creating it if new."""
    mark = "?" if paramstyle == "qmark" else "%s"
    keys, measures = {
        "rollups_hourly": (ROLLUP_KEYS, ROLLUP_SUMS),
        "rollups_daily": (ROLLUP_DAILY_KEYS, ROLLUP_SUMS),
        "prompt_rollups_daily": (PROMPT_KEYS, PROMPT_SUMS),
    }[table]
    columns = (*keys, *measures)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))}) "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(
            f"{name} = {_checked_sum(f'{table}.{name}', f'excluded.{name}', mark)}" for name in measures
        )
    )


def _checked_sum(a: str, b: str, mark: str) -> str:
    """``a + b``, but on SQLite a sum past 64 bits fails (SQLite's "integer overflow", as
    PostgreSQL's bigint refuses it) instead of turning silently into an inexact float."""
    if mark != "?":
        return f"{a} + {b}"
    return f"CASE WHEN typeof({a} + {b}) = 'integer' THEN {a} + {b} ELSE abs(-9223372036854775807 - 1) END"


def _sqlite_overflow(exc: BaseException) -> bool:
    """SQLite's "integer overflow" (a rollup sum past 64 bits, :func:`_checked_sum`): a value it
    cannot hold, as PostgreSQL's 22003 (a ``DataError``) is."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlite_errorname", None) == "SQLITE_ERROR" and str(orig) == "integer overflow"


def _insert_all_new(conn: Connection, rows: list[tuple[Any, ...]]) -> bool:
    """The common case, fast: insert the whole batch; keep it only if every row was new.

    Fresh usage has no stored ids, so looking them up first is wasted work. On
    SQLite the batch is inserted inside a savepoint; if any id was already stored
    (the count inserted falls short) the savepoint is rolled back and the batch
    takes the careful path, which tells duplicates from conflicts.
    """
    if conn.dialect.name != "sqlite":
        return False
    savepoint = conn.begin_nested()
    try:
        inserted = conn.exec_driver_sql(_SQLITE_INSERT, rows).rowcount
    except BaseException:
        savepoint.rollback()
        raise
    if inserted == len(rows):
        savepoint.commit()
        return True
    savepoint.rollback()
    return False


def _insert_new(conn: Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    """Insert rows not stored yet; returns the record ids this transaction inserted.

    SQLite: the transaction began with BEGIN IMMEDIATE, so no other writer can
    have stored these ids since we looked; a plain executemany is safe and fast,
    and :func:`_stored` adds the rows to the rollups afterwards.
    PostgreSQL: the rows are COPied into the staging table, then one statement moves
    them into the ledger and adds them to the rollups. Fresh usage first tries
    :data:`PG_STAGE_NEW_TO_LEDGER`, which claims every key with a plain insert (the
    cheap path); the first key already claimed (an earlier batch, a replica) fails it,
    early and whole, and :data:`PG_STAGE_TO_LEDGER` stores the rows whose keys it wins
    and names the others.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_INSERT, rows)
        return {row[1] for row in rows}
    _pg_stage(conn, _USAGE_STAGE, _USAGE_STAGE_COLUMNS, rows)
    ids = {row[1] for row in rows}
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql(PG_STAGE_NEW_TO_LEDGER)
    except BaseException as exc:
        # Whatever failed it, the savepoint ends here: left open, the caller's savepoint (the
        # isolating one) could not be rolled back cleanly, and a refused value (a rollup sum
        # past bigint) would fail the whole batch instead of being isolated.
        savepoint.rollback()
        if not (isinstance(exc, IntegrityError) and _key_taken(exc)):
            raise
    else:
        savepoint.commit()
        return ids
    lost = {rid for (rid,) in conn.exec_driver_sql(PG_STAGE_TO_LEDGER)}
    return ids - lost


def _key_taken(exc: IntegrityError) -> bool:
    """Whether PostgreSQL refused the cheap path because a key was claimed already."""
    orig = exc.orig
    table = getattr(getattr(orig, "diag", None), "table_name", None)
    return getattr(orig, "sqlstate", None) == "23505" and table == "usage_record_keys"


#: PostgreSQL's per-transaction staging table of usage rows (``USAGE_COLUMNS``, unique ids).
_USAGE_STAGE = "finops_stage_usage"


def _pg_rollup_upsert(table: str, keys: Sequence[str], sums: Sequence[str], select: str) -> str:
    """Add ``select``'s rows (keys first, then sums) to a rollup table, in key order (concurrent
    writers take the rows' locks in the same order): a statement, or the body of a CTE."""
    return (
        f"INSERT INTO {table} ({', '.join((*keys, *sums))}) {select} "
        f"ORDER BY {', '.join(str(i + 1) for i in range(len(keys)))} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
        + ", ".join(f"{m} = {table}.{m} + excluded.{m}" for m in sums)
    )


_UNPRICED = "cost_nanos IS NULL"
_ROLLUP_ATTRS = ", ".join(ROLLUP_KEYS[1:])
#: The hourly sums (ROLLUP_SUMS) of the rows inserted, as rebuild_rollups computes them; the
#: daily sums add up the hourly ones.
_PG_HOURLY = (
    f"SELECT hour, {_ROLLUP_ATTRS}, count(*) AS records, sum(requests) AS requests, "
    "sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_input_tokens, "
    "sum(cache_write_tokens) AS cache_write_tokens, sum(cache_write_1h_tokens) AS cache_write_1h_tokens, "
    "sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens, "
    "coalesce(sum(cost_nanos), 0) AS cost_nanos, "
    f"count(*) FILTER (WHERE {_UNPRICED}) AS unpriced_records, "
    f"coalesce(sum(requests) FILTER (WHERE {_UNPRICED}), 0) AS unpriced_requests "
    "FROM ins GROUP BY 1, 2, 3, 4, 5, 6, 7"
)
_SEVEN = "1, 2, 3, 4, 5, 6, 7"
_PG_PROMPTS = (
    "SELECT hour / 86400 * 86400, coalesce(prompt_id, ''), flow, provider, model, count(*), sum(requests), "
    "sum(input_tokens), sum(cached_input_tokens), sum(output_tokens), coalesce(sum(cost_nanos), 0), "
    f"count(*) FILTER (WHERE {_UNPRICED}) FROM ins GROUP BY 1, 2, 3, 4, 5"
)


def _pg_store(claim: str, rows_won: str, result: str) -> str:
    """One statement that stores a staged batch on PostgreSQL, the only place that knows how
    ``usage_records`` is laid out for writing: ``claim`` claims each row's (source, record id)
    in ``usage_record_keys`` (usage is partitioned by month, and a partitioned table cannot
    make that pair unique itself; storage/partitions.py), in id order, so two writers sharing
    ids lock them in the same order and never deadlock; the rows ``rows_won`` are stored; exactly
    those are added to the hourly, daily and per-prompt rollups (sums as rebuild_rollups's, so a
    rebuild agrees, in key order) and move their source's freshness forward; ``result`` is
    what it returns. The database aggregates 5,000 rows in a few milliseconds where Python took
    ~10 µs a row, and one round trip replaces seven."""
    hourly_sums = ", ".join(f"sum({m})" for m in ROLLUP_SUMS)
    return (
        f"WITH won AS ({claim}), "
        f"ins AS (INSERT INTO usage_records ({', '.join(USAGE_COLUMNS)}) "
        f"SELECT {', '.join('s.' + c for c in USAGE_COLUMNS)} FROM {_USAGE_STAGE} s {rows_won} "
        "RETURNING source, ts_us, hour, flow, provider, model, service_tier, status, tags, requests, "
        "input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens, "
        "reasoning_tokens, cost_nanos, prompt_id, ingested_us), "
        f"h AS ({_PG_HOURLY}), "
        "hourly AS ("
        + _pg_rollup_upsert("rollups_hourly", ROLLUP_KEYS, ROLLUP_SUMS, "SELECT * FROM h")
        + "), daily AS ("
        + _pg_rollup_upsert(
            "rollups_daily",
            ROLLUP_DAILY_KEYS,
            ROLLUP_SUMS,
            f"SELECT hour / 86400 * 86400, {_ROLLUP_ATTRS}, {hourly_sums} FROM h GROUP BY {_SEVEN}",
        )
        + "), per_prompt AS ("
        + _pg_rollup_upsert("prompt_rollups_daily", PROMPT_KEYS, PROMPT_SUMS, _PG_PROMPTS)
        + "), activity AS (INSERT INTO source_activity (source, newest_ts_us, last_ingest_us) "
        "SELECT source, max(ts_us), max(ingested_us) FROM ins GROUP BY source ORDER BY source "
        "ON CONFLICT (source) DO UPDATE SET "
        "newest_ts_us = GREATEST(source_activity.newest_ts_us, excluded.newest_ts_us), "
        "last_ingest_us = GREATEST(source_activity.last_ingest_us, excluded.last_ingest_us)) "
        f"{result}"
    )


_CLAIM = (
    f"INSERT INTO usage_record_keys (source, record_id, ts_us) SELECT source, record_id, ts_us "
    f"FROM {_USAGE_STAGE} ORDER BY record_id"
)

#: Stores a staged batch whose keys are all new, or fails (23505 on ``usage_record_keys``) at
#: the first key claimed already: a plain insert claims a key for about half what
#: ``ON CONFLICT DO NOTHING`` costs. Counting the claimed keys first (an init plan) makes every
#: claim run before any row is stored, and then every staged row is stored, without a join.
PG_STAGE_NEW_TO_LEDGER = _pg_store(
    f"{_CLAIM} RETURNING record_id", "WHERE (SELECT count(*) FROM won) > 0", "SELECT 1"
)

#: Stores the staged rows whose keys it wins and returns the ids it did not win (stored by an
#: earlier batch or by a concurrent writer).
PG_STAGE_TO_LEDGER = _pg_store(
    f"{_CLAIM} ON CONFLICT DO NOTHING RETURNING record_id",
    "JOIN won USING (record_id)",
    f"SELECT record_id FROM {_USAGE_STAGE} WHERE record_id NOT IN (SELECT record_id FROM won)",
)


def _pg_type(kind: Any) -> str:
    """A column's PostgreSQL type, so COPY refuses what the ledger would (a too-long string)."""
    if isinstance(kind, BigInteger | Integer):
        return "bigint"
    length = getattr(kind, "length", None)
    return f"varchar({length})" if length else "text"


_USAGE_STAGE_COLUMNS = ", ".join(f"{name} {_pg_type(usage_records.c[name].type)}" for name in USAGE_COLUMNS)


def _binary_types(columns: str) -> list[str]:
    """The type of each column of a staging table's definition (``name type, ...``), as binary
    COPY needs them named: ``bigint``, ``text``, or ``varchar`` (its length is the table's)."""
    return [spec.split(" ", 1)[1].split("(", 1)[0] for spec in columns.split(", ")]


def _pg_stage(conn: Connection, name: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
    """COPY ``rows`` into the temporary table ``name``, empty first, in the caller's transaction.

    The table is dropped at commit (ON COMMIT DROP): behind a pooler in transaction mode the next
    transaction may run on another server session, so nothing may outlive this one. It is
    created by the first use in a transaction and emptied by each later one; a savepoint rolled
    back may have taken its creation with it, hence IF NOT EXISTS each time, not a cache here.
    COPY runs on the driver's own connection (SQLAlchemy has no COPY), so its errors are
    wrapped as SQLAlchemy's: a refused value (NUL, too long, out of range) is a ``DataError``
    that :func:`write_rows_isolating` isolates, as it was for an INSERT. Binary format: a third
    of the client's CPU of the text format and no text parsing on the server (measured); the
    server still checks every value against the column's type and length.
    """
    import psycopg
    from psycopg import errors

    driver = conn.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):  # psycopg2 has another COPY interface
        raise ConfigError("finops writes to PostgreSQL with psycopg 3: use a postgresql+psycopg:// URL")
    statement = f"COPY {name} FROM STDIN (FORMAT BINARY)"
    try:
        with driver.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DROP; TRUNCATE {name}"
            )
            with cursor.copy(statement) as copy:
                copy.set_types(_binary_types(columns))
                for row in rows:
                    copy.write_row(row)
    except psycopg.Error as exc:
        raise DBAPIError.instance(
            statement, None, exc, psycopg.Error, hide_parameters=True, dialect=conn.dialect
        ) from exc
    except (OverflowError, struct.error, TypeError, ValueError) as exc:
        # Binary COPY encodes values in the client: a number past 64 bits fails here, where the
        # server said 22003 to the text format (OverflowError from psycopg's C adapters,
        # struct.error from its pure Python ones). The COPY was aborted (the transaction is
        # failed, as after a server error): the same DataError, so the row at fault is isolated.
        past_64_bits = isinstance(exc, OverflowError | struct.error)
        kind = errors.NumericValueOutOfRange if past_64_bits else errors.DataException
        raise DBAPIError.instance(
            statement,
            None,
            kind(type(exc).__name__),
            psycopg.Error,
            hide_parameters=True,
            dialect=conn.dialect,
        ) from None


def write_batch(
    conn: Connection,
    *,
    source: str,
    items: Sequence[PricedRecord],
    rejections: Sequence[Rejection] = (),
    now_us: int,
) -> BatchOutcome:
    """Store one batch of records inside the caller's transaction; see the module docstring."""
    rows = [usage_row(item, source, now_us) for item in items]
    return write_rows(
        conn,
        source=source,
        rows=rows,
        where=[(i.location, i.line) for i in items],
        rejections=rejections,
        now_us=now_us,
    )


def refused_by_database(exc: BaseException) -> bool:
    """Whether ``exc`` says a value could not be stored (so one row is at fault), rather than that
    the database is down, locked or broken (so every row is: the batch must fail and be retried)."""
    if isinstance(exc, DataError | IntegrityError) or _sqlite_overflow(exc):
        return True
    if isinstance(exc, DBAPIError):
        return False
    return isinstance(exc, StatementError | OverflowError | ValueError)


#: Times a batch is written again when months' partitions were attached under its statements.
_ATTACH_RETRIES = 3


def _attached_meanwhile(exc: BaseException) -> bool:
    """Whether PostgreSQL refused a row because its month's partition was attached while the
    statement ran: the row was routed to the default partition by the statement's older view of
    the partitions, and the default partition's constraint, changed meanwhile, now excludes it
    (SQLSTATE 23514 on the default partition). Run again, the statement routes it to the new one."""
    orig = getattr(exc, "orig", None)
    table = getattr(getattr(orig, "diag", None), "table_name", None)
    return getattr(orig, "sqlstate", None) == "23514" and table == DEFAULT_PARTITION


def write_rows_isolating(
    conn: Connection,
    *,
    source: str,
    rows: Sequence[tuple[Any, ...]],
    where: Sequence[tuple[str, int | None]],
    now_us: int,
) -> tuple[BatchOutcome, list[Rejection]]:
    """:func:`write_rows`, in a savepoint; if the database refuses a value, the batch is halved
    until the rows at fault are alone, and those come back as rejections: a record the
    validation let through but the database cannot hold never blocks its batch-mates.

    A batch refused because a month's partition was attached under its statement (PostgreSQL)
    is written again as it is: no row is at fault, and a single record must not be dead-lettered
    as "refused" for it (the sender would be told to fix a record that is fine).
    """
    for attempt in range(_ATTACH_RETRIES + 1):
        savepoint = conn.begin_nested()
        try:
            outcome = write_rows(conn, source=source, rows=rows, where=where, now_us=now_us)
        except Exception as exc:
            try:
                savepoint.rollback()
            except Exception:  # the transaction is gone (SQLite after an I/O error): the first error counts
                raise exc from None
            if _attached_meanwhile(exc):  # a sound record: never a rejection, at worst a failed batch
                if attempt < _ATTACH_RETRIES:
                    continue
                raise
            if not refused_by_database(exc):
                raise
            if len(rows) == 1:
                reason = (
                    f"the database refused this record ({describe_db_error(exc)}); fix it and send it again"
                )
                return BatchOutcome(), [
                    Rejection(where[0][0], where[0][1], reason, _row_digest(rows[0]), rows[0][1])
                ]
            break
        else:
            savepoint.commit()
            return outcome, []
    half = len(rows) // 2
    outcome, refused = write_rows_isolating(
        conn, source=source, rows=rows[:half], where=where[:half], now_us=now_us
    )
    rest, more = write_rows_isolating(
        conn, source=source, rows=rows[half:], where=where[half:], now_us=now_us
    )
    outcome.add(rest)
    return outcome, [*refused, *more]


def write_rows(
    conn: Connection,
    *,
    source: str,
    rows: Sequence[tuple[Any, ...]],
    where: Sequence[tuple[str, int | None]],
    rejections: Sequence[Rejection] = (),
    now_us: int,
) -> BatchOutcome:
    """Store usage rows (``USAGE_COLUMNS`` order; ``where``: their file and line) once each.

    A row older than the retention watermark is refused: its raw record may have been stored
    and deleted already, and its rollups are closed (storage/retention.py).
    """
    outcome = BatchOutcome()
    fresh: dict[str, tuple[int, tuple[Any, ...]]] = {}
    copies: dict[str, list[int]] = {}  # later rows of the batch equal to a fresh one
    refused: set[str] = set()  # fresh ids whose stored record differs: their copies are conflicts too
    hold_retention_lock(conn, shared=True)  # retention cannot move the watermark under this batch
    final = final_before_us(conn)
    for index, row in enumerate(rows):
        if row[2] < final:
            outcome.too_old.append(_too_old(row, where[index], final))
            continue
        seen = fresh.get(row[1])
        if seen is None:
            fresh[row[1]] = (index, row)
        elif _content(seen[1]) == _content(row):
            copies.setdefault(row[1], []).append(index)
        else:
            outcome.conflicts.append(_conflict(row, where[index]))
    if fresh and _insert_all_new(conn, [row for _, row in fresh.values()]):
        _stored(conn, [row for _, row in fresh.values()], outcome)
        fresh = {}
    if fresh and conn.dialect.name == "sqlite":  # PostgreSQL: insert first, look up only the ids that lost
        for rid, content in _stored_content(conn, source, list(fresh)).items():
            index, row = fresh.pop(rid)
            if content == _content(row):
                outcome.duplicates += 1
            else:
                outcome.conflicts.append(_conflict(row, where[index]))
                refused.add(rid)
    if fresh:
        new = [row for _, row in fresh.values()]
        inserted = _insert_new(conn, new)
        lost = [rid for rid in fresh if rid not in inserted]  # another writer won the race
        if lost:
            stored = _stored_content(conn, source, lost)
            for rid in lost:
                index, row = fresh[rid]
                if stored.get(rid) == _content(row):
                    outcome.duplicates += 1
                else:
                    outcome.conflicts.append(_conflict(row, where[index]))
                    refused.add(rid)
            new = [row for row in new if row[1] in inserted]
        _stored(conn, new, outcome)
    for rid, indexes in copies.items():
        if rid in refused:
            outcome.conflicts.extend(_conflict(rows[i], where[i]) for i in indexes)
        else:
            outcome.duplicates += len(indexes)
    write_dead_letters(
        conn, source=source, rejections=[*rejections, *outcome.too_old, *outcome.conflicts], now_us=now_us
    )
    return outcome


def _stored(conn: Connection, rows: list[tuple[Any, ...]], outcome: BatchOutcome) -> None:
    if conn.dialect.name == "sqlite":  # PostgreSQL's PG_STAGE_TO_LEDGER added them already
        add_to_rollups(conn, rows)
    outcome.stored = len(rows)
    outcome.inserted = {row[1]: row[17] for row in rows}
    for row in rows:
        if row[17] is None:
            outcome.unpriced += 1
            outcome.unpriced_models[f"{row[4]}/{row[5]}"] += 1
        else:
            outcome.cost_nanos += row[17]


def write_dead_letters(
    conn: Connection, *, source: str, rejections: Sequence[Rejection], now_us: int
) -> None:
    """Keep where rejected input was, why, and its digest; the same rejection twice is kept once.

    Every text is escaped and cut to its column here, so a dead letter can always be stored.
    """
    if not rejections:
        return
    rows = []
    for rej in rejections:
        fingerprint = hashlib.blake2b(
            repr((source, rej.location, rej.line, rej.reason, rej.digest)).encode(), digest_size=16
        ).hexdigest()
        rows.append(
            {
                "fingerprint": fingerprint,
                "source": escaped(source, 128),
                "location": escaped(rej.location, 1024),
                "line": rej.line,
                "record_id": None if rej.record_id is None else escaped(rej.record_id, 256),
                "reason": escaped(rej.reason, _REASON_LIMIT),
                "raw": escaped(rej.digest, _REASON_LIMIT),  # the column keeps its old name
                "created_us": now_us,
            }
        )
    conn.execute(
        dialect_insert(conn, dead_letters).on_conflict_do_nothing(index_elements=["fingerprint"]), rows
    )


def record_price_versions(conn: Connection, matches: Iterable[PriceMatch], *, now_us: int) -> None:
    """Remember exactly which prices priced something, so any stored cost can be explained."""
    rows = {}
    for m in matches:
        rows[m.version] = {
            "version": m.version,
            "layer": m.entry.layer,
            "provider": m.entry.provider,
            "model": m.entry.model,
            "effective_from": m.entry.effective_from,
            "source": m.entry.source,
            "discount": None
            if m.discount is None
            else f"{m.discount.fraction * 100:f}% off ({m.discount.note})",
            "body": json.dumps(entry_to_mapping(m.entry), sort_keys=True),
            "first_used_us": now_us,
        }
    if rows:
        stmt = dialect_insert(conn, price_versions).on_conflict_do_nothing(index_elements=["version"])
        conn.execute(stmt, [rows[v] for v in sorted(rows)])  # in key order: no deadlock (record_prompts)


def rebuild_rollups(conn: Connection) -> int:
    """Recompute the hourly and daily rollups from the raw records (repair, or after a bulk load).

    Only from the retention watermark on: before it the raw records were deleted and the
    rollups are all that is left, so they are kept as they are. Replaces the rows inside the
    caller's transaction; returns the hourly row count.

    Holds the retention lock alone (PostgreSQL) before it reads anything: every batch takes it
    shared, so none commits between the rebuild's statements, where it would have failed the
    rebuild on a rollup key it had just added, or deadlocked with it on the rows being replaced.
    """
    hold_retention_lock(conn, shared=False)
    final_us = final_before_us(conn)
    from_hour = final_us // 1_000_000  # whole UTC days: also a day and an hour boundary
    u = usage_records.c
    priced = u.cost_nanos.is_not(None)
    sums = (
        func.count(),
        func.sum(u.requests),
        func.sum(u.input_tokens),
        func.sum(u.cached_input_tokens),
        func.sum(u.cache_write_tokens),
        func.sum(u.cache_write_1h_tokens),
        func.sum(u.output_tokens),
        func.sum(u.reasoning_tokens),
        func.coalesce(func.sum(u.cost_nanos), 0),
        func.sum(case((priced, 0), else_=1)),
        func.sum(case((priced, 0), else_=u.requests)),
    )
    keys = [u[k] for k in ROLLUP_KEYS[1:]]
    # Both bounds say the same (the watermark is a whole day); ts_us lets PostgreSQL skip closed partitions.
    recent = and_(u.hour >= from_hour, u.ts_us >= final_us)
    conn.execute(delete(rollups_hourly).where(rollups_hourly.c.hour >= from_hour))
    conn.execute(delete(rollups_daily).where(rollups_daily.c.day >= from_hour))
    hourly = select(u.hour, *keys, *sums).where(recent).group_by(u.hour, *keys)
    conn.execute(insert(rollups_hourly).from_select([*ROLLUP_KEYS, *ROLLUP_SUMS], hourly))
    day = (u.hour // 86400 * 86400).label("day")
    daily = select(day, *keys, *sums).where(recent).group_by(day, *keys)
    conn.execute(insert(rollups_daily).from_select([*ROLLUP_DAILY_KEYS, *ROLLUP_SUMS], daily))
    conn.execute(delete(source_activity))
    activity = select(u.source, func.max(u.ts_us), func.max(u.ingested_us)).group_by(u.source)
    conn.execute(insert(source_activity).from_select(["source", "newest_ts_us", "last_ingest_us"], activity))
    conn.execute(delete(prompt_rollups_daily).where(prompt_rollups_daily.c.day >= from_hour))
    prompt = func.coalesce(u.prompt_id, "").label("prompt_id")
    pkeys = [day, prompt, u.flow, u.provider, u.model]
    per_prompt = (
        select(
            *pkeys,
            func.count(),
            func.sum(u.requests),
            func.sum(u.input_tokens),
            func.sum(u.cached_input_tokens),
            func.sum(u.output_tokens),
            func.coalesce(func.sum(u.cost_nanos), 0),
            func.sum(case((priced, 0), else_=1)),
        )
        .where(recent)
        .group_by(*pkeys)
    )
    conn.execute(insert(prompt_rollups_daily).from_select([*PROMPT_KEYS, *PROMPT_SUMS], per_prompt))
    return int(conn.scalar(select(func.count()).select_from(rollups_hourly)) or 0)


def record_prompts(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Remember prompts the first time they are seen (their token count, and a preview if kept).

    In key order, as the rollups are: two replicas storing the same new prompts in other orders
    would each hold one the other wants, and PostgreSQL would kill one as a deadlock."""
    stmt = dialect_insert(conn, prompts).on_conflict_do_nothing(index_elements=["prompt_id"])
    conn.execute(stmt, sorted(rows, key=lambda row: str(row["prompt_id"])))
