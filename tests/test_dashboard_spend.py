"""``/spend``: the page and its downloads answer exactly what ``finops spend`` prints.

On a real ledger (SQLite and PostgreSQL, seeded through the ingest use case), each question is
asked of the dashboard (in process, through the real app and daemon service) and of the real
CLI (typer's runner on the same database): the CSV and JSON downloads must be the CLI's bytes,
and the page's ``<data value>``s the JSON's numbers. One test drives the real daemon in Chromium.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from finops.cli.main import app as cli_app
from finops.daemon.cycle import Daemon
from finops.daemon.http.app import ApiState, create_app
from finops.settings import Settings
from finops.usecases.ingest import ingest_paths
from tests.browser import Browser, require_chromium
from tests.conftest import fresh_postgres_database, make_ledger, usage, write_jsonl
from tests.daemon_proc import DaemonProcess

HOSTILE_FLOW = "<script>alert(1)</script>"
HOSTILE_TEAM = '"><img src=x onerror=alert(2)>'
_COUNTS = (
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "unpriced_records",
)


def _records() -> list[dict[str, Any]]:
    """November 2026 across three flows and models, unpriced records (an unknown model), hostile
    names, and a few records today (for the period ``today``)."""
    out = [usage(i) for i in range(600)]
    out += [usage(1000 + i, id=f"u{i}", provider="acme", model="acme-llm-9") for i in range(12)]
    out += [
        usage(2000 + i, id=f"h{i}", flow=HOSTILE_FLOW, tags={"team": HOSTILE_TEAM, "env": "prod"})
        for i in range(9)
    ]
    now = datetime.now(UTC).replace(microsecond=0)
    for i in range(5):
        ts = max(now - timedelta(minutes=7 * i + 1), now.replace(hour=0, minute=0, second=1))
        out.append(usage(3000 + i, id=f"t{i}", ts=ts.isoformat().replace("+00:00", "Z")))
    return out


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database URL with :func:`_records` ingested (one per backend for the whole module)."""
    tmp = tmp_path_factory.mktemp("spend")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'finops.db'}"
        _seed(url, tmp)
        yield url
    else:
        with fresh_postgres_database() as url:
            _seed(url, tmp)
            yield url


def _seed(url: str, tmp: Path) -> None:
    ledger = make_ledger(url)
    try:
        summary = ingest_paths(ledger, [write_jsonl(tmp / "u.jsonl", _records())])
        assert summary.unpriced == 12
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def web(seeded: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The daemon's real app (ApiState over a real Daemon's service), asked from loopback."""
    budgets = tmp_path_factory.mktemp("budgets")
    daemon = Daemon(
        Settings(database_url=seeded, user_hash_secret="test-secret", budgets_dir=budgets),
        budgets_optional=True,
    )
    daemon.budgets.refresh()
    asgi = create_app(ApiState(daemon.service, daemon.tokens, daemon.metrics), dashboard=daemon.viewers)
    try:
        with TestClient(asgi, base_url="http://127.0.0.1", client=("127.0.0.1", 50000)) as client:
            yield client
    finally:
        daemon.service.close()
        daemon.ledger.close()


def _cli(url: str, args: list[str], fmt: str) -> bytes:
    result = CliRunner().invoke(cli_app, ["spend", *args, "--format", fmt, "--db", url])
    assert result.exit_code == 0, result.output
    return result.stdout_bytes


#: (query string pairs, the same question as `finops spend` options)
QUESTIONS: list[tuple[list[tuple[str, str]], list[str]]] = [
    ([("by", "flow"), ("period", "month"), ("month", "2026-11")], ["--by", "flow", "--month", "2026-11"]),
    (
        [("by", "model"), ("period", "range"), ("since", "2026-11-03"), ("until", "2026-11-20T06:30")],
        ["--by", "model", "--since", "2026-11-03", "--until", "2026-11-20T06:30"],
    ),
    ([("by", "tag:team"), ("month", "2026-11")], ["--by", "tag:team", "--month", "2026-11"]),
    (
        [("by", "day"), ("period", "month"), ("month", "2026-11"), ("tz", "Europe/Berlin")],
        ["--by", "day", "--month", "2026-11", "--tz", "Europe/Berlin"],
    ),
    (
        [
            ("by", "model"),
            ("period", "range"),
            ("flow", "support-*"),
            ("flow", "code-review"),
            ("provider", "openai"),
            ("tag", "env=prod"),
            ("top", "1"),
        ],
        shlex.split(
            "--by model --flow support-* --flow code-review --provider openai --tag env=prod --top 1"
        ),
    ),
    (
        [("by", "flow,model"), ("since", "2026-11-10T06:00"), ("tz", "America/New_York"), ("model", "acme*")],
        ["--by", "flow,model", "--since", "2026-11-10T06:00", "--tz", "America/New_York", "--model", "acme*"],
    ),
    ([("by", ""), ("period", "range")], ["--by", ""]),
    (
        [
            ("by", "hour"),
            ("period", "range"),
            ("since", "2026-11-05"),
            ("until", "2026-11-06"),
            ("tz", "Asia/Kolkata"),
        ],
        ["--by", "hour", "--since", "2026-11-05", "--until", "2026-11-06", "--tz", "Asia/Kolkata"],
    ),
    ([("by", "flow"), ("period", "today")], ["--by", "flow", "--today"]),
    (
        [("by", "provider,tag:team"), ("period", "range"), ("top", "2")],
        ["--by", "provider,tag:team", "--top", "2"],
    ),
]


def _rows(page: str, section: str) -> list[list[tuple[bool, str]]]:
    """Each row of the spend table's ``section`` (tbody, tfoot) as its ``<data>``s: (is money, value)."""
    table = re.search(r'<table data-table="spend">.*?</table>', page, re.S)
    assert table is not None
    part = re.search(rf"<{section}>(.*?)</{section}>", table.group(), re.S)
    assert part is not None
    return [
        [(bool(usd), value) for usd, value in re.findall(r'<data( class="usd")? value="([^"]*)"', tr)]
        for tr in re.findall(r"<tr>(.*?)</tr>", part.group(1), re.S)
    ]


