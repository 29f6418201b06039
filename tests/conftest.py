"""Real databases for every test: a temp SQLite file, and a fresh PostgreSQL database per test.

``make_ledger`` on an empty database gives it the newest schema by copying a template that this
test process migrated with Alembic once per UTC day (``CREATE DATABASE ... TEMPLATE`` for
PostgreSQL, a file copy for SQLite): the same empty ledger at head, without replaying every
migration per test (about 0.2 s on PostgreSQL). The migrations themselves keep running for real
in tests/test_migrations.py, the partition tests, ``db upgrade`` and every daemon's ``run --init``.

PostgreSQL tests need FINOPS_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1/postgres);
they are skipped with that reason where it is unset, and fail under CI=true, where .ci/run sets it.
With FINOPS_TEST_PGBOUNCER=1 (as .ci/run sets it) every per-test database is reached through a
PgBouncer in transaction pooling mode (tests/pgbouncer.py, one per test process): finops must run
unchanged behind a pooler. Creating and dropping the databases goes to the server directly.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from finops.settings import Settings
from finops.storage import partitions
from finops.storage.db import open_ledger
from finops.usecases.ledger import Ledger
from tests.pgbouncer import PgBouncer, pgbouncer_binary

# Bytecode: with PYTHONDONTWRITEBYTECODE set (as on the shared dev machines, to keep worktrees free
# of __pycache__), every finops process the tests start (CLI commands, daemons and their parser
# processes) compiled finops and its imports from source (`finops spend`: 0.57 s, 0.37 s cached),
# and each pytest worker re-rewrote every test module. Keep the bytecode outside the tree instead,
# in a cache the children inherit.
if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
    _PYCACHE = str(Path(tempfile.gettempdir()) / f"finops-test-pycache-{os.getuid()}")
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = _PYCACHE
    sys.dont_write_bytecode = False
    sys.pycache_prefix = _PYCACHE

SHARED = Path(__file__).resolve().parents[2] / "shared"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tiktoken"))
PG_URL = os.environ.get("FINOPS_TEST_POSTGRES_URL")
PG_THROUGH_PGBOUNCER = os.environ.get("FINOPS_TEST_PGBOUNCER") == "1"
LITELLM_CATALOG = SHARED / "reference" / "litellm_model_prices.json"
#: tiktoken's cache names each encoding file by the SHA-1 of its URL: cl100k_base, o200k_base.
_TIKTOKEN_FILES = ("9b5ad71b2ce5302211f9c61530b329a4922fc6a4", "fb374d419588a4632f3f557e76b4b70aebbca790")
_CI = os.environ.get("CI") == "true"  # under CI the reference files are there: never skip

needs_tiktoken = pytest.mark.skipif(
    not _CI and not all((Path(os.environ["TIKTOKEN_CACHE_DIR"]) / f).is_file() for f in _TIKTOKEN_FILES),
    reason="tiktoken's encodings are not in TIKTOKEN_CACHE_DIR (they cannot be downloaded here; "
    "../shared/tiktoken has them): exact token counts not checked",
)
needs_litellm_catalog = pytest.mark.skipif(
    not _CI and not LITELLM_CATALOG.is_file(),
    reason=f"LiteLLM's catalog is not at {LITELLM_CATALOG} (../shared/reference): cross-check skipped",
)


def _no_postgres() -> None:
    if os.environ.get("CI") == "true":
        pytest.fail("CI=true but FINOPS_TEST_POSTGRES_URL is not set: .ci/run must provide PostgreSQL")
    pytest.skip("FINOPS_TEST_POSTGRES_URL is not set: PostgreSQL tests skipped")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scheduling on pytest-xdist workers (``-n 2``; ``--dist loadgroup`` is in addopts).

    A test using a module-scoped fixture of its module (a daemon, Chromium, a seeded database)
    joins its module's ``xdist_group``: one worker runs them all and sets the fixture up once,
    where ``load`` split them and each worker started its own. ``slow`` tests go first, so that
    the longest (a million records) never starts last while the other worker sits idle.
    """
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures is None:
            continue
        for defs in fixtures.name2fixturedefs.values():
            if defs and defs[-1].scope == "module" and defs[-1].baseid == item.nodeid.split("::")[0]:
                item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
                break
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'finops.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


_BOUNCER: list[PgBouncer] = []  # this test process's PgBouncer, started on first use


def _through_pgbouncer(url: str) -> str:
    """``url`` reached through this process's PgBouncer (transaction pooling), started on first use."""
    if not _BOUNCER:
        if pgbouncer_binary() is None:
            pytest.fail("FINOPS_TEST_PGBOUNCER=1 but pgbouncer is not installed: apt-get install pgbouncer")
        server = make_url(url)
        _BOUNCER.append(PgBouncer(server.host or "127.0.0.1", server.port or 5432).start())
    return _BOUNCER[0].url(url)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _BOUNCER:
        _BOUNCER.pop().stop()
    _POOL.close()
    _drop_templates()


