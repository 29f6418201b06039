"""Issue 10, item 8: while the database is unavailable, requests get 503 with Retry-After, never 500.

Found: a PostgreSQL outage answered 500 (``internal error (OperationalError)``) with a traceback
in the log per request, so clients could not tell "back off and retry" from a bug.

Now: every request that needs the database answers 503 with ``Retry-After`` and one line of JSON;
the log has one line when the outage starts and one when it ends; the cycle keeps running without
a traceback per step; the daemon recovers without a restart, and a client that retries has every
record stored exactly once.

PostgreSQL: a throwaway server of our own (initdb in a temp dir, its own port), stopped with
``pg_ctl stop -m immediate`` in the middle of an ingest. SQLite: a disk that fills up (the daemon's
file size limit lowered to one byte with prlimit, so every write fails with an I/O error while
reads still answer), then space again.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from finops.cli.main import app
from finops.storage.db import create_engine_for
from finops.storage.tables import usage_records
from tests.conftest import usage
from tests.daemon_proc import DaemonProcess, free_port
from tests.test_litellm_logs import payload
from tests.test_otlp import EXPORT

UNAVAILABLE = "database unavailable: requests that need it answer 503"
AVAILABLE = "database available again"


# --------------------------------------------------------------------------- a throwaway PostgreSQL
def _postgres_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and (Path(found).parent / "initdb").is_file() else None


class ThrowawayPostgres:
    """A PostgreSQL server in a temp dir on a free port; as the ``postgres`` user when we are root
    (initdb refuses to run as root)."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but the PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: the outage test is skipped")
    root = Path(tempfile.mkdtemp(prefix="finops-pg-"))  # under /tmp: the postgres user can reach it
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run initdb as")
        os.chown(root, user.pw_uid, user.pw_gid)
    server = ThrowawayPostgres(bin_dir, root)
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(AssertionError):  # already stopped
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- a client that retries
@dataclass
class Loader:
    """Threads posting batches; a batch answered 503 is sent again until it is acknowledged."""

    proc: DaemonProcess
    batches: list[list[dict[str, Any]]]
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)  # (when, status, Retry-After)
    acked: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, workers: int = 3, deadline_s: float = 120) -> None:
        queue = list(range(len(self.batches)))
        deadline = time.monotonic() + deadline_s

        def worker() -> None:
            with self.proc.client() as client:
                while time.monotonic() < deadline:
                    with self.lock:
                        if not queue:
                            return
                        index = queue.pop(0)
                    answer = client.post("/v1/usage", json=self.batches[index])
                    with self.lock:
                        self.answers.append(
                            (time.monotonic(), answer.status_code, answer.headers.get("retry-after"))
                        )
                        if answer.status_code == 200:
                            assert answer.json()["stored"] + answer.json()["duplicates"] == len(
                                self.batches[index]
                            )
                            self.acked.add(index)
                        else:
                            queue.append(index)  # back off a little, then send it again
                    if answer.status_code != 200:
                        time.sleep(0.05)

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _stored(url: str) -> dict[str, int]:
    engine = create_engine_for(url)
    u = usage_records.c
    with engine.connect() as conn:
        found = {r: n for r, n in conn.execute(select(u.record_id, func.count()).group_by(u.record_id))}
    engine.dispose()
    return found


def _outage_lines(proc: DaemonProcess) -> tuple[int, int, list[dict[str, Any]]]:
    """Outage starts, outage ends, and any other line about it: a traceback, an error, a driver's."""
    lines = proc.logs()
    starts = sum(1 for line in lines if str(line.get("msg", "")).startswith(UNAVAILABLE))
    ends = sum(1 for line in lines if line.get("msg") == AVAILABLE)
    noise = [
        line
        for line in lines
        if "error" in line  # a traceback
        or (line.get("level") in ("error", "critical") and line.get("logger") != "finops.database")
        or str(line.get("logger", "")).startswith(("psycopg", "sqlalchemy"))
        or line.get("msg") in ("request failed", "cycle step failed", "scheduled job failed")
    ]
    return starts, ends, noise


