"""Admission control: a blocking cap is a cap, whatever the concurrency.

The use case on both databases (holds, settle, release, lapse, idempotency, fail closed), then the
proof the issue asks for: 32 client threads against real daemons (one on SQLite, two replicas on
one PostgreSQL), each reserve -> "LLM call" -> usage with the reservation id, against a $1.00 cap.
"""

from __future__ import annotations

import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from finops.config.budget_files import load_budget_dir
from finops.domain.budgets import Budget
from finops.errors import UsageError
from finops.storage.db import create_engine_for
from finops.storage.tables import reservations, usage_records
from finops.usecases.admission import ReserveRequest, lapse_holds, release, reserve
from finops.usecases.budgets import CheckResult, check_flow, check_ledger
from finops.usecases.dashboard.flow import flow_page
from finops.usecases.ingest import ingest_objects
from finops.usecases.ledger import Ledger
from tests.conftest import make_ledger
from tests.daemon_proc import DaemonProcess
from tests.racing import after_statement, wait_done_or_blocked

CENT = Decimal("0.01")
CENT_NANOS = 10_000_000
MODEL = "gpt-4o-2024-08-06"  # $10 per million output tokens: 1,000 output tokens cost exactly $0.01


def budget_folder(tmp: Path, cap: str = "1.00", flow: str = "admit") -> Path:
    folder = tmp / "budgets"
    folder.mkdir(exist_ok=True)
    (folder / "admit.yaml").write_text(
        f"budgets:\n  - flow: {flow}\n    owner: '@dana'\n    slack_channel: '#costs'\n"
        f"    daily_cap_usd: {cap}\n    on_breach: block\n"
    )
    return folder


def budgets(tmp: Path, cap: str = "1.00") -> list[Budget]:
    return [located.budget for located in load_budget_dir(budget_folder(tmp, cap)).budgets]


def call_usage(rid: str | None, *, output_tokens: int = 1000, ts: datetime | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"call-{uuid.uuid4().hex}",
        "ts": (ts or datetime.now(UTC)).isoformat(),
        "provider": "openai",
        "model": MODEL,
        "flow": "admit",
        "output_tokens": output_tokens,
    }
    if rid is not None:
        record["reservation_id"] = rid
    return record


def spend_nanos(url: str) -> int:
    engine = create_engine_for(url)
    with engine.connect() as conn:
        total = int(conn.scalar(select(func.coalesce(func.sum(usage_records.c.cost_nanos), 0))) or 0)
    engine.dispose()
    return total


# ---------------------------------------------------------------------------- the use case
def test_holds_count_until_the_cap_is_reached_exactly(ledger: Ledger, tmp_path: Path) -> None:
    found = budgets(tmp_path, "0.05")
    answers = [
        reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app") for _ in range(7)
    ]
    assert [a.decision for a in answers] == ["allow"] * 5 + ["deny"] * 2  # reaching $0.05 exactly is allowed
    assert answers[4].held == {"admit": 50_000_000} and "would be exceeded" in answers[5].reason
    with ledger.engine.connect() as conn:
        check = check_flow(conn, found, flow="admit", tags={}, now=datetime.now(UTC), estimate_usd=CENT)
    assert check.decision == "deny" and check.held == {"admit": 50_000_000}


def test_usage_settles_its_hold_with_the_actual_cost_and_release_frees_one(
    ledger: Ledger, tmp_path: Path
) -> None:
    found = budgets(tmp_path, "0.05")
    holds = [
        reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app") for _ in range(5)
    ]
    assert release(ledger, holds[0].reservation_id or "") == "released"
    assert release(ledger, holds[0].reservation_id or "") == "released"  # twice is harmless
    # the call cost $0.003, not $0.01: the actual cost replaces the hold
    ingest_objects(ledger, [call_usage(holds[1].reservation_id, output_tokens=300)], source="app")
    ingest_objects(
        ledger, [call_usage(holds[1].reservation_id, output_tokens=300)], source="app"
    )  # settled once
    with ledger.engine.connect() as conn:
        check = check_flow(conn, found, flow="admit", tags={}, now=datetime.now(UTC))
        statuses = dict(conn.execute(select(reservations.c.id, reservations.c.status)).all())
    assert check.held == {"admit": 30_000_000} and check.states[0].spend_nanos == 6_000_000
    assert statuses[holds[0].reservation_id] == "released" and statuses[holds[1].reservation_id] == "settled"
    more = [
        reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app") for _ in range(2)
    ]
    assert [m.decision for m in more] == ["allow", "deny"]  # 0.006 + 0.03 + 0.01 fits; one more would not


