"""The monthly report's renderers: Markdown, HTML, JSON, CSV and Slack say the same numbers, safely."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from html.parser import HTMLParser
from typing import Any

import pytest

from finops.domain.money import format_usd, nanos_to_usd
from finops.render.charts import bar_chart, line_chart
from finops.render.report_data import report_to_csv, report_to_json
from finops.render.report_html import render_html
from finops.render.report_slack import report_summary_message
from finops.render.report_text import render_markdown, report_tables
from finops.usecases.audit.report_model import MonthlyReport, PromptLine, SpendLine
from tests.report_fixture import HOSTILE_FLOW, HOSTILE_PROMPT, sample_report
from tests.slack_fake_validation import validate_message

REPORT = sample_report()
NANOS = Decimal(1_000_000_000)


# ---------------------------------------------------------------- parsing helpers


def rounded(nanos: int, places: int) -> Decimal:
    return nanos_to_usd(nanos).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def dollars(text: str) -> Decimal:
    """``$1,234.57``, ``-$3.10``, ``+$0.1374`` as a Decimal."""
    m = re.fullmatch(r"([+-]?)\$([\d,]+\.\d+)", text.strip("*_ "))
    assert m, f"not a dollar amount: {text!r}"
    return Decimal(m.group(1) + m.group(2).replace(",", ""))


def shown(nanos: int, text: str) -> bool:
    """Whether ``text`` is ``nanos`` rounded to the cent, or to 1/100 cent for a unit cost below $1."""
    value = dollars(text)
    places = -value.as_tuple().exponent  # type: ignore[operator]
    return places in (2, 4) and value == rounded(nanos, places)


def md_unescape(cell: str) -> str:
    """A cell's text: emphasis around the whole cell dropped, backslash escapes undone."""
    cell = cell.strip()
    if len(cell) > 1 and cell[0] == cell[-1] == "_" and cell[-2] != "\\":
        cell = cell[1:-1]
    return re.sub(r"\\(.)", r"\1", cell).strip()