def _assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, (answer.request.url, answer.status_code, answer.text)
    assert answer.headers["retry-after"].isdigit()
    assert answer.json()["error"] == "database unavailable: retry later"


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_postgres_stopped_mid_ingest_gets_503_then_recovers_without_restart(
    tmp_path: Path, throwaway_postgres: ThrowawayPostgres
) -> None:
    pg = throwaway_postgres
    upgraded = CliRunner().invoke(app, ["db", "upgrade", "--db", pg.url])
    assert upgraded.exit_code == 0, upgraded.output
    proc = DaemonProcess(tmp_path, pg.url).start()
    try:
        batches = [[usage(b * 100 + i) for i in range(100)] for b in range(80)]
        loader = Loader(proc, batches)
        loading = threading.Thread(target=loader.run)
        loading.start()
        _wait(lambda: len(loader.acked) >= 5, 60, "five batches acknowledged")

        pg.stop("immediate")  # mid-ingest
        stopped = time.monotonic()
        _wait(lambda: sum(1 for t, s, _ in loader.answers if t > stopped and s == 503) >= 10, 30, "503s")
        with proc.client() as client:
            _assert_unavailable(client.get("/v1/spend"))
            _assert_unavailable(client.get("/v1/budgets/support-gpt-en/check"))
            _assert_unavailable(client.post("/v1/outcomes", json={"id": "o-1", "status": "success"}))
            _assert_unavailable(client.post("/v1/litellm", json=payload(id="lite-1")))
            _assert_unavailable(client.post("/v1/traces", json=EXPORT))
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["database"] == "unavailable", health.text
            assert "retry-after" in health.headers
            assert b"finops_database_up 0.0" in client.get("/metrics").content
        time.sleep(1.5)  # three cycles (FINOPS_CYCLE_S=0.5) fail in the outage
        acked_before_restart = set(loader.acked)

        pg.start()  # the same daemon, no restart
        restarted = time.monotonic()
        loading.join(120)
        assert not loading.is_alive() and loader.acked == set(range(len(batches)))
        _wait(lambda: httpx.get(proc.base + "/healthz").status_code == 200, 30, "/healthz to answer 200")

        statuses = {status for _, status, _ in loader.answers}
        assert statuses == {200, 503}, statuses  # never a 500
        assert all(retry is not None for _, status, retry in loader.answers if status == 503)
        stored = _stored(pg.url)
        assert len(stored) == 80 * 100 and set(stored.values()) == {1}  # every record, once
        assert all(f"req-{b * 100}" in stored for b in acked_before_restart)

        with proc.client() as client:
            last_cycle = client.get("/healthz").json()["last_cycle"]
            assert last_cycle is not None  # the cycle lived through it...
            _wait(lambda: client.get("/healthz").json()["last_cycle"] != last_cycle, 10, "a new cycle")
            assert b"finops_database_up 1.0" in client.get("/metrics").content
        assert time.monotonic() - restarted < 60
        starts, ends, noise = _outage_lines(proc)
        assert (starts, ends) == (1, 1), [line.get("msg") for line in proc.logs()]
        assert noise == [], noise[:3]  # ...and nothing else in the log about it, no traceback
    finally:
        proc.stop(signal.SIGKILL)


# --------------------------------------------------------------------------- SQLite: a full disk
class PipedDaemon(DaemonProcess):
    """The daemon with its log through a pipe, copied to ``daemon.log`` by this process: its own
    file size limit must not stop it writing its log."""

    def _spawn(self, out: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "finops", "run", "--init", "--port", str(self.port), "--db", self.db_url,
             "--budgets", str(self.budgets)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.tmp,
        )  # fmt: skip
        stream = proc.stderr
        assert stream is not None

        def copy() -> None:
            with stream, self.log.open("ab") as log:  # until the daemon exits
                for line in stream:
                    log.write(line)
                    log.flush()

        threading.Thread(target=copy, daemon=True).start()
        return proc


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="prlimit(2) is Linux-only")
def test_sqlite_on_a_full_disk_gets_503_for_writes_then_recovers(tmp_path: Path, sqlite_url: str) -> None:
    proc = PipedDaemon(tmp_path, sqlite_url).start()
    assert proc.proc is not None
    pid = proc.proc.pid
    try:
        with proc.client() as client:
            first = [usage(i) for i in range(200)]
            assert client.post("/v1/usage", json=first).status_code == 200
            soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))  # the disk is full
            try:
                second = [usage(i) for i in range(200, 400)]
                for _ in range(5):
                    _assert_unavailable(client.post("/v1/usage", json=second))
                _assert_unavailable(client.post("/v1/outcomes", json=[{"id": "o-1", "status": "success"}]))
                assert client.get("/v1/spend").status_code == 200  # reads still answer
                health = client.get("/healthz")
                assert health.status_code == 503 and health.json()["database"] == "writes failing"
                time.sleep(1.5)  # cycles read in between: the outage goes on while writes fail
                _assert_unavailable(client.post("/v1/usage", json=second))
            finally:
                resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))  # space again
            retried = client.post("/v1/usage", json=second)
            assert retried.status_code == 200 and retried.json()["stored"] == 200, retried.text
            assert client.get("/healthz").status_code == 200
        stored = _stored(sqlite_url)
        assert len(stored) == 400 and set(stored.values()) == {1}
        starts, ends, noise = _outage_lines(proc)
        assert (starts, ends) == (1, 1), [line.get("msg") for line in proc.logs()]
        assert noise == [], noise[:3]
    finally:
        proc.stop(signal.SIGKILL)
