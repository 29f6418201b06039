"""Exact money: ``Decimal`` USD in code, integer nano-dollars in storage.

A record's cost is computed exactly (prices times token counts, no rounding),
then rounded once, half to even, to a whole nano-dollar. Sums are integer sums.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

__all__ = ["EXACT", "NANOS_PER_USD", "PER_MILLION", "format_usd", "nanos_to_usd", "usd_to_nanos"]

NANOS_PER_USD = 1_000_000_000
PER_MILLION = Decimal(1_000_000)
_NANO = Decimal("1e-9")
#: Wide enough that no product of a price (<= 34 digits) and a token count is ever rounded.
EXACT = Context(prec=80, rounding=ROUND_HALF_EVEN)


def usd_to_nanos(amount: Decimal) -> int:
    """Round an exact USD amount half-to-even to integer nano-dollars."""
    return int(amount.quantize(_NANO, rounding=ROUND_HALF_EVEN, context=EXACT) * NANOS_PER_USD)


def nanos_to_usd(nanos: int) -> Decimal:
    """Integer nano-dollars as an exact Decimal with nine decimal places."""
    return Decimal(nanos).scaleb(-9)


def format_usd(nanos: int, *, cents: bool = False) -> str:
    """Exact decimal string (``'12.345678901'``), or rounded to the cent for people."""
    value = nanos_to_usd(nanos)
    if cents:
        return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"
    return f"{value:f}"