def test_usage_naming_an_unknown_or_released_reservation_is_stored_and_priced(
    ledger: Ledger, tmp_path: Path
) -> None:
    found = budgets(tmp_path)
    hold = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app")
    release(ledger, hold.reservation_id or "")
    summary = ingest_objects(ledger, [call_usage("rsv_nope"), call_usage(hold.reservation_id)], source="app")
    assert summary.stored == 2 and summary.cost_nanos == 20_000_000


def test_a_hold_lapses_at_its_expiry(ledger: Ledger, tmp_path: Path) -> None:
    found = budgets(tmp_path, "0.01")
    start = datetime.now(UTC)
    first = reserve(
        ledger, found, ReserveRequest("admit", estimate_usd=CENT, ttl_s=30), source="app", now=start
    )
    assert (
        reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app", now=start).decision
        == "deny"
    )
    later = start + timedelta(seconds=31)
    assert reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app", now=later).allow
    assert lapse_holds(ledger, now=later)["lapsed"] == 1 and first.allow


def test_the_same_request_id_gets_the_same_answer_and_one_hold(ledger: Ledger, tmp_path: Path) -> None:
    found = budgets(tmp_path, "0.02")
    ask = ReserveRequest("admit", estimate_usd=CENT, request_id="req-42")
    first, again = (reserve(ledger, found, ask, source="app") for _ in range(2))
    assert again.replayed and again.reservation_id == first.reservation_id
    other = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app")
    assert other.allow  # one hold of $0.01 was taken by req-42, not two


def test_an_unpriced_model_without_an_estimate_is_denied_on_a_blocking_budget(
    db_url: str, tmp_path: Path
) -> None:
    found = budgets(tmp_path)
    ask = ReserveRequest("admit", model="acme-9000", input_tokens=100, max_output_tokens=100)
    led = make_ledger(db_url)
    denied = reserve(led, found, ask, source="app")
    assert (
        denied.decision == "deny" and "no price" in denied.reason and "FINOPS_ADMIT_UNPRICED" in denied.reason
    )
    led.close()
    lenient = make_ledger(db_url, admit_unpriced=True)
    allowed = reserve(lenient, found, ask, source="app")
    lenient.close()
    assert allowed.allow and allowed.estimate.nanos is None


def test_the_estimate_is_the_worst_case_of_the_call(ledger: Ledger, tmp_path: Path) -> None:
    found = budgets(tmp_path)
    ask = ReserveRequest("admit", model=MODEL, input_tokens=1000, max_output_tokens=1000)
    hold = reserve(ledger, found, ask, source="app")
    assert hold.estimate.nanos == 12_500_000  # 1,000 input at $2.50/M + 1,000 output at $10/M
    with pytest.raises(UsageError, match="say what to hold"):
        reserve(ledger, found, ReserveRequest("admit", model=MODEL), source="app")


# ---------------------------------------------------------------------------- the proof
def _client(proc: DaemonProcess) -> httpx.Client:
    return proc.client()


def _run_clients(
    procs: list[DaemonProcess],
    *,
    threads: int = 32,
    estimate: Any = lambda: CENT,
    call_s: float = 0.05,
    ttl_s: int = 120,
    kill_after: int | None = None,
) -> dict[str, Any]:
    """Each thread: reserve -> sleep (the call) -> usage with the reservation id, until denied.
    ``kill_after``: SIGKILL the first replica after that many allows; its clients move on."""
    allowed, under = [], []
    lock = threading.Lock()
    killed = threading.Event()

    def worker(n: int) -> None:
        clients = [_client(p) for p in procs]
        order = [clients[n % len(clients)], *clients]
        try:
            denied = 0
            while denied < 3:  # a deny could be a hold about to lapse; ask a few times
                est = estimate()
                for client in order:
                    if killed.is_set() and client is clients[0] and len(clients) > 1:
                        continue
                    try:
                        answer = client.post(
                            "/v1/budgets/admit/reserve", json={"estimate_usd": str(est), "ttl_s": ttl_s}
                        )
                    except httpx.HTTPError:
                        continue  # that replica is gone: ask the next
                    break
                else:
                    return
                doc = answer.json()
                assert answer.status_code == 200, doc
                if not doc["allow"]:
                    denied += 1
                    time.sleep(0.05)
                    continue
                with lock:
                    allowed.append(doc["reservation_id"])
                    under.append(CENT - est)
                    if kill_after is not None and len(allowed) == kill_after and not killed.is_set():
                        killed.set()
                        procs[0].stop(signal.SIGKILL)
                time.sleep(call_s)
                for client in reversed(order):  # settle on any replica that answers
                    try:
                        posted = client.post("/v1/usage", json=call_usage(doc["reservation_id"]))
                    except httpx.HTTPError:
                        continue
                    assert posted.status_code == 200, posted.text
                    break
        finally:
            for c in clients:
                c.close()

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=300)
    return {"allowed": len(allowed), "max_under": max([u for u in under if u > 0], default=Decimal(0))}