class _DatabasePool:
    """PostgreSQL databases made ahead and dropped behind, in one thread of this test process.

    ``CREATE DATABASE`` copies its template block by block and ``DROP DATABASE`` forces a
    checkpoint: each took 0.25 s idle and about a second under the suite's load, and a test on a
    ledger paid two of each (the empty database of fresh_postgres_database, dropped for a copy of
    the migrated template, which was dropped at the end). The thread makes the next database of
    each kind while a test runs, and drops the ones tests are done with when no test waits for a
    database (a run of short PostgreSQL tests leaves its drops for later); a test takes a finished
    one (or waits for the one being made). The databases are what they were: an empty one from
    ``template1``, or a copy of the migrated template, renamed to the name the test has.
    """

    #: Made ahead per kind, beyond the one a test takes next.
    AHEAD = 1
    _CREATE, _DROP, _STOP = 0, 1, 2  # the thread's order of work: creations first

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[str | None, deque[Future[str]]] = {}
        self._dropping: list[Future[str]] = []
        self._work: queue.PriorityQueue[tuple[int, int, Future[str], str, str | None]] = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def _submit(self, kind: int, verb: str, arg: str | None) -> Future[str]:
        """Queue one statement (under the lock); the thread runs creations before drops."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="finops-test-databases", daemon=True)
            self._thread.start()
        future: Future[str] = Future()
        self._work.put((kind, next(self._order), future, verb, arg))
        return future

    def _run(self) -> None:
        while True:
            kind, _, future, verb, arg = self._work.get()
            if kind == self._STOP:
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(_admin_sql(verb, arg))
                except BaseException as exc:  # handed to whoever waits for it
                    future.set_exception(exc)

    def take(self, template: str | None) -> str:
        """The name of a new database (empty, or a copy of ``template``) for the caller alone."""
        with self._lock:
            made = self._made.setdefault(template, deque())
            while len(made) <= self.AHEAD:
                made.append(self._submit(self._CREATE, "CREATE DATABASE", template))
            future = made.popleft()
        return future.result()

    def drop(self, name: str) -> None:
        """Drop ``name`` (``WITH (FORCE)``) soon, in the thread; close() waits for it."""
        with self._lock:
            done = [f for f in self._dropping if f.done()]
            self._dropping = [f for f in self._dropping if not f.done()]
            self._dropping.append(self._submit(self._DROP, "DROP DATABASE", name))
        for future in done:  # a drop that failed fails this teardown, as it failed its own before
            future.result()

    def close(self) -> None:
        """Finish every drop and drop the databases made ahead (before their templates go)."""
        with self._lock:
            thread, self._thread = self._thread, None
            made = [future for waiting in self._made.values() for future in waiting]
            self._made.clear()
            dropping, self._dropping = self._dropping, []
            if thread is None:
                return
            for future in made:
                future.cancel()  # not started yet: never made
            self._work.put((self._STOP, next(self._order), Future(), "", None))
        thread.join()
        for future in made:
            if not future.cancelled() and future.exception() is None:
                _admin_sql("DROP DATABASE", future.result())
        for future in dropping:
            future.result()


def _admin_sql(verb: str, arg: str | None) -> str:
    """``CREATE DATABASE`` a new name (from template ``arg``, or template1), or ``DROP DATABASE``
    ``arg`` if it exists, with FORCE; returns the database's name."""
    assert PG_URL is not None
    if verb == "CREATE DATABASE":
        name = f"finops_test_{uuid.uuid4().hex[:12]}"
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{arg}"' if arg else "")
    else:
        assert arg is not None
        name, sql = arg, f'DROP DATABASE IF EXISTS "{arg}" WITH (FORCE)'
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        admin.dispose()
    return name


_POOL = _DatabasePool()


@contextmanager
def fresh_postgres_database(*, direct: bool = False) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped on exit (for fixtures of any scope).

    Its URL goes through PgBouncer when FINOPS_TEST_PGBOUNCER=1, unless ``direct``.
    """
    if not PG_URL:
        _no_postgres()
    assert PG_URL is not None
    name = _POOL.take(None)
    _EMPTY_PG.add(name)
    try:
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
        yield _through_pgbouncer(url) if PG_THROUGH_PGBOUNCER and not direct else url
    finally:
        _EMPTY_PG.discard(name)
        _POOL.drop(name)


#: Databases made by fresh_postgres_database that nothing has given a schema through make_ledger.
_EMPTY_PG: set[str] = set()
#: Migrated templates of this test process by (kind, UTC day): the 0008 migration makes the
#: partitions of the months around the day it runs, so a template serves its day only.
_TEMPLATES: dict[tuple[str, str], str] = {}
_TEMPLATE_DIR: list[Path] = []


def _template(kind: str) -> str:
    """This process's migrated template: a PostgreSQL database name, or a SQLite file path."""
    key = (kind, datetime.now(UTC).date().isoformat())
    if key not in _TEMPLATES:
        if kind == "sqlite":
            if not _TEMPLATE_DIR:
                _TEMPLATE_DIR.append(Path(tempfile.mkdtemp(prefix="finops-template-")))
            path = _TEMPLATE_DIR[0] / f"{key[1]}.db"
            open_ledger(f"sqlite:///{path}", create=True).dispose()
            assert not Path(f"{path}-wal").exists(), "the SQLite template kept a WAL file: copy would lose it"
            _TEMPLATES[key] = str(path)
        else:
            assert PG_URL is not None
            name = f"finops_template_{uuid.uuid4().hex[:12]}"
            admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            admin.dispose()
            _TEMPLATES[key] = name  # dropped at exit even if the migration fails
            url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
            open_ledger(url, create=True).dispose()
    return _TEMPLATES[key]


