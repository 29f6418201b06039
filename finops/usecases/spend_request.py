"""A spend question in words (``since=7d``, ``by=flow,model``) turned into a :class:`SpendQuery`.

The CLI and the HTTP API ask the same questions with the same words, so both go through here;
``dash`` names the options as the asker typed them (``--since`` at a terminal, ``since`` in a URL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from finops.domain.periods import month_range, parse_instant
from finops.domain.providers import canonical_provider
from finops.usecases.spend import SpendQuery

__all__ = ["EARLIEST", "LATEST", "resolve_period", "resolve_zone", "spend_query"]

#: Periods start and end within these instants: before 1970 nothing was metered, and a period of
#: thousands of years is a typo (``99999999d``) that would only cost time (or overflow) to answer.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def resolve_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from None


def resolve_period(
    *,
    since: str | None,
    until: str | None,
    month: str | None,
    today: bool,
    tz: ZoneInfo,
    now: datetime,
    dash: str = "--",
) -> tuple[datetime | None, datetime | None]:
    """[start, end) of the period asked for; ``None`` ends are open."""
    if len([given for given in (since, month, today) if given]) > 1:
        raise ValueError(f"use one of {dash}since, {dash}month, {dash}today")
    if month:
        if until:
            raise ValueError(f"{dash}month already ends the period; drop {dash}until")
        return _bounded(f"{dash}month", month, lambda: month_range(month, tz))
    start = end = None
    if today:
        start = parse_instant("today", now=now, tz=tz)
    elif since:
        start = _bounded(f"{dash}since", since, lambda: parse_instant(since, now=now, tz=tz))
    if until:
        end = _bounded(f"{dash}until", until, lambda: parse_instant(until, now=now, tz=tz))
    if start and end and start >= end:
        raise ValueError(f"{dash}since must be before {dash}until")
    return start, end


_Period = TypeVar("_Period", datetime, tuple[datetime, datetime])


def _bounded(option: str, text: str, read: Callable[[], _Period]) -> _Period:
    """``read()``, refused with a reason when it falls outside [EARLIEST, LATEST] (or the calendar)."""
    value: _Period | None
    try:
        value = read()
    except OverflowError:
        value = None
    except ValueError as exc:
        if "out of range" not in str(exc):  # a typo: the message says what to type instead
            raise
        value = None
    instants = value if isinstance(value, tuple) else (value,)
    if value is None or not all(i is not None and EARLIEST <= i <= LATEST for i in instants):
        raise ValueError(
            f"{option} {text!r} is out of range: ask for a time from {EARLIEST:%Y-%m-%d} to "
            f"{LATEST:%Y-%m-%d} (leave {option} out for no limit)"
        )
    return value


def spend_query(
    *,
    by: str,
    start: datetime | None,
    end: datetime | None,
    tz: ZoneInfo,
    flows: Sequence[str] = (),
    models: Sequence[str] = (),
    providers: Sequence[str] = (),
    tags: Sequence[str] = (),
    top: int | None = None,
    dash: str = "--",
) -> SpendQuery:
    """Raises ``ValueError`` with a message that names the option to fix."""
    parsed: dict[str, str] = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{dash}tag takes KEY=VALUE, got {item!r}")
        parsed[key] = value
    return SpendQuery(
        group_by=tuple(d.strip() for d in by.split(",") if d.strip()),
        start=start,
        end=end,
        tz=tz,
        flows=tuple(flows),
        models=tuple(m.lower() for m in models),
        providers=tuple(canonical_provider(p) for p in providers),
        tags=parsed,
        top=top,
    )
