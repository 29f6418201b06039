"""The overview's top band: every budget's light, and the health of what feeds finops.

Read from the rollups and small tables only (``source_activity``, the outbox's status index,
provider cost reports), so the page answers in milliseconds on a ledger of any size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, func, select

from finops.domain.budgets import Budget, BudgetState
from finops.domain.dashboard import (
    Light,
    budget_light,
    drift_light,
    freshness_light,
    outbox_light,
    unpriced_light,
)
from finops.domain.periods import day_range
from finops.domain.reconcile import Drift
from finops.storage.reservations import held_by_budget
from finops.storage.tables import alert_outbox, provider_usage, rollups_hourly, source_activity
from finops.usecases.budgets import budget_state, spend_between
from finops.usecases.ledger import Ledger
from finops.usecases.reconcile import reconcile_month
from finops.usecases.spend import SpendQuery, run_spend

__all__ = ["BudgetTile", "Overview", "SourceTile", "budget_unpriced", "overview"]


@dataclass(frozen=True)
class BudgetTile:
    state: BudgetState
    held_nanos: int
    light: Light
    last_week_nanos: int  # the same local day a week before, up to the same time of day
    unpriced_records: int = 0  # calls the budget covers today without a price: cost unknown

    @property
    def budget(self) -> Budget:
        return self.state.budget


@dataclass(frozen=True)
class SourceTile:
    source: str
    newest: datetime  # the newest usage time the source has sent
    last_ingest: datetime  # when it last sent anything
    age_s: float
    light: Light


@dataclass(frozen=True)
class Overview:
    now: datetime
    budgets: tuple[BudgetTile, ...]
    broken_files: tuple[str, ...]  # budget files that cannot be read, none of their budgets in force
    sources: tuple[SourceTile, ...]
    providers: tuple[SourceTile, ...]  # provider usage reports: when each was last fetched
    today: datetime  # the UTC day the unpriced count covers
    today_records: int
    today_unpriced: int
    unpriced_light: Light
    outbox_failed: int
    outbox_ambiguous: int
    outbox_light: Light
    drift: Drift | None  # the largest drift of the last closed day with a provider cost report
    drift_threshold_pct: Decimal
    drift_light: Light
    kept_files: tuple[str, ...] = ()  # broken budget files whose last good version is still in force

    @property
    def budget_files_light(self) -> Light:
        """Red while a file's budgets are not enforced at all; yellow on a last good version."""
        return "red" if self.broken_files else "yellow" if self.kept_files else "green"


def budget_unpriced(conn: Connection, budget: Budget, start: datetime, end: datetime) -> int:
    """Records the budget covers in [start, end) that have no price (from the rollups, as spend)."""
    query = SpendQuery(
        start=start, end=end, tz=budget.zone, flows=(budget.flow_pattern,), tags=budget.tag_filter
    )
    return int(run_spend(conn, query).total["unpriced_records"])


def _sources(conn: Connection, now: datetime) -> tuple[SourceTile, ...]:
    s = source_activity.c
    tiles = []
    for source, newest_us, ingest_us in conn.execute(select(s.source, s.newest_ts_us, s.last_ingest_us)):
        newest = datetime.fromtimestamp(newest_us / 1e6, UTC)
        # a record stamped ahead (a skewed clock, a typo: ingest takes up to 2100) cannot be newer
        # than when it arrived; judged by its own ts, the source would read fresh for years
        age = max((now - datetime.fromtimestamp(min(newest_us, ingest_us) / 1e6, UTC)).total_seconds(), 0.0)
        tiles.append(
            SourceTile(
                source, newest, datetime.fromtimestamp(ingest_us / 1e6, UTC), age, freshness_light(age)
            )
        )
    return tuple(sorted(tiles, key=lambda t: (-t.age_s, t.source)))


