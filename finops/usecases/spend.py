"""Spend queries: cost and tokens grouped by flow, model, provider, time and tags.

Whole UTC days are read from ``rollups_daily``, the partial days at either end
from ``rollups_hourly`` and the partial hours from the raw records, so an answer
is exact for any start and end while scanning at most two hours of raw rows and
two days of hourly rows, all in one statement (one snapshot: a reprice or a retention committing
meanwhile is seen whole or not at all). Days and months are
local to the query's time zone; for a zone whose offset is not a whole hour
(Asia/Kolkata) day grouping reads raw records, since hour buckets straddle its midnight.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Select, Table, and_, bindparam, case, func, literal, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from finops.storage.retention import final_before_sql
from finops.storage.sql import like_pattern
from finops.storage.tables import ROLLUP_SUMS, rollups_daily, rollups_hourly, usage_records

__all__ = ["DIMENSIONS", "METRICS", "SpendQuery", "SpendResult", "SpendRow", "cost_total", "run_spend"]

DIMENSIONS = ("flow", "model", "provider", "service_tier", "status", "hour", "day", "month")
#: Summed measures, in output order: the rollups' sums.
METRICS = ROLLUP_SUMS
_HOUR_US = 3_600_000_000


@dataclass(frozen=True)
class SpendQuery:
    """What to sum and how to group it. Times are aware; ``end`` is exclusive."""

    group_by: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    flows: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    top: int | None = None

    def __post_init__(self) -> None:
        for dim in self.group_by:
            if dim not in DIMENSIONS and not (dim.startswith("tag:") and len(dim) > 4):
                raise ValueError(f"cannot group by {dim!r}: use {', '.join(DIMENSIONS)} or tag:KEY")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("the start of the period must be before its end")


@dataclass
class SpendRow:
    """One group: its key values and summed measures."""

    keys: dict[str, str]
    sums: dict[str, int]


@dataclass
class SpendResult:
    """Rows (largest cost first, or in time order when grouped by time), the rest and the total."""

    query: SpendQuery
    rows: list[SpendRow]
    total: dict[str, int]
    others: dict[str, int] | None = None  # what --top left out
    others_count: int = 0
    unpriced_models: list[tuple[str, int]] = field(default_factory=list)


def _sql_dims(query: SpendQuery) -> list[str]:
    """The stored columns the SQL groups by (time and tags are folded in Python)."""
    cols = [d for d in query.group_by if d in ("flow", "model", "provider", "service_tier", "status")]
    if any(d in ("hour", "day", "month") for d in query.group_by):
        cols.append("hour")
    if query.tags or any(d.startswith("tag:") for d in query.group_by):
        cols.append("tags")
    if "model" not in cols:
        cols.append("model")  # for the unpriced-models list; folded away below
    if "provider" not in cols:
        cols.append("provider")
    return cols


def _filters(table: Table, query: SpendQuery) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    for name, patterns in (("flow", query.flows), ("model", query.models), ("provider", query.providers)):
        if patterns:
            col = table.c[name]
            conds.append(or_(*[col.like(like_pattern(p), escape="\\") for p in patterns]))
    for key, value in query.tags.items():
        needle = json.dumps({key: value}, ensure_ascii=False, separators=(",", ":"))[1:-1]
        conds.append(table.c.tags.like("%" + like_pattern(needle) + "%", escape="\\"))
    return conds


def _aggregate(
    table: Table,
    dims: Sequence[str],
    conds: Sequence[ColumnElement[bool]],
    *,
    quarter_hours: bool = False,
) -> Select[Any]:
    """Sums grouped by ``dims``; with ``quarter_hours`` the "hour" key is the record's
    15-minute bucket, which every time zone's midnight falls on (Asia/Kathmandu is +05:45)."""
    raw = table is usage_records
    if raw:
        priced = table.c.cost_nanos.is_not(None)
        measures = [
            func.count(),
            func.sum(table.c.requests),
            *(func.sum(table.c[m]) for m in METRICS[2:8]),
            func.coalesce(func.sum(table.c.cost_nanos), 0),
            func.sum(case((priced, 0), else_=1)),
            func.sum(case((priced, 0), else_=table.c.requests)),
        ]
    else:
        measures = [func.sum(table.c[m]) for m in METRICS]
    group: list[Any] = [table.c["day" if d == "hour" and table is rollups_daily else d] for d in dims]
    if quarter_hours and "hour" in dims:
        group[dims.index("hour")] = (table.c.ts_us // 900_000_000 * 900).label("hour")
    return select(*group, *measures).where(and_(literal(True), *conds)).group_by(*group)


def _read(conn: Connection, parts: Sequence[Select[Any]]) -> list[tuple[Any, ...]]:
    """The parts' rows, in one statement: on PostgreSQL (read committed) each statement sees the
    database as of its own start, so parts read one by one could see a record in neither (a
    reprice moving its cost between rollups, retention deleting raw rows the rollups stand for)."""
    if not parts:
        return []
    return list(conn.execute(parts[0] if len(parts) == 1 else union_all(*parts)))


def _hour_floor(t: datetime) -> int:
    return int(t.timestamp()) // 3600 * 3600


def _hour_ceil(t: datetime) -> int:
    s = t.timestamp()
    return int(-(-s // 3600) * 3600)


def _offsets(tz: ZoneInfo, start: datetime | None, end: datetime | None) -> set[timedelta] | None:
    """Every UTC offset ``tz`` takes in [start, end), sampled daily (no zone changes twice a day);
    None for an open range, where only a fixed-offset zone can be trusted."""
    if start is None or end is None:
        return None
    seen: set[timedelta] = set()
    t = start
    while t < end:
        seen.add(t.astimezone(tz).utcoffset() or timedelta(0))
        t += timedelta(days=1)
    seen.add((end - timedelta(microseconds=1)).astimezone(tz).utcoffset() or timedelta(0))
    return seen


_FIXED_UTC = {"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu"}


def _whole_hour_zone(tz: ZoneInfo, start: datetime | None, end: datetime | None) -> bool:
    offsets = _offsets(tz, start, end)
    if offsets is None:
        probes = {(t or datetime.now(UTC)).astimezone(tz).utcoffset() or timedelta(0) for t in (start, end)}
        offsets = probes
    return all(not o.total_seconds() % 3600 for o in offsets)


def _utc_days_suffice(query: SpendQuery) -> bool:
    """Whether whole UTC days can answer: no hour grouping, and local days are UTC days throughout."""
    if "hour" in query.group_by:
        return False
    if not any(d in ("day", "month") for d in query.group_by):
        return True
    if str(query.tz) in _FIXED_UTC:
        return True
    offsets = _offsets(query.tz, query.start, query.end)
    return offsets is not None and offsets == {timedelta(0)}


def _range(table: Table, column: str, lo: int | None, hi: int | None) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if lo is not None:
        conds.append(table.c[column] >= lo)
    if hi is not None:
        conds.append(table.c[column] < hi)
    return conds


def _fetch(conn: Connection, query: SpendQuery, dims: list[str]) -> list[tuple[Any, ...]]:
    """Sums for [start, end): raw records for partial hours, hourly rollups for partial days,
    daily rollups for whole UTC days in between (when the grouping allows), read in one statement."""
    base = _filters(usage_records, query)
    start_us = int(query.start.timestamp() * 1_000_000) if query.start else None
    end_us = int(query.end.timestamp() * 1_000_000) if query.end else None
    by_time = any(d in ("day", "month") for d in query.group_by)
    if by_time and not _whole_hour_zone(query.tz, query.start, query.end):
        # Local days that do not start on a UTC hour need the raw records; before the retention
        # watermark only hourly rollups are left, and each hour counts for the day it starts in.
        # The watermark is read by the same statement as the rows (retention moves it and deletes
        # the raw rows before it in one commit).
        final = final_before_sql()
        lo = _hour_floor(query.start) if query.start else None
        hi = _hour_ceil(query.end) if query.end else None
        hourly_ = [*_filters(rollups_hourly, query), *_range(rollups_hourly, "hour", lo, hi)]
        raw_ = [*base, *_range(usage_records, "ts_us", start_us, end_us), usage_records.c.ts_us >= final]
        return _read(
            conn,
            [
                _aggregate(rollups_hourly, dims, [*hourly_, rollups_hourly.c.hour < final // 1_000_000]),
                _aggregate(usage_records, dims, raw_, quarter_hours=True),
            ],
        )
    h_lo = _hour_ceil(query.start) if query.start else None
    h_hi = _hour_floor(query.end) if query.end else None
    if h_lo is not None and h_hi is not None and h_lo > h_hi:  # the whole range is inside one hour
        return _read(
            conn,
            [_aggregate(usage_records, dims, [*base, *_range(usage_records, "ts_us", start_us, end_us)])],
        )
    parts: list[Select[Any]] = []
    if start_us is not None and h_lo is not None and start_us < h_lo * 1_000_000:
        parts.append(
            _aggregate(
                usage_records, dims, [*base, *_range(usage_records, "ts_us", start_us, h_lo * 1_000_000)]
            )
        )
    if end_us is not None and h_hi is not None and h_hi * 1_000_000 < end_us:
        parts.append(
            _aggregate(
                usage_records, dims, [*base, *_range(usage_records, "ts_us", h_hi * 1_000_000, end_us)]
            )
        )
    hourly = _filters(rollups_hourly, query)
    d_lo = None if h_lo is None else -(-h_lo // 86400) * 86400
    d_hi = None if h_hi is None else h_hi // 86400 * 86400
    if not _utc_days_suffice(query) or (d_lo is not None and d_hi is not None and d_lo >= d_hi):
        parts.append(_aggregate(rollups_hourly, dims, [*hourly, *_range(rollups_hourly, "hour", h_lo, h_hi)]))
        return _read(conn, parts)
    if h_lo is not None and d_lo is not None and h_lo < d_lo:
        parts.append(_aggregate(rollups_hourly, dims, [*hourly, *_range(rollups_hourly, "hour", h_lo, d_lo)]))
    if h_hi is not None and d_hi is not None and d_hi < h_hi:
        parts.append(_aggregate(rollups_hourly, dims, [*hourly, *_range(rollups_hourly, "hour", d_hi, h_hi)]))
    daily = _filters(rollups_daily, query)
    parts.append(_aggregate(rollups_daily, dims, [*daily, *_range(rollups_daily, "day", d_lo, d_hi)]))
    return _read(conn, parts)


def _time_key(hour: int, dim: str, tz: ZoneInfo) -> str:
    local = datetime.fromtimestamp(hour, UTC).astimezone(tz)
    if dim == "hour":
        return local.strftime("%Y-%m-%dT%H:%M%z")
    if dim == "day":
        return local.strftime("%Y-%m-%d")
    return local.strftime("%Y-%m")


def run_spend(conn: Connection, query: SpendQuery) -> SpendResult:
    """Answer a spend query exactly (see the module docstring)."""
    dims = _sql_dims(query)
    index = {d: i for i, d in enumerate(dims)}
    width = len(dims)
    groups: dict[tuple[str, ...], list[int]] = {}
    unpriced: dict[str, int] = {}
    tag_cache: dict[str, dict[str, str]] = {}
    time_cache: dict[tuple[int, str], str] = {}
    for row in _fetch(conn, query, dims):
        tags: dict[str, str] = {}
        if "tags" in index:
            text = row[index["tags"]]
            tags = tag_cache.get(text) or tag_cache.setdefault(text, json.loads(text))
            if any(tags.get(k) != v for k, v in query.tags.items()):
                continue
        key: list[str] = []
        for dim in query.group_by:
            if dim.startswith("tag:"):
                key.append(tags.get(dim[4:], "(none)"))
            elif dim in ("hour", "day", "month"):
                hour = int(row[index["hour"]])
                label = time_cache.get((hour, dim))
                if label is None:
                    label = time_cache[(hour, dim)] = _time_key(hour, dim, query.tz)
                key.append(label)
            else:
                key.append(str(row[index[dim]]))
        values = [int(v or 0) for v in row[width:]]
        acc = groups.get(tuple(key))
        if acc is None:
            groups[tuple(key)] = values
        else:
            for i, v in enumerate(values):
                acc[i] += v
        if values[9]:
            name = f"{row[index['provider']]}/{row[index['model']]}"
            unpriced[name] = unpriced.get(name, 0) + values[9]
    rows = [
        SpendRow(dict(zip(query.group_by, key, strict=True)), dict(zip(METRICS, sums, strict=True)))
        for key, sums in groups.items()
    ]
    total = _sum(r.sums for r in rows)
    time_dims = [d for d in query.group_by if d in ("hour", "day", "month")]
    rows.sort(key=lambda r: (-r.sums["cost_nanos"], -r.sums["records"], tuple(r.keys.values())))
    result = SpendResult(query, rows, total, unpriced_models=sorted(unpriced.items(), key=lambda kv: -kv[1]))
    if query.top is not None and len(rows) > query.top:
        kept, rest = rows[: query.top], rows[query.top :]
        result.rows, result.others, result.others_count = kept, _sum(r.sums for r in rest), len(rest)
    if time_dims:
        result.rows.sort(key=lambda r: tuple(r.keys[d] for d in time_dims))
    return result


def _sum(items: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total = dict.fromkeys(METRICS, 0)
    for sums in items:
        for name in METRICS:
            total[name] += sums[name]
    return total


def _cost_part(table: Table, column: str, n: int) -> Any:
    cost = table.c.cost_nanos
    return select(func.sum(cost).label("cost")).where(
        table.c.flow.like(bindparam("flow"), escape="\\"),
        table.c[column] >= bindparam(f"lo{n}"),
        table.c[column] < bindparam(f"hi{n}"),
    )


#: The sum of cost over the same parts ``_fetch`` reads, in one statement built once: raw
#: records for the partial hours at either end, hourly rollups for the partial days, daily
#: rollups for the whole UTC days; an unused part gets the empty range [0, 0).
_COST_TOTAL = (lambda parts: select(func.coalesce(func.sum(parts.c.cost), 0)))(
    union_all(
        _cost_part(usage_records, "ts_us", 0),
        _cost_part(usage_records, "ts_us", 1),
        _cost_part(rollups_hourly, "hour", 2),
        _cost_part(rollups_hourly, "hour", 3),
        _cost_part(rollups_daily, "day", 4),
    ).subquery()
)


def cost_total(conn: Connection, *, flow: str, start: datetime, end: datetime) -> int:
    """The cost of the flows matching the glob ``flow`` in [start, end), in one query: what
    ``run_spend`` answers as ``total["cost_nanos"]`` for that query (no tags, no grouping, so
    the zone plays no part). The budget check of every reserve asks this while holding the
    budget's lock, so it is one statement built once, not a query composed per call."""
    start_us, end_us = int(start.timestamp() * 1_000_000), int(end.timestamp() * 1_000_000)
    ranges = [(0, 0)] * 5
    h_lo, h_hi = _hour_ceil(start), _hour_floor(end)
    if h_lo > h_hi:  # the whole range is inside one hour
        ranges[0] = (start_us, end_us)
    else:
        ranges[0] = (start_us, min(h_lo * 1_000_000, end_us))
        ranges[1] = (max(h_hi * 1_000_000, start_us), end_us)
        d_lo, d_hi = -(-h_lo // 86400) * 86400, h_hi // 86400 * 86400
        if d_lo >= d_hi:
            ranges[2] = (h_lo, h_hi)
        else:
            ranges[2], ranges[3], ranges[4] = (h_lo, d_lo), (d_hi, h_hi), (d_lo, d_hi)
    params: dict[str, Any] = {"flow": like_pattern(flow)}
    for n, (lo, hi) in enumerate(ranges):
        params[f"lo{n}"], params[f"hi{n}"] = lo, hi
    return int(conn.execute(_COST_TOTAL, params).scalar_one())
