"""Provider usage pollers against local servers speaking OpenAI's and Anthropic's admin APIs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from finops.errors import ConfigError, IngestError
from finops.sources.providers import RetryPolicy, anthropic_usage, openai_usage
from finops.sources.providers.client import ProviderClient
from finops.storage.provider_reports import read_cursor
from finops.storage.tables import provider_costs, provider_usage
from finops.usecases.ledger import Ledger
from finops.usecases.pollers import poll_all, poll_anthropic, poll_openai
from tests.conftest import make_ledger
from tests.provider_fakes import (
    ANTHROPIC_KEY,
    OPENAI_KEY,
    FakeProvider,
    anthropic_fake,
    ok,
    openai_fake,
    ratelimit,
    server_error,
)

__all__ = ["anthropic_fake", "openai_fake"]  # fixtures used by name

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_backoff_s=0.05, max_retry_after_s=2, timeout_s=10)
USAGE, COSTS = openai_usage.USAGE_PATH, openai_usage.COSTS_PATH


def _day(n: int) -> date:
    return date(2026, 11, n)


def _ledger(url: str, fake: FakeProvider, **settings: Any) -> Ledger:
    if fake.kind == "openai":
        defaults = {"openai_admin_key": OPENAI_KEY, "openai_base_url": fake.base_url}
    else:
        defaults = {"anthropic_admin_key": ANTHROPIC_KEY, "anthropic_base_url": fake.base_url}
    return make_ledger(url, **{"poll_start_days": 5, **defaults, **settings})


def _iso(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).date().isoformat()


def _usage(ledger: Ledger) -> dict[tuple[str, str | None], dict[str, Any]]:
    """Usage rows by (day, model); every (day, group) is stored once."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(provider_usage)).mappings().all()
    keys = [(r["bucket_start_us"], r["group_key"]) for r in rows]
    assert len(keys) == len(set(keys))
    return {(_iso(r["bucket_start_us"]), r["model"]): dict(r) for r in rows}


