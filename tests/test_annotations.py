"""Chart annotations: deploys posted by CI through the real daemon, budget file changes seen by the
daemon's watch, price changes and breaches, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select

from finops.domain.annotations import (
    AnnotationError,
    BudgetFileVersion,
    budget_file_annotations,
    covered_flows,
    parse_posted,
)
from finops.domain.budgets import Budget, BudgetMatch
from finops.storage.db import create_engine_for
from finops.storage.tables import annotation_events, budget_breaches, price_entries, price_versions
from finops.usecases.dashboard.annotations import annotations_between
from finops.usecases.ledger import Ledger
from tests.conftest import fresh_postgres_database, make_ledger
from tests.daemon_proc import OTHER_TOKEN, DaemonProcess

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SUPPORT = """\
budgets:
  - flow: support-bot
    owner: "@dana"
    daily_cap_usd: 5
"""


def _rows(db_url: str, kind: str | None = None) -> list[dict[str, Any]]:
    engine = create_engine_for(db_url)
    try:
        a = annotation_events.c
        query = select(annotation_events).order_by(a.id)
        if kind is not None:
            query = query.where(a.kind == kind)
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]
    finally:
        engine.dispose()


def _wait_for(check: Any, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


# --------------------------------------------------------------------------- POST, real daemon


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def daemon(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaemonProcess]:
    """One daemon per database for the module's HTTP tests (a start costs seconds); each test
    uses its own ids and flows, and looks at what it added."""
    tmp = tmp_path_factory.mktemp("annotations")
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp / 'finops.db'}"
        else:
            url = stack.enter_context(fresh_postgres_database())
        proc = DaemonProcess(tmp, url).start()
        stack.callback(proc.stop)
        yield proc


def test_a_retried_post_counts_once_and_a_reused_id_is_a_409(daemon: DaemonProcess) -> None:
    before = len(_rows(daemon.db_url))
    deploy = {
        "id": "release-42",
        "at": "2026-11-20T10:00:00Z",
        "text": "deployed v4.2",
        "flow": "support-bot",
    }
    with daemon.client() as c:
        first = c.post("/v1/annotations", json=deploy)
        assert first.status_code == 200, first.text
        assert first.json() == {"received": 1, "stored": 1, "duplicates": 0}
        again = c.post("/v1/annotations", json=[deploy, {**deploy, "at": "2026-11-20T10:00:05Z"}])
        assert again.json() == {"received": 2, "stored": 0, "duplicates": 2}
        conflict = c.post("/v1/annotations", json={**deploy, "text": "deployed v4.3"})
        assert conflict.status_code == 409
        assert "'release-42'" in conflict.json()["error"]
        # without an id, a replay of the same event is recognised by its content
        note = {"at": "2026-11-20T11:00:00+01:00", "kind": "note", "text": "traffic test starts"}
        assert c.post("/v1/annotations", json=note).json()["stored"] == 1
        assert c.post("/v1/annotations", json=note).json() == {"received": 1, "stored": 0, "duplicates": 1}
        # from another source, the same words are another event
        other = httpx.post(
            daemon.base + "/v1/annotations", json=note, headers={"Authorization": f"Bearer {OTHER_TOKEN}"}
        )
        assert other.json()["stored"] == 1
        # "at" defaults to now; kind to deploy
        assert c.post("/v1/annotations", json={"text": "hotfix"}).json()["stored"] == 1
    rows = _rows(daemon.db_url)[before:]
    assert [(r["kind"], r["text"], r["flow"], r["source"]) for r in rows] == [
        ("deploy", "deployed v4.2", "support-bot", "app"),
        ("note", "traffic test starts", None, "app"),
        ("note", "traffic test starts", None, "gateway"),
        ("deploy", "hotfix", None, "app"),
    ]
    assert rows[0]["ts_us"] == int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp() * 1_000_000)
    assert rows[1]["ts_us"] == int(datetime(2026, 11, 20, 10, tzinfo=UTC).timestamp() * 1_000_000)
    assert abs(rows[3]["ts_us"] / 1e6 - time.time()) < 60


BAD_BODIES: list[tuple[Any, str]] = [
    ("not json", "not JSON"),
    ({"text": "x", "colour": "red"}, "unknown field 'colour'"),
    ({"kind": "deploy"}, "text is required"),
    ({"text": ""}, "text is blank"),
    ({"text": "x" * 501}, "text is longer than 500 characters"),
    ({"text": "line\nbreak"}, "text contains LF"),
    ({"text": "evil \u202e txt"}, "text contains a right-to-left override"),
    ({"text": 12}, "text takes a string"),
    ({"text": "x", "kind": "party"}, "kind must be one of deploy, note"),
    ({"text": "x", "kind": "budget"}, "kind must be one of deploy, note"),
    ({"text": "x", "at": "yesterday"}, "at is not an ISO 8601 time"),
    ({"text": "x", "at": "2026-11-20T10:00:00"}, "at has no time zone"),
    ({"text": "x", "at": 1763632800}, "at takes an ISO 8601 time"),
    ({"text": "x", "at": "0001-01-01T00:00:00+14:00"}, "at must be from 1970-01-01 to 2200-01-01"),
    ({"text": "x", "at": "9999-12-31T23:59:59-12:00"}, "at must be from 1970-01-01 to 2200-01-01"),
    ({"text": "x", "at": "1969-12-31T23:59:59Z"}, "at must be from 1970-01-01 to 2200-01-01"),
    ({"text": "x", "flow": "a\x00b"}, "flow contains NUL"),
    ({"text": "x", "flow": "f" * 129}, "flow is longer than 128 characters"),
    ({"text": "x", "flow": ["a"]}, "flow takes a string"),
    ({"text": "x", "id": "i" * 201}, "id is longer than 200 characters"),
    ({"text": "x", "id": 7}, "id takes a string"),
    ("just a string", "an annotation is a JSON object"),
    ([{"text": "fine"}, {"text": "x", "kind": "?"}], "annotation 1: kind must be one of"),
]


def test_each_bad_field_is_a_400_that_names_it_and_stores_nothing(daemon: DaemonProcess) -> None:
    before = _rows(daemon.db_url)
    with daemon.client() as c:
        for body, expected in BAD_BODIES:
            sent = body if isinstance(body, str) and body == "not json" else json.dumps(body)
            answer = c.post("/v1/annotations", content=sent, headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (body, answer.text)
            message = answer.json()["error"]
            assert expected in message, (body, message)
            assert "\n" not in message
    assert _rows(daemon.db_url) == before


def test_posting_needs_an_ingest_token(daemon: DaemonProcess) -> None:
    before = _rows(daemon.db_url)
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = httpx.post(daemon.base + "/v1/annotations", json={"text": "x"}, headers=headers)
        assert answer.status_code == 401
        assert "bearer token" in answer.json()["error"]
    assert _rows(daemon.db_url) == before


def test_a_budget_file_added_edited_and_removed_is_annotated_once_each(daemon: DaemonProcess) -> None:
    folder = daemon.budgets
    (folder / "support.yaml").write_text(SUPPORT)
    added = _wait_for(lambda: _rows(daemon.db_url, "budget"))
    assert [(r["text"], r["flow"]) for r in added] == [
        ("budget file support.yaml added (flow: support-bot)", "support-bot")
    ]
    (folder / "support.yaml").write_text(SUPPORT.replace("daily_cap_usd: 5", "daily_cap_usd: 8"))
    assert _wait_for(lambda: len(_rows(daemon.db_url, "budget")) == 2)
    (folder / "support.yaml").unlink()
    assert _wait_for(lambda: len(_rows(daemon.db_url, "budget")) == 3)
    time.sleep(1.2)  # a few more cycles: nothing is recorded twice
    texts = [r["text"] for r in _rows(daemon.db_url, "budget")]
    assert texts == [
        "budget file support.yaml added (flow: support-bot)",
        "budget file support.yaml changed (flow: support-bot)",
        "budget file support.yaml removed (flow: support-bot)",
    ]


# --------------------------------------------------------------------------- two daemons, PostgreSQL


@pytest.mark.postgres
def test_two_daemons_store_a_retried_post_and_a_budget_edit_once(tmp_path: Path, postgres_url: str) -> None:
    make_ledger(postgres_url).close()  # migrated once, before the replicas start
    folder = tmp_path / "budgets"
    folder.mkdir()
    (folder / "support.yaml").write_text(SUPPORT)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = DaemonProcess(tmp_path / "a", postgres_url, budgets=folder)
    two = DaemonProcess(tmp_path / "b", postgres_url, budgets=folder)
    starting = [threading.Thread(target=p.start) for p in (one, two)]  # a start costs seconds
    for t in starting:
        t.start()
    for t in starting:
        t.join()
    try:
        deploy = [{"id": f"release-{i}", "text": f"deployed v{i}", "flow": "support-bot"} for i in range(20)]
        answers: list[dict[str, Any]] = []

        def post(proc: DaemonProcess) -> None:
            with proc.client() as c:
                for _ in range(3):  # a CI job retrying against either replica
                    answer = c.post("/v1/annotations", json=deploy)
                    assert answer.status_code == 200, answer.text
                    answers.append(answer.json())

        threads = [threading.Thread(target=post, args=(p,)) for p in (one, two, one, two)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(a["stored"] for a in answers) == 20
        assert sum(a["duplicates"] for a in answers) == 12 * 20 - 20
        assert len(_rows(postgres_url, "deploy")) == 20

        assert _rows(postgres_url, "budget") == []  # the folder as first read is no change
        (folder / "support.yaml").write_text(SUPPORT.replace("daily_cap_usd: 5", "daily_cap_usd: 9"))
        assert _wait_for(lambda: _rows(postgres_url, "budget"))

        def reloads(proc: DaemonProcess) -> int:
            return sum(1 for line in proc.logs() if line.get("msg") == "budgets loaded")

        assert _wait_for(lambda: reloads(one) >= 2 and reloads(two) >= 2)  # both saw the edit
        time.sleep(1.0)
        budget = _rows(postgres_url, "budget")
        assert [(r["text"], r["flow"]) for r in budget] == [
            ("budget file support.yaml changed (flow: support-bot)", "support-bot")
        ]
    finally:
        one.stop()
        two.stop()


# --------------------------------------------------------------------------- annotations_between


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def _seed(ledger: Ledger) -> None:
    rows = [
        ("posted:a", NOW - timedelta(days=2), "deploy", "support-bot", "deployed v1"),
        ("posted:b", NOW - timedelta(days=1), "note", None, "load test"),
        ("posted:c", NOW - timedelta(hours=3), "deploy", "search", "deployed search v2"),
        ("posted:d", NOW - timedelta(days=40), "deploy", "support-bot", "too old"),
    ]
    with ledger.engine.begin() as conn:
        conn.execute(
            insert(annotation_events),
            [
                {
                    "annotation_id": i,
                    "ts_us": _us(at),
                    "kind": k,
                    "flow": f,
                    "text": t,
                    "source": "ci",
                    "created_us": 1,
                }
                for i, at, k, f, t in rows
            ],
        )
        body = json.dumps({"input": "2.5", "output": "10"})
        conn.execute(
            insert(price_entries),
            [
                {
                    "key": "k1", "layer": "imported", "provider": "openai", "model": "gpt-4o",
                    "effective_from": date(2026, 11, 1), "source": "test", "body": body, "created_us": 1,
                },
                {
                    "key": "k2", "layer": "imported", "provider": "openai", "model": "gpt-4o-mini",
                    "effective_from": date(2026, 9, 1), "source": "test", "body": body, "created_us": 1,
                },
            ],
        )  # fmt: skip
        conn.execute(
            insert(price_versions),
            [
                {
                    "version": "v1", "layer": "default", "provider": "openai", "model": "gpt-4o",
                    "effective_from": date(2026, 11, 1), "source": "catalog", "discount": None, "body": body,
                    "first_used_us": 1,
                },
                {
                    "version": "v2", "layer": "default", "provider": "anthropic", "model": "claude-sonnet-4",
                    "effective_from": date(2026, 11, 15), "source": "catalog", "discount": None, "body": body,
                    "first_used_us": 1,
                },
            ],
        )  # fmt: skip
        breaches = [
            ("support-bot", NOW - timedelta(hours=5), "0.8"),
            ("eu-tagged", NOW - timedelta(hours=4), "1.0"),
            ("gone-budget", NOW - timedelta(hours=2), "0.5"),
        ]
        conn.execute(
            insert(budget_breaches),
            [
                {
                    "budget_key": key, "kind": "threshold", "period": "2026-11-20", "threshold": th,
                    "spend_nanos": 1, "cap_nanos": 2, "created_us": _us(at), "resolved_us": None,
                }
                for key, at, th in breaches
            ],
        )  # fmt: skip


BUDGETS = (
    Budget(owner="@dana", daily_cap_usd=Decimal(5), flow="support-bot"),
    Budget(
        owner="@eu",
        daily_cap_usd=Decimal(5),
        name="eu-tagged",
        match=BudgetMatch("search*", {"region": "eu"}),
    ),
)


def test_every_kind_in_the_window_oldest_first(ledger: Ledger) -> None:
    _seed(ledger)
    with ledger.engine.connect() as conn:
        found = annotations_between(conn, NOW - timedelta(days=30), NOW, budgets=BUDGETS)
    assert [(a.at, a.kind, a.text, a.flow) for a in found] == [
        (datetime(2026, 11, 1, tzinfo=UTC), "price", "gpt-4o price from 2026-11-01", None),
        (datetime(2026, 11, 15, tzinfo=UTC), "price", "claude-sonnet-4 price from 2026-11-15", None),
        (NOW - timedelta(days=2), "deploy", "deployed v1", "support-bot"),
        (NOW - timedelta(days=1), "note", "load test", None),
        (
            NOW - timedelta(hours=5),
            "breach",
            "support-bot passed 80% of its daily cap (2026-11-20)",
            "support-bot",
        ),
        (NOW - timedelta(hours=4), "breach", "eu-tagged reached its daily cap (2026-11-20)", None),
        (NOW - timedelta(hours=3), "deploy", "deployed search v2", "search"),
        (NOW - timedelta(hours=2), "breach", "gone-budget passed 50% of its daily cap (2026-11-20)", None),
    ]


def test_the_window_is_half_open_for_prices_and_events(ledger: Ledger) -> None:
    _seed(ledger)
    with ledger.engine.connect() as conn:
        upto = annotations_between(conn, datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
        from_ = annotations_between(
            conn, datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
        )
        none = annotations_between(conn, NOW, NOW + timedelta(days=1))
    assert [a.text for a in upto] == ["too old"]  # gpt-4o's price of 2026-11-01 is not before it
    assert [a.text for a in from_] == ["gpt-4o price from 2026-11-01"]
    assert none == []


def test_one_flow_gets_its_own_events_every_flow_events_and_its_budgets_breaches(ledger: Ledger) -> None:
    _seed(ledger)
    start = NOW - timedelta(days=3)
    with ledger.engine.connect() as conn:
        support = annotations_between(conn, start, NOW, flow="support-bot", budgets=BUDGETS)
        search = annotations_between(conn, start, NOW, flow="search-eu", budgets=BUDGETS)
        legacy = annotations_between(conn, start, NOW, flow="search-eu")
    assert [(a.kind, a.text, a.flow) for a in support] == [
        ("deploy", "deployed v1", "support-bot"),
        ("note", "load test", None),
        ("breach", "support-bot passed 80% of its daily cap (2026-11-20)", "support-bot"),
        (
            "breach",
            "gone-budget passed 50% of its daily cap (2026-11-20)",
            None,
        ),  # its budget is gone: shown everywhere
    ]
    assert [(a.kind, a.text, a.flow) for a in search] == [
        ("note", "load test", None),
        (
            "breach",
            "eu-tagged reached its daily cap (2026-11-20)",
            "search-eu",
        ),  # the glob covers it (tags: part of it)
        ("breach", "gone-budget passed 50% of its daily cap (2026-11-20)", None),
    ]
    # without budgets, every breach is on every flow (as before)
    assert [a.kind for a in legacy] == ["note", "breach", "breach", "breach"]


# --------------------------------------------------------------------------- pure rules


def test_an_id_is_derived_from_the_event_so_a_replay_matches() -> None:
    doc = {"at": "2026-11-20T10:00:00Z", "text": "deployed", "flow": "f"}
    a = parse_posted(doc, source="ci", now=NOW)
    assert a == parse_posted(dict(doc), source="ci", now=NOW + timedelta(hours=1))
    assert a.annotation_id.startswith("digest:")
    assert a.annotation_id != parse_posted(doc, source="other", now=NOW).annotation_id
    assert a.annotation_id != parse_posted({**doc, "flow": None}, source="ci", now=NOW).annotation_id
    assert a.annotation_id != parse_posted({**doc, "kind": "note"}, source="ci", now=NOW).annotation_id
    given = parse_posted({**doc, "id": "r1"}, source="ci", now=NOW)
    assert (given.annotation_id, given.given_id) == ("posted:r1", "r1")
    assert parse_posted({"text": "t"}, source="ci", now=NOW).at == NOW
    with pytest.raises(AnnotationError, match=r"^text is required"):
        parse_posted({"text": None}, source="ci", now=NOW)


def test_budget_file_changes_name_the_file_and_its_flows() -> None:
    one = BudgetFileVersion("d1", ("support",), True)
    two = BudgetFileVersion("d2", ("a", "b"), False)
    broken = BudgetFileVersion("d3")
    before = {"one.yaml": one, "gone.yaml": two, "same.yaml": one}
    after = {"one.yaml": broken, "new.yaml": two, "same.yaml": one}
    found = budget_file_annotations(before, after, now=NOW)
    assert [(a.annotation_id, a.text, a.flow) for a in found] == [
        (
            "budget-file:gone.yaml:removed-d2",
            "budget file gone.yaml removed (flows: a, b and flows matched by a glob)",
            None,
        ),
        (
            "budget-file:new.yaml:d2",
            "budget file new.yaml added (flows: a, b and flows matched by a glob)",
            None,
        ),
        ("budget-file:one.yaml:d3", "budget file one.yaml changed", None),
    ]
    assert all(a.kind == "budget" and a.at == NOW for a in found)
    assert budget_file_annotations(after, after, now=NOW) == []
    flows = covered_flows(
        [
            Budget(owner="o", daily_cap_usd=Decimal(1), flow="x"),
            Budget(owner="o", daily_cap_usd=Decimal(1), match=BudgetMatch("y")),
        ]
    )
    assert flows == (("x", "y"), True)
    assert covered_flows([Budget(owner="o", daily_cap_usd=Decimal(1), match=BudgetMatch("y-*"))]) == (
        (),
        False,
    )


def test_the_stored_count_is_per_id(ledger: Ledger) -> None:
    from finops.usecases.annotations import AnnotationConflict, post_annotations

    saved = post_annotations(
        ledger, [{"id": "x", "text": "a"}, {"id": "x", "text": "a"}], source="ci", now=NOW
    )
    assert (saved.stored, saved.duplicates) == (1, 1)
    with pytest.raises(AnnotationConflict, match="'x'"):
        post_annotations(
            ledger, [{"id": "y", "text": "b"}, {"id": "x", "text": "changed"}], source="ci", now=NOW
        )
    with ledger.engine.connect() as conn:  # all or none: "y" was rolled back with the conflict
        assert conn.scalar(select(func.count()).select_from(annotation_events)) == 1


def test_breaches_read_as_words() -> None:
    from finops.usecases.dashboard.annotations import breach_text

    assert breach_text("b", "threshold", "2026-11-20", "0.8") == "b passed 80% of its daily cap (2026-11-20)"
    assert breach_text("b", "threshold", "2026-11", "1.0") == "b reached its monthly cap (2026-11)"
    assert breach_text("b", "monthly", "2026-11", "0.5") == "b passed 50% of its monthly cap (2026-11)"
    assert breach_text("b", "fanout", "2026-11-20", "8") == "b: more than 8 tool calls a request (2026-11-20)"
    assert (
        breach_text("b", "cost_per_success", "2026-11", "0.05") == "b: cost per success over $0.05 (2026-11)"
    )
    assert breach_text("b", "odd", "2026-11-20", "") == "b: odd (2026-11-20)"


def test_a_flood_of_posted_events_draws_only_the_newest(ledger: Ledger) -> None:
    """An ingest token may post without end; a window draws the newest MAX_EVENTS posted events
    (20,000 notes made one flow page 18 MB)."""
    from finops.usecases.annotations import post_annotations
    from finops.usecases.dashboard.annotations import MAX_EVENTS

    docs = [
        {"id": f"flood-{i}", "at": (NOW - timedelta(seconds=i)).isoformat(), "text": f"n{i}", "kind": "note"}
        for i in range(MAX_EVENTS + 50)
    ]
    assert post_annotations(ledger, docs, source="ci", now=NOW).stored == MAX_EVENTS + 50
    with ledger.engine.connect() as conn:
        found = annotations_between(conn, NOW - timedelta(days=1), NOW + timedelta(seconds=1))
    assert len(found) == MAX_EVENTS
    assert found[-1].text == "n0" and found[0].text == f"n{MAX_EVENTS - 1}"  # the newest, oldest first