def _expected(row: dict[str, Any]) -> list[tuple[bool, str]]:
    """What a row of the table holds for a JSON row: its cost unless nothing in it is priced."""
    unknown = row["unpriced_records"] and row["unpriced_records"] >= row["records"]
    return ([] if unknown else [(True, row["cost_usd"])]) + [(False, str(row[c])) for c in _COUNTS]


@pytest.mark.parametrize("question", range(len(QUESTIONS)))
def test_downloads_are_the_clis_bytes_and_the_page_shows_the_jsons_numbers(
    web: TestClient, seeded: str, question: int
) -> None:
    params, args = QUESTIONS[question]
    csv = web.get("/spend.csv", params=params)
    assert csv.status_code == 200, csv.text
    assert csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.headers["content-disposition"] == 'attachment; filename="spend.csv"'
    assert csv.content == _cli(seeded, args, "csv")
    got = web.get("/spend.json", params=params)
    assert got.status_code == 200, got.text
    assert got.content == _cli(seeded, args, "json")
    doc = json.loads(got.content)

    page = web.get("/spend", params=params)
    assert page.status_code == 200, page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    body, foot = _rows(page.text, "tbody"), _rows(page.text, "tfoot")
    rows = [*doc["rows"], *([doc["others"]] if "others" in doc else [])]
    assert rows, "every question here has an answer"
    assert body == [_expected(r) for r in rows]
    assert foot == [_expected(doc["totals"])]
    # The total row is the sum of the rows, to the nano-dollar.
    priced = sum(Decimal(value) for tr in body for usd, value in tr if usd)
    assert priced == Decimal(doc["totals"]["cost_usd"]) == Decimal(doc["total_usd"])
    # The download links carry the same question (the month filled in when it was left out).
    links = re.findall(r'href="(/spend\.(?:csv|json)\?[^"]*)"', page.text)
    assert len(links) == 2
    for link in links:
        fmt = link[len("/spend.") : link.index("?")]
        assert web.get(unescape(link)).content == (csv if fmt == "csv" else got).content


def test_unpriced_groups_show_a_dash_and_their_count_never_zero_dollars(web: TestClient) -> None:
    params = [("by", "model"), ("month", "2026-11")]
    page = web.get("/spend", params=params).text
    doc = web.get("/spend.json", params=params).json()
    acme = next(r for r in doc["rows"] if r["model"] == "acme-llm-9")
    assert acme["unpriced_records"] == 12 and Decimal(acme["cost_usd"]) == 0
    row = next(tr for tr in re.findall(r"<tr>(.*?)</tr>", page, re.S) if "acme-llm-9" in tr)
    assert 'class="unknown"' in row and "—" in row and "12 unpriced" in row
    assert "$0.00" not in row and 'class="usd"' not in row
    # the total is priced in part: its cost plus the mark that some is unknown
    total = re.search(r"<tfoot>(.*?)</tfoot>", page, re.S)
    assert total is not None and "+?" in total.group(1)
    assert "12 records have no price" in page and "acme/acme-llm-9" in page
    # the chart has no bar for it (cost unknown), and the day chart marks unpriced days hollow
    assert re.search(r'data-value="" data-label="acme-llm-9"', page)
    days = web.get("/spend", params=[("by", "day"), ("month", "2026-11")]).text
    assert 'data-chart="line"' in days and "data-unpriced=" in days


