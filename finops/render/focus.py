"""The FOCUS export as a file: CSV (RFC 4180, UTF-8, a header of the column names) or Parquet.

Parquet needs pyarrow (``pip install 'finops[parquet]'``). Its money and quantity columns are
``decimal128(38, 18)`` (``decimal256`` with more decimals where a unit price has more than 18): exact,
nine decimals of dollars kept (never a float); the rest strings,
with timestamps as UTC ``timestamp[s]``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from finops.domain.focus import COLUMNS
from finops.errors import ConfigError

__all__ = ["csv_chunks", "write_csv", "write_parquet"]

_DECIMALS = ("BilledCost", "ContractedCost", "ContractedUnitPrice", "EffectiveCost", "ListCost",
             "ListUnitPrice", "PricingQuantity", "ConsumedQuantity")  # fmt: skip
_TIMES = ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart")
_INTEGERS = ("x_Requests", "x_SuccessfulOutcomes", "x_UnpricedRecords")


def csv_chunks(
    rows: Iterable[dict[str, str]], *, columns: Sequence[str] = COLUMNS, every: int = 1000
) -> Iterator[str]:
    """The CSV text in pieces of ``every`` rows (the daemon streams them)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for i, row in enumerate(rows, 1):
        writer.writerow(row)
        if i % every == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(rows: Iterable[dict[str, str]], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        for chunk in csv_chunks(rows):
            f.write(chunk)


def _decimal_type(pa: Any, numbers: Sequence[Decimal]) -> Any:
    """``decimal128(38, 18)``, or wider where a value has more decimals (a unit price under a
    discount of many decimals): never rounded, never a float."""
    scale = max((-int(n.as_tuple().exponent) for n in numbers), default=18)
    if scale <= 18:
        return pa.decimal128(38, 18)
    if scale > 56:  # 20 whole digits must still fit in decimal256's 76
        raise ConfigError(
            f"a value has {scale} decimals, more than Parquet's decimals hold: use --format csv"
        )
    return pa.decimal256(76, scale)


def write_parquet(rows: Sequence[dict[str, str]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "Parquet needs pyarrow: pip install 'finops[parquet]' (or use --format csv)"
        ) from None

    def column(name: str) -> object:
        values = [row[name] for row in rows]
        if name in _DECIMALS:
            numbers = [Decimal(v) for v in values]
            return pa.array(numbers, type=_decimal_type(pa, numbers))
        if name in _TIMES:
            return pa.array(
                [datetime.strptime(v, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for v in values],
                type=pa.timestamp("s", tz="UTC"),
            )
        if name in _INTEGERS:
            return pa.array([int(v) for v in values], type=pa.int64())
        if name == "ChargeClass":
            return pa.array([v or None for v in values], type=pa.string())
        return pa.array(values, type=pa.string())

    table = pa.table({name: column(name) for name in COLUMNS})
    pq.write_table(table, path)
