"""The FOCUS export: a month of usage as FOCUS rows, exact to the ledger (docs/focus.md).

The month's usage records are summed in the database per UTC hour (or quarter hour, in a zone
whose offset is not whole hours), provider, model, tier, flow, tags, price version and
long-context tier, then gathered into charge periods (days or hours, in the chosen zone) here;
:func:`finops.domain.focus.focus_rows` splits each group's stored cost across its token classes.
Unpriced usage has no cost, and FOCUS has no row for a cost nobody knows: it is left out and
counted in :class:`FocusExport` (``unpriced_*``), never written as $0. Raw usage is needed (the
long-context tier and the price version are per call): a month partly deleted by retention is
refused.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, case, func, literal, select

from finops.domain.focus import CallGroup, focus_rows
from finops.domain.periods import month_range
from finops.domain.pricing.rates import PriceEntry, entry_from_mapping
from finops.domain.providers import origin_provider
from finops.errors import UsageError
from finops.storage.db import one_snapshot
from finops.storage.retention import final_before_us
from finops.storage.tables import outcome_links, outcomes, price_versions, usage_records
from finops.usecases.ledger import Ledger

__all__ = ["FocusExport", "focus_export"]

Grain = Literal["day", "hour"]
_SUMS = ("requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens",
         "output_tokens", "reasoning_tokens")  # fmt: skip
_DISCOUNT = re.compile(r"^\s*(-?[0-9.]+)% off")


@dataclass
class FocusExport:
    """The export's rows and what was left out."""

    month: str
    tz: ZoneInfo
    grain: Grain
    billing_start: datetime
    billing_end: datetime
    rows: list[dict[str, str]] = field(default_factory=list)
    billed_nanos: int = 0  # the sum of BilledCost
    records: int = 0  # priced records behind the rows
    unpriced_records: int = 0
    unpriced_tokens: int = 0
    unpriced_models: dict[str, int] = field(default_factory=dict)  # provider/model -> records


def _versions(conn: Connection, names: list[str]) -> dict[str, tuple[PriceEntry, Decimal | None]]:
    """The price entries (and discount fractions) behind the stored price versions."""
    found: dict[str, tuple[PriceEntry, Decimal | None]] = {}
    p = price_versions.c
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        for version, layer, body, discount in conn.execute(
            select(p.version, p.layer, p.body, p.discount).where(p.version.in_(chunk))
        ):
            entry = entry_from_mapping(json.loads(body), layer=layer, where=f"price version {version}")
            fraction = None
            if discount:
                match = _DISCOUNT.match(discount)
                if match is None:
                    raise UsageError(
                        f"price version {version} has a discount finops cannot read: {discount!r}"
                    )
                fraction = Decimal(match.group(1)) / 100
            found[version] = (entry, fraction)
    missing = sorted(set(names) - set(found))
    if missing:
        raise UsageError(
            f"price version {missing[0]} priced usage but is not in price_versions: the ledger is damaged; "
            "`finops reprice` the month to record its prices again"
        )
    return found


def _context_tier(versions: dict[str, tuple[PriceEntry, Decimal | None]]) -> Any:
    """SQL for each record's long-context threshold: the largest its input is above, for its price."""
    u = usage_records.c
    whens = [
        (and_(u.price_version == version, u.input_tokens > threshold), literal(threshold))
        for version, (entry, _) in sorted(versions.items())
        for threshold in entry.thresholds  # largest first: the first match is the one priced
    ]
    return case(*whens, else_=literal(0)) if whens else literal(0)


def _bucket_seconds(tz: ZoneInfo, start: datetime, end: datetime) -> int:
    """3600 when every offset of the zone in the period is whole hours (UTC hours make local
    hours and days), else 900 (offsets are whole quarter hours)."""
    t = start
    while t < end:
        offset = t.astimezone(tz).utcoffset() or timedelta(0)
        if offset.total_seconds() % 3600:
            return 900
        t += timedelta(hours=6)
    return 3600


