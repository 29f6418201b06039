"""Reports a finance reader signs (issue 12): one test per promise, on a real SQLite ledger.

October 2026 against a September with usage on one day only. Worked by hand with gpt-4o-mini
($0.15 per million input tokens): a call of 1,000,000 input tokens and no output costs $0.15.

- support: one call a day on 1-10 Oct ($1.50) plus one call of an unpriced model (partly priced);
  in September one call on the 30th ($0.15).
- intranet: two calls of an unpriced model only (cost unknown).
- cache/a, cache/b: 100 calls each of 3,000 uncached input tokens (two caching findings, merged).
- budget "support": $1 a day; breaches recorded on 5 Oct at 50%, 80% and 100%: one breach, two
  crossings.

Every figure the HTML and Markdown show is checked against ``--format json``, and the JSON
against ``finops spend``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from finops.cli.main import app
from finops.domain.words import plural, verb
from finops.render.report_data import report_to_json
from finops.render.report_html import render_html
from finops.render.report_slack import report_summary_message
from finops.render.report_text import render_markdown
from finops.storage.alerts import record_breach
from finops.storage.db import write_transaction
from finops.usecases.audit.monthly import _findings, build_monthly_report, last_complete_month, report_period
from finops.usecases.audit.report_model import MonthlyReport, comparable
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger
from tests.report_fixture import sample_report
from tests.test_report_render import html_tables, md_tables

CALL = 150_000_000  # $0.15: 1M input tokens of gpt-4o-mini
UNPRICED = {"provider": "self_hosted", "model": "acme-llama-70b-internal"}


def call(rid: str, day: str, flow: str, prompt: str, *, inp: int = 1_000_000, **more: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "ts": f"{day}T12:00:00Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "flow": flow,
        "prompt_id": prompt,
        "input_tokens": inp,
        "output_tokens": 0,
        **more,
    }


@pytest.fixture
def october(db_url: str, tmp_path: Path) -> Iterator[Ledger]:
    budgets = tmp_path / "budgets"
    budgets.mkdir()
    (budgets / "support.yaml").write_text(
        "budgets:\n  - flow: support\n    owner: U0123ABC\n    daily_cap_usd: 1\n", encoding="utf-8"
    )
    ledger = make_ledger(db_url, budgets_dir=budgets)
    records = [call("s-sep", "2026-09-30", "support", "support/answer")]
    records += [call(f"s-{d}", f"2026-10-{d:02d}", "support", "support/answer") for d in range(1, 11)]
    records += [call("s-unpriced", "2026-10-03", "support", "support/answer", **UNPRICED)]
    records += [call(f"i-{n}", "2026-10-02", "intranet", "intranet/ask", **UNPRICED) for n in range(2)]
    records += [
        call(f"c{p}-{n}", "2026-10-04", "batch", f"cache/{p}", inp=3_000) for p in "ab" for n in range(100)
    ]
    assert ingest_objects(ledger, records, source="app").stored == len(records)
    with write_transaction(ledger.engine) as conn:
        for threshold in ("0.5", "0.8", "1.0"):
            spend = int(Decimal(threshold) * 1_000_000_000)
            record_breach(
                conn,
                budget_key="support",
                kind="threshold",
                period="2026-10-05",
                threshold=threshold,
                spend_nanos=spend,
                cap_nanos=1_000_000_000,
                channel=None,
                payload={"text": "x"},
                now_us=0,
            )
    yield ledger
    ledger.close()


@pytest.fixture
def report(october: Ledger) -> MonthlyReport:
    return build_monthly_report(october, month="2026-10", tz=ZoneInfo("UTC"), top=10)


def cli(ledger: Ledger, *args: str, monkeypatch: pytest.MonkeyPatch, budgets: Path | None = None) -> str:
    monkeypatch.setenv("FINOPS_DATABASE_URL", ledger.settings.database_url)
    monkeypatch.setenv("FINOPS_BUDGETS_DIR", str(budgets or ledger.settings.budgets_dir))
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


# ---------------------------------------------------------------- 1. breaches and crossings


def test_breaches_are_spend_over_a_cap_and_crossings_are_counted_apart(report: MonthlyReport) -> None:
    doc = json.loads(report_to_json(report))
    assert (doc["summary"]["budget_breaches"], doc["summary"]["threshold_crossings"]) == (1, 2)
    assert [b["threshold"] for b in doc["breaches"]] == ["1.0"]
    assert [b["threshold"] for b in doc["threshold_crossings"]] == ["0.5", "0.8"]
    tables = html_tables(render_html(report)).tables
    assert [r["Threshold"][0] for r in tables["breaches"]] == ["100%"]
    assert [r["Threshold"][0] for r in tables["crossings"]] == ["50%", "80%"]
    assert "1 budget breach (spend at or over a cap) · 2 threshold crossings below the cap" in render_html(
        report
    )
    markdown = render_markdown(report)
    assert "- Budget breaches (spend at or over a cap): 1 · threshold crossings below the cap: 2" in markdown
    assert (
        len(md_tables(markdown)["Budget breaches"]) == 1
        and len(md_tables(markdown)["Threshold crossings"]) == 2
    )
    fields = json.dumps(list(report_summary_message(report).blocks), ensure_ascii=False)
    assert "*Budget breaches*\\n1 (spend at or over a cap)" in fields
    assert "*Threshold crossings*\\n2 (below the cap)" in fields
    assert "1 budget reached its cap" in [f.title for f in report.findings]


# ---------------------------------------------------------------- 2. unpriced is unknown, never $0


def test_unpriced_usage_is_a_dash_with_its_record_count_never_zero(report: MonthlyReport) -> None:
    doc = json.loads(report_to_json(report))
    flows = {r["key"]: r for r in doc["by_flow"]}
    assert flows["intranet"]["cost_usd"] is None and flows["intranet"]["unpriced_records"] == 2
    assert flows["intranet"]["share"] is None
    assert flows["support"]["cost_usd"] == "1.500000000" and flows["support"]["unpriced_records"] == 1
    assert doc["summary"]["unpriced_records"] == 3
    prompts = {p["prompt"]: p for p in doc["top_prompts"]}
    assert prompts["intranet/ask"]["cost_usd"] is None and prompts["intranet/ask"]["unpriced_records"] == 2
    html = render_html(report)
    parsed = html_tables(html)
    by_flow = {r["Flow"][0]: r for r in parsed.tables["by-flow"]}
    assert by_flow["intranet"]["Spend"] == ("—", None)  # no data-nanos: not a number, not $0
    assert by_flow["support"]["Spend"] == ("$1.50†", 1_500_000_000)  # the priced part, marked
    assert "— cost unknown: 2 records with no price in effect" in html
    assert "† priced part only: 1 more record on these lines has no price" in html
    top = {r["Prompt"][0]: r for r in parsed.tables["top-prompts"]}
    assert top["intranet/ask"]["Spend"][0] == "—" and top["intranet/ask"]["Change"][0] == "—"
    bars = re.findall(r'data-value="(\d*)" data-label="([^"]+)"', html.split('id="chart-by-flow"')[1])
    assert ("", "intranet") in bars and "$0.00" not in html.split('id="chart-by-flow"')[1].split("</figure>")[
        0
    ]
    assert "| intranet | _—_ | — |" in render_markdown(report)
    daily = html.split('id="chart-daily"')[1].split("</figure>")[0]  # 2 and 3 Oct had unpriced calls
    assert re.findall(r'data-unpriced="(\d+)"[^>]*data-label="([\d-]+)"', daily) == [
        ("2", "2026-10-02"),
        ("1", "2026-10-03"),
    ]
    assert "2026-10-02: $0.15 priced, plus 2 unpriced records (cost unknown)" in daily
    assert "Hollow dots: 2 days with unpriced usage" in daily
    assert "cost unknown (unpriced)" in json.dumps(list(report_summary_message(report).blocks))


# ---------------------------------------------------------------- 3. the month: last complete, or partial


def test_the_default_month_is_the_last_complete_one(october: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = json.loads(cli(october, "report", "monthly", "--format", "json", monkeypatch=monkeypatch))
    now = datetime.now(UTC)
    assert doc["month"] == last_complete_month(now, ZoneInfo("UTC")) and doc["partial"] is None
    assert last_complete_month(datetime(2026, 12, 1, 0, 30, tzinfo=UTC), ZoneInfo("UTC")) == "2026-11"
    # 00:30 UTC on 1 December is still 30 November in New York: the last complete month is October.
    assert (
        last_complete_month(datetime(2026, 12, 1, 0, 30, tzinfo=UTC), ZoneInfo("America/New_York"))
        == "2026-10"
    )


def test_a_partial_month_is_marked_and_compared_with_the_same_days(october: Ledger) -> None:
    now = datetime(2026, 10, 6, 9, 0, tzinfo=UTC)  # 1-5 Oct are whole days; 6 Oct is not counted
    period = report_period("2026-10", ZoneInfo("UTC"), now)
    assert (period.partial, period.compared_days, period.days) == ("1–5 Oct", "1–5 Sep", 5)
    report = build_monthly_report(october, month="2026-10", tz=ZoneInfo("UTC"), now=now)
    assert report.partial == "1–5 Oct"
    support = next(x for x in report.by_flow if x.key == "support")
    assert support.cost_nanos == 5 * CALL  # 1-5 Oct only
    assert report.prev_total_nanos is None  # 1-5 Sep had nothing (the call of 30 Sep is not the same days)
    html, markdown = render_html(report), render_markdown(report)
    assert '<span class="partial">partial (1–5 Oct)</span>' in html
    assert "covers 1–5 Oct and compares it with the same days of September 2026 (1–5 Sep)" in html
    assert markdown.startswith("# LLM token audit: October 2026, partial (1–5 Oct)\n")
    assert json.loads(report_to_json(report))["compared_with"] == "1–5 Sep"
    budget = next(b for b in report.budgets if b.flow == "support")
    assert (budget.days, budget.cap_nanos) == (5, 5_000_000_000)  # $1 a day × the 5 whole days
    whole = report_period("2026-10", ZoneInfo("UTC"), datetime(2026, 11, 30, tzinfo=UTC))
    assert whole.partial is None and whole.days == 31 and whole.prev_end == datetime(2026, 10, 1, tzinfo=UTC)
    short = report_period("2026-03", ZoneInfo("UTC"), datetime(2026, 3, 31, 8, tzinfo=UTC))
    assert (short.partial, short.compared_days) == ("1–30 Mar", "1–28 Feb")  # February has 28 days
    first = report_period("2026-12", ZoneInfo("UTC"), datetime(2026, 12, 1, 2, 30, tzinfo=UTC))
    assert (first.partial, first.compared_days) == ("1 Dec, so far", "1 Nov, to the same time")
    assert first.prev_end == datetime(2026, 11, 1, 2, 30, tzinfo=UTC) and first.end.hour == 2


# ---------------------------------------------------------------- 4. a minimum base for changes


def test_a_thin_previous_month_reads_new_and_flags_nothing_growing(report: MonthlyReport) -> None:
    support = next(p for p in report.top_prompts if p.prompt == "support/answer")
    assert support.prev_cost_nanos == CALL and support.cost_nanos == 10 * CALL  # +900%, on one day of data
    assert not report.prev_base and "GROWING" not in support.flags and support.flags == ()
    doc = json.loads(report_to_json(report))
    assert doc["previous_is_base"] is False
    flows = html_tables(render_html(report)).tables["by-flow"]
    assert {r["Flow"][0]: r["Change %"][0] for r in flows}["support"] == "new"
    markdown = render_markdown(report)
    assert "+900.0%" not in markdown and "Sep 2026 has usage on 1 day against 10 this month" in markdown
    # The line rule: a previous cost under 10% of the current one is no base either.
    assert comparable(100, 10) and not comparable(100, 9) and not comparable(100, None)
    thin = dataclasses.replace(sample_report().by_flow[0], cost_nanos=1_000, prev_cost_nanos=4)
    fixture = dataclasses.replace(sample_report(), by_flow=(thin,))
    row = md_tables(render_markdown(fixture))["Spend by flow"][0]
    assert row["Change %"] == "new" and row["Change"] == "+$0.00"


# ---------------------------------------------------------------- 5. findings


def test_findings_merge_caching_name_what_they_count_and_render_code(report: MonthlyReport) -> None:
    titles = [f.title for f in report.findings]
    caching = [t for t in titles if "caching" in t]
    assert caching == ["2 prompts re-send long prompts without caching ($0.09 this month)"]
    detail = next(f.detail for f in report.findings if "caching" in f.title)
    assert "cache/a: 100 calls" in detail and "cache/b: 100 calls" in detail
    fixture = sample_report()
    growing = tuple(dataclasses.replace(p, flags=("GROWING",)) for p in fixture.top_prompts[:7])
    found = _findings((), growing, (), (), report_of_nothing())
    (grew,) = [f for f in found if "grew" in f.title]
    assert grew.title == "7 of the top 7 prompts grew by more than a quarter"
    assert grew.detail.endswith("and 2 more") and grew.detail.count(", ") == 4  # 5 named, 2 counted
    html = render_html(report)
    assert "<code>finops reprice</code>" in html and "`" not in html.split('id="findings"')[1]
    assert "then `finops reprice`;" in render_markdown(report)


def report_of_nothing() -> Any:
    from finops.usecases.spend import SpendQuery, SpendResult

    return SpendResult(SpendQuery(), [], {})


# ------------------------------------------------------------ 6. totals, budget vs actual, unbroken names


def test_totals_rows_equal_the_json_and_finops_spend_to_the_nano_dollar(
    october: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    doc = json.loads(
        cli(october, "report", "monthly", "--month", "2026-10", "--format", "json", monkeypatch=monkeypatch)
    )
    cli(
        october,
        "report",
        "monthly",
        "--month",
        "2026-10",
        "--format",
        "html",
        "--out",
        str(tmp_path / "r.html"),
        monkeypatch=monkeypatch,
    )
    spend = json.loads(
        cli(
            october,
            "spend",
            "--month",
            "2026-10",
            "--by",
            "flow",
            "--format",
            "json",
            monkeypatch=monkeypatch,
        )
    )
    total = int(Decimal(doc["summary"]["total_usd"]) * 10**9)
    assert spend["total_usd"] == doc["summary"]["total_usd"] == "1.590000000"  # 10 calls + 200 small ones
    parsed = html_tables((tmp_path / "r.html").read_text())
    for table in ("by-flow", "by-model", "by-provider"):
        rows = sum(r["Spend"][1] or 0 for r in parsed.tables[table])
        assert parsed.totals[table]["Spend"][1] == rows == total, table
        assert parsed.totals[table]["Spend"][0] == "$1.59"
    prompts = parsed.totals["top-prompts"]
    assert prompts["Spend"][1] == sum(r["Spend"][1] or 0 for r in parsed.tables["top-prompts"])
    markdown = cli(october, "report", "monthly", "--month", "2026-10", monkeypatch=monkeypatch)
    assert md_tables(markdown, totals=True)["Spend by flow"][0]["Spend"] == "$1.59"
    # Budget vs actual: $1 a day × 31 days = $31; $1.50 of it is 4.8%, floored to 4%.
    (budget,) = doc["budgets"]
    assert budget == {
        "flow": "support",
        "budget": "support",
        "daily_cap_usd": "1.000000000",
        "days": 31,
        "cap_usd": "31.000000000",
        "actual_usd": "1.500000000",
        "percent_of_cap": 4,
        "unpriced_records": 1,
    }
    (row,) = parsed.tables["budgets"]
    assert [row[c][0] for c in ("Flow", "Budget", "Cap per day", "Days", "Cap", "Actual", "Of cap")] == [
        "support", "support", "$1.00", "31", "$31.00", "$1.50†", "4%",
    ]  # fmt: skip


def test_without_budgets_the_report_says_why_there_is_no_budget_vs_actual(
    sqlite_url: str, tmp_path: Path
) -> None:
    ledger = make_ledger(sqlite_url, budgets_dir=tmp_path / "missing")
    try:
        ingest_objects(ledger, [call("x", "2026-10-01", "support", "p")], source="app")
        report = build_monthly_report(ledger, month="2026-10", tz=ZoneInfo("UTC"))
    finally:
        ledger.close()
    assert (
        report.budgets == () and report.budgets_problem and "missing does not exist" in report.budgets_problem
    )
    assert json.loads(report_to_json(report))["budgets_problem"] == report.budgets_problem
    assert "No budgets were read, so there is no budget vs actual (budget folder " in render_html(report)


def test_html_names_never_wrap_and_tables_scroll_in_their_own_box() -> None:
    html = render_html(sample_report())
    css = html.split("<style>")[1].split("</style>")[0]
    assert ".name,.list{white-space:nowrap}" in css and "overflow-wrap:break-word" not in css
    assert ".table-wrap{overflow-x:auto" in css
    assert html.count('<div class="table-wrap">') == html.count("<table ")


# ---------------------------------------------------------------- 7. the CLI for people


def test_prompts_top_fits_120_columns_with_human_headers(
    october: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_id = "support/" + "very-long-prompt-name-" * 6
    ingest_objects(
        october,
        [call(f"l-{n}", "2026-10-08", "support", long_id, inp=2_000_000) for n in range(1500)],
        source="app",
    )
    text = cli(october, "prompts", "top", "--month", "2026-10", monkeypatch=monkeypatch)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[0].split() == [
        "#",
        "Prompt",
        "Spend",
        "Share",
        "Calls",
        "Avg",
        "in",
        "Avg",
        "out",
        "Cached",
        "Success",
        "Change",
        "Flags",
    ]
    first = lines[1]
    assert (
        "$450.00" in first and "1,500" in first and "2,000,000" in first and "…" in first
    )  # cut, not wrapped
    assert "— cost unknown: 2 records with no price" in text
    wide = cli(october, "prompts", "top", "--month", "2026-10", "--wide", monkeypatch=monkeypatch)
    assert long_id in wide and "Last month" in wide.splitlines()[0] and "Models" in wide.splitlines()[0]
    assert max(len(line) for line in wide.splitlines()) > 120
    doc = json.loads(
        cli(october, "prompts", "top", "--month", "2026-10", "--format", "json", monkeypatch=monkeypatch)
    )
    assert doc["rows"][0]["cost_usd"] == "450.000000000" and "avg_input_tokens" in doc["rows"][0]
    unknown = next(r for r in doc["rows"] if r["prompt"] == "intranet/ask")
    assert (unknown["cost_usd"], unknown["share"], unknown["unpriced_records"]) == (None, None, 2)


def test_digest_prints_text_and_blocks_on_request(
    sqlite_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datetime import timedelta

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    ingest_objects(sqlite_ledger, [call("d-1", yesterday, "support", "p")], source="app")
    (tmp_path / "b").mkdir()  # no budgets: no cap to show
    text = cli(sqlite_ledger, "digest", monkeypatch=monkeypatch, budgets=tmp_path / "b")
    assert text == (
        f"finops daily digest: {yesterday}: top 1 flow spent $0.15\n"
        "  support  $0.15 (new vs the period before)\n"
    )
    blocks = json.loads(
        cli(sqlite_ledger, "digest", "--format", "blocks", monkeypatch=monkeypatch, budgets=tmp_path / "b")
    )
    assert blocks["blocks"][0]["type"] == "header" and "top 1 flow spent" in blocks["text"]


def test_counted_nouns_are_singular_for_one(report: MonthlyReport) -> None:
    assert plural(1, "model") == "1 model" and plural(2, "model") == "2 models"
    assert plural(1_204, "entry", "entries") == "1,204 entries" and plural(0, "record") == "0 records"
    assert f"1 {verb(1)} a conflict" == "1 was a conflict" and verb(2) == "were"
    one = dataclasses.replace(report, unpriced=report.unpriced[:1])
    assert "on 1 model," in render_html(one) and "1 models" not in render_html(one)
    assert "1 models" not in render_markdown(one) and "3 records on 1 model" in render_markdown(one)


# ---------------------------------------------------------------- 8. screenshots


def test_screenshots_of_the_report_are_committed() -> None:
    from tests.test_report_browser import png_pixels

    img = Path(__file__).resolve().parents[1] / "docs" / "img"
    for name in ("report-top.png", "report-prompts.png"):
        width, height, rows = png_pixels((img / name).read_bytes())
        assert width >= 1000 and height >= 500, name
        assert len({row[x : x + 3] for row in rows[::20] for x in range(0, len(row), 60)}) > 20, name
