"""Pydantic's validation errors about a budget, as sentences a flow owner can act on.

``Input should be greater than 0`` helps nobody at 2 a.m.; ``daily_cap_usd must be
a positive number, got '250$'`` does. Unknown keys and time zones get a
did-you-mean from difflib. The line is found elsewhere (``safe_yaml.line_at``).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any
from zoneinfo import available_timezones

from pydantic_core import ErrorDetails

from finops.config.budget_spec import Budget, BudgetMatch

__all__ = ["explain", "show", "suggest"]

_MONEY = frozenset({"daily_cap_usd", "monthly_cap_usd", "max_cost_per_success_usd"})
_REQUIRED = {
    "owner": "owner is required (a Slack handle like @dana or a user id)",
    "daily_cap_usd": "daily_cap_usd is required (USD per local day, e.g. 250)",
}
_EXAMPLE_MATCH = '{flow: "support-*", tags: {locale: en}}'


#: Longest value or key quoted back in a message: a message is one line, whatever the file holds.
_SHOWN = 60


def show(value: object) -> str:
    """A value as the owner wrote it, short: never the repr of a whole nested structure."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        text = str(value)
        return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    if isinstance(value, str):
        return repr(value if len(value) <= _SHOWN else value[: _SHOWN - 3] + "...")
    return "a mapping" if isinstance(value, Mapping) else "a list"


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a misspelt ``word``, if one is close enough to be a typo.

    A word far longer than any choice is no typo (and comparing it would cost time per choice).
    """
    options = list(choices)
    if len(word) > 2 * max((len(c) for c in options), default=0) + 10:
        return None
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _where(loc: tuple[int | str, ...]) -> str:
    """``("match", "tags", "team")`` -> ``match.tags.team``; list positions count from 1."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f" item {part + 1}"
            continue
        name = part if len(part) <= _SHOWN else part[: _SHOWN - 3] + "..."
        out += f".{name}" if out else name
    return out


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    key, parent = str(loc[-1]), _where(loc[:-1])
    if (key, parent) == ("tags", ""):
        return f"unknown key 'tags': tags go under match, e.g. match: {_EXAMPLE_MATCH}"
    fields = list(BudgetMatch.model_fields if parent == "match" else Budget.model_fields)
    close = suggest(key, fields)
    hint = f" (did you mean {close}?)" if close else f"; known keys: {', '.join(fields)}"
    return f"unknown key {show(key)}{f' in {parent}' if parent else ''}{hint}"


def _timezone(kind: str, value: object) -> str:
    if kind != "value_error" or not isinstance(value, str):
        return f"timezone must be a time zone name such as Europe/Berlin, got {show(value)}"
    close = suggest(value, _zones())
    hint = f" (did you mean {close}?)" if close else "; use an IANA name such as Europe/Berlin"
    return f"timezone: unknown time zone {show(value)}{hint}"


def _selector(item: Mapping[str, Any]) -> str:
    if item.get("flow") is not None:
        return "give exactly one of flow or match, not both: flow names one flow, match selects by glob"
    return f"give exactly one of flow or match: flow: support-gpt-en, or match: {_EXAMPLE_MATCH}"


def _generic(kind: str, where: str, value: object, err: ErrorDetails, reason: str) -> str:
    if kind == "dict_type":
        return f"{where} must be a mapping of names to values, e.g. {{locale: en}}, got {show(value)}"
    if kind == "string_type":
        if value is None:
            return f"{where} is empty: give a value or remove the key"
        return f"{where} must be text, got {show(value)} (put it in quotes)"
    if kind == "string_too_short":
        return f"{where} must not be empty"
    if kind == "string_too_long":
        return f"{where} is too long: at most {err.get('ctx', {}).get('max_length')} characters"
    return f"{where or 'budget'}: {reason[:1].lower()}{reason[1:]} (got {show(value)})"


def explain(err: ErrorDetails, item: Mapping[str, Any]) -> str:
    """One pydantic error about the budget ``item`` (its raw mapping) as one plain sentence."""
    loc, kind, value = tuple(err["loc"]), err["type"], err.get("input")
    name, where = (str(loc[0]) if loc else ""), _where(loc)
    reason = str(err.get("ctx", {}).get("error", err["msg"]))
    if kind == "missing" or (loc == ("owner",) and value in (None, "")):
        return _REQUIRED.get(where, f"{where} is required")
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    if kind == "invalid_key":
        return f"keys must be text, got {show(loc[-1])}"
    if len(loc) == 1 and name in _MONEY:
        if kind == "less_than":
            return f"{name} must be below 1,000,000,000,000,000 USD, got {show(value)}"
        if kind == "value_error" and "nano-dollar" in reason:
            return f"{name} must be at least 0.000000001 USD (one nano-dollar), got {show(value)}"
        return f"{name} must be a positive number, got {show(value)}"
    if name == "max_tool_calls_per_request":
        return f"max_tool_calls_per_request must be a positive whole number, got {show(value)}"
    if name == "thresholds":
        if kind == "value_error":
            return f"thresholds: {reason}"
        if len(loc) > 1:
            return f"thresholds: each is a fraction of the cap, e.g. 0.8 for 80%, got {show(value)}"
        return f"thresholds must be a list of fractions of the cap, e.g. [0.5, 0.8, 1.0], got {show(value)}"
    if name == "timezone":
        return _timezone(kind, value)
    if kind == "value_error" and loc == ("flow",):
        return reason  # names the flow and what to write instead
    if kind == "value_error" and loc == ("match", "flow"):
        return f"match.flow: {reason}"
    if name == "on_breach":
        return f"on_breach must be alert or block, got {show(value)}"
    if not loc and "exactly one" in reason:
        return _selector(item)
    if kind in {"model_type", "model_attributes_type"} and where == "match":
        return f"match must be a mapping such as {_EXAMPLE_MATCH}, got {show(value)}"
    return _generic(kind, where, value, err, reason)
