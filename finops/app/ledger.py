"""The ledger as the app sees it: a database at the newest schema and the price book in force."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from finops.catalog import load_default_catalog, load_overrides
from finops.domain.pricing import Discount, PriceBook, PriceEntry
from finops.settings import Settings
from finops.storage.db import open_ledger
from finops.storage.meta import user_hash_key
from finops.storage.prices import load_imported

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


@dataclass
class Ledger:
    """What every use case needs: settings, the engine, the price book, the user-hash key."""

    settings: Settings
    engine: Engine
    book: PriceBook
    user_key: bytes

    @classmethod
    def open(cls, settings: Settings, *, create: bool = True) -> Ledger:
        engine = open_ledger(settings.database_url, create=create)
        if settings.user_hash_secret is not None:
            key = settings.user_hash_secret.get_secret_value().encode()
        else:
            with engine.begin() as conn:
                key = user_hash_key(conn)
        return cls(settings, engine, build_price_book(engine, settings), key)

    def reload_prices(self) -> None:
        self.book = build_price_book(self.engine, self.settings)

    def close(self) -> None:
        self.engine.dispose()
