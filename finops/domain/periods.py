"""Periods people type (``7d``, ``2026-11``, ``2026-11-03``, ``today``) as exact UTC instants.

Pure: the clock is passed in. Dates are local midnights in the given zone, so a
day in Europe/Berlin on a daylight-saving change lasts 23 or 25 hours.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["day_range", "month_range", "parse_instant"]

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def day_range(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) in UTC."""
    return _midnight(day, tz), _midnight(day + timedelta(days=1), tz)


def month_range(text: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """``2026-11`` -> [Nov 1 00:00, Dec 1 00:00) local, in UTC."""
    match = re.fullmatch(r"(\d{4})-(\d{1,2})", text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"month must look like 2026-11, got {text!r}")
    year, month = int(match.group(1)), int(match.group(2))
    first = date(year, month, 1)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return _midnight(first, tz), _midnight(following, tz)


def parse_instant(text: str, *, now: datetime, tz: ZoneInfo) -> datetime:
    """``7d``/``24h``/``30m``/``2w`` ago, ``today``, ``yesterday``, a date (local midnight) or a datetime."""
    value = text.strip().lower()
    match = _RELATIVE.fullmatch(value)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if value in ("today", "yesterday"):
        local_today = now.astimezone(tz).date()
        return _midnight(local_today - timedelta(days=value == "yesterday"), tz)
    try:
        if len(value) == 10:
            return _midnight(date.fromisoformat(value), tz)
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a time: use 7d, 24h, today, 2026-11-03 or 2026-11-03T10:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)