def _period(t: datetime, tz: ZoneInfo, grain: Grain) -> tuple[datetime, datetime]:
    """The charge period holding ``t`` (UTC): its local day or its UTC hour, as UTC [start, end)."""
    if grain == "hour":
        start = t.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    local = t.astimezone(tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    start = day.replace(tzinfo=tz).astimezone(UTC)
    end = (day + timedelta(days=1)).replace(tzinfo=tz).astimezone(UTC)
    return start, end


def _successes(conn: Connection, keys: tuple[Any, ...], lo: int, hi: int) -> dict[tuple[Any, ...], set[Any]]:
    """The successful outcomes linked to the month's priced usage, per group key: their ids, so an
    outcome whose calls fall in two hours of one day counts once in the day's row (an outcome whose
    calls fall in two groups counts in each)."""
    u, link, o = usage_records.c, outcome_links.c, outcomes.c
    query = (
        select(*keys, o.id)
        .select_from(
            usage_records.join(outcome_links, link.usage == u.id).join(outcomes, o.id == link.outcome)
        )
        .where(u.ts_us >= lo, u.ts_us < hi, u.price_version.is_not(None), o.status == "success")
        .distinct()
    )
    found: dict[tuple[Any, ...], set[Any]] = defaultdict(set)
    for row in conn.execute(query):
        found[tuple(row[:-1])].add(row[-1])
    return found


def _refuse_closed(conn: Connection, month: str, lo: int) -> None:
    """Raise UsageError when retention has deleted raw usage from ``lo`` on (the month's start)."""
    final = final_before_us(conn)
    if final > lo:
        kept = datetime.fromtimestamp(final / 1e6, UTC).date().isoformat()
        raise UsageError(
            f"the raw usage of {month} before {kept} was deleted by retention "
            "(FINOPS_RETENTION_DAYS); the FOCUS export needs each call: export a month from then on"
        )


def focus_export(ledger: Ledger, month: str, *, tz: ZoneInfo, grain: Grain = "day") -> FocusExport:
    """The month's FOCUS rows; raises UsageError for a month it cannot export exactly."""
    try:
        start, end = month_range(month, tz)
    except (ValueError, OverflowError) as exc:  # year 1 west of UTC begins before datetime.min
        if isinstance(exc, OverflowError):
            raise UsageError(f"month {month!r} is out of range: export a month of this era") from None
        raise UsageError(str(exc)) from None
    local = start.astimezone(tz)  # the month as written once (" 2026-11", "٢٠٢٦-١١" -> "2026-11")
    export = FocusExport(f"{local.year:04d}-{local.month:02d}", tz, grain, start, end)
    lo, hi = int(start.timestamp() * 1_000_000), int(end.timestamp() * 1_000_000)
    # hours are UTC hours in any zone; a local day needs quarter hours where the offset is not whole hours
    seconds = 3600 if grain == "hour" else _bucket_seconds(tz, start, end)
    u = usage_records.c
    with ledger.read_engine.connect() as conn:
        # One snapshot: a reprice committing while the month is read (PostgreSQL gives each
        # statement its own otherwise) would give rows a price version the export did not read.
        one_snapshot(conn)
        _refuse_closed(conn, export.month, lo)
        in_month = and_(u.ts_us >= lo, u.ts_us < hi)
        priced_versions = select(u.price_version).where(in_month, u.price_version.is_not(None)).distinct()
        names = [v for (v,) in conn.execute(priced_versions)]
        versions = _versions(conn, names)
        tier = _context_tier(versions).label("context_tier")
        bucket = (u.ts_us // (seconds * 1_000_000)).label("bucket")
        keys = (bucket, u.provider, u.model, u.service_tier, u.flow, u.tags, u.price_version, tier)
        sums = [func.sum(u[name]) for name in _SUMS]
        query = select(*keys, func.count(), *sums, func.sum(u.cost_nanos)).where(in_month).group_by(*keys)
        successes = _successes(conn, keys, lo, hi)
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * 9)
        succeeded: dict[tuple[Any, ...], set[Any]] = defaultdict(set)  # group -> outcome ids
        unpriced_by: dict[tuple[Any, ...], int] = defaultdict(int)
        periods: dict[int, tuple[datetime, datetime]] = {}  # bucket -> its charge period
        for row in conn.execute(query):
            b, provider, model, service_tier, flow, tags, version, ctx = row[:8]
            records, *counts, cost = (int(v or 0) for v in row[8:])
            span = periods.get(b)
            if span is None:
                p_start, p_end = _period(datetime.fromtimestamp(int(b) * seconds, UTC), tz, grain)
                # a UTC hour astride the edge of a +05:30 month is cut to the month
                span = periods[b] = (max(p_start, start), min(p_end, end))
            p_start, p_end = span
            if version is None:  # no price: counted and left out, never $0
                export.unpriced_records += records
                export.unpriced_tokens += counts[1] + counts[5]
                name = f"{provider}/{model}"
                export.unpriced_models[name] = export.unpriced_models.get(name, 0) + records
                unpriced_by[(p_start, provider, model, flow, tags)] += records
                continue
            key = (p_start, p_end, provider, model, service_tier, int(ctx), flow, tags, version)
            acc = groups[key]
            acc[0] += records
            for i, value in enumerate(counts):
                acc[1 + i] += value
            acc[8] += cost
            succeeded[key] |= successes.get(tuple(row[:8]), set())
    # Again, outside the snapshot: retention may have dropped the month's partition meanwhile
    # (PostgreSQL: a dropped table is gone even for a snapshot older than the drop), and the
    # rows read from it are then missing although the snapshot's watermark says they are there.
    with ledger.read_engine.connect() as conn:
        _refuse_closed(conn, export.month, lo)
    for key in sorted(groups, key=lambda k: (k[0], k[2], k[3], k[6], k[4], k[5], k[7], k[8])):
        p_start, p_end, provider, model, service_tier, ctx, flow, tags, version = key
        acc = groups[key]
        entry, discount = versions[version]
        maker = origin_provider(model.split("/")[-1])
        unpriced = unpriced_by.get((p_start, provider, model, flow, tags), 0)
        group = CallGroup(
            period_start=p_start, period_end=p_end, provider=provider, maker=maker,
            model=model, service_tier=service_tier, context_tier=ctx, flow=flow, tags=json.loads(tags),
            version=version, entry=entry, discount=discount, records=acc[0], requests=acc[1],
            input_tokens=acc[2], cached_input_tokens=acc[3], cache_write_tokens=acc[4],
            cache_write_1h_tokens=acc[5], output_tokens=acc[6], reasoning_tokens=acc[7], cost_nanos=acc[8],
            successful_outcomes=len(succeeded.get(key, ())), unpriced_records=unpriced,
        )  # fmt: skip
        export.rows.extend(focus_rows(group, billing_start=start, billing_end=end))
        export.billed_nanos += acc[8]
        export.records += acc[0]
    return export