def _providers(conn: Connection, now: datetime) -> tuple[SourceTile, ...]:
    """Each polled provider's newest usage bucket and when it was last fetched (the poller's pulse)."""
    u = provider_usage.c
    query = select(u.provider, func.max(u.bucket_end_us), func.max(u.fetched_us)).group_by(u.provider)
    tiles = []
    for provider, newest_us, fetched_us in conn.execute(query):
        fetched = datetime.fromtimestamp(fetched_us / 1e6, UTC)
        age = max((now - fetched).total_seconds(), 0.0)
        newest = datetime.fromtimestamp(newest_us / 1e6, UTC)
        tiles.append(SourceTile(provider, newest, fetched, age, freshness_light(age)))
    return tuple(sorted(tiles, key=lambda t: (-t.age_s, t.source)))


def _today(conn: Connection, day_start: datetime, now: datetime) -> tuple[int, int]:
    r = rollups_hourly.c
    lo, hi = int(day_start.timestamp()), int(now.timestamp()) + 1
    row = conn.execute(
        select(func.sum(r.records), func.sum(r.unpriced_records)).where(r.hour >= lo, r.hour < hi)
    ).one()
    return int(row[0] or 0), int(row[1] or 0)


def _outbox(conn: Connection) -> tuple[int, int]:
    o = alert_outbox.c
    counts: dict[str, int] = dict(
        conn.execute(
            select(o.status, func.count()).where(o.status.in_(("failed", "ambiguous"))).group_by(o.status)
        ).all()
    )
    return int(counts.get("failed", 0)), int(counts.get("ambiguous", 0))


def _last_closed_drift(ledger: Ledger, now: datetime) -> Drift | None:
    """The largest drift (by its percent) of the newest closed UTC day a provider reported a cost for."""
    yesterday = (now.astimezone(UTC) - timedelta(days=1)).date()
    before = yesterday.replace(day=1) - timedelta(days=1)
    for month in (yesterday.strftime("%Y-%m"), before.strftime("%Y-%m")):
        rows = [
            d
            for d in reconcile_month(ledger, month, replica=True).rows
            if d.day <= yesterday and d.drift_pct is not None
        ]
        if rows:
            last = max(d.day for d in rows)
            return max((d for d in rows if d.day == last), key=lambda d: (abs(d.drift_pct or 0), d.provider))
    return None


def overview(
    ledger: Ledger,
    budgets: Sequence[Budget],
    broken_files: Sequence[str],
    now: datetime,
    kept_files: Sequence[str] = (),
) -> Overview:
    """The overview at ``now`` (UTC-aware). ``broken_files``: budget files that cannot be read and
    have no last good version; ``kept_files``: broken, their last good version in force."""
    now = now.astimezone(UTC)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with ledger.read_engine.connect() as conn:
        held = held_by_budget(conn, [b.key for b in budgets], now_us=int(now.timestamp() * 1_000_000))
        tiles = []
        for budget in budgets:
            state = budget_state(conn, budget, now)
            hold = held.get(budget.key, 0)
            # the same local day a week before, from its own midnight (7 x 24 h off across a DST
            # change), for as long as today has run
            lw_start, _ = day_range(state.local_day - timedelta(days=7), budget.zone)
            before = spend_between(conn, budget, lw_start, lw_start + (min(now, state.end) - state.start))
            unpriced = budget_unpriced(conn, budget, state.start, state.end)
            light = budget_light(state, hold, unpriced)
            tiles.append(BudgetTile(state, hold, light, before, unpriced))
        sources = _sources(conn, now)
        providers = _providers(conn, now)
        records, unpriced = _today(conn, day_start, now)
        failed, ambiguous = _outbox(conn)
    drift = _last_closed_drift(ledger, now)
    threshold = ledger.settings.reconcile_threshold_pct
    order = {"red": 0, "yellow": 1, "green": 2}
    return Overview(
        now=now,
        budgets=tuple(sorted(tiles, key=lambda t: (order[t.light], -t.state.fraction, t.budget.key))),
        broken_files=tuple(sorted(broken_files)),
        kept_files=tuple(sorted(kept_files)),
        sources=sources,
        providers=providers,
        today=day_start,
        today_records=records,
        today_unpriced=unpriced,
        unpriced_light=unpriced_light(unpriced, records),
        outbox_failed=failed,
        outbox_ambiguous=ambiguous,
        outbox_light=outbox_light(failed, ambiguous),
        drift=drift,
        drift_threshold_pct=threshold,
        drift_light=drift_light(drift.drift_pct if drift else None, threshold),
    )