def test_the_form_keeps_what_was_asked_and_says_it_as_a_cli_command(web: TestClient) -> None:
    params = [
        ("by", "day"),
        ("period", "range"),
        ("since", "2026-11-02"),
        ("until", "2026-11-09"),
        ("tz", "Europe/Berlin"),
        ("flow", "support-*"),
        ("flow", "search-rerank"),
        ("tag", "env=prod"),
        ("top", "3"),
    ]
    page = web.get("/spend", params=params).text
    for name, value in params:
        if name != "period":
            assert re.search(rf'name="{name}" value="{re.escape(value)}"', page), (name, value)
    assert '<option value="range" selected>' in page
    assert 'name="flow" value=""' in page  # one more, empty, to add a flow
    assert (
        "finops spend --by day --since 2026-11-02 --until 2026-11-09 --tz Europe/Berlin "
        "--flow &#x27;support-*&#x27; --flow search-rerank --tag env=prod --top 3 --format json"
    ) in page
    assert 'data-chart="line"' in page
    # without a query: this month, by flow (the month is written into the form and the links)
    bare = web.get("/spend").text
    month = f"{datetime.now(UTC):%Y-%m}"
    assert f'name="month" value="{month}"' in bare and f"month={month}" in bare
    assert 'data-chart="bar"' in bare or "No usage in this period" in bare


def test_hostile_names_are_escaped_everywhere(web: TestClient) -> None:
    for by in ("flow", "tag:team", "flow,tag:team"):
        page = web.get("/spend", params={"by": by, "month": "2026-11", "flow": HOSTILE_FLOW}).text
        assert "<script" not in page and "<img" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        if "tag" in by:
            assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    doc = web.get("/spend.json", params={"by": "flow", "month": "2026-11"}).json()
    assert HOSTILE_FLOW in [r["flow"] for r in doc["rows"]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"by": "colour"}, "cannot group by 'colour'"),
        ({"month": "2026-13"}, "month"),
        ({"period": "week"}, "period takes today, month, range, got 'week'"),
        ({"top": "0"}, "top must be at least 1"),
        ({"top": "many"}, "top takes a whole number, got 'many'"),
        ({"period": "range", "since": "99999999d"}, "since '99999999d' is out of range"),
        ({"tag": "team"}, "tag takes KEY=VALUE, got 'team'"),
        ({"period": "range", "since": "2026-11-09", "until": "2026-11-02"}, "since must be before until"),
        ({"period": "range", "since": "next tuesday"}, "cannot read 'next tuesday' as a time"),
        ({"flow": "a\x00b"}, "control character"),
    ],
)
def test_bad_parameters_are_a_one_line_400(web: TestClient, params: dict[str, str], message: str) -> None:
    for path in ("/spend", "/spend.csv", "/spend.json"):
        got = web.get(path, params=params)
        assert got.status_code == 400, (path, got.text)
        assert got.headers["content-type"].startswith("text/html")
        errors = re.findall(r'<p class="error">(.*?)</p>', got.text, re.S)
        assert len(errors) == 1 and "\n" not in errors[0], got.text
        assert message in unescape(errors[0]), errors
        assert "Traceback" not in got.text


def test_only_csv_and_json_are_downloads(web: TestClient) -> None:
    got = web.get("/spend.xml", params={"by": "flow"})
    assert got.status_code == 404 and "/spend.csv and /spend.json" in got.text


