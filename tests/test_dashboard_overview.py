"""The overview (``/``): each tile's light and numbers, on both databases and in a real browser.

Spend is seeded as usage stamped "now", so every budget's day is today whatever the hour the
test runs; caps are set from the spend finops itself reports, so each light is known.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import insert

from finops.config.budget_spec import parse_budget
from finops.domain.money import format_usd
from finops.render.dashboard.overview import render_overview
from finops.storage.tables import alert_outbox, provider_usage
from finops.usecases.dashboard.overview import overview
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.spend import SpendQuery, run_spend
from tests.browser import Browser, require_chromium
from tests.conftest import write_jsonl
from tests.daemon_proc import DaemonProcess

HOSTILE = '<script>alert("x")</script> & "q"'


def _records(now: datetime, unpriced: int = 0) -> list[dict[str, Any]]:
    """Ten priced calls per flow, stamped within the last second, plus ``unpriced`` unknown-model calls
    (on red-flow, red on its priced spend alone: a budget with calls of unknown cost is never green)."""
    ts = now.isoformat().replace("+00:00", "Z")
    out = []
    for n, flow in enumerate(("green-flow", "yellow-flow", "red-flow", "blocked-flow", HOSTILE)):
        for i in range(10):
            out.append({
                "id": f"{n}-{i}", "ts": ts, "provider": "openai", "model": "gpt-4o-mini", "flow": flow,
                "input_tokens": 1000 * (n + 1) + i, "output_tokens": 200 + i,
            })  # fmt: skip
    for i in range(unpriced):
        out.append({
            "id": f"u-{i}", "ts": ts, "provider": "openai", "model": "no-such-model-1", "flow": "red-flow",
            "input_tokens": 10, "output_tokens": 1,
        })  # fmt: skip
    return out


def _budgets(spend: dict[str, int]) -> list[dict[str, Any]]:
    """Caps from each flow's spend: green far under, yellow past 80%, red over, blocked at the cap."""

    def usd(nanos: int, factor: str) -> str:
        return str((Decimal(nanos) * Decimal(factor) / 10**9).quantize(Decimal("0.000001")))

    return [
        {"flow": "green-flow", "owner": "U01", "daily_cap_usd": usd(spend["green-flow"], "100000")},
        {"flow": "yellow-flow", "owner": "U01", "daily_cap_usd": usd(spend["yellow-flow"], "1.15")},
        {"flow": "red-flow", "owner": "U01", "daily_cap_usd": usd(spend["red-flow"], "0.5")},
        {"flow": "blocked-flow", "owner": "U01", "daily_cap_usd": usd(spend["blocked-flow"], "0.9"),
         "on_breach": "block"},
        {"name": "hostile", "flow": HOSTILE, "owner": "U01", "daily_cap_usd": "1000000"},
    ]  # fmt: skip


EXPECTED = {"green-flow": "green", "yellow-flow": "yellow", "red-flow": "red", "blocked-flow": "red"}


def _today_by_flow(ledger: Ledger, now: datetime) -> dict[str, int]:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    result = run_spend(
        ledger.engine.connect(), SpendQuery(group_by=("flow",), start=start, end=start + timedelta(days=1))
    )
    return {row.keys["flow"]: row.sums["cost_nanos"] for row in result.rows}


