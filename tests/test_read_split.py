"""FINOPS_READ_DATABASE_URL: what is only shown reads the replica; what writes or decides money the primary.

Two real PostgreSQL databases stand for the primary and its replica, each with other usage, so
every answer says which one it came from: the primary holds flow ``shop`` (over its blocking
cap, from source ``primary-src``), the "replica" flow ``replica-only`` (from ``replica-src``).
The CLI runs as a subprocess and the daemon as one, configured by the environment as an operator
would; a throwaway PostgreSQL server stands for a replica that goes down under the daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from finops.storage.db import create_engine_for, downgrade
from finops.storage.tables import alert_outbox, usage_records
from finops.usecases.ingest import ingest_objects
from tests.conftest import fresh_postgres_database, make_ledger
from tests.daemon_proc import DaemonProcess
from tests.faults.test_08_database_outage import ThrowawayPostgres, throwaway_postgres  # noqa: F401

pytestmark = pytest.mark.postgres

BUDGET = 'budgets:\n  - {flow: shop, owner: U01, daily_cap_usd: "0.01", on_breach: block}\n'


def _records(flow: str, n: int, now: datetime, prefix: str) -> list[dict[str, Any]]:
    ts = now.isoformat().replace("+00:00", "Z")
    return [
        {"id": f"{prefix}-{i}", "ts": ts, "provider": "openai", "model": "gpt-4o-2024-08-06", "flow": flow,
         "input_tokens": 100_000, "output_tokens": 1_000}
        for i in range(n)
    ]  # fmt: skip


def _seed(url: str, flow: str, n: int, source: str) -> None:
    ledger = make_ledger(url)
    try:
        summary = ingest_objects(ledger, _records(flow, n, datetime.now(UTC), source), source=source)
        assert summary.stored == n
    finally:
        ledger.close()


def _usage_count(url: str) -> int:
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(usage_records)) or 0)
    finally:
        engine.dispose()


@dataclass
class Pair:
    primary: str
    replica: str


@pytest.fixture
def pair() -> Iterator[Pair]:
    with fresh_postgres_database() as primary, fresh_postgres_database() as replica:
        _seed(primary, "shop", 3, "primary-src")
        _seed(replica, "replica-only", 2, "replica-src")
        yield Pair(primary, replica)


def _env(tmp: Path, primary: str, read: str | None, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FINOPS_")}
    env.update(FINOPS_DATABASE_URL=primary, FINOPS_USER_HASH_SECRET="test-secret", **more)
    env["FINOPS_BUDGETS_DIR"] = str(tmp / "budgets")
    if read is not None:
        env["FINOPS_READ_DATABASE_URL"] = read
    return env


def _finops(tmp: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finops", *args], env=env, cwd=tmp, capture_output=True, text=True, timeout=120
    )


def _budgets(tmp: Path) -> Path:
    folder = tmp / "budgets"
    folder.mkdir(exist_ok=True)
    (folder / "shop.yaml").write_text(BUDGET)
    return folder


def _flows(spend_json: str) -> set[str]:
    return {row["flow"] for row in json.loads(spend_json)["rows"]}


# --------------------------------------------------------------------------- the CLI


def test_cli_reads_go_to_the_replica_and_decisions_to_the_primary(pair: Pair, tmp_path: Path) -> None:
    _budgets(tmp_path)
    env = _env(tmp_path, pair.primary, pair.replica)
    month = datetime.now(UTC).strftime("%Y-%m")

    spend = _finops(tmp_path, env, "spend", "--month", month, "--format", "json")
    assert spend.returncode == 0, spend.stderr
    assert _flows(spend.stdout) == {"replica-only"}
    # --db names the one database of a command, reads included
    direct = _finops(tmp_path, env, "spend", "--month", month, "--format", "json", "--db", pair.primary)
    assert _flows(direct.stdout) == {"shop"}

    report = _finops(tmp_path, env, "report", "monthly", "--month", month, "--format", "json")
    assert report.returncode == 0, report.stderr
    assert {line["key"] for line in json.loads(report.stdout)["by_flow"]} == {"replica-only"}

    focus = _finops(tmp_path, env, "export", "focus", "--month", month, "--out", str(tmp_path / "f.csv"))
    assert focus.returncode == 0, focus.stderr
    written = (tmp_path / "f.csv").read_text()
    assert "replica-only" in written and "shop" not in written

    top = _finops(tmp_path, env, "prompts", "top", "--month", month, "--format", "json")
    assert top.returncode == 0, top.stderr

    # the gateway check and a reservation decide money: the primary's shop is over its cap
    check = _finops(tmp_path, env, "check", "shop")
    assert check.returncode == 4, check.stdout + check.stderr
    assert json.loads(check.stdout)["decision"] == "deny"
    reserve = _finops(tmp_path, env, "reserve", "shop", "--estimate-usd", "0.001")
    assert reserve.returncode == 4, reserve.stdout + reserve.stderr

    # ingest writes the primary only
    before = _usage_count(pair.replica)
    feed = tmp_path / "more.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in _records("shop", 2, datetime.now(UTC), "cli")))
    ingest = _finops(tmp_path, env, "ingest", str(feed))
    assert ingest.returncode == 0, ingest.stderr
    assert _usage_count(pair.primary) == 5 and _usage_count(pair.replica) == before

    # alert decisions are the primary's: shop is over its cap there, and only there
    alerts = _finops(tmp_path, env, "alerts", "run", "--dry-run")
    assert alerts.returncode == 0, alerts.stdout + alerts.stderr
    assert "shop" in alerts.stdout and "nothing due" not in alerts.stdout


# --------------------------------------------------------------------------- the daemon


class SplitDaemon(DaemonProcess):
    """``finops run`` configured by the environment alone (``--db`` would turn the split off)."""

    def _spawn(self, out: Any) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "finops",
            "run",
            "--port",
            str(self.port),
            "--budgets",
            str(self.budgets),
        ]
        return subprocess.Popen(command, env=self.env, stdout=out, stderr=out, cwd=self.tmp)


def _daemon(tmp: Path, primary: str, read: str) -> SplitDaemon:
    env = _env(tmp, primary, read)
    env.pop("FINOPS_BUDGETS_DIR")
    return SplitDaemon(tmp, primary, budgets=_budgets(tmp), **env)


def test_daemon_pages_read_the_replica_and_decisions_the_primary(pair: Pair, tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, pair.primary, pair.replica).start()
    month = datetime.now(UTC).strftime("%Y-%m")
    try:
        with daemon.client() as api:
            assert _flows(api.get("/v1/spend", params={"month": month}).text) == {"replica-only"}
            focus = api.get("/v1/export/focus", params={"month": month})
            assert focus.status_code == 200 and "replica-only" in focus.text and "shop" not in focus.text
            check = api.get("/v1/budgets/shop/check")
            assert check.status_code == 200 and check.json()["decision"] == "deny", check.text
            reserve = api.post("/v1/budgets/shop/reserve", json={"estimate_usd": "0.001"})
            assert reserve.json()["decision"] == "deny", reserve.text
            posted = api.post("/v1/usage", json=_records("shop", 1, datetime.now(UTC), "http"))
            assert posted.json()["stored"] == 1
            health = api.get("/healthz").json()
            assert health["database"] == "ok" and health["read_database"] == "ok"
            assert health["read_database_replay_age_s"] is None  # another database, not a standby
            assert "finops_read_database_up 1.0" in api.get("/metrics").text
        assert _usage_count(pair.primary) == 4 and _usage_count(pair.replica) == 2
        with httpx.Client(base_url=daemon.base, timeout=60) as web:
            overview = web.get("/").text
            assert "replica-src" in overview and "primary-src" not in overview
            spend_page = web.get("/spend", params={"period": "month"}).text
            assert "replica-only" in spend_page
        # the cycle decides alerts on the primary: shop's breach is queued there, never on the replica
        engine = create_engine(pair.primary)
        deadline = datetime.now(UTC).timestamp() + 30
        with engine.connect() as conn:
            while not conn.scalar(select(func.count()).select_from(alert_outbox)):
                assert datetime.now(UTC).timestamp() < deadline, "no alert queued on the primary"
                conn.rollback()
        engine.dispose()
        replica = create_engine(pair.replica)
        with replica.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(alert_outbox)) == 0
        replica.dispose()
        listening = [line for line in daemon.logs() if line.get("msg") == "finops daemon listening"]
        assert "reads: postgresql+psycopg://" in listening[0]["database"]  # where reads go, said at start
    finally:
        daemon.stop()


def test_a_replica_down_answers_reads_503_and_leaves_ingest_and_checks_up(
    throwaway_postgres: ThrowawayPostgres,  # noqa: F811
    tmp_path: Path,
) -> None:
    replica = throwaway_postgres.url
    _seed(replica, "replica-only", 2, "replica-src")
    with fresh_postgres_database() as primary:
        _seed(primary, "shop", 3, "primary-src")
        daemon = _daemon(tmp_path, primary, replica).start()
        try:
            with daemon.client() as api, httpx.Client(base_url=daemon.base, timeout=60) as web:
                assert api.get("/v1/spend").status_code == 200
                throwaway_postgres.stop()
                for _ in range(2):
                    spend = api.get("/v1/spend")
                    assert spend.status_code == 503 and spend.headers["retry-after"], spend.text
                    assert api.get("/v1/export/focus", params={"month": "2026-11"}).status_code == 503
                    page = web.get("/spend")
                    assert page.status_code == 503 and "The database cannot answer right now" in page.text
                # the primary serves on: budget checks, reservations and ingest
                assert api.get("/v1/budgets/shop/check").json()["decision"] == "deny"
                posted = api.post("/v1/usage", json=_records("shop", 1, datetime.now(UTC), "during"))
                assert posted.status_code == 200 and posted.json()["stored"] == 1
                health = api.get("/healthz")
                assert health.status_code == 200, health.text
                assert health.json()["database"] == "ok" and health.json()["read_database"] == "unavailable"
                metrics = api.get("/metrics").text
                assert "finops_read_database_up 0.0" in metrics and "finops_database_up 1.0" in metrics
                throwaway_postgres.start()
                deadline = datetime.now(UTC).timestamp() + 30
                while api.get("/v1/spend").status_code != 200:
                    assert datetime.now(UTC).timestamp() < deadline, "reads did not come back"
                assert api.get("/healthz").json()["read_database"] == "ok"
            messages = [str(line.get("msg")) for line in daemon.logs()]
            assert messages.count("read database unavailable: requests that need it answer 503 "
                                  "(Retry-After: 5 s) until it is back") == 1  # fmt: skip
            assert not [m for m in messages if m.startswith("database unavailable")]
            assert "read database available again" in messages
        finally:
            daemon.stop()


# --------------------------------------------------------------------------- refused at start


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_read_url_that_cannot_serve_is_refused_in_one_line(pair: Pair, tmp_path: Path) -> None:
    _budgets(tmp_path)
    sqlite = f"sqlite:///{tmp_path / 'finops.db'}"
    make_ledger(sqlite).close()
    cases = {
        "mysql://u:secret@h/db": (pair.primary, "must start with sqlite:/// or postgresql+psycopg://"),
        sqlite: (pair.primary, "must be a PostgreSQL replica of FINOPS_DATABASE_URL"),
        pair.replica: (sqlite, "needs a PostgreSQL FINOPS_DATABASE_URL"),
        "postgresql+psycopg://postgres@127.0.0.1:1/x": (pair.primary, "cannot open the read database"),
    }
    for read, (primary, words) in cases.items():
        env = _env(tmp_path, primary, read)
        for args in (("spend",), ("run", "--once")):
            line = _one_line_error(_finops(tmp_path, env, *args))
            assert "FINOPS_READ_DATABASE_URL" in line and words in line, (args, line)
            assert "secret" not in line


def test_commands_that_never_read_the_replica_work_while_it_is_down(pair: Pair, tmp_path: Path) -> None:
    """The gateway check, a reservation, ingest and alerts need the primary only: a replica that does
    not answer is opened by the first read, so it fails the commands that read it and no other."""
    _budgets(tmp_path)
    env = _env(tmp_path, pair.primary, "postgresql+psycopg://postgres@127.0.0.1:1/replica")
    check = _finops(tmp_path, env, "check", "shop")
    assert check.returncode == 4 and json.loads(check.stdout)["decision"] == "deny", check.stderr
    assert _finops(tmp_path, env, "reserve", "shop", "--estimate-usd", "0.001").returncode == 4
    feed = tmp_path / "more.jsonl"
    feed.write_text("".join(json.dumps(r) + "\n" for r in _records("shop", 2, datetime.now(UTC), "down")))
    ingest = _finops(tmp_path, env, "ingest", str(feed))
    assert ingest.returncode == 0, ingest.stderr
    assert _finops(tmp_path, env, "alerts", "run", "--dry-run").returncode == 0
    line = _one_line_error(_finops(tmp_path, env, "spend"))
    assert "cannot open the read database (FINOPS_READ_DATABASE_URL)" in line


def test_a_replica_at_another_schema_or_none_is_refused(pair: Pair, tmp_path: Path) -> None:
    with fresh_postgres_database() as empty:
        line = _one_line_error(_finops(tmp_path, _env(tmp_path, pair.primary, empty), "spend"))
        assert "holds no finops schema" in line
    engine = create_engine_for(pair.replica)
    downgrade(engine, "0006_reservations")
    engine.dispose()
    line = _one_line_error(_finops(tmp_path, _env(tmp_path, pair.primary, pair.replica), "spend"))
    assert "is at schema 0006_reservations" in line and "FINOPS_READ_DATABASE_URL" in line
    assert "finops db upgrade" in line  # on the primary, not against the replica


def test_the_same_url_is_no_split(pair: Pair) -> None:
    from finops.settings import Settings
    from finops.usecases.ledger import Ledger

    ledger = Ledger.open(Settings(database_url=pair.primary, read_database_url=pair.primary))
    try:
        assert not ledger.split and ledger.read_engine is ledger.engine
        assert repr(ledger) == f"Ledger({pair.primary})"
    finally:
        ledger.close()
    ledger = Ledger.open(Settings(database_url=pair.primary, read_database_url=pair.replica))
    try:
        assert ledger.split and "reads:" in repr(ledger)
        with ledger.read_engine.connect() as conn:
            assert conn.scalar(text("SELECT current_database()")) != pair.primary.rsplit("/", 1)[1]
    finally:
        ledger.close()


# --------------------------------------------------------------------------- a real streaming standby


@dataclass
class Streaming:
    primary: ThrowawayPostgres
    standby: ThrowawayPostgres


@pytest.fixture
def streaming(throwaway_postgres: ThrowawayPostgres) -> Iterator[Streaming]:  # noqa: F811
    """The throwaway server as primary and a hot standby of it (pg_basebackup -R), on its own port."""
    primary = throwaway_postgres
    make_ledger(primary.url).close()  # the schema, created on the primary only
    root = Path(tempfile.mkdtemp(prefix="finops-standby-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    standby = ThrowawayPostgres(primary.bin, root)
    standby._run(
        "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
        "-D", str(standby.data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
    )  # fmt: skip
    standby.start()
    try:
        yield Streaming(primary, standby)
    finally:
        with contextlib.suppress(AssertionError):
            standby.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_hot_standby_serves_every_read_and_follows_the_primary(
    streaming: Streaming, tmp_path: Path
) -> None:
    """A hot standby refuses every write (SQLSTATE 25006): each page and command that reads it
    answering 200 proves none of them writes on the read database; usage posted to the primary
    shows up there after the replication lag."""
    primary, standby = streaming.primary.url, streaming.standby.url
    _seed(primary, "shop", 3, "primary-src")
    month = datetime.now(UTC).strftime("%Y-%m")
    env = _env(tmp_path, primary, standby)
    _budgets(tmp_path)
    commands = [
        ("spend", "--month", month, "--format", "json"),
        ("report", "monthly", "--month", month, "--format", "json"),
        ("prompts", "top", "--month", month),
        ("outcomes", "--month", month),
        ("prices", "unpriced"),
        ("digest", "--period", "daily"),
        ("export", "focus", "--month", month, "--out", str(tmp_path / "f.csv")),
    ]
    for args in commands:
        done = _finops(tmp_path, env, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    daemon = _daemon(tmp_path, primary, standby).start()
    try:
        with daemon.client() as api, httpx.Client(base_url=daemon.base, timeout=60) as web:
            pages = ["/", "/flows/shop", "/outcomes", "/prompts", "/spend", "/spend.csv", "/spend.json"]
            assert {p: web.get(p).status_code for p in pages} == dict.fromkeys(pages, 200)
            assert api.get("/v1/export/focus", params={"month": month}).status_code == 200
            health = api.get("/healthz").json()
            assert health["read_database"] == "ok" and health["read_database_replay_age_s"] is not None
            posted = api.post("/v1/usage", json=_records("fresh", 1, datetime.now(UTC), "lag"))
            assert posted.json()["stored"] == 1
            sent = time.monotonic()
            while "fresh" not in _flows(api.get("/v1/spend", params={"month": month}).text):
                assert time.monotonic() - sent < 30, "the standby never showed the new record"
                time.sleep(0.01)
            print(f"new usage visible on the standby after {1000 * (time.monotonic() - sent):.0f} ms")
            assert "finops_read_database_replay_age_seconds" in api.get("/metrics").text
    finally:
        daemon.stop()
