"""The ledger as the app sees it: a database at the newest schema and the price book in force."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from finops.errors import ConfigError
from finops.storage.db import open_ledger, write_transaction

if TYPE_CHECKING:  # the price book is loaded on first use: a spend query or a check never needs it
    from finops.domain.pricing import PriceBook
    from finops.settings import Settings
    from finops.usecases.audit.tokens import TokenCounter

__all__ = ["Ledger", "build_price_book", "read_url_for"]


def build_price_book(engine: Engine, settings: Settings) -> PriceBook:
    """Catalog shipped with finops, then entries imported into this database, then overrides."""
    from finops.catalog import load_default_catalog, load_overrides
    from finops.domain.pricing import Discount, PriceBook, PriceEntry
    from finops.storage.prices import load_imported

    entries: list[PriceEntry] = list(load_default_catalog())
    with engine.connect() as conn:
        entries.extend(load_imported(conn))
    discounts: list[Discount] = []
    if settings.price_overrides is not None:
        more, discounts = load_overrides(settings.price_overrides)
        entries.extend(more)
    return PriceBook(entries, discounts)


def read_url_for(primary_url: str, read_url: str | None) -> str | None:
    """The read database to open for ``primary_url``: ``read_url``, or None when reads go to the
    primary (unset, or the same database).

    Raises:
        ConfigError: ``read_url`` cannot serve reads for ``primary_url`` (env.read_split_problem).
    """
    if not read_url:
        return None
    from finops.env import read_split_problem

    why = read_split_problem(primary_url, read_url)
    if why is not None:
        raise ConfigError(why)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        same = make_url(read_url) == make_url(primary_url)
    except ArgumentError:  # not repeated: a URL may hold a password
        raise ConfigError("FINOPS_READ_DATABASE_URL is not a database URL") from None
    return None if same else read_url


class Ledger:
    """What every use case needs: settings, the engines, the price book, the user-hash key.

    ``engine`` is the primary: every write, and every read that decides money (a budget check,
    a reservation, an alert) or sits inside a write. ``read_engine`` answers what is only shown
    (dashboard, reports, spend, prompts, outcomes, the FOCUS export): a replica when
    FINOPS_READ_DATABASE_URL is set, else the primary itself. The replica is opened (and its
    schema checked) on first use, so ``check``, ``reserve`` and ``ingest`` never wait for it or
    fail with it. The price book and the key are loaded on first use: a spend query needs neither.
    """

    def __init__(
        self,
        settings: Settings | Callable[[], Settings],
        engine: Engine,
        read_engine: Engine | None = None,
        *,
        read_url: str | None = None,
    ) -> None:
        """``read_url``: the read database, opened on first use (``read_engine``: already opened)."""
        self._settings = settings
        self.engine = engine
        self._read_engine = read_engine
        self._read_url = read_url
        self._read_lock = threading.Lock()
        self._book: PriceBook | None = None
        self._user_key: bytes | None = None
        self._token_counter: TokenCounter | None = None

    @classmethod
    def open(cls, settings: Settings, *, create: bool = False) -> Ledger:
        """The ledger at ``settings.database_url`` (reads at ``read_database_url`` when set, opened
        and checked now: the daemon refuses to start on a replica it cannot use);
        ``create``: migrate an empty or missing primary (never the read database)."""
        ledger = cls.open_url(
            settings.database_url, settings, create=create, read_url=settings.read_database_url
        )
        try:
            ledger.read_engine  # noqa: B018  # opened now, not at the first page
        except BaseException:
            ledger.close()
            raise
        return ledger

    @classmethod
    def open_url(
        cls,
        url: str,
        settings: Settings | Callable[[], Settings],
        *,
        create: bool = False,
        read_url: str | None = None,
    ) -> Ledger:
        """The ledger at ``url`` (reads at ``read_url`` when given, opened at the first read), its
        settings built on first use.

        For commands that need only the database (``spend``, ``check``): building
        ``Settings`` loads pydantic-settings, slower than the rest of such a command.
        """
        engine = open_ledger(url, create=create)
        try:
            read = read_url_for(url, read_url)
        except BaseException:
            engine.dispose()
            raise
        return cls(settings, engine, read_url=read)

    @property
    def read_engine(self) -> Engine:
        """The engine of what is only shown; the replica is opened and checked here the first time.

        Raises:
            StorageError: the read database does not answer or is not at the newest schema.
        """
        if self._read_engine is None:
            with self._read_lock:
                if self._read_engine is None:
                    if self._read_url is None:
                        self._read_engine = self.engine
                    else:
                        from finops.storage.replica import open_reader

                        self._read_engine = open_reader(self._read_url)
        return self._read_engine

    @property
    def split(self) -> bool:
        """Whether reads go to another database than the primary."""
        return self._read_url is not None or (
            self._read_engine is not None and self._read_engine is not self.engine
        )

    def read_replay_age_s(self) -> float | None:
        """How far behind the read database may be (seconds since its last replayed commit), when it
        is a streaming standby; None otherwise (no split, a logical replica)."""
        if not self.split:
            return None
        from finops.storage.replica import replay_age_s

        return replay_age_s(self.read_engine)

    @property
    def settings(self) -> Settings:
        if callable(self._settings):
            self._settings = self._settings()
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self._settings = value

    @property
    def book(self) -> PriceBook:
        if self._book is None:
            self._book = build_price_book(self.engine, self.settings)
        return self._book

    @property
    def user_key(self) -> bytes:
        if self._user_key is None:
            secret = self.settings.user_hash_secret
            if secret is not None:
                self._user_key = secret.get_secret_value().encode()
            else:
                from finops.storage.meta import user_hash_key

                with write_transaction(self.engine) as conn:
                    self._user_key = user_hash_key(conn)
        return self._user_key

    @property
    def token_counter(self) -> TokenCounter:
        """tiktoken counts (estimates where no encoding loads), shared by every batch."""
        if self._token_counter is None:
            from finops.usecases.audit.tokens import TokenCounter

            self._token_counter = TokenCounter()
        return self._token_counter

    def reload_prices(self) -> None:
        self._book = build_price_book(self.engine, self.settings)

    def close(self) -> None:
        self.engine.dispose()
        if self._read_engine is not None and self._read_engine is not self.engine:
            self._read_engine.dispose()

    def __repr__(self) -> str:
        primary = self.engine.url.render_as_string(hide_password=True)
        if self._read_url is None:
            return f"Ledger({primary})"
        from sqlalchemy.engine import make_url

        return f"Ledger({primary}, reads: {make_url(self._read_url).render_as_string(hide_password=True)})"