def test_overview_lights_and_numbers(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    summary = ingest_objects(ledger, _records(now, unpriced=2), source="app")
    assert summary.stored == 52
    spend = _today_by_flow(ledger, now)
    budgets = [parse_budget(b) for b in _budgets(spend)]
    with ledger.engine.begin() as conn:  # one failed Slack message, one being checked
        for i, status in enumerate(("failed", "ambiguous", "sent")):
            conn.execute(
                insert(alert_outbox).values(
                    dedupe_key=f"k{i}", channel="C1", payload="{}", status=status, attempts=1,
                    next_attempt_us=0, created_us=0, updated_us=0,
                )
            )  # fmt: skip
    week_ago = [
        {**r, "id": f"w-{r['id']}"} for r in _records(now - timedelta(days=7)) if r["flow"] == "red-flow"
    ]
    ingest_objects(ledger, week_ago[:4], source="app")
    last_week = _today_by_flow(ledger, now - timedelta(days=7))["red-flow"]
    result = overview(ledger, budgets, ["broken.yaml"], now + timedelta(seconds=1))
    weeks = {t.budget.key: t.last_week_nanos for t in result.budgets}
    assert weeks == {
        "red-flow": last_week,
        "green-flow": 0,
        "yellow-flow": 0,
        "blocked-flow": 0,
        "hostile": 0,
    }
    lights = {t.budget.key: t.light for t in result.budgets}
    assert lights == {**EXPECTED, "hostile": "green"}
    assert {t.budget.key: t.unpriced_records for t in result.budgets}["red-flow"] == 2
    assert [t.light for t in result.budgets][:2] == ["red", "red"]  # worst first
    for tile in result.budgets:
        assert tile.state.spend_nanos == spend[tile.budget.flow_pattern]
    assert [(s.source, s.light) for s in result.sources] == [("app", "green")]
    assert (result.today_records, result.today_unpriced, result.unpriced_light) == (52, 2, "red")
    assert (result.outbox_failed, result.outbox_ambiguous, result.outbox_light) == (1, 1, "red")
    assert result.drift is None and result.drift_light == "green"
    page = render_overview(result)
    assert HOSTILE not in page and "<script" not in page
    assert 'href="/flows/%3Cscript%3Ealert%28%22x%22%29%3C%2Fscript%3E%20%26%20%22q%22"' in page
    assert "broken.yaml" in page
    assert page.count('data-metric="last-week"') == 5 and "this time last week" in page
    for flow, nanos in spend.items():
        key = "hostile" if flow == HOSTILE else flow
        assert f'data-tile="budget:{key}"' in page
        assert f'<data class="usd" value="{format_usd(nanos)}">' in page


def test_source_activity_moves_forward_only(ledger: Ledger) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ingest_objects(ledger, _records(now)[:2], source="app")
    older = [{**r, "id": f"old-{r['id']}", "ts": "2026-01-01T00:00:00Z"} for r in _records(now)[:2]]
    ingest_objects(ledger, older, source="app")  # late records never make a source look staler
    ingest_objects(ledger, older, source="backfill")
    result = overview(ledger, [], [], now)
    by_source = {s.source: s for s in result.sources}
    assert by_source["app"].newest == now and by_source["app"].light == "green"
    assert by_source["backfill"].light == "red"
    assert [s.source for s in result.sources] == ["backfill", "app"]  # stalest first
    assert result.providers == ()  # no poller: no provider tile


def test_a_polled_provider_has_its_own_freshness_tile(ledger: Ledger) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    us = int(now.timestamp() * 1_000_000)
    counts = dict.fromkeys(
        ("requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens",
         "output_tokens"), 1,
    )  # fmt: skip
    with ledger.engine.begin() as conn:
        for provider, fetched in (("openai", us - 600_000_000), ("anthropic", us - 3 * 86400 * 1_000_000)):
            conn.execute(
                insert(provider_usage).values(
                    provider=provider, bucket_start_us=us - 86400 * 10**6, bucket_end_us=us, group_key="",
                    fetched_us=fetched, **counts,
                )
            )  # fmt: skip
    result = overview(ledger, [], [], now)
    assert [(p.source, p.light) for p in result.providers] == [("anthropic", "red"), ("openai", "green")]
    page = render_overview(result)
    assert 'data-tile="health:provider:openai" data-state="green"' in page
    assert 'data-tile="health:provider:anthropic" data-state="red"' in page and "3 days ago" in page


# ------------------------------------------------------------------- the real daemon, a real browser


def _finops(tmp: Path, db: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "finops", *args, "--db", db],
        capture_output=True,
        text=True,
        cwd=tmp,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_chromium()
    tmp = tmp_path_factory.mktemp("overview")
    db = f"sqlite:///{tmp / 'f.db'}"
    now = datetime.now(UTC)
    _finops(tmp, db, "db", "upgrade")
    _finops(tmp, db, "ingest", str(write_jsonl(tmp / "u.jsonl", _records(now, unpriced=1))))
    doc = json.loads(_finops(tmp, db, "spend", "--today", "--by", "flow", "--format", "json"))
    spend = {row["flow"]: row["cost_usd"] for row in doc["rows"]}
    budgets = tmp / "budgets"
    budgets.mkdir()
    nanos = {flow: int(Decimal(v) * 10**9) for flow, v in spend.items()}
    import yaml

    for i, b in enumerate(_budgets(nanos)):
        (budgets / f"b{i}.yaml").write_text(yaml.safe_dump({"budgets": [b]}))
    daemon = DaemonProcess(tmp, db, budgets=budgets).start()
    profile = tmp / "profile"
    browser = Browser(profile)
    try:
        yield daemon, browser, spend
    finally:
        browser.close()
        daemon.stop()


def test_overview_in_chromium(seeded: Any) -> None:
    daemon, b, spend = seeded
    b.goto(daemon.base + "/")
    tiles = b.evaluate(
        "Object.fromEntries([...document.querySelectorAll('[data-tile]')].map(e => [e.dataset.tile, "
        "[e.dataset.state, e.querySelector('data.usd') && e.querySelector('data.usd').value, "
        "e.querySelector('data.usd') && e.querySelector('data.usd').textContent]]))"
    )
    assert len([t for t in tiles if t.startswith("budget:")]) == 5, tiles
    for flow, light in EXPECTED.items():
        state, value, shown = tiles[f"budget:{flow}"]
        assert state == light
        assert value == spend[flow]  # the exact decimal `finops spend --format json` prints
        assert shown == "$" + str(Decimal(spend[flow]).quantize(Decimal("0.01")))
    assert tiles["budget:hostile"][0] == "green"
    assert tiles["health:ingest:default"][0] == "green"
    assert tiles["health:unpriced"][0] == "red"  # 1 of 51 records today
    assert tiles["health:slack"][0] == "green" and tiles["health:drift"][0] == "green"
    assert b.problems() == []
    assert all(url.startswith(daemon.base + "/") for url in b.requests()), b.requests()
    assert b.evaluate("document.title") == "Overview · finops"


def test_overview_fits_a_phone_and_a_wide_screen(seeded: Any) -> None:
    daemon, b, _ = seeded
    b.goto(daemon.base + "/")
    for width in (375, 1440):
        b.width(width)
        scroll, inner = b.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"horizontal scroll at {width}px: {scroll} > {inner}"


def test_keyboard_reaches_every_link(seeded: Any) -> None:
    daemon, b, _ = seeded
    b.goto(daemon.base + "/")
    b.width(1440)
    wanted = set(b.evaluate("[...document.querySelectorAll('a[href], button')].map(e => e.outerHTML)"))
    reached = set()
    for _ in range(len(wanted) + 3):
        b.press_tab()
        reached.add(b.evaluate("document.activeElement.outerHTML"))
    assert wanted <= reached, wanted - reached
    # the first Tab lands on the skip link, which moves focus to the content
    b.navigate(daemon.base + "/")
    b.press_tab()
    assert b.evaluate("document.activeElement.className") == "skip"


def test_every_dashboard_answer_carries_the_security_headers(seeded: Any) -> None:
    daemon, _, _ = seeded
    for path in ("/", "/login", "/static/dashboard.css", "/flows/nope%00"):
        r = httpx.get(daemon.base + path, follow_redirects=False)
        assert "script-src" not in r.headers["content-security-policy"]
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        if path != "/static/dashboard.css":
            assert r.headers["cache-control"] == "no-store"
    bad = httpx.get(daemon.base + "/flows/nope%00")
    assert bad.status_code == 400 and "control character" in bad.text and "Traceback" not in bad.text


def test_a_budget_whose_calls_have_no_price_is_never_green(ledger: Ledger) -> None:
    """Calls of an unknown model cost $0 as far as the rollups know: the day is not "on track" but
    unknown, on the overview and on the flow page alike (fail closed)."""
    from finops.render.dashboard.flow import render_flow
    from finops.usecases.dashboard.flow import flow_page

    now = datetime.now(UTC)
    ts = now.isoformat()
    calls = [
        {"id": f"n-{i}", "ts": ts, "provider": "openai", "model": "no-such-model-1", "flow": "dark",
         "input_tokens": 10_000_000, "output_tokens": 1, "tags": {"team": "a"}}
        for i in range(3)
    ]  # fmt: skip
    assert ingest_objects(ledger, calls, source="app").stored == 3
    budgets = [
        parse_budget(flow="dark", owner="U01", daily_cap_usd="1"),
        parse_budget(name="team-a", match={"flow": "d*", "tags": {"team": "a"}}, owner="U01",
                     daily_cap_usd="1", timezone="Pacific/Kiritimati"),
        parse_budget(name="team-b", match={"flow": "d*", "tags": {"team": "b"}}, owner="U01",
                     daily_cap_usd="1"),
    ]  # fmt: skip
    result = overview(ledger, budgets, [], now + timedelta(seconds=1))
    got = {t.budget.key: (t.light, t.state.spend_nanos, t.unpriced_records) for t in result.budgets}
    assert got == {"dark": ("yellow", 0, 3), "team-a": ("yellow", 0, 3), "team-b": ("green", 0, 0)}
    assert "3 calls today without a price: cost unknown" in render_overview(result)
    view = flow_page(ledger, budgets, "dark", now + timedelta(seconds=1))
    assert view is not None
    html = render_flow(view)
    assert 'data-tile="flow:today" data-state="yellow"' in html and "without a price: cost unknown" in html


def test_a_record_stamped_in_the_future_does_not_keep_its_source_fresh(ledger: Ledger) -> None:
    now = datetime.now(UTC)
    ahead = {"id": "f-1", "ts": "2099-06-01T00:00:00Z", "provider": "openai", "model": "gpt-4o-mini",
             "flow": "f", "input_tokens": 1, "output_tokens": 1}  # fmt: skip
    assert ingest_objects(ledger, [ahead], source="skewed").stored == 1
    assert [(s.source, s.light) for s in overview(ledger, [], [], now).sources] == [("skewed", "green")]
    later = overview(ledger, [], [], now + timedelta(days=2))  # nothing sent since
    assert [(s.source, s.light) for s in later.sources] == [("skewed", "red")]
    assert later.sources[0].age_s >= 2 * 86400 - 5


@pytest.mark.parametrize(
    ("zone", "midnight"),
    [
        ("America/Los_Angeles", datetime(2026, 11, 20, 8, 0, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(2026, 11, 19, 18, 30, tzinfo=UTC)),
        ("Pacific/Chatham", datetime(2026, 11, 19, 10, 15, tzinfo=UTC)),
    ],
)
def test_today_is_exact_just_after_local_midnight(ledger: Ledger, zone: str, midnight: datetime) -> None:
    """Calls a second either side of local midnight, in zones whole, half and three-quarter hours off
    UTC: the overview's tile and the flow page count exactly the spend query's today, to the nano."""
    from finops.usecases.dashboard.flow import flow_page

    now = midnight + timedelta(minutes=20)
    stamps = [midnight - timedelta(hours=2), midnight - timedelta(seconds=1), midnight,
              midnight + timedelta(seconds=1), midnight + timedelta(minutes=19)]  # fmt: skip
    calls = [
        {"id": f"m-{i}", "ts": t.isoformat(), "provider": "openai", "model": "gpt-4o", "flow": "night",
         "input_tokens": 1000 * (i + 1), "output_tokens": 7 * (i + 1)}
        for i, t in enumerate(stamps)
    ]  # fmt: skip
    assert ingest_objects(ledger, calls, source="app").stored == len(calls)
    budget = parse_budget(flow="night", owner="U01", daily_cap_usd="100", timezone=zone)
    with ledger.engine.connect() as conn:
        truth = run_spend(conn, SpendQuery(start=midnight, end=now, tz=ZoneInfo(zone), flows=("night",)))
    today = truth.total["cost_nanos"]
    assert today > 0 and truth.total["records"] == 3
    (tile,) = overview(ledger, [budget], [], now).budgets
    assert (tile.state.local_day, tile.state.spend_nanos) == (now.astimezone(ZoneInfo(zone)).date(), today)
    view = flow_page(ledger, [budget], "night", now)
    assert view is not None and view.today.cost_nanos == today and view.start == midnight


def test_last_week_starts_at_that_days_own_midnight_across_a_clock_change(ledger: Ledger) -> None:
    """Sunday 1 Nov 2026 in Berlin against Sunday 25 Oct, the day the clocks went back: that day
    began at 22:00 UTC, an hour before "today's midnight minus 7 x 24 h", and a call at 00:30 local
    belongs to it."""
    zone = ZoneInfo("Europe/Berlin")
    now = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)  # 11:00 CET
    early = datetime(2026, 10, 24, 22, 30, tzinfo=UTC)  # 25 Oct 00:30 CEST
    assert early.astimezone(zone).date().isoformat() == "2026-10-25"
    call = {"id": "dst-1", "ts": early.isoformat(), "provider": "openai", "model": "gpt-4o",
            "flow": "dst", "input_tokens": 100_000, "output_tokens": 1_000}  # fmt: skip
    assert ingest_objects(ledger, [call], source="app").stored == 1
    budget = parse_budget(flow="dst", owner="U01", daily_cap_usd="100", timezone="Europe/Berlin")
    (tile,) = overview(ledger, [budget], [], now).budgets
    with ledger.engine.connect() as conn:
        truth = run_spend(conn, SpendQuery(start=early - timedelta(minutes=30), end=now - timedelta(days=7),
                                           tz=zone, flows=("dst",)))  # fmt: skip
    assert tile.last_week_nanos == truth.total["cost_nanos"] > 0