def _costs(ledger: Ledger) -> dict[str, int]:
    """Reported cost per day (nanos); every (day, group) is stored once."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(select(provider_costs)).mappings().all()
    keys = [(r["bucket_start_us"], r["group_key"]) for r in rows]
    assert len(keys) == len(set(keys))
    days: dict[str, int] = {}
    for r in rows:
        days[_iso(r["bucket_start_us"])] = days.get(_iso(r["bucket_start_us"]), 0) + r["amount_nanos"]
    return days


def _cursor(ledger: Ledger, name: str) -> str | None:
    with ledger.engine.connect() as conn:
        saved = read_cursor(conn, name)
    return None if saved is None else str(saved["next_start"])


def _fill_openai(fake: FakeProvider, days: range) -> None:
    for n in days:
        fake.add_usage(
            _day(n), model="gpt-4o-2024-08-06", project_id="proj_a", input_tokens=1000 * n,
            input_cached_tokens=100 * n, output_tokens=10 * n, num_model_requests=n,
        )  # fmt: skip
        fake.add_usage(_day(n), model="gpt-4o-mini", project_id="proj_a", input_tokens=5, output_tokens=1)
        fake.add_cost(_day(n), f"{n}.5", line_item="gpt-4o-2024-08-06, input", project_id="proj_a")


def _start_days(fake: FakeProvider, path: str) -> list[str]:
    """The start_time of each request to ``path``, as a date."""
    return [_iso(int(r.params["start_time"][0]) * 1_000_000) for r in fake.requests if r.path == path]


def test_openai_pages_with_a_429_and_a_500_in_the_middle_store_every_bucket_once(
    db_url: str, openai_fake: FakeProvider
) -> None:
    _fill_openai(openai_fake, range(15, 21))
    openai_fake.script(ok(), ratelimit(retry_after=1), server_error(500))  # page 2 refused twice, then ok
    ledger = _ledger(db_url, openai_fake)
    summary = poll_openai(ledger, ledger.settings, now=NOW, retry=FAST)

    # 6 days (Nov 15..20) at 2 buckets a page: 3 pages of usage, 3 of costs; 2 retries
    assert (summary.pages, summary.buckets, summary.retries, summary.error) == (6, 12, 2, None)
    assert [r.status for r in openai_fake.requests if r.path == USAGE] == [200, 429, 500, 200, 200]
    pages = [r.params.get("page", [None])[0] for r in openai_fake.pages(USAGE)]
    assert len(set(pages)) == 3 and pages[0] is None
    first = openai_fake.pages(USAGE)[0].params
    assert first["group_by"] == ["model", "project_id", "batch", "service_tier"]
    assert first["bucket_width"] == ["1d"] and first["limit"] == ["31"]

    usage = _usage(ledger)
    assert len(usage) == 12
    for n in range(15, 21):
        row = usage[(_day(n).isoformat(), "gpt-4o-2024-08-06")]
        assert (row["input_tokens"], row["cached_input_tokens"], row["output_tokens"], row["requests"]) == (
            1000 * n, 100 * n, 10 * n, n,
        )  # fmt: skip
        assert row["project"] == "proj_a" and row["provider"] == "openai"
    assert _costs(ledger) == {_day(n).isoformat(): n * 1_000_000_000 + 500_000_000 for n in range(15, 21)}
    # final = ended 48 h before NOW: Nov 15..17; the next poll starts at Nov 18
    assert _cursor(ledger, "openai.usage") == _cursor(ledger, "openai.costs") == "2026-11-18"
    ledger.close()


def test_retry_after_is_honoured_and_capped(openai_fake: FakeProvider) -> None:
    openai_fake.script(ratelimit(retry_after=1), ratelimit(retry_after=3600), server_error(503))
    waits: list[float] = []
    client = ProviderClient(
        name="OpenAI",
        base_url=openai_fake.base_url,
        headers={"Authorization": f"Bearer {OPENAI_KEY}"},
        secret=OPENAI_KEY,
        key_setting="FINOPS_OPENAI_ADMIN_KEY",
        retry=RetryPolicy(attempts=4, backoff_s=0.5, max_retry_after_s=60),
        sleep=waits.append,
    )
    with client:
        doc = client.get(USAGE, openai_usage.usage_params(start_s=1794700800, end_s=1794787200))
    assert doc["object"] == "page"
    assert waits == [1.0, 60.0, 2.0]  # Retry-After, Retry-After capped, then the doubled backoff
    assert client.retries == 3


def test_a_crash_mid_run_resumes_at_the_cursor_without_skipping_or_repeating(
    db_url: str, openai_fake: FakeProvider
) -> None:
    _fill_openai(openai_fake, range(10, 21))
    ledger = _ledger(db_url, openai_fake, poll_start_days=10)
    openai_fake.break_after(2)  # usage pages 1 and 2 (Nov 10..13) answer, then 500 forever
    with pytest.raises(IngestError, match="HTTP 500 at /v1/organization/usage/completions 3 times"):
        poll_openai(ledger, ledger.settings, now=NOW, retry=FAST)
    assert _cursor(ledger, "openai.usage") == "2026-11-14"
    assert {day for day, _ in _usage(ledger)} == {f"2026-11-{n}" for n in range(10, 14)}

    openai_fake.heal()
    openai_fake.requests.clear()
    summary = poll_openai(ledger, ledger.settings, now=NOW + timedelta(minutes=15), retry=FAST)
    assert summary.error is None
    assert _start_days(openai_fake, USAGE)[0] == "2026-11-14"  # resumed, Nov 10..13 not fetched again
    assert _start_days(openai_fake, COSTS)[0] == "2026-11-10"  # costs never started: from the beginning
    usage = _usage(ledger)
    assert sorted({day for day, _ in usage}) == [f"2026-11-{n}" for n in range(10, 21)]
    assert sum(r["input_tokens"] for (_, m), r in usage.items() if m == "gpt-4o-2024-08-06") == 1000 * sum(
        range(10, 21)
    )
    assert _cursor(ledger, "openai.usage") == "2026-11-18"
    ledger.close()


def test_a_repoll_of_the_open_day_replaces_its_numbers_never_adds(
    db_url: str, openai_fake: FakeProvider
) -> None:
    _fill_openai(openai_fake, range(15, 21))
    ledger = _ledger(db_url, openai_fake)
    poll_openai(ledger, ledger.settings, now=NOW, retry=FAST)
    # the provider revises today: more tokens, a new price line, and gpt-4o-mini's row is gone
    openai_fake.usage[_day(20)] = [
        {"model": "gpt-4o-2024-08-06", "project_id": "proj_a", "input_tokens": 50_000, "output_tokens": 7}
    ]
    openai_fake.costs[_day(20)] = [
        {"amount": "30.25", "line_item": "gpt-4o-2024-08-06, input", "project_id": "proj_a"},
        {"amount": "0.75", "line_item": "gpt-4o-2024-08-06, output", "project_id": "proj_a"},
    ]
    openai_fake.requests.clear()
    poll_openai(ledger, ledger.settings, now=NOW + timedelta(hours=1), retry=FAST)

    assert set(_start_days(openai_fake, USAGE)) == {"2026-11-18"}  # only the days not yet final
    usage = _usage(ledger)
    assert usage[("2026-11-20", "gpt-4o-2024-08-06")]["input_tokens"] == 50_000
    assert ("2026-11-20", "gpt-4o-mini") not in usage
    assert usage[("2026-11-19", "gpt-4o-mini")]["input_tokens"] == 5
    costs = _costs(ledger)
    assert costs["2026-11-20"] == 31_000_000_000 and costs["2026-11-19"] == 19_500_000_000
    ledger.close()


def test_openai_amounts_are_exact_decimals_never_floats(openai_fake: FakeProvider, sqlite_url: str) -> None:
    openai_fake.add_cost(_day(19), "0.1", line_item="a", project_id="p")
    openai_fake.add_cost(_day(19), "0.2", line_item="b", project_id="p")
    openai_fake.add_cost(_day(18), "1.2345678905", line_item="a", project_id="p")  # half-even at 1e-9
    openai_fake.add_cost(_day(17), "1.2345678915", line_item="a", project_id="p")
    openai_fake.add_cost(_day(16), "3.0E-7", line_item="a", project_id="p")
    ledger = _ledger(sqlite_url, openai_fake)
    poll_openai(ledger, ledger.settings, now=NOW, retry=FAST)
    costs = _costs(ledger)
    assert costs["2026-11-19"] == 300_000_000  # 0.1 + 0.2 == 0.3 exactly
    assert (costs["2026-11-18"], costs["2026-11-17"], costs["2026-11-16"]) == (
        1_234_567_890,
        1_234_567_892,
        300,
    )
    ledger.close()


def test_anthropic_cents_and_inclusive_input_counts(db_url: str, anthropic_fake: FakeProvider) -> None:
    for n in range(15, 21):
        anthropic_fake.add_usage(
            _day(n), model="claude-sonnet-4-5", workspace_id="wrkspc_1", service_tier="standard",
            uncached_input_tokens=1000, cache_read_input_tokens=400, ephemeral_5m_input_tokens=30,
            ephemeral_1h_input_tokens=20, output_tokens=n,
        )  # fmt: skip
        anthropic_fake.add_cost(_day(n), "123.45", description="Claude Sonnet 4.5 Usage - Input Tokens")
        anthropic_fake.add_cost(_day(n), "0.001", description="Claude Sonnet 4.5 Usage - Output Tokens")
    anthropic_fake.script(ok(), ok(), server_error(502), ratelimit(retry_after=1))
    ledger = _ledger(db_url, anthropic_fake)
    summary = poll_anthropic(ledger, ledger.settings, now=NOW, retry=FAST)
    assert (summary.pages, summary.retries, summary.error) == (6, 2, None)

    first = anthropic_fake.pages(anthropic_usage.USAGE_PATH)[0]
    assert first.params["starting_at"] == ["2026-11-15T00:00:00Z"]
    assert first.params["ending_at"] == ["2026-11-21T00:00:00Z"]
    assert first.params["group_by[]"] == ["model", "workspace_id", "service_tier"]
    assert first.headers["anthropic-version"] == "2023-06-01"

    usage = _usage(ledger)
    assert len(usage) == 6
    row = usage[("2026-11-17", "claude-sonnet-4-5")]
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"]) == (1450, 400, 30)
    assert (row["cache_write_1h_tokens"], row["output_tokens"], row["requests"]) == (20, 17, 0)
    assert row["project"] == "wrkspc_1" and row["service_tier"] == "standard"
    # "123.45" cents is $1.2345; "0.001" cents is $0.00001
    assert _costs(ledger) == {_day(n).isoformat(): 1_234_500_000 + 10_000 for n in range(15, 21)}
    assert _cursor(ledger, "anthropic.costs") == "2026-11-18"
    ledger.close()


def test_a_refused_key_names_the_setting_and_never_shows_the_key(
    sqlite_url: str, openai_fake: FakeProvider
) -> None:
    ledger = _ledger(sqlite_url, openai_fake, openai_admin_key="sk-admin-wrongKeyThatMustNotLeak0001")
    with pytest.raises(ConfigError) as caught:
        poll_openai(ledger, ledger.settings, now=NOW, retry=FAST)
    message = str(caught.value)
    assert "FINOPS_OPENAI_ADMIN_KEY" in message and "HTTP 401" in message
    assert "wrongKey" not in message
    assert [r.status for r in openai_fake.requests] == [401]  # not retried
    ledger.close()


def test_poll_all_skips_providers_without_a_key_and_reports_one_failing(
    sqlite_url: str, openai_fake: FakeProvider
) -> None:
    ledger = _ledger(
        sqlite_url,
        openai_fake,
        anthropic_admin_key="sk-ant-admin01-x",
        anthropic_base_url="http://127.0.0.1:9",
    )
    summaries = {s.provider: s for s in poll_all(ledger, ledger.settings, now=NOW, retry=FAST)}
    assert summaries["openai"].error is None and summaries["openai"].pages == 6
    assert summaries["anthropic"].error is not None and "could not be reached" in summaries["anthropic"].error
    assert "sk-ant-admin01-x" not in str(summaries["anthropic"])

    no_keys = make_ledger(sqlite_url)
    skipped = poll_all(no_keys, no_keys.settings, now=NOW)
    assert [s.skipped for s in skipped] == [
        "FINOPS_OPENAI_ADMIN_KEY is not set",
        "FINOPS_ANTHROPIC_ADMIN_KEY is not set",
    ]
    no_keys.close()
    ledger.close()


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"object": "page", "data": [], "has_more": True, "next_page": None}, "has_more is true"),
        ({"error": {"message": "nope"}}, "no `data` list"),
        (
            {"data": [{"start_time": 10, "end_time": 5, "results": []}], "has_more": False},
            "not Unix seconds",
        ),
        (
            {
                "data": [{"start_time": 0, "end_time": 86400, "results": [{"input_tokens": -1}]}],
                "has_more": False,
            },
            "input_tokens is -1",
        ),
    ],
)
def test_a_page_that_lost_its_shape_is_an_error_never_no_usage(doc: dict[str, Any], problem: str) -> None:
    with pytest.raises(IngestError, match=problem):
        openai_usage.parse_usage(doc)
