"""Which provider pollers run: those whose admin key is set."""

from __future__ import annotations

from finops.app.daemon import Poller
from finops.settings import Settings

__all__ = ["configured_pollers"]


def configured_pollers(settings: Settings) -> dict[str, Poller]:
    return {}
