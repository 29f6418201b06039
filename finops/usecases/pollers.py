"""Poll the providers' usage and cost reports into ``provider_usage``/``provider_costs``.

Cursor semantics (one cursor per provider and report, e.g. ``openai.costs``): the
cursor is the start of the first daily bucket that is not yet *final*. Each poll
fetches from the cursor to the end of today (UTC), page by page, and writes each
page's buckets together with the advanced cursor in one transaction. A crash
therefore loses at most the page in flight, and the next poll starts again at
the cursor: nothing is skipped, and what is fetched twice replaces itself
(buckets are upserted, never added).

A bucket is final once it ended :data:`FINAL_AFTER` (48 h) ago. Providers revise
recent days for a while (late batch jobs, corrections), so the still-open day
and the one or two before it are fetched again on every poll; only after 48 h is
a day taken as settled and left behind. A provider still revising a day after
that will not be seen by the poller; the reconciliation shows it as drift.

The first poll of a report starts ``poll_start_days`` (setting) back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from finops.errors import ConfigError, FinopsError, IngestError
from finops.settings import Settings
from finops.sources.providers import anthropic_usage, openai_usage
from finops.sources.providers.client import ProviderClient, RetryPolicy
from finops.sources.providers.rows import Page
from finops.storage.db import write_transaction
from finops.storage.provider_reports import read_cursor, replace_costs, replace_usage, write_cursor
from finops.usecases.ledger import Ledger

__all__ = ["FINAL_AFTER", "PROVIDERS", "PollSummary", "poll_all", "poll_anthropic", "poll_openai"]

log = logging.getLogger("finops.pollers")

FINAL_AFTER = timedelta(hours=48)
PROVIDERS = ("openai", "anthropic")
_DAY_US = 86_400_000_000
_FINAL_AFTER_US = int(FINAL_AFTER.total_seconds()) * 1_000_000
#: A provider answering more pages than this for one poll is looping on its cursor.
_MAX_PAGES = 500


@dataclass
class PollSummary:
    """What one poll of one provider did (``error`` set when it stopped early; the cursor says where)."""

    provider: str
    buckets: int = 0
    rows: int = 0
    pages: int = 0
    retries: int = 0
    cursors: dict[str, str] = field(default_factory=dict)  # report -> first day not yet final
    skipped: str | None = None
    error: str | None = None

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.provider}: skipped ({self.skipped})"
        where = ", ".join(f"{k} from {v}" for k, v in sorted(self.cursors.items()))
        text = (
            f"{self.provider}: {self.buckets} bucket(s), {self.rows} row(s) in {self.pages} page(s), "
            f"{self.retries} retry(ies); next poll: {where or 'from the start'}"
        )
        return f"{text}; stopped: {self.error}" if self.error else text


@dataclass(frozen=True)
class _Report:
    cursor: str  # poller_cursors.name
    path: str
    params: Callable[..., list[tuple[str, str]]]
    parse: Callable[[dict[str, Any]], Page[Any]]
    store: Callable[..., int]


def _us(t: datetime) -> int:
    return (t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _day_floor(us: int) -> int:
    return us - us % _DAY_US


def _day(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).date().isoformat()


def _engine(target: Ledger | Engine) -> Engine:
    return target.engine if isinstance(target, Ledger) else target


def _poll_report(
    engine: Engine,
    client: ProviderClient,
    provider: str,
    report: _Report,
    *,
    now_us: int,
    start_days: int,
    summary: PollSummary,
) -> None:
    horizon_us = _day_floor(now_us - _FINAL_AFTER_US)  # buckets starting here or later are not final
    end_us = _day_floor(now_us) + _DAY_US  # the still-open day, whole
    with engine.connect() as conn:
        saved = read_cursor(conn, report.cursor)
    start_us = int(saved["next_start_us"]) if saved else _day_floor(now_us) - start_days * _DAY_US
    start_us = min(start_us, horizon_us)
    cursor_us = start_us
    summary.cursors[report.cursor] = _day(cursor_us)
    token: str | None = None
    seen: set[str] = set()
    for _ in range(_MAX_PAGES):
        doc = client.get(
            report.path, report.params(start_s=start_us // 1_000_000, end_s=end_us // 1_000_000, page=token)
        )
        page = report.parse(doc)
        summary.pages += 1
        # Everything before the end of this page's last bucket is stored once this page is;
        # without more pages, everything up to the horizon is.
        covered = max((b.end_us for b in page.buckets), default=cursor_us) if page.has_more else end_us
        next_cursor = max(cursor_us, min(covered, horizon_us))
        with write_transaction(engine) as conn:
            summary.rows += report.store(
                conn, provider=provider, buckets=page.buckets, rows=page.rows, now_us=now_us
            )
            write_cursor(
                conn,
                report.cursor,
                {"next_start_us": next_cursor, "next_start": _day(next_cursor)},
                now_us=now_us,
            )
        summary.buckets += len(page.buckets)
        cursor_us = next_cursor
        summary.cursors[report.cursor] = _day(cursor_us)
        if not page.has_more:
            return
        assert page.next_page is not None  # the parser refuses has_more without a cursor
        if page.next_page in seen:
            raise IngestError(f"{client.name} {report.path} sent the page cursor {page.next_page!r} twice")
        seen.add(page.next_page)
        token = page.next_page
    raise IngestError(f"{client.name} {report.path} answered more than {_MAX_PAGES} pages in one poll")


def _run(
    target: Ledger | Engine,
    settings: Settings,
    client: ProviderClient,
    provider: str,
    reports: Sequence[_Report],
    now: datetime | None,
    summary: PollSummary,
) -> PollSummary:
    engine = _engine(target)
    now_us = _us(now or datetime.now(UTC))
    try:
        for report in reports:
            _poll_report(
                engine,
                client,
                provider,
                report,
                now_us=now_us,
                start_days=settings.poll_start_days,
                summary=summary,
            )
    finally:
        summary.retries = client.retries
        client.close()
    log.info("polled %s", summary)
    return summary


def _key(settings: Settings, provider: str) -> str:
    secret = settings.openai_admin_key if provider == "openai" else settings.anthropic_admin_key
    value = secret.get_secret_value().strip() if secret is not None else ""
    if not value:
        raise ConfigError(
            f"FINOPS_{provider.upper()}_ADMIN_KEY is not set: the {provider} poller needs an admin key"
        )
    return value


def _openai(settings: Settings, retry: RetryPolicy | None) -> tuple[ProviderClient, tuple[_Report, ...]]:
    key = _key(settings, "openai")
    client = ProviderClient(
        name="OpenAI",
        base_url=settings.openai_base_url,
        headers={"Authorization": f"Bearer {key}"},
        secret=key,
        key_setting="FINOPS_OPENAI_ADMIN_KEY",
        retry=retry,
    )
    m = openai_usage
    return client, (
        _Report("openai.usage", m.USAGE_PATH, m.usage_params, m.parse_usage, replace_usage),
        _Report("openai.costs", m.COSTS_PATH, m.costs_params, m.parse_costs, replace_costs),
    )


def _anthropic(settings: Settings, retry: RetryPolicy | None) -> tuple[ProviderClient, tuple[_Report, ...]]:
    key = _key(settings, "anthropic")
    client = ProviderClient(
        name="Anthropic",
        base_url=settings.anthropic_base_url,
        headers=anthropic_usage.headers(key),
        secret=key,
        key_setting="FINOPS_ANTHROPIC_ADMIN_KEY",
        retry=retry,
    )
    m = anthropic_usage
    return client, (
        _Report("anthropic.usage", m.USAGE_PATH, m.usage_params, m.parse_usage, replace_usage),
        _Report("anthropic.costs", m.COSTS_PATH, m.costs_params, m.parse_costs, replace_costs),
    )


_SETUP = {"openai": _openai, "anthropic": _anthropic}


def _poll(
    provider: str,
    target: Ledger | Engine,
    settings: Settings,
    now: datetime | None,
    retry: RetryPolicy | None,
    summary: PollSummary,
) -> PollSummary:
    client, reports = _SETUP[provider](settings, retry)
    return _run(target, settings, client, provider, reports, now, summary)


def poll_openai(
    target: Ledger | Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    retry: RetryPolicy | None = None,
) -> PollSummary:
    """Fetch OpenAI's completions usage and costs from the cursors to now and store them.

    Raises ConfigError (no key, or the key refused) and IngestError (the API failed past its
    retries, or answered in a shape finops does not know); what was stored before stays stored.
    """
    return _poll("openai", target, settings, now, retry, PollSummary("openai"))


def poll_anthropic(
    target: Ledger | Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    retry: RetryPolicy | None = None,
) -> PollSummary:
    """Fetch Anthropic's messages usage report and cost report from the cursors to now and store them.

    Raises as :func:`poll_openai` does.
    """
    return _poll("anthropic", target, settings, now, retry, PollSummary("anthropic"))


def poll_all(
    target: Ledger | Engine,
    settings: Settings,
    *,
    now: datetime | None = None,
    retry: RetryPolicy | None = None,
    providers: Sequence[str] = PROVIDERS,
) -> list[PollSummary]:
    """Poll every provider with an admin key; one provider failing never stops the others.

    Never raises a FinopsError: a provider without a key is ``skipped``, one that failed has
    ``error`` set (and its cursor where it stopped). The daemon calls this every poll_interval_s.
    """
    summaries = []
    for provider in providers:
        summary = PollSummary(provider)
        summaries.append(summary)
        secret = settings.openai_admin_key if provider == "openai" else settings.anthropic_admin_key
        if secret is None or not secret.get_secret_value().strip():
            summary.skipped = f"FINOPS_{provider.upper()}_ADMIN_KEY is not set"
            continue
        try:
            _poll(provider, target, settings, now, retry, summary)
        except FinopsError as exc:
            log.warning("polling %s failed: %s", provider, exc)
            summary.error = str(exc)
    return summaries