def md_tables(markdown: str, *, totals: bool = False) -> dict[str, list[dict[str, str]]]:
    """Every ``## Title`` table as rows of header -> cell text (unescaped); the bold totals row is
    left out (``totals=True``: only the totals rows, cells without their bold)."""
    tables: dict[str, list[dict[str, str]]] = {}
    title = ""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## "):
            title = md_unescape(line[3:])
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|--"):
            header = [md_unescape(c) for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                cells = [md_unescape(c) for c in re.split(r"(?<!\\)\|", row)[1:-1]]
                assert len(cells) == len(header), f"{title}: a name broke the table: {row}"
                is_total = any(c.startswith("**Total") for c in cells)
                if is_total != totals:
                    continue
                if is_total:
                    cells = [c.removeprefix("**").removesuffix("**") for c in cells]
                rows.append(dict(zip(header, cells, strict=True)))
            tables[title] = rows
    return tables


class _HTMLTables(HTMLParser):
    """Tables by id: rows (with ``data-key``) of header -> (text, data-nanos or None)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[dict[str, tuple[str, int | None]]]] = {}
        self.totals: dict[str, dict[str, tuple[str, int | None]]] = {}  # each table's totals row
        self._total = False
        self.keys: dict[str, list[str]] = {}
        self.numeric: dict[str, list[str]] = {}
        self.nanos_cells: list[tuple[str, int]] = []  # every element with data-nanos: (text, nanos)
        self._table: str | None = None
        self._header: list[str] = []
        self._row: list[tuple[str, int | None]] | None = None
        self._cell: list[str] | None = None
        self._nanos: int | None = None
        self._open_nanos: list[tuple[str, int | None, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-nanos" in a:
            self._open_nanos.append((tag, int(a["data-nanos"] or ""), []))
        elif self._open_nanos:
            self._open_nanos.append((tag, None, []))
        if tag == "table" and a.get("id"):
            self._table, self._header = a["id"], []
            self.tables[self._table], self.keys[self._table], self.numeric[self._table] = [], [], []
        elif self._table and tag == "tr" and "data-key" in a:
            self._row, self._total = [], False
            self.keys[self._table].append(a["data-key"] or "")
        elif self._table and tag == "tr" and "total" in (a.get("class") or ""):
            self._row, self._total = [], True
        elif self._table and tag in ("td", "th"):
            self._cell, self._nanos = [], int(a["data-nanos"]) if a.get("data-nanos") else None
            if tag == "th" and "num" in (a.get("class") or ""):
                self.numeric[self._table].append("?")  # filled in at the end tag with the header

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        for _, _, texts in self._open_nanos:
            texts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open_nanos and self._open_nanos[-1][0] == tag:
            _, nanos, texts = self._open_nanos.pop()
            if nanos is not None:
                self.nanos_cells.append(("".join(texts).strip(), nanos))
            elif self._open_nanos:
                self._open_nanos[-1][2].extend(texts)
        if tag in ("td", "th") and self._cell is not None and self._table:
            text = " ".join("".join(self._cell).split())
            if tag == "th":
                self._header.append(text)
                if self.numeric[self._table] and self.numeric[self._table][-1] == "?":
                    self.numeric[self._table][-1] = text
            elif self._row is not None:
                self._row.append((text, self._nanos))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            row = dict(zip(self._header, self._row, strict=True))
            if self._total:
                self.totals[self._table] = row
            else:
                self.tables[self._table].append(row)
            self._row = None
        elif tag == "table":
            self._table = None


def html_tables(html: str) -> _HTMLTables:
    parser = _HTMLTables()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def markdown() -> str:
    return render_markdown(REPORT)


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(REPORT)


@pytest.fixture(scope="module")
def parsed(html: str) -> _HTMLTables:
    return html_tables(html)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dict(json.loads(report_to_json(REPORT)))


def spend_sections() -> Iterator[tuple[str, str, str, tuple[SpendLine, ...]]]:
    yield "Spend by flow", "by-flow", "by_flow", REPORT.by_flow
    yield "Spend by model", "by-model", "by_model", REPORT.by_model
    yield "Spend by provider", "by-provider", "by_provider", REPORT.by_provider


# ---------------------------------------------------------------- the same numbers everywhere


def test_the_fixture_adds_up() -> None:
    for lines in (REPORT.by_flow, REPORT.by_model, REPORT.by_provider, REPORT.by_tag["env"]):
        assert sum(x.cost_nanos for x in lines) == REPORT.total_nanos
        assert sum(x.requests for x in lines) == REPORT.requests
        assert sum(x.input_tokens for x in lines) == REPORT.input_tokens
    assert sum(n for _, n in REPORT.daily) == REPORT.total_nanos
    assert sum(x.prev_cost_nanos or 0 for x in REPORT.by_flow) == REPORT.prev_total_nanos
    assert {f for p in REPORT.top_prompts for f in p.flags} == {"NEW", "GROWING", "BLOATED"}
    assert any(o.successes == 0 for o in REPORT.outcomes) and len(REPORT.by_tag) == 2


def test_headline_gives_the_total_to_the_cent_and_exactly_once(
    markdown: str, parsed: _HTMLTables, doc: dict[str, Any]
) -> None:
    assert "**Spend: $6,993.63** (exact: $6,993.631790023)" in markdown
    assert markdown.count("6,993.631790023") == 1
    assert "+$1,215.05 (+21.0%)" in markdown
    assert ("$6,993.63", REPORT.total_nanos) in parsed.nanos_cells
    assert ("+$1,215.05", REPORT.total_nanos - (REPORT.prev_total_nanos or 0)) in parsed.nanos_cells
    assert doc["summary"]["total_usd"] == "6993.631790023"
    assert doc["summary"]["change_usd"] == format_usd(REPORT.total_nanos - (REPORT.prev_total_nanos or 0))
    assert doc["summary"]["cache_hit_ratio"] == pytest.approx(1_449_736_000 / 10_008_702_400)


@pytest.mark.parametrize(("title", "table_id", "key", "lines"), list(spend_sections()))
def test_spend_tables_agree_in_markdown_html_and_json(
    markdown: str,
    parsed: _HTMLTables,
    doc: dict[str, Any],
    title: str,
    table_id: str,
    key: str,
    lines: tuple[SpendLine, ...],
) -> None:
    md_rows, html_rows, json_rows = md_tables(markdown)[title], parsed.tables[table_id], doc[key]
    assert len(md_rows) == len(html_rows) == len(json_rows) == len(lines)
    assert parsed.keys[table_id] == [x.key for x in lines]
    for line, md_row, html_row, js in zip(lines, md_rows, html_rows, json_rows, strict=True):
        first = next(iter(md_row))
        assert md_row[first] == html_row[first][0] == js["key"] == line.key
        assert html_row["Spend"][1] == line.cost_nanos == Decimal(js["cost_usd"]) * NANOS
        assert shown(line.cost_nanos, md_row["Spend"]) and md_row["Spend"] == html_row["Spend"][0]
        if line.prev_cost_nanos is None:
            assert md_row["Change"] == html_row["Change"][0] == "new" and js["change_usd"] is None
            assert md_row["Sep 2026"] == "—" and js["prev_cost_usd"] is None
        else:
            delta = line.cost_nanos - line.prev_cost_nanos
            assert html_row["Change"][1] == delta == Decimal(js["change_usd"]) * NANOS
            assert shown(delta, md_row["Change"]) and md_row["Change"] == html_row["Change"][0]
            assert html_row["Sep 2026"][1] == line.prev_cost_nanos
        for column in ("Share", "Change %", "Requests", "Input tokens", "Output tokens", "Cache hit"):
            assert md_row[column] == html_row[column][0]


def test_tag_tables_show_untagged_spend_so_each_adds_up_to_the_total(
    markdown: str, parsed: _HTMLTables, doc: dict[str, Any]
) -> None:
    team = parsed.tables["by-tag-team"]
    assert [r["team"][0] for r in team] == ["support", "search", "knowledge", "(no team tag)"]
    assert sum(r["Spend"][1] or 0 for r in team) == REPORT.total_nanos
    assert sum(r["Spend"][1] or 0 for r in parsed.tables["by-tag-env"]) == REPORT.total_nanos
    assert md_tables(markdown)["Spend by tag: team"][-1]["Spend"] == "$100.47"
    assert doc["by_tag"]["team"]["untagged_usd"] == "100.468456789"
    assert doc["by_tag"]["env"]["untagged_usd"] == "0.000000000"


def test_outcomes_agree_and_a_flow_without_successes_has_no_cost_per_success(
    markdown: str, parsed: _HTMLTables, doc: dict[str, Any]
) -> None:
    md_rows = md_tables(markdown)["Cost per successful outcome"]
    html_rows = parsed.tables["outcomes"]
    for o, md_row, html_row, js in zip(REPORT.outcomes, md_rows, html_rows, doc["outcomes"], strict=True):
        assert md_row["Flow"] == html_row["Flow"][0] == js["flow"] == o.flow
        for column, nanos, field in (
            ("Per success", o.cost_per_success_nanos, "cost_per_success_usd"),
            ("Per attempt", o.cost_per_attempt_nanos, "cost_per_attempt_usd"),
            ("Sep 2026", o.prev_cost_per_success_nanos, "prev_cost_per_success_usd"),
            ("Value", o.value_nanos, "value_usd"),
        ):
            assert html_row[column][1] == nanos
            assert js[field] == (None if nanos is None else format_usd(nanos))
            assert md_row[column] == html_row[column][0]
            if nanos is not None:
                assert shown(nanos, md_row[column])
        assert md_row["Success rate"] == html_row["Success rate"][0]
    triage = dict(zip([o.flow for o in REPORT.outcomes], md_rows, strict=True))["agent-triage"]
    assert triage["Per success"] == "no successes" and triage["Success rate"] == "0.0%"
    assert md_rows[0]["Per success"] == "$0.1374"  # a unit cost keeps sub-cent precision
    assert md_rows[0]["Value per $1"] == "$90.96" and md_rows[1]["Value per $1"] == "—"
    assert doc["outcomes"][2]["success_rate"] == 0.0 and doc["outcomes"][2]["cost_per_success_usd"] is None


def test_top_prompts_agree_with_flags_and_changes(
    markdown: str, parsed: _HTMLTables, doc: dict[str, Any]
) -> None:
    md_rows = md_tables(markdown)["Top 12 prompts"]
    html_rows = parsed.tables["top-prompts"]
    assert parsed.keys["top-prompts"] == [p.prompt for p in REPORT.top_prompts]
    for i, (p, md_row, html_row, js) in enumerate(
        zip(REPORT.top_prompts, md_rows, html_rows, doc["top_prompts"], strict=True)
    ):
        assert md_row["#"] == str(i + 1) and js["rank"] == i + 1
        assert md_row["Prompt"] == html_row["Prompt"][0] == js["prompt"] == p.prompt
        assert html_row["Spend"][1] == p.cost_nanos == Decimal(js["cost_usd"]) * NANOS
        assert md_row["Flags"].replace("*", "").split() == list(p.flags) == js["flags"]
        for column in ("Spend", "Share", "Calls", "Avg in", "Avg out", "Cache hit", "Success"):
            assert md_row[column] == html_row[column][0]
        if p.prev_cost_nanos is None:
            assert md_row["Change"] == "new" and js["change_usd"] is None
        else:
            assert html_row["Change"][1] == p.cost_nanos - p.prev_cost_nanos
            assert md_row["Change"] == html_row["Change"][0]
    assert md_rows[0]["Share"] == "30.1%" and md_rows[0]["Avg in"] == "9,412"


def test_every_money_figure_in_the_html_reads_as_its_nanos(parsed: _HTMLTables) -> None:
    assert len(parsed.nanos_cells) > 100
    for table_id, rows in parsed.tables.items():
        for row in rows:
            for column, (text, nanos) in row.items():
                if re.search(r"\$\d", text):
                    assert nanos is not None, f"{table_id}/{column}: {text} has no data-nanos"
    for text, nanos in parsed.nanos_cells:
        amount = re.search(r"[+-]?\$[\d,]+\.\d+", text)
        assert amount and shown(nanos, amount.group()), (text, nanos)


def test_markdown_and_html_tables_have_the_same_numbers_cell_by_cell(
    markdown: str, parsed: _HTMLTables
) -> None:
    md = md_tables(markdown)
    for table in report_tables(REPORT):
        if not table.rows:
            continue
        md_rows, html_rows = md[table.title], parsed.tables[table.id]
        assert len(md_rows) == len(html_rows) == len([r for r in table.rows if not r.total]), table.id
        for md_row, html_row in zip(md_rows, html_rows, strict=True):
            for column in parsed.numeric[table.id]:
                assert md_row[column] == html_row[column][0], (table.id, column)


def test_unpriced_usage_is_cost_unknown_never_zero(
    markdown: str, parsed: _HTMLTables, doc: dict[str, Any]
) -> None:
    for row in md_tables(markdown)["Unpriced usage"]:
        assert row["Cost"] == "cost unknown"
    for row in parsed.tables["unpriced"]:
        assert row["Cost"] == ("cost unknown", None)
    assert all(m["cost_usd"] is None for m in doc["unpriced"]["models"])
    assert "1,291 records on 2 models, **cost unknown**" in markdown
    assert doc["unpriced"]["note"]


def test_findings_and_notes_are_in_every_human_format(markdown: str, html: str) -> None:
    for f in REPORT.findings:
        assert f.title in markdown.replace("\\", "") and f.title in html
        assert f.suggestion.replace("\\", "") in markdown.replace("\\", "")
    assert "(estimated saving $610.00)" in markdown
    assert 'data-nanos="610000000000"' in html
    assert "Findings: 3, estimated savings $1,212.25" in markdown


def test_estimate_note_only_when_token_counts_are_estimates() -> None:
    exact = dataclasses.replace(REPORT, token_counts_estimated=False)
    assert "estimates" in render_markdown(REPORT) and 'id="estimates-note"' in render_html(REPORT)
    assert "estimates" not in render_markdown(exact) and "estimates-note" not in render_html(exact)


# ---------------------------------------------------------------- safety


def test_html_is_self_contained_with_no_script_and_nothing_to_fetch(html: str) -> None:
    low = html.lower()
    assert "<script" not in low and "javascript:" not in low
    assert "http://" not in low and "https://" not in low
    for loader in ("src=", "href=", "url(", "@import", "<link", "<img", "<iframe", "<object", "<embed"):
        assert loader not in low, loader
    assert '<meta charset="utf-8">' in html and "Content-Security-Policy" in html
    assert "default-src 'none'" in html


def test_html_escapes_hostile_names(html: str, parsed: _HTMLTables) -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    assert HOSTILE_FLOW in parsed.keys["by-flow"]
    assert "<i>" not in html and "<b>" not in html  # from a prompt id and a preview
    assert html.count("<svg") == 4 and "data-chart=" in html


def test_markdown_escapes_hostile_names_and_keeps_tables_intact(markdown: str) -> None:
    assert "<script>" not in markdown and "\\<script\\>alert(1)\\</script\\> \\& co" in markdown
    assert "exp/a\\|b \\*test\\* \\<i\\>" in markdown
    rows = md_tables(markdown)["Top 12 prompts"]  # the parser asserts every row has all its cells
    assert rows[9]["Prompt"] == HOSTILE_PROMPT


# ---------------------------------------------------------------- JSON and CSV


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    else:
        yield key, value


def test_json_money_is_exact_decimal_strings_under_usd_keys(doc: dict[str, Any]) -> None:
    money = [(k, v) for k, v in _walk(doc) if k.endswith("_usd")]
    assert len(money) > 100
    for key, value in money:
        assert value is None or re.fullmatch(r"-?\d+\.\d{9}", value), (key, value)
    assert not any(isinstance(v, float) for k, v in _walk(doc) if "cost" in k or "usd" in k)
    assert doc["schema"] == "finops.monthly_report/1" and doc["currency"] == "USD"
    assert [d["date"] for d in doc["daily"]][:2] == ["2026-10-01", "2026-10-02"]


def test_csv_files_parse_and_sum_to_the_total() -> None:
    files = report_to_csv(REPORT)
    names = (
        "summary by_flow by_model by_provider by_tag daily breaches threshold_crossings budgets outcomes "
        "top_prompts unpriced findings"
    )
    assert {f"{name}.csv" for name in names.split()} == set(files)
    rows = {name: list(csv.DictReader(io.StringIO(text))) for name, text in files.items()}
    total = nanos_to_usd(REPORT.total_nanos)
    for name in ("by_flow.csv", "by_model.csv", "by_provider.csv", "daily.csv"):
        assert sum(Decimal(r["cost_usd"]) for r in rows[name]) == total, name
    for key in REPORT.by_tag:
        assert sum(Decimal(r["cost_usd"]) for r in rows["by_tag.csv"] if r["tag_key"] == key) == total
    assert [r["key"] for r in rows["by_flow.csv"]] == [x.key for x in REPORT.by_flow]
    assert len(rows["top_prompts.csv"]) == 12 and rows["top_prompts.csv"][0]["flags"] == "GROWING;BLOATED"
    outcomes = {r["flow"]: r for r in rows["outcomes.csv"]}
    assert outcomes["agent-triage"]["cost_per_success_usd"] == ""  # unknown, not 0
    assert rows["unpriced.csv"][0]["cost_usd"] == ""
    summary = {r["field"]: r["value"] for r in rows["summary.csv"]}
    assert summary["total_usd"] == "6993.631790023" and summary["month"] == "2026-10"
    assert rows["by_flow.csv"][1]["change_usd"] == "-106.249999999"  # a negative amount is not "escaped"


def test_csv_text_that_a_spreadsheet_would_run_is_defused() -> None:
    evil = SpendLine('=HYPERLINK("x")', 1, None, 1, 1, 1, 0)
    report = dataclasses.replace(REPORT, by_flow=(*REPORT.by_flow, evil))
    rows = list(csv.DictReader(io.StringIO(report_to_csv(report)["by_flow.csv"])))
    assert rows[-1]["key"] == '\'=HYPERLINK("x")'
    assert json.loads(report_to_json(report))["by_flow"][-1]["key"] == evil.key  # JSON stays exact


# ---------------------------------------------------------------- Slack


def _check_slack(report: MonthlyReport, top: int = 5) -> str:
    message = report_summary_message(report, top=top)
    assert validate_message({"text": message.text, "blocks": list(message.blocks)}) is None
    assert len(message.blocks) <= 50
    for block in message.blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
    return json.dumps(list(message.blocks), ensure_ascii=False)


def test_slack_summary_has_headline_top_prompts_movers_and_attachment_line() -> None:
    text = _check_slack(REPORT)
    assert "$6,993.63" in text and "+21.0%" in text
    assert text.count("support/answer@v3") == 2  # top prompts and a finding
    assert "fp:9c0d55ab12e4" not in text  # only the top 5
    assert "support-gpt-en" in text and "▼ $106.25" in text  # movers, both ways
    assert "is attached" in text and "cost unknown" in text


def test_slack_summary_stays_valid_with_hostile_and_huge_input() -> None:
    ping = "<!channel> " + "x" * 5000
    prompts = tuple(
        dataclasses.replace(p, prompt=f"{ping}{i}`") for i, p in enumerate(REPORT.top_prompts * 20)
    )
    flows = tuple(dataclasses.replace(x, key=ping) for x in REPORT.by_flow)
    report = dataclasses.replace(REPORT, top_prompts=prompts, by_flow=flows, findings=REPORT.findings * 40)
    text = _check_slack(report, top=240)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "more in the report" in text


# ---------------------------------------------------------------- charts and an empty month


def test_charts_escape_labels_and_carry_exact_values() -> None:
    svg = bar_chart([("<b>&", 1_500_000_000), ("zero", 0), ("refund", -5)], title="T <x>")
    assert 'role="img"' in svg and "<title>T &lt;x&gt;</title>" in svg and 'data-chart="bar"' in svg
    assert "<b>" not in svg and 'data-label="&lt;b&gt;&amp;"' in svg
    assert re.findall(r'data-value="(-?\d+)"', svg) == ["1500000000", "0", "-5"]
    assert "$1.50" in svg
    line = line_chart([("2026-10-01", 7)], title="One day")
    assert 'data-chart="line"' in line and 'data-value="7"' in line and "Oct 1" in line
    assert 'data-chart="line"' in line_chart([], title="Nothing") and "No spend" in line_chart([], title="x")


def test_an_empty_month_renders_everywhere() -> None:
    empty = MonthlyReport(
        month="2026-01", previous_month="2025-12", timezone="UTC", generated_at="2026-02-01T00:00:00+00:00",
        total_nanos=0, prev_total_nanos=None, requests=0, input_tokens=0, output_tokens=0,
        cached_input_tokens=0, by_flow=(), by_model=(), by_provider=(), by_tag={}, daily=(), breaches=(),
        outcomes=(), top_prompts=(), unpriced=(), findings=(),
    )  # fmt: skip
    markdown = render_markdown(empty)
    assert "No spend this month." in markdown and "no data for December 2025" in markdown
    assert "Cache hits: — of input tokens" in markdown  # no input tokens: no ratio, not 0%
    html = render_html(empty)
    assert "No spend this month." in html and "<table" not in html
    assert all(text.strip() for text in report_to_csv(empty).values())  # headers at least
    assert json.loads(report_to_json(empty))["summary"]["prev_total_usd"] is None
    _check_slack(empty)


def test_a_new_prompt_and_flow_show_new_rather_than_a_percentage() -> None:
    line = PromptLine("p", 10, 1.0, 1, 1, 1, 0.0, None, ("f",), ("m",), None, ("NEW",))
    report = dataclasses.replace(REPORT, top_prompts=(line,))
    assert md_tables(render_markdown(report))["Top 1 prompt"][0]["Change"] == "new"
