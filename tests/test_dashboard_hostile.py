"""The dashboard against a hostile sender and a hostile reader: names built to break out of HTML,
SVG and URLs in every field a page shows, and query parameters no form would send.

Every page must stay a page (no script, no inline style or event handler, nothing from elsewhere,
no raw prompt), and every odd question must be answered in one line with a 4xx, never a 500.
Against the real daemon over real HTTP, on a temporary SQLite ledger.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import httpx
import pytest

from tests.daemon_proc import DaemonProcess

X = "\"><svg onload=alert(1)><script>alert(2)</script>'`"
PROMPT = "SECRET-PROMPT-TEXT never shown"
LONG = "checkout-" + "x" * 119  # a flow name as long as a record may send, without a break

BUDGETS = f"""budgets:
  - name: '{X.replace("'", "''")} glob'
    match: {{flow: '"><svg*', tags: {{team: a}}}}
    owner: U01
    daily_cap_usd: "0.001"
    timezone: America/Los_Angeles
  - flow: 'pay/checkout v2'
    owner: U01
    daily_cap_usd: "100"
    timezone: Asia/Kolkata
    max_cost_per_success_usd: "0.01"
    max_tool_calls_per_request: 2
  - flow: '{LONG}'
    owner: U01
    daily_cap_usd: "100"
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> DaemonProcess:
    tmp = tmp_path_factory.mktemp("hostile")
    budgets = tmp / "budgets"
    budgets.mkdir()
    (budgets / "a.yaml").write_text(BUDGETS, encoding="utf-8")
    (budgets / "b<i>.yaml").write_text("budgets: [ {flow: x, daily_cap_usd: \n", encoding="utf-8")
    d = DaemonProcess(tmp, f"sqlite:///{tmp / 'f.db'}", budgets=budgets).start()
    now = datetime.now(UTC)
    records = [
        {
            "id": f"h-{i}", "ts": (now - timedelta(hours=7 * i)).isoformat(), "provider": "openai",
            "model": "gpt-4o-mini" if i % 2 else X, "flow": X if i % 3 else "pay/checkout v2",
            "prompt_id": X + "p", "prompt": PROMPT, "tags": {X + "k": X + "v", "team": "a"},
            "input_tokens": 1000 + i, "output_tokens": 100, "tool_calls": 3,
            "status": "error" if i % 5 == 0 else "ok",
        }
        for i in range(20)
    ]  # fmt: skip
    with d.client() as c:
        assert c.post("/v1/usage", json=records).json()["stored"] == 20
        long = [
            {**r, "id": f"long-{r['id']}", "flow": LONG, "model": LONG[:64], "prompt_id": LONG}
            for r in records
        ]
        assert c.post("/v1/usage", json=long).json()["stored"] == 20
        notes = [
            {"id": "a1", "text": X + " deploy", "flow": X},
            {"id": "a2", "text": "</title>" + X, "kind": "note"},
        ]
        assert c.post("/v1/annotations", json=notes).status_code == 200
        outcome = {"id": "o1", "flow": X, "status": "success", "ts": now.isoformat()}
        assert c.post("/v1/outcomes", json=[outcome]).status_code == 200
    yield d
    d.stop()