@pytest.fixture
def replicas(request: pytest.FixtureRequest, tmp_path: Path, db_url: str) -> Iterator[list[DaemonProcess]]:
    """One daemon on SQLite; two replicas on one PostgreSQL."""
    folder = budget_folder(tmp_path)
    count = 1 if db_url.startswith("sqlite") else 2
    procs = []
    for i in range(count):
        home = tmp_path / f"replica{i}"
        home.mkdir()
        procs.append(DaemonProcess(home, db_url, budgets=folder).start())
    yield procs
    for p in procs:
        p.stop()


def test_32_clients_with_exact_estimates_spend_exactly_the_cap(replicas: list[DaemonProcess]) -> None:
    result = _run_clients(replicas)
    assert result["allowed"] == 100
    assert spend_nanos(replicas[0].db_url) == 1_000_000_000  # $1.00 exactly, never a cent more


def test_estimates_off_by_20_percent_overrun_at_most_what_calls_in_flight_under_estimated(
    replicas: list[DaemonProcess],
) -> None:
    """At the last allowed reserve, spend + held + its estimate <= cap; each hold open then can
    settle above its estimate by at most its under-estimate, and at most 32 are open at once.
    So overrun <= 32 x the largest under-estimate, and 0 when nobody under-estimates. (A bound
    of one under-estimate cannot hold: 32 calls in flight, each $0.002 under, all settle.)"""
    rng = random.Random(11)
    cents = [Decimal(v) / 1000 for v in range(8, 13)]  # $0.008 .. $0.012
    result = _run_clients(replicas, estimate=lambda: rng.choice(cents))
    overrun = spend_nanos(replicas[0].db_url) - 1_000_000_000
    assert overrun <= 32 * int(result["max_under"] * 10**9), (overrun, result)
    over = _run_clients(replicas, estimate=lambda: rng.choice(cents[2:]))  # nobody under-estimates
    assert over["allowed"] == 0  # the cap was reached above: every later reserve is denied


@pytest.mark.postgres
def test_a_replica_killed_mid_run_lapses_its_holds_and_the_cap_holds(
    tmp_path: Path, postgres_url: str
) -> None:
    folder = budget_folder(tmp_path)
    procs = []
    for i in range(2):
        home = tmp_path / f"replica{i}"
        home.mkdir()
        procs.append(DaemonProcess(home, postgres_url, budgets=folder).start())
    try:
        result = _run_clients(procs, ttl_s=3, kill_after=40)
    finally:
        procs[1].stop()
    assert 0 < result["allowed"] <= 100
    assert spend_nanos(postgres_url) <= 1_000_000_000


