"""``/flows/{flow}``: the use case on SQLite and PostgreSQL with numbers worked by hand, and the
page through the real daemon in real Chromium.

The flow ``pay/checkout v2 ü`` (a slash, a space, a non-ASCII letter) has a budget of $5 a day in
Europe/Berlin (UTC+1 in November), max 3 tool calls a request, $1 per success. ``NOW`` is
2026-11-20 15:30 UTC, so today is [Nov 19 23:00Z, Nov 20 23:00Z). Prices (the shipped book):
gpt-4o-mini $0.15 / M input, $0.075 / M cached, $0.60 / M output; gpt-4o $2.50 / M input.

today   r1 Nov 19 23:30Z mini 1M in                    $0.15   prompt greet   2 tool calls
        r2 Nov 20 09:10Z mini 1M in (400k cached), 100k out  $0.09 + $0.03 + $0.06 = $0.18
                                                                prompt greet   5 tool calls (over)
        r3 Nov 20 14:20Z gpt-4o 1M in, status error    $2.50   prompt summarize  1 tool call
        r4 Nov 20 15:10Z mini 1M in, 2 requests        $0.15   no prompt      7 tool calls (over: > 6)
        = $2.98; before 15:00Z $2.83; failed $2.50; cache hits 400k of 4M = 10.0%
last wk l1 Nov 13 10:00Z mini 1M $0.15 (before 15:00), l2 Nov 13 20:00Z mini 2M $0.30
yestdy  y1 Nov 19 22:30Z mini 1M $0.15 (Berlin's Nov 19)
30 days o1 Oct 31 12:00Z gpt-4o 1M $2.50 prompt summarize; x1 Oct 1 (outside the 30 days)
others  pay/checkout v2 (a prefix of the name) and other-flow today, $0.15 each: never counted
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from finops.cli.main import app
from finops.domain.budgets import Budget
from finops.domain.periods import day_range
from finops.render.dashboard.flow import render_flow
from finops.render.dashboard.layout import flow_href
from finops.storage.alerts import record_breach
from finops.storage.db import write_transaction
from finops.storage.tables import annotation_events
from finops.usecases.dashboard.flow import FlowPage, flow_page
from finops.usecases.ingest import IngestSummary, ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.outcomes import ingest_outcome_objects
from finops.usecases.spend import SpendQuery, run_spend
from tests.browser import Browser, require_chromium
from tests.conftest import make_ledger
from tests.daemon_proc import DaemonProcess

FLOW = "pay/checkout v2 ü"
HOSTILE = "<script>alert(1)</script> & \"x\"/'y'"
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
MINI, BIG = 150_000_000, 2_500_000_000
BUDGET = Budget(
    owner="@pay",
    daily_cap_usd=Decimal(5),
    flow=FLOW,
    timezone="Europe/Berlin",
    max_tool_calls_per_request=3,
    max_cost_per_success_usd=Decimal(1),
)
BUDGET_YAML = f"""budgets:
  - flow: {json.dumps(FLOW)}
    owner: "@pay"
    daily_cap_usd: 5
    timezone: Europe/Berlin
    max_tool_calls_per_request: 3
    max_cost_per_success_usd: 1