def _drop_templates() -> None:
    for (kind, _), name in list(_TEMPLATES.items()):
        if kind == "postgres" and PG_URL:
            admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    _TEMPLATES.clear()
    while _TEMPLATE_DIR:
        shutil.rmtree(_TEMPLATE_DIR.pop(), ignore_errors=True)


def _from_template(url: str) -> None:
    """Give ``url`` the newest schema by copying this process's template, where it is a missing
    SQLite file or an untouched database of fresh_postgres_database; anything else is left to
    Ledger.open(create=True), which migrates an empty database itself."""
    parsed = make_url(url)
    name = parsed.database
    if not name:
        return
    if parsed.get_backend_name() == "sqlite":
        path = Path(name)
        if name != ":memory:" and not path.exists() and path.parent.is_dir():
            shutil.copyfile(_template("sqlite"), path)
        return
    if name not in _EMPTY_PG or PG_URL is None:
        return
    _EMPTY_PG.discard(name)
    template = _template("postgres")
    direct = create_engine(make_url(PG_URL).set(database=name), isolation_level="AUTOCOMMIT")
    with direct.connect() as conn:  # the test may have made objects of its own: then no copy
        objects = conn.exec_driver_sql(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            "        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast'))"
            "     + (SELECT count(*) FROM pg_namespace WHERE left(nspname, 3) <> 'pg_'"
            "        AND nspname NOT IN ('public', 'information_schema'))"
        ).scalar_one()
    direct.dispose()
    if objects:
        return
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            # A copy of the template made ahead (_DatabasePool) takes the name the test has; the
            # empty database goes under another name, dropped in the pool's thread. Renaming, like
            # dropping, fails while anyone is connected: a session on it (a pooled PgBouncer one)
            # keeps it, and Alembic runs.
            spent = f"finops_test_{uuid.uuid4().hex[:12]}"
            try:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" RENAME TO "{spent}"')
            except DBAPIError:
                return
            _POOL.drop(spent)
            conn.exec_driver_sql(f'ALTER DATABASE "{_POOL.take(template)}" RENAME TO "{name}"')
    finally:
        admin.dispose()


def quick_deadlock_detection(url: str) -> None:
    """Sessions that connect to ``url``'s PostgreSQL database from now on look for a deadlock
    after a lock wait of 50 ms instead of the server's ``deadlock_timeout`` (1 s by default), for
    tests whose writers deadlock on purpose: PostgreSQL aborts the same transaction, sooner.

    Call it after make_ledger gave the database its schema (that replaces the database), before
    opening the engines that should see it. Left as it is where the role may not set it."""
    name = make_url(url).database
    if not PG_URL or not name:
        return
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.exec_driver_sql("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").scalar():
                conn.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '50ms'")
    finally:
        admin.dispose()


@pytest.fixture
def short_partition_lock_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Partition DDL (retention's DETACH, a new month's ATTACH) gives up on its lock after 0.5 s
    instead of the daemon's 5 s, for tests whose retention waits behind a read until it gives up:
    the same lock wait and the same "lock timeout" error, 4.5 s sooner each time."""
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "500ms")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs on SQLite and on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


def make_ledger(url: str, **settings: Any) -> Ledger:
    _from_template(url)
    return Ledger.open(Settings(database_url=url, user_hash_secret="test-secret", **settings), create=True)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    led = make_ledger(db_url)
    yield led
    led.close()


@pytest.fixture
def sqlite_ledger(sqlite_url: str) -> Iterator[Ledger]:
    led = make_ledger(sqlite_url)
    yield led
    led.close()


def usage(i: int, **overrides: Any) -> dict[str, Any]:
    """A valid canonical usage record; ``i`` makes the id and varies the counts."""
    flows = ("support-gpt-en", "search-rerank", "code-review")
    models = (("openai", "gpt-4o-2024-08-06"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"))
    provider, model = models[i % 3]
    record: dict[str, Any] = {
        "id": f"req-{i}",
        "ts": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z",
        "provider": provider,
        "model": model,
        "flow": flows[(i // 3) % 3],
        "tags": {"team": ("support", "search", "platform")[i % 3], "env": "prod"},
        "input_tokens": 1000 + i % 5000,
        "cached_input_tokens": (i % 7) * 100,
        "output_tokens": 100 + i % 900,
        "reasoning_tokens": i % 50,
    }
    record.update(overrides)
    return record


def write_jsonl(path: Path, records: Iterable[dict[str, Any] | str]) -> Path:
    with path.open("w") as f:
        for item in records:
            f.write((item if isinstance(item, str) else json.dumps(item)) + "\n")
    return path