@pytest.mark.parametrize("via", ["check_flow", "check_ledger"])
def test_a_check_racing_a_settle_never_sees_the_money_in_neither_place(
    ledger: Ledger, tmp_path: Path, via: str
) -> None:
    """A settle moves a call's money from the holds to the spend in one commit; a check reads both
    in separate statements. Whichever of its statements the settle lands after, the check must see
    the money at least once (twice is the safe side), never in neither: that would be an allow a
    cap does not have. The settle is run from inside the check, after its k-th statement; through
    ``check_ledger`` too (the daemon's /v1/check: PostgreSQL statements without a transaction)."""
    found = budgets(tmp_path, "1.00")
    now = datetime.now(UTC)

    def checked(settle_after: int | None, settle: Any) -> tuple[CheckResult, int, bool]:
        if via == "check_ledger":
            with after_statement(ledger.engine, settle_after, settle) as race:
                result = check_ledger(ledger, found, flow="admit", tags={}, now=now)
        else:
            with ledger.engine.connect() as conn, after_statement(conn, settle_after, settle) as race:
                result = check_flow(conn, found, flow="admit", tags={}, now=now)
        return result, race.statements, race.ran

    def spend_plus_held(settle_after: int | None) -> tuple[int, int]:
        hold = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app")
        with ledger.engine.connect() as conn:
            before = check_flow(conn, found, flow="admit", tags={}, now=now)
        seen = before.states[0].spend_nanos + before.held["admit"]

        def settle() -> None:
            ingest_objects(ledger, [call_usage(hold.reservation_id)], source="app")

        check, _, ran = checked(settle_after, settle)
        if not ran:
            settle()
        return seen, check.states[0].spend_nanos + check.held["admit"]

    seen, again = spend_plus_held(None)
    assert again == seen  # nothing in between: the same total
    _, counted, _ = checked(None, lambda: None)
    assert counted >= 2  # the holds and the spend are separate reads
    for k in range(1, counted + 1):
        before, during = spend_plus_held(k)
        assert during >= before, f"a settle after statement {k} of the check hid {before - during} nanos"


def test_the_flow_page_racing_a_settle_never_shows_the_money_in_neither_place(
    ledger: Ledger, tmp_path: Path
) -> None:
    """The dashboard's flow page shows each budget's spend and what calls in flight hold, read in
    separate statements. A settle moves a call's money from the holds to the spend in one commit:
    whichever statement of the page it lands after, the page must show the money at least once
    (twice is the safe side), never in neither: a budget would look further from its cap than it
    is. The settle is run from inside the page, after its k-th statement."""
    found = budgets(tmp_path, "1.00")
    now = datetime.now(UTC)

    def shown(settle_after: int | None) -> tuple[int, int, int]:
        """Spend + held before, and during the page; and how many statements the page ran."""
        hold = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app")
        page = flow_page(ledger, found, "admit", now)
        assert page is not None
        before = page.budgets[0].state.spend_nanos + page.budgets[0].held_nanos

        def settle() -> None:
            ingest_objects(ledger, [call_usage(hold.reservation_id)], source="app")

        with after_statement(ledger.read_engine, settle_after, settle) as race:
            page = flow_page(ledger, found, "admit", now)
        if not race.ran:
            settle()
        assert page is not None
        return before, page.budgets[0].state.spend_nanos + page.budgets[0].held_nanos, race.statements

    before, again, counted = shown(None)
    assert again == before and counted >= 2  # nothing in between: the same total
    for k in range(1, counted + 1):
        before, during, _ = shown(k)
        assert during >= before, f"a settle after statement {k} of the flow page hid {before - during} nanos"


def test_a_replica_whose_clock_runs_ahead_never_frees_a_hold_before_its_expiry(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Holds lapse at their expiry, never before (docs/design.md section 8). Each replica marks
    the holds it sees expired as lapsed; a replica whose clock runs two minutes ahead marks a hold
    that, by the clock of the replica deciding the next reserve, still has a minute to run. That
    hold must still count there: the money is held until its expiry, whoever's clock is ahead."""
    found = budgets(tmp_path, "0.01")
    now = datetime.now(UTC)
    hold = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT, ttl_s=60), source="a", now=now)
    assert hold.allow
    ahead = lapse_holds(ledger, now=now + timedelta(minutes=2))  # another replica's clock, ahead
    assert ahead["lapsed"] == 1 and ahead["open"] == 0
    second = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="b", now=now)
    assert second.decision == "deny" and second.held == {"admit": CENT_NANOS}
    with ledger.engine.connect() as conn:
        check = check_flow(conn, found, flow="admit", tags={}, now=now, estimate_usd=CENT)
    assert check.decision == "deny" and check.held == {"admit": CENT_NANOS}
    later = now + timedelta(seconds=61)  # past its expiry by anyone's clock: it no longer counts
    assert reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="c", now=later).allow


