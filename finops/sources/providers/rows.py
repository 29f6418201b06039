"""What one page of a provider's usage or cost report becomes: rows for ``provider_usage``/``provider_costs``.

Pure data, no I/O. Token counts are inclusive as docs/design.md §2 counts them
(``input_tokens`` includes cache reads and cache writes); money is integer
nano-dollars, converted exactly from the provider's decimal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from finops.domain.provider_reports import Bucket, CostRow, UsageRow
from finops.errors import IngestError

__all__ = ["Bucket", "CostRow", "Page", "UsageRow", "group_key", "merge_rows", "need_int", "rfc3339_us"]

# The row types are domain data (storage reads them too); re-exported for the parsers.


Row = TypeVar("Row", UsageRow, CostRow)


@dataclass(frozen=True)
class Page(Generic[Row]):
    """One page: its buckets (ascending), their rows, and the cursor of the next page."""

    buckets: tuple[Bucket, ...]
    rows: tuple[Row, ...]
    has_more: bool
    next_page: str | None


def group_key(values: Mapping[str, Any]) -> str:
    """Canonical ``k=v|k=v`` (keys sorted, ``None`` as empty): the same group always gets the same key."""
    parts = []
    for key in sorted(values):
        value = values[key]
        text = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        parts.append(f"{key}={text.replace('|', '/')}")
    return "|".join(parts)[:512]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SUMMED = {"requests", "input_tokens", "cached_input_tokens", "cache_write_tokens", "cache_write_1h_tokens"}
_SUMMED |= {"output_tokens", "amount_nanos"}


def merge_rows(rows: Iterable[Row]) -> tuple[Row, ...]:
    """Rows of one bucket and group summed into one, so a group the provider splits further is kept whole."""
    merged: dict[tuple[int, str], Row] = {}
    for row in rows:
        key = (row.bucket_start_us, row.group_key)
        seen = merged.get(key)
        if seen is None:
            merged[key] = row
            continue
        sums = {
            f.name: getattr(seen, f.name) + getattr(row, f.name) for f in fields(row) if f.name in _SUMMED
        }
        merged[key] = replace(seen, **sums)
    return tuple(merged.values())


def need_int(result: Mapping[str, Any], name: str, where: str, *, required: bool = False) -> int:
    """A token count: a non-negative integer; missing or null is 0 unless ``required``."""
    value = result.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise IngestError(f"{where}: {name} is {value!r}, expected a count (a whole number >= 0)")
    return value


def rfc3339_us(text: Any, where: str) -> int:
    """An RFC 3339 timestamp (``2025-08-01T00:00:00Z``) as epoch microseconds."""
    if not isinstance(text, str):
        raise IngestError(f"{where}: expected an RFC 3339 time, got {text!r}")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise IngestError(f"{where}: expected an RFC 3339 time, got {text!r}") from None
    if parsed.tzinfo is None:
        raise IngestError(f"{where}: the time {text!r} has no offset")
    return (parsed - _EPOCH) // timedelta(microseconds=1)