# --------------------------------------------------------------------------- real daemon, Chromium


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    require_chromium()
    b = Browser(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield b
    finally:
        b.close()


def test_in_chromium_the_form_answers_keyboard_reaches_every_control_and_nothing_scrolls_sideways(
    tmp_path: Path, browser: Browser
) -> None:
    url = f"sqlite:///{tmp_path / 'finops.db'}"
    _seed(url, tmp_path)
    daemon = DaemonProcess(tmp_path, url).start()
    b = browser
    try:
        query = "by=flow&period=month&month=2026-11&tz=Europe%2FBerlin&flow=*"
        b.goto(f"{daemon.base}/spend?{query}")
        assert b.evaluate("document.title") == "Spend · finops"
        assert b.evaluate("document.querySelector('svg[data-chart=bar]') !== null")
        shown = b.evaluate(
            "[...document.querySelectorAll('table[data-table=spend] tbody tr')]"
            ".map(tr => [tr.cells[0].textContent, tr.querySelector('data.usd')?.value ?? null])"
        )
        doc = httpx.get(f"{daemon.base}/spend.json?{query}").json()
        assert shown == [[r["flow"], r["cost_usd"]] for r in doc["rows"]]
        assert HOSTILE_FLOW in [name for name, _ in shown]  # as text, not as markup
        assert b.evaluate("document.scripts.length") == 0

        # Submitting the form by keyboard: another grouping, then Enter in the field.
        b.evaluate("document.getElementById('f-by').value = 'model'")
        b.evaluate("(document.getElementById('f-by').focus(), true)")
        b.events = [e for e in b.events if e.get("method") != "Page.loadEventFired"]
        for kind in ("rawKeyDown", "char", "keyUp"):
            b.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", text="\r",
                   windowsVirtualKeyCode=13)  # fmt: skip
        b.wait_for("Page.loadEventFired")
        assert "by=model" in b.evaluate("location.search")
        assert b.evaluate("document.getElementById('f-by').value") == "model"
        assert b.evaluate("document.getElementById('f-month').value") == "2026-11"

        # Tab from the top reaches every form control and both download links.
        wanted = set(
            b.evaluate(
                "[...document.querySelectorAll('form.spend-form input, form.spend-form select,"
                " form.spend-form button, a[data-download]')].map(e => e.id || e.dataset.download)"
            )
        )
        assert {
            "f-by",
            "f-period",
            "f-month",
            "f-tz",
            "f-flow-0",
            "f-top",
            "f-submit",
            "csv",
            "json",
        } <= wanted
        b.evaluate("(document.activeElement.blur(), true)")
        reached: set[str] = set()
        for _ in range(80):
            b.press_tab()
            here = b.evaluate("document.activeElement.id || document.activeElement.dataset.download || ''")
            reached.add(here)
            if wanted <= reached:
                break
        assert wanted - reached == set()

        for px in (375, 1440):
            b.width(px)
            assert b.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), px
        assert b.problems() == []
        hosts = {re.sub(r"^(\w+://[^/]+).*", r"\1", u) for u in b.requests()}
        assert hosts == {daemon.base}, hosts
    finally:
        assert daemon.stop() == 0


def test_a_time_series_marks_the_events_of_its_period(web: TestClient) -> None:
    posted = web.post(
        "/v1/annotations",
        json={
            "id": "rel-2.3",
            "at": "2026-11-10T12:00:00Z",
            "text": "release 2.3 <b>",
            "flow": "support-gpt-en",
        },
    )
    assert posted.status_code == 200, posted.text
    by_day = web.get("/spend", params={"by": "day", "month": "2026-11"}).text
    assert by_day.count('data-annotation="deploy"') == 1 and "release 2.3 &lt;b&gt;" in by_day
    mine = web.get("/spend", params={"by": "day", "month": "2026-11", "flow": "support-gpt-en"}).text
    assert mine.count('data-annotation="deploy"') == 1
    other = web.get("/spend", params={"by": "day", "month": "2026-11", "flow": "code-review"}).text
    assert 'data-annotation="deploy"' not in other  # another flow's release is not its event
    by_flow = web.get("/spend", params={"by": "flow", "month": "2026-11"}).text
    assert "data-annotation" not in by_flow  # bars have no time axis


@pytest.mark.parametrize("path", ["/v1/spend", "/spend", "/spend.json"])
def test_a_single_valued_parameter_given_twice_is_refused_not_guessed(web: TestClient, path: str) -> None:
    """month=2026-11&month=2026-10 answered October: the last silently won."""
    for query in ("month=2026-11&month=2026-10", "tz=UTC&tz=Europe/Berlin&today=1", "by=flow&by=model"):
        r = web.get(f"{path}?{query}")
        assert r.status_code == 400, (path, query, r.text[:200])
        assert "times: give it once" in r.text
    assert web.get(f"{path}?flow=a&flow=b&month=2026-11").status_code == 200  # filters repeat