def test_a_release_racing_a_settle_says_what_became_of_the_hold(ledger: Ledger, tmp_path: Path) -> None:
    """A release and the call's usage (which settles the hold) may race, from two threads of a
    client or two replicas. Whichever commits first wins, and the release must say which: a hold
    reported "released" while its money was in fact settled as spend tells the caller a cost
    it was charged was given back. The settle is run after each statement of the release (on
    SQLite, whose release holds the one write lock from its first statement, the settle would
    wait for it: the race cannot happen there)."""
    found = budgets(tmp_path, "1.00")
    sqlite = ledger.engine.dialect.name == "sqlite"

    def released(settle_after: int | None) -> tuple[str, str, int]:
        """What the release said, the hold's status after both, and the release's statements."""
        hold = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app")
        rid = hold.reservation_id or ""
        settle = threading.Thread(
            target=ingest_objects, args=(ledger, [call_usage(rid)]), kwargs={"source": "app"}
        )

        def start_settle() -> None:
            settle.start()  # it commits, or waits for a lock the release holds: either way on
            wait_done_or_blocked(ledger.engine, settle)

        with after_statement(ledger.engine, settle_after, start_settle, skip=lambda _: sqlite) as race:
            said = release(ledger, rid)
        if race.ran:
            settle.join()
        with ledger.engine.connect() as conn:
            status = conn.scalar(select(reservations.c.status).where(reservations.c.id == rid))
        return said, str(status), race.statements

    said, status, counted = released(None)
    assert said == status == "released" and counted >= 2
    for k in range(1, counted + 1):
        said, status, _ = released(k)
        assert said == status, (
            f"a settle after statement {k} of the release: said {said}, the hold is {status}"
        )


