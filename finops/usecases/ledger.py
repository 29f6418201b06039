"""The ledger as the app sees it: a database at the newest schema and the price book in force."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from finops.storage.db import open_ledger, write_transaction

if TYPE_CHECKING:  # the price book is loaded on first use: a spend query or a check never needs it
    from finops.domain.pricing import PriceBook
    from finops.settings import Settings
    from finops.usecases.audit.tokens import TokenCounter

__all__ = ["Ledger", "build_price_book"]


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


class Ledger:
    """What every use case needs: settings, the engine, the price book, the user-hash key.

    The price book and the key are loaded on first use: a spend query needs neither.
    """

    def __init__(self, settings: Settings | Callable[[], Settings], engine: Engine) -> None:
        self._settings = settings
        self.engine = engine
        self._book: PriceBook | None = None
        self._user_key: bytes | None = None
        self._token_counter: TokenCounter | None = None

    @classmethod
    def open(cls, settings: Settings, *, create: bool = False) -> Ledger:
        """The ledger at ``settings.database_url``; ``create``: migrate an empty or missing one."""
        return cls(settings, open_ledger(settings.database_url, create=create))

    @classmethod
    def open_url(cls, url: str, settings: Callable[[], Settings], *, create: bool = False) -> Ledger:
        """The ledger at ``url``, its settings built on first use.

        For commands that need only the database (``spend``, ``check``): building
        ``Settings`` loads pydantic-settings, slower than the rest of such a command.
        """
        return cls(settings, open_ledger(url, create=create))

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

    def __repr__(self) -> str:
        return f"Ledger({self.engine.url.render_as_string(hide_password=True)})"