class _Page(HTMLParser):
    """What a page would run or fetch: script and style elements, event handlers, style
    attributes, and every link (to crawl, and to check none leaves the site)."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: list[tuple[str, ...]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "iframe", "object", "embed", "foreignobject", "base"):
            self.bad.append((tag,))
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.bad.append((tag, name, value or ""))
            if name in ("href", "src", "action", "xlink:href", "formaction") and value is not None:
                target = value.strip().lower()
                if target.startswith("//") or (":" in target.split("/")[0] and target != "data:,"):
                    self.bad.append((tag, name, value))
                elif name in ("href", "action"):
                    self.links.append(value)


def test_no_page_runs_fetches_or_shows_what_it_must_not(daemon: DaemonProcess) -> None:
    seen: set[str] = set()
    todo = ["/", "/spend", "/outcomes", "/prompts", "/spend?by=tag:team,model,provider&period=range"]
    problems: list[str] = []
    with httpx.Client(base_url=daemon.base, timeout=60) as c:
        while todo and len(seen) < 120:
            path = todo.pop(0)
            if path in seen:
                continue
            seen.add(path)
            r = c.get(path)
            if r.status_code >= 500 or PROMPT in r.text:
                problems.append(f"{r.status_code} {path}")
            if not r.headers.get("content-type", "").startswith("text/html"):
                continue
            found = _Page()
            found.feed(r.text)
            problems += [f"{path}: {bad}" for bad in found.bad]
            for href in found.links:
                url = urlsplit(urljoin(daemon.base + path, href))
                if url.path != "/logout":
                    todo.append(url.path + (f"?{url.query}" if url.query else ""))
    assert any(p.startswith("/flows/%22%3E%3Csvg") for p in seen), sorted(seen)  # the hostile flow's page
    assert len(seen) > 15 and problems == []


@pytest.mark.parametrize("path", ["/outcomes", "/prompts"])
@pytest.mark.parametrize("month", ["0001-01", "9999-12", "1969-12"])
def test_a_month_out_of_range_is_one_line_not_a_500(daemon: DaemonProcess, path: str, month: str) -> None:
    r = httpx.get(daemon.base + path, params={"month": month})
    assert r.status_code == 400 and "month must be from 1970-01 to 2200-12" in r.text


def test_the_loopback_sign_in_redirect_survives_any_next(daemon: DaemonProcess) -> None:
    r = httpx.get(daemon.base + "/login", params={"next": "/flows/\u2028\t/x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/flows/%E2%80%A8%09/x"


HOSTILE_VALUES = [
    "", "-1", "99999999999999999999999", "0000-00", "9999-12", "2026-13", "../../etc", "Etc/../../etc/passwd",
    "/etc/localtime", "\u00e9\u00b2\u202e", "a" * 10_000, "%", "NaN", "*", "tag:", "2026-02-30", "0001-01-01",
]  # fmt: skip


@pytest.mark.parametrize(
    "path", ["/", "/spend", "/spend.csv", "/outcomes", "/prompts", "/flows/pay%2Fcheckout%20v2"]
)
def test_hostile_query_parameters_are_never_a_500(daemon: DaemonProcess, path: str) -> None:
    statuses = set()
    with httpx.Client(base_url=daemon.base, timeout=60) as c:
        for name in ("month", "top", "flow", "tz", "by", "period", "since", "until", "tag", "model"):
            for value in HOSTILE_VALUES:
                r = c.get(path, params={name: value})
                assert r.status_code < 500 and "Traceback" not in r.text, (name, value[:40], r.text[-300:])
                statuses.add(r.status_code)
            r = c.get(path, params=[(name, "2026-11"), (name, "x")])
            assert r.status_code < 500, (name, r.text[-300:])
    assert 200 in statuses


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example"}, 403),  # DNS rebinding: another site's name pointed at 127.0.0.1
        ({"Host": "evil.example:8787"}, 403),
        ({"Host": "127.0.0.1.evil.example"}, 403),
        ({"X-Forwarded-For": "203.0.113.9"}, 403),  # a proxy on this machine: the reader is elsewhere
        ({"Forwarded": "for=203.0.113.9"}, 403),
        ({"X-Real-IP": "203.0.113.9"}, 403),
        ({"Host": "localhost"}, 200),
        ({"Host": "[::1]:8787"}, 200),
        ({}, 200),
    ],
)
def test_without_tokens_only_this_machine_by_its_own_name_may_look(
    daemon: DaemonProcess, headers: dict[str, str], status: int
) -> None:
    for path in ("/", "/spend.json"):
        r = httpx.get(daemon.base + path, headers=headers, follow_redirects=False)
        assert r.status_code == status, (path, headers, r.text[-200:])
        if status == 403:
            assert "FINOPS_DASHBOARD_TOKENS" in r.text and "data-tile" not in r.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/flowz", 404),
        ("GET", "/nothing/here?<b>=1", 404),
        ("GET", "//evil.example", 404),
        ("GET", "/static/other.css", 404),
        ("POST", "/", 405),
        ("PUT", "/spend", 405),
        ("GET", "/logout", 405),
        ("GET", "/v1/nothing", 404),
        ("DELETE", "/v1/usage", 405),
        ("GET", "/spend/", 404),  # no bare redirect without the headers
        ("GET", "/outcomes/", 404),
    ],
)
def test_an_address_with_no_page_still_carries_the_policy(
    daemon: DaemonProcess, method: str, path: str, status: int
) -> None:
    r = httpx.request(method, daemon.base + path, follow_redirects=False)
    assert r.status_code == status
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    if status == 405:
        assert r.headers["allow"]
    if not path.startswith("/v1/"):
        assert r.headers["content-type"].startswith("text/html") and "<b>" not in r.text
        assert r.text.count('class="error"') == 1


def _tile_state(html: str, key: str) -> str | None:
    found = re.search(rf'data-tile="{re.escape(key)}" data-state="(\w+)"', html)
    return found.group(1) if found else None


def test_a_broken_budget_file_is_a_tile_and_says_what_is_still_enforced(tmp_path: Path) -> None:
    """A script reading data-state must not see an all-green band while a budget file is broken:
    red when its budgets are not enforced at all, yellow while its last good version is."""
    budgets = tmp_path / "budgets"
    budgets.mkdir()
    (budgets / "good.yaml").write_text('budgets:\n  - {flow: kept, owner: U01, daily_cap_usd: "5"}\n')
    d = DaemonProcess(tmp_path, f"sqlite:///{tmp_path / 'f.db'}", budgets=budgets).start()
    try:
        with httpx.Client(base_url=d.base, timeout=60) as web:
            page = web.get("/").text
            assert _tile_state(page, "health:budget-files") == "green" and "every file read" in page
            (budgets / "good.yaml").write_text("budgets: [ {flow: kept, daily_cap_usd: \n")
            deadline = time.monotonic() + 20
            while _tile_state(page := web.get("/").text, "health:budget-files") == "green":
                assert time.monotonic() < deadline, "the daemon never saw the broken file"
                time.sleep(0.2)
            assert _tile_state(page, "health:budget-files") == "yellow"
            assert _tile_state(page, "budget:kept") is not None  # its last good version: still a tile
            assert "the last version that could is enforced" in page and "not enforced: " not in page
            (budgets / "never.yaml").write_text("budgets: [ {flow: x, daily_cap_usd: \n")
            while _tile_state(page := web.get("/").text, "health:budget-files") != "red":
                assert time.monotonic() < deadline + 20, "the daemon never saw the second file"
                time.sleep(0.2)
            banners = re.findall(r'<p class="error">.*?</p>', page)
            assert (
                len(banners) == 2 and "never.yaml</code>" in banners[0] and "good.yaml</code>" in banners[1]
            )
            assert "is not enforced" in banners[0] and "last version that could is enforced" in banners[1]
    finally:
        d.stop()


def test_the_narrative_does_not_call_a_broken_budget_file_nothing(daemon: DaemonProcess) -> None:
    page = httpx.get(daemon.base + "/").text
    assert _tile_state(page, "health:budget-files") == "red"  # b<i>.yaml was never valid
    story = page[page.index("data-narrative") :]
    assert "Nothing needs attention" not in story and "1 budget file cannot be read" in story


def test_hostile_pages_in_a_real_browser_run_nothing_and_break_no_policy(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    """Chromium reports a CSP violation or an uncaught script as a problem, and a script that ran
    would have left a dialog or a console call: none on the pages that show the hostile names."""
    from tests.browser import Browser, require_chromium

    require_chromium()
    b = Browser(tmp_path / "profile")
    try:
        pages = ("/", "/flows/" + quote(X, safe=""), "/flows/" + LONG, "/prompts", "/outcomes",
                 "/spend?by=model,flow,tag:team&period=range", "/spend?by=flow&period=today")  # fmt: skip
        for path in pages:
            b.goto(daemon.base + path)
            assert b.problems() == [], path
            assert not [e for e in b.events if e.get("method") == "Page.javascriptDialogOpening"], path
            assert b.evaluate("document.querySelectorAll('script').length") == 0, path
            for px in (375, 1440):  # a name with no place to break must not widen the page
                b.width(px)
                assert b.evaluate("document.documentElement.scrollWidth") <= px, (path, px)
    finally:
        b.close()