def test_usage_of_a_model_without_a_price_leaves_its_hold_counting_until_it_lapses(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A call held at an explicit estimate whose usage names a model with no price: its cost is
    unknown, and settling would count it $0 against a blocking cap. The hold keeps counting its
    estimate until it lapses; the record is stored, flagged unpriced, as any other."""
    found = budgets(tmp_path, "0.01")
    now = datetime.now(UTC)
    hold = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT, ttl_s=60), source="app", now=now)
    assert hold.allow
    usage = call_usage(hold.reservation_id) | {"model": "gpt-nobody-priced-this"}
    summary = ingest_objects(ledger, [usage], source="app")
    assert (summary.stored, summary.unpriced) == (1, 1)
    again = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app", now=now)
    assert again.decision == "deny" and again.held == {"admit": CENT_NANOS}
    with ledger.engine.connect() as conn:
        status = conn.scalar(select(reservations.c.status).where(reservations.c.id == hold.reservation_id))
    assert status == "open"
    later = now + timedelta(seconds=61)  # it lapses as any hold does
    assert reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app", now=later).allow


def test_usage_of_another_flow_does_not_settle_the_hold(ledger: Ledger, tmp_path: Path) -> None:
    """A hold counts against the budgets of its own flow. A record of another flow naming it (a
    client's bug) counts against that flow's budgets: settling the hold with it would take the
    call's money off this flow's cap. The hold stays until it lapses; the record is stored."""
    found = budgets(tmp_path, "0.01")
    now = datetime.now(UTC)
    hold = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT, ttl_s=60), source="app", now=now)
    summary = ingest_objects(ledger, [call_usage(hold.reservation_id) | {"flow": "elsewhere"}], source="app")
    assert summary.stored == 1
    again = reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT), source="app", now=now)
    assert again.decision == "deny" and again.held == {"admit": CENT_NANOS}
    # the same flow settles it, as always
    ingest_objects(ledger, [call_usage(hold.reservation_id)], source="app")
    with ledger.engine.connect() as conn:
        status = conn.scalar(select(reservations.c.status).where(reservations.c.id == hold.reservation_id))
    assert status == "settled"


def test_a_retried_request_whose_hold_is_gone_is_told_so_not_allowed_again(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A retry of a reserve gets the first answer again, but an allow whose hold has expired
    unsettled or was released would send the caller into a call with nothing held: that retry is
    a deny that says to reserve anew. A settled hold's allow is replayed as it was."""
    found = budgets(tmp_path, "1.00")
    now = datetime.now(UTC)

    def ask(request_id: str, at: datetime) -> Any:
        req = ReserveRequest("admit", estimate_usd=CENT, request_id=request_id, ttl_s=60)
        return reserve(ledger, found, req, source="app", now=at)

    first = ask("expiring", now)
    assert ask("expiring", now + timedelta(seconds=30)).reservation_id == first.reservation_id
    late = ask("expiring", now + timedelta(seconds=61))
    assert late.replayed and late.decision == "deny" and late.reservation_id is None
    assert "expired at" in late.reason and "reserve again with a new request_id" in late.reason

    released = ask("released", now)
    assert release(ledger, released.reservation_id or "") == "released"
    again = ask("released", now)
    assert again.decision == "deny" and "was released" in again.reason

    settled = ask("settled", now)
    ingest_objects(ledger, [call_usage(settled.reservation_id)], source="app")
    replay = ask("settled", now + timedelta(seconds=61))
    assert replay.replayed and replay.allow and replay.reservation_id == settled.reservation_id


@pytest.mark.postgres
@pytest.mark.parametrize("first_use", [True, False], ids=["budgets-first-used", "budgets-known"])
def test_a_budget_lock_excludes_every_other_holder_and_never_deadlocks(
    postgres_url: str, first_use: bool
) -> None:
    """lock_budgets is one statement: it inserts a budget's lock row on first use and locks it
    otherwise. Either way a second transaction wanting an overlapping set waits until the first
    ends, and two transactions taking overlapping sets (in any order of their arguments) finish."""
    from finops.storage.reservations import lock_budgets

    ledger = make_ledger(postgres_url)
    try:
        if not first_use:
            with ledger.engine.begin() as conn:
                lock_budgets(conn, ["a", "b", "c"])
        done: list[str] = []

        def second() -> None:
            with ledger.engine.begin() as conn:
                lock_budgets(conn, ["c", "b"])
                done.append("second")

        with ledger.engine.connect() as conn, conn.begin():
            lock_budgets(conn, ["b", "a"])
            worker = threading.Thread(target=second)
            worker.start()
            wait_done_or_blocked(ledger.engine, worker)
            assert done == [] and worker.is_alive(), "the second took budget b while the first held it"
            done.append("first")
        worker.join(30)
        assert done == ["first", "second"]

        errors: list[BaseException] = []

        def take(keys: list[str]) -> None:
            try:
                for _ in range(30):
                    with ledger.engine.begin() as conn:
                        lock_budgets(conn, keys)
            except BaseException as exc:  # reported below
                errors.append(exc)

        fresh = [f"k{i}" for i in range(6)] if first_use else ["a", "b", "c"]
        racers = [threading.Thread(target=take, args=(fresh[::step],)) for step in (1, -1, 2, -2)]
        for t in racers:
            t.start()
        for t in racers:
            t.join(60)
        assert errors == []
    finally:
        ledger.close()


def test_a_settled_or_released_hold_leaves_its_budgets_at_once_and_a_lapsed_one_at_its_expiry(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A budget's holds are summed from the links of its open and lapsed holds only (migration
    0009), so history never slows a reserve: settling and releasing remove a hold's links in
    their own transaction; a lapsed hold keeps them (it counts until its own expiry)."""
    from finops.storage.tables import reservation_budgets

    found = budgets(tmp_path, "1.00")
    now = datetime.now(UTC)
    holds = [
        reserve(ledger, found, ReserveRequest("admit", estimate_usd=CENT, ttl_s=60), source="app", now=now)
        for _ in range(3)
    ]
    settle, free, lapse = (h.reservation_id for h in holds)
    assert settle and free and lapse

    def links() -> list[str]:
        with ledger.engine.connect() as conn:
            return sorted(conn.scalars(select(reservation_budgets.c.reservation_id)).all())

    def held(at: datetime) -> int:
        with ledger.engine.connect() as conn:
            return check_flow(conn, found, flow="admit", tags={}, now=at).held["admit"]

    assert links() == sorted([settle, free, lapse]) and held(now) == 3 * CENT_NANOS
    ingest_objects(ledger, [call_usage(settle)], source="app")
    assert release(ledger, free) == "released"
    assert links() == [lapse] and held(now) == CENT_NANOS
    assert lapse_holds(ledger, now=now + timedelta(seconds=61))["lapsed"] == 1
    assert links() == [lapse]  # lapsed: still linked, and counted until its own expiry
    assert held(now + timedelta(seconds=59)) == CENT_NANOS and held(now + timedelta(seconds=61)) == 0