"""


def rec(
    rid: str, ts: datetime, *, flow: str = FLOW, model: str = "gpt-4o-mini", **more: Any
) -> dict[str, Any]:
    return {
        "id": rid,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "provider": "openai",
        "model": model,
        "flow": flow,
        "input_tokens": 1_000_000,
        "output_tokens": 0,
        **more,
    }


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def seed(ledger: Ledger) -> None:
    records = [
        rec("r1", at("2026-11-19T23:30"), prompt_id="greet", tool_calls=2),
        rec(
            "r2",
            at("2026-11-20T09:10"),
            prompt_id="greet",
            tool_calls=5,
            cached_input_tokens=400_000,
            output_tokens=100_000,
        ),
        rec(
            "r3", at("2026-11-20T14:20"), model="gpt-4o", status="error", prompt_id="summarize", tool_calls=1
        ),
        rec("r4", at("2026-11-20T15:10"), requests=2, tool_calls=7),
        rec("l1", at("2026-11-13T10:00")),
        rec("l2", at("2026-11-13T20:00"), input_tokens=2_000_000),
        rec("y1", at("2026-11-19T22:30")),
        rec("o1", at("2026-10-31T12:00"), model="gpt-4o", prompt_id="summarize"),
        rec("x1", at("2026-10-01T12:00")),
        rec("p1", at("2026-11-20T10:00"), flow="pay/checkout v2", tool_calls=50),
        rec("q1", at("2026-11-20T10:00"), flow="other-flow"),
    ]
    summary = ingest_objects(ledger, records, source="test")
    assert summary.rejected == 0 and summary.stored == len(records), summary
    outcomes = [
        {"id": f"o{i}", "ts": "2026-11-20T12:00:00Z", "status": "success", "flow": FLOW} for i in range(2)
    ]
    assert (
        ingest_outcome_objects(ledger, outcomes, source="test", location="t", summary=IngestSummary()).stored
        == 2
    )
    with write_transaction(ledger.engine) as conn:
        conn.execute(
            insert(annotation_events),
            [
                {"annotation_id": "d1", "ts_us": _us(at("2026-11-20T12:00")), "kind": "deploy",
                 "flow": FLOW, "text": "release <b>v2.1</b>", "source": "ci", "created_us": 1},
                {"annotation_id": "d2", "ts_us": _us(at("2026-11-20T13:00")), "kind": "deploy",
                 "flow": "other-flow", "text": "not ours", "source": "ci", "created_us": 1},
                {"annotation_id": "d3", "ts_us": _us(at("2026-11-05T08:00")), "kind": "note",
                 "flow": None, "text": "price list reviewed", "source": "ci", "created_us": 1},
            ],
        )  # fmt: skip
        record_breach(
            conn,
            budget_key=FLOW,
            kind="threshold",
            period="2026-11-20",
            threshold="0.5",
            spend_nanos=2_830_000_000,
            cap_nanos=5_000_000_000,
            channel=None,
            payload=None,
            now_us=_us(at("2026-11-20T14:21")),
        )


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


@pytest.fixture
def seeded(db_url: str) -> Iterator[Ledger]:
    led = make_ledger(db_url)
    seed(led)
    yield led
    led.close()


def page_at(ledger: Ledger, budgets: list[Budget] | None = None, flow: str = FLOW) -> FlowPage:
    result = flow_page(ledger, [BUDGET] if budgets is None else budgets, flow, NOW)
    assert result is not None
    return result


def test_today_against_the_cap_to_the_nano_dollar(seeded: Ledger) -> None:
    p = page_at(seeded)
    assert (p.timezone, p.day.isoformat(), p.start, p.end) == (
        "Europe/Berlin", "2026-11-20", at("2026-11-19T23:00"), at("2026-11-20T23:00"),
    )  # fmt: skip
    assert p.today.cost_nanos == 2_980_000_000 == MINI + 180_000_000 + BIG + MINI
    with seeded.engine.connect() as conn:
        spend = run_spend(conn, SpendQuery(start=p.start, tz=BERLIN, flows=(FLOW,)))
    assert spend.total["cost_nanos"] == p.today.cost_nanos  # what `finops spend --today` sums
    [fb] = p.budgets
    assert fb.only_this_flow and fb.state.spend_nanos == p.today.cost_nanos
    assert p.cap_nanos == fb.state.cap_nanos == 5_000_000_000
    # the burn line: 0 at local midnight, each hour boundary, then now
    assert p.burn[0].at == p.start and p.burn[0].cumulative_nanos == 0
    assert p.burn[-1].at == NOW and p.burn[-1].cumulative_nanos == 2_980_000_000
    by_at = {b.at: b.cumulative_nanos for b in p.burn}
    assert by_at[at("2026-11-20T00:00")] == MINI and by_at[at("2026-11-20T15:00")] == 2_830_000_000
    assert [b.cumulative_nanos for b in p.burn] == sorted(b.cumulative_nanos for b in p.burn)
    # projected at today's average rate (16.5 h elapsed of 24): 2.98 * 24 / 16.5
    assert p.projection.end_of_period_nanos == 2_980_000_000 * 24 * 60 // (16 * 60 + 30)


def test_models_prompts_cache_failed_and_fanout(seeded: Ledger) -> None:
    p = page_at(seeded)
    models = {s.name: (s.today.cost_nanos, s.days.cost_nanos) for s in p.models}
    assert models == {
        "openai/gpt-4o": (BIG, 2 * BIG),
        "openai/gpt-4o-mini": (480_000_000, 480_000_000 + MINI + 3 * MINI),  # today, y1, l1 + l2
    }
    assert sum(s.today.cost_nanos for s in p.models) == p.today.cost_nanos
    assert sum(s.days.cost_nanos for s in p.models) == p.days_total.cost_nanos
    assert p.today.cache_hit == Decimal("0.1")
    assert (p.today.failed_cost_nanos, p.today.failed_records) == (BIG, 1)
    f = p.fanout
    assert (f.records, f.requests, f.tool_calls, f.most_in_a_record, f.limit, f.over_limit) == (
        4,
        5,
        15,
        7,
        3,
        2,
    )
    assert f.per_request == 3
    prompts = {s.name: (s.today.cost_nanos, s.days.cost_nanos) for s in p.prompts}
    assert prompts["summarize"] == (BIG, 2 * BIG)
    assert prompts["greet"] == (180_000_000, MINI + 180_000_000)  # r1 is Nov 19 in UTC days
    assert prompts["(no prompt_id)"][0] == MINI


def test_thirty_days_last_week_and_cost_per_success(seeded: Ledger) -> None:
    p = page_at(seeded)
    assert len(p.daily) == 30 and p.daily[0].day.isoformat() == "2026-10-22" and p.daily[-1].day == p.day
    days = {d.day.isoformat(): d.cost_nanos for d in p.daily if d.cost_nanos}
    assert days == {
        "2026-10-31": BIG,
        "2026-11-13": 3 * MINI,
        "2026-11-19": MINI,  # y1 at 22:30Z; r1 at 23:30Z is already Berlin's Nov 20
        "2026-11-20": 2_980_000_000,
    }
    assert p.days_total.cost_nanos == sum(days.values()) == 6_080_000_000
    w = p.last_week
    assert (w.until, w.today_nanos, w.last_week_nanos, w.last_week_day_nanos) == (
        at("2026-11-20T15:00"), 2_830_000_000, MINI, 3 * MINI,
    )  # fmt: skip
    [c] = p.cost_per_success
    assert (c.today_successes, c.today_spend_nanos, c.limit_nanos) == (2, 2_980_000_000, 1_000_000_000)
    assert (c.yesterday_successes, c.yesterday_spend_nanos) == (0, MINI)
    kinds = [(a.kind, a.text) for a in p.annotations_today]
    assert ("deploy", "release <b>v2.1</b>") in kinds and all(t != "not ours" for _, t in kinds)
    assert any(a.kind == "breach" for a in p.annotations_today)
    assert any(a.kind == "note" for a in p.annotations_days)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo", "UTC"])
def test_thirty_local_days_equal_finops_spend_by_day_in_the_budgets_zone(seeded: Ledger, zone: str) -> None:
    """Daily rollups plus the hours that fall on another local date (New York's days cross the
    end of daylight saving time on Nov 1) give what ``finops spend --by day --tz`` gives."""
    budget = Budget(owner="@pay", daily_cap_usd=Decimal(5), flow=FLOW, timezone=zone)
    p = page_at(seeded, budgets=[budget])
    with seeded.engine.connect() as conn:
        spend = run_spend(
            conn, SpendQuery(group_by=("day",), start=_local_start(p), tz=ZoneInfo(zone), flows=(FLOW,))
        )
    expected = {r.keys["day"]: r.sums["cost_nanos"] for r in spend.rows}
    assert {d.day.isoformat(): d.cost_nanos for d in p.daily if d.cost_nanos} == expected
    assert p.days_total.cost_nanos == spend.total["cost_nanos"]


def _local_start(p: FlowPage) -> datetime:
    return day_range(p.daily[0].day, ZoneInfo(p.timezone))[0]


def test_a_day_that_starts_mid_hour_is_exact_today(seeded: Ledger) -> None:
    """Asia/Kolkata (+05:30): today is [Nov 19 18:30Z, Nov 20 18:30Z); its half hours at either
    end come from the raw records, so today is exact (y1 at 22:30Z is 04:00 there: today)."""
    budget = Budget(owner="@pay", daily_cap_usd=Decimal(5), flow=FLOW, timezone="Asia/Kolkata")
    p = page_at(seeded, budgets=[budget])
    assert p.start == at("2026-11-19T18:30") and p.today.cost_nanos == 2_980_000_000 + MINI
    with seeded.engine.connect() as conn:
        spend = run_spend(conn, SpendQuery(start=p.start, tz=ZoneInfo("Asia/Kolkata"), flows=(FLOW,)))
    assert spend.total["cost_nanos"] == p.today.cost_nanos == p.budgets[0].state.spend_nanos
    assert p.burn[-1].cumulative_nanos == p.today.cost_nanos and p.burn[1].at == at("2026-11-19T19:00")


def test_without_a_budget_days_are_utc_and_spend_is_shown_alone(seeded: Ledger) -> None:
    p = page_at(seeded, budgets=[])
    assert p.budgets == () and p.cap_nanos is None and p.timezone == "UTC"
    assert p.today.cost_nanos == 180_000_000 + BIG + MINI  # r1 at 23:30Z is yesterday in UTC
    assert p.fanout.limit is None and p.fanout.over_limit == 0
    html = render_flow(p)
    assert "no budget covers this flow" in html and "data-cap" not in html


def test_unknown_flows_and_glob_budgets(seeded: Ledger) -> None:
    assert flow_page(seeded, [BUDGET], "nope", NOW) is None
    assert flow_page(seeded, [BUDGET], "pay/*", NOW) is None  # a name, never a pattern
    glob = Budget(owner="@x", daily_cap_usd=Decimal(10), name="all-pay", match=None, flow=None)
    budgets = [Budget(owner="@x", daily_cap_usd=Decimal(1), flow="planned-flow"), glob]
    planned = flow_page(seeded, budgets, "planned-flow", NOW)
    assert planned is not None and planned.today.cost_nanos == 0  # budgeted, no usage yet
    mixed = page_at(seeded, budgets=[glob, BUDGET])
    assert [fb.budget.key for fb in mixed.budgets] == [FLOW, "all-pay"]  # its own budget first
    wide = mixed.budgets[1]  # every flow's UTC day: r2 + r3 + r4 and the two other flows' $0.15
    assert not wide.only_this_flow and wide.state.spend_nanos == 2_830_000_000 + 2 * MINI
    assert mixed.timezone == "Europe/Berlin"  # the days of the flow's own budget


def test_render_marks_numbers_escapes_and_draws_the_cap_and_events(seeded: Ledger) -> None:
    html = render_flow(page_at(seeded))
    found = re.findall(r'data-metric="([a-z0-9-]+)"><data class="usd" value="([^"]*)"', html)
    metric = {name: Decimal(value) for name, value in found}
    assert (metric["spend-today"], metric["cap"], metric["failed-today"]) == (
        Decimal("2.98"),
        5,
        Decimal("2.5"),
    )
    assert (metric["spend-30d"], metric["last-week"]) == (Decimal("6.08"), Decimal("0.15"))
    assert 'data-cap="5000000000"' in html and html.count('data-annotation="deploy"') >= 2
    assert "release &lt;b&gt;v2.1&lt;/b&gt;" in html and "<b>v2.1" not in html
    assert "<script" not in html and "style=" not in html and "<style" not in html
    assert 'data-tile="flow:fanout" data-state="red"' in html
    assert 'data-tile="flow:cost-per-success:' in html


# --------------------------------------------------------------------------- the real page


@dataclass
class Site:
    daemon: DaemonProcess
    browser: Browser
    db_url: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("flow")
    url = f"sqlite:///{tmp / 'finops.db'}"
    ledger = make_ledger(url)
    now = datetime.now(UTC)
    start = max(
        now.astimezone(BERLIN).replace(hour=0, minute=0, second=0, microsecond=0), now - timedelta(hours=3)
    )
    times = [start + (now - start) * k / 5 for k in range(1, 5)]
    records = [
        rec(f"n{i}", t, model=("gpt-4o-mini", "gpt-4o")[i % 2], input_tokens=333_333 * (i + 1),
            cached_input_tokens=1000 * i, tool_calls=i, status="error" if i == 3 else "ok")
        for i, t in enumerate(times)
    ] + [
        rec("old", now - timedelta(days=3)),
        rec("h1", now - timedelta(minutes=1), flow=HOSTILE),
        rec("wide", now - timedelta(minutes=1), flow="w" * 120),
    ]  # fmt: skip
    assert ingest_objects(ledger, records, source="test").stored == len(records)
    ledger.close()
    budgets = tmp / "budgets"
    budgets.mkdir()
    (budgets / "pay.yaml").write_text(BUDGET_YAML, encoding="utf-8")
    daemon = DaemonProcess(tmp, url, budgets=budgets).start()
    browser = Browser(tmp / "profile")
    try:
        yield Site(daemon, browser, url)
    finally:
        browser.close()
        daemon.stop()


def cli_total(db_url: str, *args: str) -> Decimal:
    result = CliRunner().invoke(app, ["spend", "--format", "json", "--db", db_url, *args])
    assert result.exit_code == 0, result.output
    return Decimal(json.loads(result.stdout)["total_usd"])


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def metrics(b: Browser) -> dict[str, str]:
    return dict(
        b.evaluate(
            "[...document.querySelectorAll('[data-metric]')].map(e => "
            "[e.dataset.metric, (e.querySelector('data') || e).getAttribute('value') ?? e.textContent])"
        )
    )


def test_the_flow_page_in_chromium_equals_finops_spend(site: Site) -> None:
    b = site.browser
    b.goto(site.daemon.base + flow_href(FLOW))
    assert b.problems() == []
    assert all(u.startswith(site.daemon.base + "/") for u in b.requests()), b.requests()
    assert b.evaluate("document.title").startswith(f"Flow {FLOW}")
    m = metrics(b)
    today = cli_total(site.db_url, "--today", "--flow", FLOW, "--tz", "Europe/Berlin")
    assert Decimal(m["spend-today"]) == today and today > 0
    shown = b.evaluate("document.querySelector('[data-metric=\"spend-today\"]').textContent")
    assert shown == f"${cents(today):,}"
    assert Decimal(m["cap"]) == 5
    first = (datetime.now(BERLIN) - timedelta(days=29)).date().isoformat()
    days = cli_total(site.db_url, "--since", first, "--flow", FLOW, "--tz", "Europe/Berlin")
    assert cents(Decimal(m["spend-30d"])) == cents(days)
    rows = b.evaluate(
        "[...document.querySelectorAll('table[data-table=models] tbody tr')].map(r => "
        "[r.cells[0].textContent, r.cells[1].querySelector('data')?.getAttribute('value')])"
    )
    result = CliRunner().invoke(
        app, ["spend", "--format", "json", "--db", site.db_url, "--by", "model", "--today", "--flow", FLOW,
              "--tz", "Europe/Berlin"],
    )  # fmt: skip
    by_model = {r["model"]: Decimal(r["cost_usd"]) for r in json.loads(result.stdout)["rows"]}
    assert {name.split("/", 1)[1]: Decimal(v) for name, v in rows if v is not None} == by_model
    charts = b.evaluate("[...document.querySelectorAll('svg[data-chart=line]')].length")
    assert charts == 2 and b.evaluate("document.querySelectorAll('[data-cap=\"5000000000\"]').length") == 2
    assert b.evaluate("document.scripts.length") == 0
    for width in (375, 1440):
        b.width(width)
        assert b.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), width


def test_hostile_and_long_flow_names_are_escaped_and_fit(site: Site) -> None:
    b = site.browser
    b.goto(site.daemon.base + flow_href(HOSTILE))
    assert b.problems() == []
    assert b.evaluate("document.querySelector('main h1').textContent") == f"Flow {HOSTILE}"
    assert b.evaluate("document.querySelector('[data-flow]').textContent") == HOSTILE
    assert b.evaluate("document.scripts.length") == 0
    b.goto(site.daemon.base + flow_href("w" * 120))
    for width in (375, 1440):
        b.width(width)
        assert b.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), width


def test_an_unknown_flow_is_a_404_page_of_one_line(site: Site) -> None:
    response = httpx.get(site.daemon.base + flow_href("no such/flow <i>"))
    assert response.status_code == 404
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    found = re.findall(r'<p class="error">(.*?)</p>', response.text)
    assert found == ["no usage or budget for flow no such/flow &lt;i&gt;; see /spend for the flows"]
    b = site.browser
    b.goto(site.daemon.base + flow_href("no such/flow <i>"))
    assert b.evaluate("document.querySelectorAll('main p').length") == 1
    assert httpx.get(site.daemon.base + "/flows/").status_code == 404
    too_long = httpx.get(site.daemon.base + flow_href("x" * 300))
    assert too_long.status_code == 400 and "at most 256 characters, got 300" in too_long.text


def test_money_held_by_calls_in_flight_is_shown_and_can_make_a_blocking_budget_red(seeded: Ledger) -> None:
    from dataclasses import replace

    from finops.usecases.admission import ReserveRequest, reserve

    blocking = replace(BUDGET, on_breach="block")
    assert page_at(seeded, [blocking]).budgets[0].held_nanos == 0
    hold = reserve(
        seeded,
        [blocking],
        ReserveRequest(FLOW, estimate_usd=Decimal("1.5"), ttl_s=600),
        source="app",
        now=NOW,
    )
    assert hold.decision == "allow"
    p = page_at(seeded, [blocking])
    assert p.budgets[0].held_nanos == 1_500_000_000
    page = render_flow(p)
    assert 'data-metric="held"><data class="usd" value="1.500000000">$1.50</data>' in page
    assert 'data-tile="flow:today" data-state="yellow"' in page  # $2.98 + $1.50 held < $5 cap
    reserve(
        seeded,
        [blocking],
        ReserveRequest(FLOW, estimate_usd=Decimal("0.52"), ttl_s=600),
        source="app",
        now=NOW,
    )
    page = render_flow(page_at(seeded, [blocking]))
    assert 'data-tile="flow:today" data-state="red"' in page  # $2.98 + $2.02 held: calls are denied now


def test_just_after_midnight_last_week_says_too_early_and_the_projection_leaves_the_chart(
    seeded: Ledger,
) -> None:
    early = datetime(2026, 11, 19, 23, 20, tzinfo=UTC)  # 00:20 in Berlin
    p = flow_page(seeded, [BUDGET], FLOW, early)
    assert p is not None and p.last_week.until <= p.start
    page = render_flow(p)
    assert "too early" in page and 'data-metric="last-week-change"' not in page


def test_a_projection_fifty_times_the_cap_leaves_through_the_top_of_the_chart() -> None:
    from finops.render.charts import line_chart

    cap = 20_500_000_000
    svg = line_chart(
        [("00:00", 0), ("00:20", 27_030_000_000)], title="t", cap=cap, projection=(23.0, 1_054_800_000_000)
    )
    assert 'data-projection="1054800000000"' in svg and "heading for $1,054.80" in svg
    ticks = [
        int(t.replace(",", "")) for t in re.findall(r'text-anchor="end" fill="#[0-9a-f]+">\$([\d,]+)<', svg)
    ]
    assert max(ticks) <= 2 * 27.03 + 10  # the axis follows the data and the cap, not the projection


def test_a_day_of_spend_without_a_success_never_reads_on_target() -> None:
    """Yesterday cost money and nothing succeeded: its cost per success is not a number, so one cheap
    success today must not make the tile green (it stays yellow and says why)."""
    from finops.render.dashboard.flow import _cps_tile
    from finops.usecases.dashboard.flow import CostPerSuccess

    def state(c: CostPerSuccess) -> str:
        return _cps_tile(c).split('data-state="')[1].split('"')[0]

    target = 10_000_000  # $0.01
    fine = CostPerSuccess("b", target, today_spend_nanos=5_000_000, today_successes=1,
                          yesterday_spend_nanos=50_000_000, yesterday_successes=0)  # fmt: skip
    assert state(fine) == "yellow" and "no successes yesterday" in _cps_tile(fine)
    quiet = CostPerSuccess("b", target, 5_000_000, 1, 0, 0)  # nothing spent yesterday: nothing to judge
    assert state(quiet) == "green"
    over = CostPerSuccess("b", target, 5_000_000, 1, 50_000_000, 1)
    assert state(over) == "red"


def test_fan_out_with_no_record_reporting_tool_calls_is_not_within_the_limit(ledger: Ledger) -> None:
    """A limit on tool calls and calls that do not say how many they made: the page cannot tell,
    so the tile has no light (it read green, "within the limit")."""
    from finops.config.budget_spec import parse_budget
    from finops.render.dashboard.flow import render_flow
    from finops.usecases.dashboard.flow import flow_page
    from finops.usecases.ingest import ingest_objects

    now = datetime.now(UTC)
    calls = [{"id": f"t-{i}", "ts": now.isoformat(), "provider": "openai", "model": "gpt-4o-mini",
              "flow": "tools", "input_tokens": 100, "output_tokens": 10} for i in range(3)]  # fmt: skip
    assert ingest_objects(ledger, calls, source="app").stored == 3
    budget = parse_budget(flow="tools", owner="U01", daily_cap_usd="100", max_tool_calls_per_request=2)
    view = flow_page(ledger, [budget], "tools", now + timedelta(seconds=1))
    assert view is not None and view.fanout.records == 0
    html = render_flow(view)
    tile = html[html.index('data-tile="flow:fanout"') :].split("</article>")[0]
    assert "data-state" not in tile and "cannot be judged" in tile and "within the limit" not in tile
    more = [{**c, "id": f"u-{c['id']}", "tool_calls": 1} for c in calls]
    assert ingest_objects(ledger, more, source="app").stored == 3
    view = flow_page(ledger, [budget], "tools", now + timedelta(seconds=1))
    assert view is not None
    html = render_flow(view)
    assert 'data-tile="flow:fanout" data-state="green"' in html
