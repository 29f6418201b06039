"""``/outcomes`` and ``/prompts``: numbers worked by hand and equal to ``finops outcomes`` and
``finops prompts top``, on SQLite and PostgreSQL; then the real daemon in real Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from finops.cli.main import app
from finops.domain.budgets import Budget, BudgetMatch
from finops.render.dashboard.outcomes import render_outcomes
from finops.render.dashboard.prompts import render_prompts
from finops.storage.db import write_transaction
from finops.storage.tables import annotation_events
from finops.usecases.audit.outcomes import divide_nanos, flow_outcomes
from finops.usecases.dashboard.outcomes import outcomes_view, week_start
from finops.usecases.dashboard.prompts import UnknownFlow, prompts_view
from finops.usecases.ingest import IngestSummary, ingest_objects
from finops.usecases.ledger import Ledger
from finops.usecases.outcomes import ingest_outcome_objects
from tests.browser import Browser, require_chromium
from tests.conftest import make_ledger
from tests.daemon_proc import DaemonProcess

HOSTILE = "<script>alert(1)</script>"
#: gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output: 1,000 in + 1M out = $0.60015.
CALL_NANOS = 600_150_000
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday: last complete week is 23-29 Nov


def call(rid: str, ts: str, flow: str, prompt: str, *, inp: int = 1000) -> dict[str, Any]:
    return {
        "id": rid,
        "ts": ts,
        "model": "gpt-4o-mini",
        "flow": flow,
        "prompt_id": prompt,
        "input_tokens": inp,
        "output_tokens": 1_000_000,
    }


def outcome(oid: str, ts: str, flow: str, status: str, value: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": oid, "ts": ts, "flow": flow, "status": status}
    if value is not None:
        doc["value_usd"] = value
    return doc


def seed(ledger: Ledger, day: datetime) -> None:
    """Usage and outcomes around the week of ``day`` (a Monday, UTC): see the tests for the sums."""

    def at(days: int) -> str:
        return (day + timedelta(days=days, hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")

    calls = [call(f"s{i}", at(1), "support", "support/answer@v1") for i in range(3)]
    calls += [call("s-prev", at(-6), "support", "support/answer@v1")]  # the week before
    calls += [call("s-old", at(-20), "support", "support/answer@v1")]  # three weeks before
    calls += [call(f"r{i}", at(3), "search-rerank", "search/rank@v2", inp=3000) for i in range(2)]
    calls += [call("h0", at(2), HOSTILE, HOSTILE)]
    assert ingest_objects(ledger, calls, source="app").stored == len(calls)
    outs = [outcome(f"os{i}", at(1), "support", "success", "5.00") for i in range(7)]
    outs += [outcome("of", at(1), "support", "failure")]
    outs += [outcome("op", at(-6), "support", "success", "1.00")]
    outs += [outcome("oo", at(-20), "support", "success")]
    outs += [outcome("or", at(3), "search-rerank", "success")]
    outs += [outcome("oh", at(2), HOSTILE, "failure")]
    summary = ingest_outcome_objects(ledger, outs, source="app", location="test", summary=IngestSummary())
    assert (summary.stored, summary.rejected) == (len(outs), 0)


BUDGETS = [
    Budget(
        owner="@dana", daily_cap_usd=Decimal(100), flow="support", max_cost_per_success_usd=Decimal("0.30")
    ),
    Budget(
        owner="@sam",
        daily_cap_usd=Decimal(100),
        name="search-all",
        match=BudgetMatch(flow="search-*"),
        max_cost_per_success_usd=Decimal("1.00"),
    ),
    Budget(owner="@lee", daily_cap_usd=Decimal(100), flow="other"),  # no target, covers nothing
]
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture
def seeded(ledger: Ledger) -> Ledger:
    seed(ledger, MONDAY)
    return ledger


def cli_json(ledger: Ledger, monkeypatch: pytest.MonkeyPatch, *args: str) -> dict[str, Any]:
    monkeypatch.setenv("FINOPS_DATABASE_URL", ledger.settings.database_url)
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_last_complete_week_cost_per_success_against_the_week_before_and_the_targets(seeded: Ledger) -> None:
    view = outcomes_view(seeded, BUDGETS, NOW)
    assert (view.mode, view.label, view.start, view.end) == (
        "week",
        "2026-11-23",
        MONDAY,
        MONDAY + timedelta(7),
    )
    rows = {r.line.flow: r for r in view.rows}
    support, search, hostile = rows["support"], rows["search-rerank"], rows[HOSTILE]
    # support: 3 calls, 7 successes and a failure; the week before, 1 call and 1 success
    assert support.line.cost_nanos == 3 * CALL_NANOS
    assert support.line.cost_per_success_nanos == divide_nanos(3 * CALL_NANOS, 7) == 257_207_143
    assert (support.line.successes, support.line.outcomes) == (7, 8)
    assert support.line.prev_cost_per_success_nanos == CALL_NANOS
    assert support.line.value_nanos == 35_000_000_000
    assert [(t.budget, t.max_nanos, t.over) for t in support.targets] == [("support", 300_000_000, False)]
    # search-rerank: 2 calls with 3,000 input tokens, 1 success, over the search-* budget's $1.00
    search_cost = 2 * (CALL_NANOS + 300_000)
    assert search.line.cost_per_success_nanos == search_cost == 1_200_900_000
    assert [(t.budget, t.over) for t in search.targets] == [("search-all", True)] and search.over_target
    assert hostile.line.cost_per_success_nanos is None and hostile.targets == ()
    # the trend: eight Mondays up to the last complete week; each point as flow_outcomes has it
    assert view.weeks[0].isoformat() == "2026-10-05" and view.weeks[-1].isoformat() == "2026-11-23"
    points = {p.start.isoformat(): p.cost_per_success_nanos for p in support.trend}
    assert points == {
        **{w.isoformat(): None for w in view.weeks},
        "2026-11-02": CALL_NANOS,
        "2026-11-16": CALL_NANOS,
        "2026-11-23": 257_207_143,
    }
    with seeded.engine.connect() as conn:
        for p in support.trend:
            lo = datetime(p.start.year, p.start.month, p.start.day, tzinfo=UTC)
            week = flow_outcomes(
                conn, start=lo, end=lo + timedelta(7), prev_start=lo - timedelta(7), prev_end=lo
            )
            same = [o.cost_per_success_nanos for o in week if o.flow == "support"]
            assert (same or [None]) == [p.cost_per_success_nanos]


def test_outcomes_page_says_over_target_in_words_and_escapes_names(seeded: Ledger) -> None:
    with write_transaction(seeded.engine) as conn:
        conn.execute(
            insert(annotation_events).values(
                ts_us=int((MONDAY - timedelta(days=3)).timestamp() * 1e6),
                kind="deploy",
                annotation_id="a1",
                text="support v2 <b>",
                flow="support",
                source="ci",
                created_us=0,
            )
        )
    page = render_outcomes(outcomes_view(seeded, BUDGETS, NOW))
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'data-status="over">over target (+20.1%)' in page  # $1.2009 against $1.00
    assert 'data-status="within">within target' in page and "no target" in page
    assert '<data class="usd" value="0.257207143">$0.2572</data>' in page
    assert "-57.1% better" in page  # $0.2572 from $0.6002 the week before
    assert '<data value="19.439584548">19.44</data>' in page  # $35 of value for $1.80045
    assert "1 flow over target:</strong> search-rerank" in page
    assert "vs last week" in page and "23–29 Nov 2026" in page
    assert page.count('data-chart="line"') == 2 and "no successful outcome in the last 8 weeks" in page
    assert '<ul class="annotations" data-annotations>' in page and "support v2 &lt;b&gt;" in page
    assert page.count('data-annotation="deploy"') == 1  # a marker on the support flow's chart only
    assert "<script" not in page and "style=" not in page


def test_a_month_equals_finops_outcomes(seeded: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    view = outcomes_view(seeded, BUDGETS, NOW, month="2026-11")
    doc = cli_json(seeded, monkeypatch, "outcomes", "--month", "2026-11")
    cli = {r["flow"]: r for r in doc["rows"]}
    assert set(cli) == {r.line.flow for r in view.rows}
    page = render_outcomes(view)
    for row in view.rows:
        o, c = row.line, cli[row.line.flow]
        assert c["cost_per_success_usd"] == (
            "no successes"
            if o.cost_per_success_nanos is None
            else f"{Decimal(o.cost_per_success_nanos) / 10**9:.9f}"
        )
        assert (c["successes"], c["outcomes"], c["success_rate"]) == (o.successes, o.outcomes, o.success_rate)
        if o.cost_per_success_nanos is not None:
            assert f'value="{c["cost_per_success_usd"]}"' in page
    support = cli["support"]
    assert support["cost_per_success_usd"] == "0.333416667"  # 5 calls in November, 9 successes
    assert "vs last month" in page and "November 2026" in page


def test_prompts_equal_finops_prompts_top_and_filter_by_flow(
    seeded: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = prompts_view(seeded, NOW)  # the command's default: the last complete month
    assert view.month == "2026-11" and view.partial is None
    doc = cli_json(seeded, monkeypatch, "prompts", "top", "--month", "2026-11")
    assert [r["prompt"] for r in doc["rows"]] == [p.prompt for p in view.lines]
    page = render_prompts(view, generated="now")
    for row, line in zip(doc["rows"], view.lines, strict=True):
        assert row["cost_usd"] == f"{Decimal(line.cost_nanos) / 10**9:.9f}"
        assert row["flags"] == " ".join(line.flags)
        assert f'<data class="usd" value="{row["cost_usd"]}">' in page
    assert doc["total_usd"] == f"{Decimal(view.total_nanos) / 10**9:.9f}"
    assert [p.flags for p in view.lines] == [("NEW",), ("NEW",), ("NEW",)]
    assert HOSTILE not in page and 'data-flag="NEW"' in page

    only = prompts_view(seeded, NOW, flows=["search-rerank"], top=5)
    assert [p.prompt for p in only.lines] == ["search/rank@v2"] and only.total_nanos == 2 * (
        CALL_NANOS + 300_000
    )
    filtered = cli_json(
        seeded, monkeypatch, "prompts", "top", "--month", "2026-11", "--flow", "search-rerank"
    )
    assert [r["prompt"] for r in filtered["rows"]] == ["search/rank@v2"]
    assert len(prompts_view(seeded, NOW, top=1).lines) == 1
    with pytest.raises(UnknownFlow):
        prompts_view(seeded, NOW, flows=["never-seen"])
    with pytest.raises(ValueError):
        prompts_view(seeded, NOW, month="2026-13")


def test_the_month_still_running_is_partial_as_the_report_says(seeded: Ledger) -> None:
    ingest_objects(seeded, [call("d1", "2026-12-01T09:00:00Z", "support", "support/answer@v1")], source="app")
    view = prompts_view(seeded, NOW, month="2026-12")
    assert (view.partial, view.compared_days) == ("1 Dec", "1 Nov")
    page = render_prompts(view, generated="now")
    assert "December 2026, partial (1 Dec)" in page and "the same days of November 2026 (1 Nov)" in page


# --------------------------------------------------------------------------- the real daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, str]]:
    tmp = tmp_path_factory.mktemp("dash")
    url = f"sqlite:///{tmp / 'finops.db'}"
    ledger = make_ledger(url)
    monday = week_start(datetime.now(UTC)) - timedelta(days=7)
    seed(ledger, monday)
    ledger.close()
    budgets = tmp / "budgets"
    budgets.mkdir()
    (budgets / "b.yaml").write_text(
        "budgets:\n"
        "  - flow: support\n    owner: '@dana'\n    daily_cap_usd: 100\n    max_cost_per_success_usd: 0.30\n"
        "  - name: search-all\n    match: {flow: 'search-*'}\n    owner: '@sam'\n    daily_cap_usd: 100\n"
        "    max_cost_per_success_usd: 1.00\n"
    )
    proc = DaemonProcess(tmp, url, budgets=budgets, FINOPS_USER_HASH_SECRET="test-secret").start()
    try:
        yield proc, (monday + timedelta(days=1)).strftime("%Y-%m")
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/prompts?month=2026-13", "month must look like 2026-11"),
        ("/prompts?month=nov", "month must look like 2026-11"),
        ("/prompts?top=0", "top must be a whole number from 1 to 1000"),
        ("/prompts?top=abc", "top must be a whole number"),
        ("/prompts?top=%C2%B2", "top must be a whole number"),  # a superscript two is a digit to str.isdigit
        ("/prompts?month=%D9%A2%D9%A0%D9%A2%D9%A6-11", "month must look like 2026-11"),  # Arabic-Indic digits
        ("/prompts?top=1&top=2", "give top once"),
        ("/prompts?flow=never-seen", "no usage was ever recorded for flow"),
        ("/outcomes?month=2026-1", "month must look like 2026-11"),
    ],
)
def test_bad_parameters_are_a_one_line_400(daemon: tuple[DaemonProcess, str], path: str, words: str) -> None:
    answer = httpx.get(daemon[0].base + path)
    assert answer.status_code == 400
    assert words in answer.text and "Traceback" not in answer.text
    assert len(re.findall(r'<p class="error">', answer.text)) == 1


def test_pages_over_http_escape_names_and_show_the_targets(daemon: tuple[DaemonProcess, str]) -> None:
    proc, month = daemon
    outcomes = httpx.get(proc.base + "/outcomes")
    assert outcomes.status_code == 200 and "Content-Security-Policy" in outcomes.headers
    assert "over target" in outcomes.text and "within target" in outcomes.text
    assert HOSTILE not in outcomes.text
    prompts = httpx.get(proc.base + f"/prompts?month={month}&flow={HOSTILE}")
    assert prompts.status_code == 200 and HOSTILE not in prompts.text
    assert '<option value="&lt;script&gt;alert(1)&lt;/script&gt;" selected>' in prompts.text
    assert prompts.text.count("data-prompt=") == 1
    search = httpx.get(proc.base + f"/prompts?month={month}&flow=search-rerank&top=5")
    assert re.findall(r'data-prompt="([^"]*)"', search.text) == ["search/rank@v2"]
    assert '<option value="search-rerank" selected>' in search.text and 'value="5"' in search.text


def test_in_chromium_no_problems_no_outside_requests_no_sideways_scroll_and_the_form_by_keyboard(
    daemon: tuple[DaemonProcess, str], tmp_path: Path
) -> None:
    require_chromium()
    proc, month = daemon
    browser = Browser(tmp_path / "profile")
    try:
        for path in ("/outcomes", f"/prompts?month={month}"):
            for px in (375, 1440):
                browser.goto(proc.base + path)
                browser.width(px)
                assert browser.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
                    path,
                    px,
                )
                assert browser.problems() == [], path
                assert all(u.startswith(proc.base) or u.startswith("data:") for u in browser.requests())
        browser.width(1440)
        browser.goto(proc.base + f"/prompts?month={month}")
        reached = []
        for _ in range(40):
            browser.press_tab()
            reached.append(browser.evaluate("document.activeElement.id || document.activeElement.tagName"))
            if reached[-1] == "BUTTON" and "f-top" in reached:
                break
        controls = [r for r in reached if r in ("f-flow", "f-month", "f-top")]
        assert list(dict.fromkeys(controls)) == ["f-flow", "f-month", "f-top"]  # the month's fields: 2 Tabs
        assert reached[-1] == "BUTTON"
        assert browser.evaluate("document.activeElement.form.getAttribute('action')") == "/prompts"
        browser.press_enter_and_wait()  # Enter on the focused Show button submits the form
        found = browser.evaluate("location.search")
        assert f"month={month}" in found and "top=20" in found
        assert browser.evaluate("document.querySelectorAll('[data-table=prompts] tbody tr').length") == 3
    finally:
        browser.close()
