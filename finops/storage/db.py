"""Engines and migrations: SQLite tuned for a writer and many readers, PostgreSQL as is.

SQLite gets WAL (readers never block the writer), a 30 s busy timeout, and
``BEGIN IMMEDIATE`` for write transactions (``write_transaction``), so two
writers queue at the start instead of failing halfway with "database is
locked", and a writer's reads inside its transaction cannot go stale. Read-only
connections begin deferred and never wait for a writer.

PostgreSQL connections keep no state between transactions, so finops runs unchanged behind a
pooler in transaction mode (PgBouncer ``pool_mode = transaction``): psycopg's automatic
server-side prepared statements are off (``prepare_threshold=None``; see ``create_engine_for``),
advisory locks are transaction-scoped (``pg_advisory_xact_lock``), nothing is ``SET`` for the
session, and there is no LISTEN, WITH HOLD cursor or temporary table outliving its transaction.
"""

from __future__ import annotations

import importlib.util
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from finops.errors import ConfigError, StorageError

if TYPE_CHECKING:  # Alembic is loaded only to migrate: every other command starts without it
    from alembic.config import Config

__all__ = [
    "SCHEMA_HEAD",
    "create_engine_for",
    "current_revision",
    "downgrade",
    "head_revision",
    "lost_a_lock_race",
    "one_snapshot",
    "open_ledger",
    "quick_reads",
    "upgrade",
    "write_transaction",
]


_WRITE = "finops_write"
_BUSY_TIMEOUT_S = 30


#: SQLite engines' in-process writer locks. Threads of one process that write (the daemon's
#: writer, its cycle) queue here and are handed the lock at once, instead of polling SQLite's
#: lock through its busy handler, which sleeps up to 100 ms between tries.
_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: on SQLite it holds the write lock from its first statement."""
    lock = _WRITERS.get(engine)
    # Past the busy timeout, go to SQLite anyway: its own lock decides, and says "locked".
    held = lock.acquire(timeout=_BUSY_TIMEOUT_S) if lock is not None else False
    try:
        with engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn
    finally:
        if held and lock is not None:
            lock.release()


@contextmanager
def quick_reads(engine: Engine) -> Iterator[Connection]:
    """A connection for a few reads where each statement may see its own moment, as it does in a
    read committed transaction anyway (a budget check, a retry's earlier answer): on PostgreSQL
    in autocommit, which saves the BEGIN and ROLLBACK round trips (4 -> 2 for one read; a
    check's latency is mostly round trips). Nothing is set for the session: fine behind a
    pooler in transaction mode. SQLite: a plain connection (its reads share one snapshot)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


def lost_a_lock_race(exc: BaseException) -> bool:
    """Whether PostgreSQL aborted the transaction to break a deadlock or a serialization conflict
    with another writer: nothing is wrong with the database, and the same work in smaller
    transactions goes through."""
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "sqlstate", None) in {"40P01", "40001"}


def one_snapshot(conn: Connection) -> Connection:
    """``conn``, set so that its next transaction reads the database as of one moment: on
    PostgreSQL REPEATABLE READ (psycopg begins it with ``BEGIN ISOLATION LEVEL``: nothing is set
    for the session, so a pooler in transaction mode is fine), where read committed gives each
    statement its own snapshot and a document read in several (a report) could add up to no state
    the ledger was ever in. SQLite's reads in one transaction share one snapshot already. Call it
    before the connection's first statement."""
    if conn.dialect.name == "postgresql":
        if conn.in_transaction():
            raise RuntimeError("one_snapshot() must come before the connection's first statement")
        conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def create_engine_for(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get the pragmas above.

    ``hide_parameters``: an error never carries the statement's values (prompts, emails) into
    an exception message or a log line.

    PostgreSQL: ``prepare_threshold=None``, because psycopg otherwise prepares a statement on the
    server after its 5th run on a connection, and behind a transaction pooler (PgBouncer before
    1.21, or without ``max_prepared_statements``) the next transaction may run on a server
    connection that does not have it, or where another client prepared the same name: "prepared
    statement _pg3_0 does not exist / already exists". Always off rather than a setting: the
    cost was measured small (docs/scaling.md, "Behind a connection pooler"), and a setting a user
    must know about before putting a pooler in front is one they would find by outage.
    ``pool_pre_ping`` stays: behind a pooler it checks the link to the pooler (a ``SELECT 1`` that
    opens the transaction the checkout then uses) and leaves nothing on the server connection.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"FINOPS_DATABASE_URL is not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": _BUSY_TIMEOUT_S}, hide_parameters=True)
        _WRITERS[engine] = threading.RLock()

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}")
            # LIKE is case-sensitive on PostgreSQL; make SQLite agree (flow "Search" is not "search")
            cursor.execute("PRAGMA case_sensitive_like=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            immediate = conn.get_execution_options().get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        try:
            return create_engine(
                parsed, pool_pre_ping=True, hide_parameters=True, connect_args={"prepare_threshold": None}
            )
        except ModuleNotFoundError:
            raise ConfigError("PostgreSQL needs the driver: pip install 'finops[postgres]'") from None
    raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def describe_db_error(exc: BaseException) -> str:
    """A database error as finops may show or log it: its kind and SQLSTATE, never its message,
    which PostgreSQL writes with the refused value in it (``invalid input syntax ... "a@b.c"``).
    Connection failures keep their first line: it names the host, not data."""
    orig = getattr(exc, "orig", None) or exc
    kind = type(orig).__name__
    state = getattr(orig, "sqlstate", None)
    code = f" (SQLSTATE {state})" if state else ""
    if (isinstance(exc, OperationalError) and not state) or (state or "").startswith("08"):
        first = str(orig).strip().splitlines()[0][:200] if str(orig).strip() else ""
        return f"{kind}{code}: {first}" if first else f"{kind}{code}"
    return f"{kind}{code}"


def _script_location() -> str:
    """Where the migrations are: top-level ``alembic/``, shipped in the package as ``finops.migrations``."""
    spec = importlib.util.find_spec("finops.migrations")
    places = list(spec.submodule_search_locations or []) if spec else []
    places.append(str(Path(__file__).resolve().parents[2] / "alembic"))  # a source checkout
    for place in places:
        if (Path(place) / "env.py").is_file():
            return str(place)
    raise StorageError("finops cannot find its migrations (finops.migrations); reinstall finops")


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _script_location())
    config.attributes["url"] = engine.url
    return config


