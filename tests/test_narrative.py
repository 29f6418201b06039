"""The overview's weekly narrative: five sentences from the numbers (pure), the numbers from the
rollups (SQLite and PostgreSQL, equal to `finops spend`), and the page that shows them."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert
from typer.testing import CliRunner

from finops.cli.main import app
from finops.domain.narrative import Change, Health, Risk, WeekNumbers, biggest, weekly_narrative
from finops.render.report_data import usd
from finops.storage.tables import PROMPT_SUMS, ROLLUP_SUMS, prompt_rollups_daily, rollups_daily
from finops.usecases.dashboard.narrative import week_numbers
from finops.usecases.dashboard.overview import overview
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.daemon_proc import DaemonProcess

B = 1_000_000_000  # nanos in a dollar


def week(
    flows: tuple[Change, ...] = (),
    drivers: tuple[tuple[Any, Change], ...] = (),
    risks: tuple[Risk, ...] = (),
    budgets: int = 0,
    health: Health | None = None,
) -> WeekNumbers:
    health = health or Health()
    return WeekNumbers(date(2026, 11, 13), date(2026, 11, 19), flows, drivers, risks, budgets, health)


def say(n: WeekNumbers) -> tuple[str, ...]:
    sentences = weekly_narrative(n, usd=usd)
    assert len(sentences) == 5
    assert all(s.endswith(".") and "\n" not in s for s in sentences)
    return sentences


# --------------------------------------------------------------------------- pure sentences


def test_no_data_still_says_five_plain_sentences() -> None:
    assert say(week()) == (
        "No spend was recorded in the 7 days 13–19 Nov (UTC) or the 7 before.",
        "No flow has spend to compare.",
        "With no change in any flow, no model or prompt drove one.",
        "No budgets are set, so nothing is at risk.",
        "Nothing needs attention: every source is fresh, every record is priced and Slack delivers.",
    )


def test_growth_names_the_flow_and_its_driver_to_the_cent() -> None:
    n = week(
        flows=(Change("search", 10 * B, 10 * B), Change("support", 123_456_789_012, 100 * B)),
        drivers=(
            ("model", Change("gpt-4o", 103_456_789_012, 80 * B)),
            ("model", Change("gpt-4o-mini", 20 * B, 20 * B)),
            ("prompt", Change("support/triage", 50 * B, 40 * B)),
        ),
        budgets=2,
    )
    assert say(n)[:4] == (
        "Spend for the 7 days 13–19 Nov (UTC) was $133.46, up $23.46 (+21.3%) "
        "from $110.00 the 7 days before.",
        "The biggest change was support, up $23.46 (+23.5%) to $123.46.",
        "Within support, model gpt-4o moved most: up $23.46, from $80.00 to $103.46.",
        "No budget is at risk today (2 budgets green).",
    )


def test_a_fall_and_a_flow_that_stopped() -> None:
    n = week(
        flows=(Change("batch", 0, 40 * B), Change("chat", 5 * B, 6 * B)),
        drivers=(("model", Change("o4-mini", 0, 40 * B)),),
    )
    total, flow, driver, *_ = say(n)
    assert total == (
        "Spend for the 7 days 13–19 Nov (UTC) was $5.00, down $41.00 (-89.1%) from $46.00 the 7 days before."
    )
    assert flow == "The biggest change was batch, down $40.00 to nothing this week from $40.00."
    assert driver == "Within batch, model o4-mini moved most: down $40.00, from $40.00 to $0.00."


def test_new_flows_with_no_previous_week() -> None:
    n = week(
        flows=(Change("fresh", 7_005_000_000, 0),),
        drivers=(
            ("prompt", Change("fresh/welcome", 7_005_000_000, 0)),
            ("model", Change("gpt-4o", 7 * B, 0)),
        ),
    )
    total, flow, driver, *_ = say(n)
    assert total == "Spend for the 7 days 13–19 Nov (UTC) was $7.00; nothing was spent the 7 days before."
    assert flow == "The biggest change was fresh, new this week at $7.00."  # 7.005 rounds half to even
    assert driver == "Within fresh, prompt fresh/welcome moved most: new at $7.00."


def test_ties_go_to_the_first_name_and_say_so() -> None:
    two = (Change("b-flow", 3 * B, 1 * B), Change("a-flow", 1 * B, 3 * B))
    assert biggest(two) == Change("a-flow", 1 * B, 3 * B)
    assert (
        say(week(flows=two))[1]
        == "The biggest change was a-flow (tied with b-flow), down $2.00 (-66.7%) to $1.00."
    )
    three = (*two, Change("c-flow", 2 * B, 0))
    assert (
        say(week(flows=three))[1]
        == "The biggest change was a-flow (tied with 2 other flows), down $2.00 (-66.7%) to $1.00."
    )
    # a model and a prompt moving as much: the model is named (then by name)
    drivers = (("prompt", Change("p", 3 * B, 1 * B)), ("model", Change("z-model", 1 * B, 3 * B)))
    assert say(week(flows=two, drivers=drivers))[2] == (
        "Within a-flow, model z-model moved most: down $2.00, from $3.00 to $1.00."
    )


def test_one_flow_only_and_an_unchanged_week() -> None:
    same = week(flows=(Change("only", 9 * B, 9 * B),), drivers=(("model", Change("m", 9 * B, 9 * B)),))
    assert say(same)[:3] == (
        "Spend for the 7 days 13–19 Nov (UTC) was $9.00, unchanged from the 7 days before.",
        "No flow's spend changed from the week before.",
        "With no change in any flow, no model or prompt drove one.",
    )
    moved = week(flows=(Change("only", 9 * B, 8 * B),), drivers=(("model", Change("m", 9 * B, 9 * B)),))
    assert say(moved)[2] == "Within only, no single model or prompt accounts for the change."


def test_what_is_at_risk_names_reds_first_with_the_reason() -> None:
    risks = (
        Risk(
            "z-heading",
            "yellow",
            cap_hit_at=datetime(2026, 11, 20, 14, 50, tzinfo=UTC),
            timezone="Europe/Berlin",
        ),
        Risk("a-warned", "yellow", percent=85),
        Risk("m-over", "red", over_cap=True, percent=120),
        Risk("b-block", "red", blocking=True, percent=100),
    )
    assert say(week(risks=risks, budgets=6))[3] == (
        "At risk today: b-block (blocking calls), m-over (over its cap), a-warned (at 85% of its cap) "
        "and 1 more budget."
    )
    assert say(week(risks=risks[:1], budgets=1))[3] == (
        "At risk today: z-heading (heading for its cap at 15:50 Europe/Berlin)."
    )
    assert say(week(risks=risks[:2], budgets=2))[3] == (
        "At risk today: a-warned (at 85% of its cap) and "
        "z-heading (heading for its cap at 15:50 Europe/Berlin)."
    )


def test_one_health_note_says_what_needs_attention() -> None:
    assert say(week(health=Health(unpriced_records=1)))[4] == "Needs attention: 1 record today has no price."
    every = Health(
        unpriced_records=1200, stale_sources=("a", "b", "c", "d"), slack_failed=2, slack_ambiguous=1
    )
    assert say(week(health=every))[4] == (
        "Needs attention: 2 Slack messages failed to deliver; 1 Slack message may not have been delivered; "
        "sources a, b, c and 1 more sent nothing for a day; 1,200 records today have no price."
    )
    assert (
        say(week(health=Health(stale_sources=("gw",))))[4]
        == "Needs attention: source gw sent nothing for a day."
    )


def test_long_names_are_cut_and_a_week_across_months_and_years_reads_right() -> None:
    long = "p" * 300
    n = WeekNumbers(
        date(2026, 12, 28),
        date(2027, 1, 3),
        (Change(long, 2 * B, B),),
        (("prompt", Change(long, 2 * B, B)),),
        (),
        0,
        Health(),
    )
    total, flow, driver, *_ = say(n)
    assert total.startswith("Spend for the 7 days 28 Dec 2026–3 Jan 2027 (UTC) was $2.00")
    assert f"{'p' * 59}…" in flow and "p" * 61 not in flow
    assert "p" * 61 not in driver
    other = WeekNumbers(date(2026, 10, 28), date(2026, 11, 3), (), (), (), 0, Health())
    assert "28 Oct–3 Nov (UTC)" in say(other)[0]


# --------------------------------------------------------------------------- numbers from the rollups

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _usage(i: int, day: datetime, flow: str, model: str, prompt: str, tokens: int) -> dict[str, Any]:
    return {
        "id": f"n{i}",
        "ts": (day + timedelta(hours=10)).isoformat(),
        "provider": "openai",
        "model": model,
        "flow": flow,
        "input_tokens": tokens,
        "output_tokens": tokens // 10,
        "prompt_id": prompt,
    }


def _seed_week(ledger: Ledger, now: datetime) -> None:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    records = []
    for d in range(1, 15):
        day = today - timedelta(days=d)
        this_week = d <= 7
        records.append(
            _usage(len(records), day, "support", "gpt-4o", "support/triage", 40_000 if this_week else 10_000)
        )
        records.append(_usage(len(records), day, "support", "gpt-4o-mini", "support/reply", 5_000))
        records.append(_usage(len(records), day, "search", "gpt-4o-mini", "", 8_000))
    records.append(
        _usage(len(records), today, "support", "gpt-4o", "support/triage", 900_000)
    )  # today: not in
    records.append(_usage(len(records), today - timedelta(days=15), "old", "gpt-4o", "", 900_000))  # too old
    summary = ingest_objects(ledger, records, source="test")
    assert summary.stored == len(records)


def _spend(url: str, since: str, until: str, *more: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        ["spend", "--db", url, "--format", "json", "--since", since, "--until", until, "--by", "flow", *more],
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _nanos(usd_text: str) -> int:
    return int(Decimal(usd_text) * B)


def test_the_numbers_equal_finops_spend_for_the_same_weeks(ledger: Ledger) -> None:
    _seed_week(ledger, NOW)
    o = overview(ledger, (), (), NOW)
    n = week_numbers(ledger, o)
    assert (n.first, n.last) == (date(2026, 11, 13), date(2026, 11, 19))
    url = ledger.engine.url.render_as_string(hide_password=False)
    this = _spend(url, "2026-11-13", "2026-11-20")
    before = _spend(url, "2026-11-06", "2026-11-13")
    assert {f.name: f.this_week for f in n.flows if f.this_week} == {
        r["flow"]: _nanos(r["cost_usd"]) for r in this["rows"]
    }
    assert {f.name: f.last_week for f in n.flows if f.last_week} == {
        r["flow"]: _nanos(r["cost_usd"]) for r in before["rows"]
    }
    assert n.this_week == _nanos(this["total_usd"]) and n.last_week == _nanos(before["total_usd"])
    assert biggest(n.flows) is not None and biggest(n.flows).name == "support"  # type: ignore[union-attr]
    models = {c.name: c for kind, c in n.drivers if kind == "model"}
    by_model = _spend(url, "2026-11-13", "2026-11-20", "--flow", "support", "--by", "model")
    assert {m: c.this_week for m, c in models.items()} == {
        r["model"]: _nanos(r["cost_usd"]) for r in by_model["rows"]
    }
    prompts = {c.name for kind, c in n.drivers if kind == "prompt"}
    assert prompts == {"support/triage", "support/reply"}
    sentences = weekly_narrative(n, usd=usd)
    assert f"was {usd(n.this_week)}, up {usd(n.this_week - n.last_week)}" in sentences[0]
    assert sentences[2].startswith("Within support, model gpt-4o moved most: up ")


def _rollup(day: int, f: int, m: int, tier: str, status: str, cost: int) -> dict[str, Any]:
    sums = dict.fromkeys(ROLLUP_SUMS, 1)
    return {
        **sums,
        "day": day,
        "flow": f"flow-{f:02d}",
        "provider": "openai",
        "model": f"model-{(f + m) % 8}",
        "service_tier": tier,
        "status": status,
        "tags": '{"team":"t"}',
        "cost_nanos": cost,
    }


def _prompt_rollup(day: int, f: int, m: int, p: int, cost: int) -> dict[str, Any]:
    sums = dict.fromkeys(PROMPT_SUMS, 1)
    return {
        **sums,
        "day": day,
        "prompt_id": f"flow-{f:02d}/prompt-{p}",
        "flow": f"flow-{f:02d}",
        "provider": "openai",
        "model": f"model-{(f + m) % 8}",
        "cost_nanos": cost,
    }


def test_the_numbers_read_in_well_under_50_ms_at_10m_record_scale(sqlite_ledger: Ledger) -> None:
    """The rollups of 10M records over 30 days (40 flows x 2 models x 2 tiers x 2 statuses, 5 prompts
    a flow): what week_numbers reads does not grow with the records."""
    start = int(datetime(2026, 10, 21, tzinfo=UTC).timestamp())
    daily, prompt_rows = [], []
    for d in range(30):
        day = start + d * 86400
        for f in range(40):
            for m in range(2):
                for tier in ("standard", "batch"):
                    for status in ("ok", "error"):
                        daily.append(_rollup(day, f, m, tier, status, (d * 7 + f * 13 + m) * 1_000_000))
                for p in range(5):
                    prompt_rows.append(_prompt_rollup(day, f, m, p, (d + p) * 1_000_000))
    with sqlite_ledger.engine.begin() as conn:
        conn.execute(insert(rollups_daily), daily)
        conn.execute(insert(prompt_rollups_daily), prompt_rows)
    o = overview(sqlite_ledger, (), (), NOW)
    week_numbers(sqlite_ledger, o)  # warm
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        n = week_numbers(sqlite_ledger, o)
        timings.append(time.perf_counter() - started)
    assert len(n.flows) == 40 and n.drivers
    assert sorted(timings)[5] < 0.025, timings  # the median, with room for a loaded machine


# --------------------------------------------------------------------------- the page


def test_the_overview_shows_the_week_in_five_sentences(tmp_path: Path, sqlite_url: str) -> None:
    proc = DaemonProcess(tmp_path, sqlite_url).start()
    try:
        now = datetime.now(UTC)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        flow = "<script>alert(1)</script>"
        records = [
            _usage(i, today - timedelta(days=2 + i % 10), flow, "gpt-4o", "p", 20_000 * (1 + i % 3))
            for i in range(20)
        ]
        with proc.client() as c:
            assert c.post("/v1/usage", json=records).json()["stored"] == 20
        page = httpx.get(proc.base + "/", timeout=30)
        assert page.status_code == 200
        block = re.search(r'<div class="narrative" data-narrative><p>(.*?)</p></div>', page.text, re.S)
        assert block is not None, page.text
        text = block.group(1)
        assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
        assert text.count(". ") >= 4 and text.startswith("Spend for the 7 days ")
        assert "Nothing needs attention" in text or "Needs attention" in text
    finally:
        proc.stop()


def test_nothing_needs_attention_is_never_said_over_a_red_health_tile() -> None:
    """Broken budget files, a stale provider report and a drift far off are red (or yellow) tiles on
    the same page: the note must name them, not say that nothing needs attention."""
    from finops.domain.narrative import Health, _health

    assert _health(Health()).startswith("Nothing needs attention")
    assert _health(Health(broken_budget_files=2)) == "Needs attention: 2 budget files cannot be read."
    stale = _health(Health(stale_reports=("openai",)))
    assert stale.startswith("Needs attention:") and "openai" in stale
    assert _health(Health(drift_off=True)).startswith("Needs attention:")
