"""The ledger as the app sees it: a database at the newest schema and the price book in force."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine

from finops.catalog import load_default_catalog, load_overrides
from finops.domain.pricing import Discount, PriceBook, PriceEntry
from finops.settings import Settings
from finops.storage.db import open_ledger, write_transaction
from finops.storage.meta import user_hash_key
from finops.storage.prices import load_imported

if TYPE_CHECKING:
    from finops.usecases.audit.tokens import TokenCounter

__all__ = ["Ledger", "build_price_book"]


def build_price_book(engine: Engine, settings: Settings) -> PriceBook:
    """Catalog shipped with finops, then entries imported into this database, then overrides."""
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

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._book: PriceBook | None = None
        self._user_key: bytes | None = None
        self._token_counter: TokenCounter | None = None

    @classmethod
    def open(cls, settings: Settings, *, create: bool = False) -> Ledger:
        """The ledger at ``settings.database_url``; ``create``: migrate an empty or missing one."""
        return cls(settings, open_ledger(settings.database_url, create=create))

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