def head_revision(engine: Engine) -> str:
    """The newest migration this finops knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
    assert head is not None
    return head


#: The newest migration (alembic/versions); tests/test_migrations.py keeps it equal to Alembic's head.
SCHEMA_HEAD = "0009_live_holds"


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at; ``None`` for an empty database.

    Read from Alembic's own table with plain SQL, so that opening a ledger does not import
    Alembic (a third of a command's start-up); the history is linear, so one row at most.
    """
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            return None if row is None else str(row[0])
    except OperationalError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise StorageError(f"cannot open the database {shown}: {describe_db_error(exc)}") from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate to ``revision`` (default: the newest)."""
    from alembic import command

    config = _alembic_config(engine)
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate down to ``revision`` (``base`` removes every table)."""
    from alembic import command

    config = _alembic_config(engine)
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def _refuse_missing_sqlite(url: str) -> None:
    """SQLite creates a missing file on connect: look before connecting."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return  # create_engine_for says what is wrong
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path and path != ":memory:" and not Path(path).exists():
        raise StorageError(f"no finops database at {path}: run `finops db upgrade` to create one")


def open_ledger(url: str, *, create: bool = False) -> Engine:
    """An engine on a database at the newest schema.

    An empty database is migrated only when ``create`` is set (``db upgrade``, ``demo``,
    ``ingest``, ``run --init``); otherwise a missing file or a database without finops's
    schema is an error, never created: a command pointed at the wrong place must fail, not
    answer from an empty ledger (a budget check would say allow). One at an older revision
    is not touched: upgrading their data is the user's decision.
    """
    if not create:
        _refuse_missing_sqlite(url)
    engine = create_engine_for(url)
    current = current_revision(engine)
    if current == SCHEMA_HEAD:  # the common case, without loading the migration scripts
        return engine
    head = head_revision(engine)
    if current is None and create:
        with engine.connect() as conn:
            empty = not inspect(conn).get_table_names()
        if empty:
            upgrade(engine)
            return engine
    engine.dispose()
    shown = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise StorageError(f"no finops database at {shown}: run `finops db upgrade` to create one")
    raise StorageError(
        f"the database {shown} is at schema {current}, this finops needs {head}: run `finops db upgrade`"
    )
