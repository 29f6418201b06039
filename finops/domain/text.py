"""What a string from outside may hold before finops stores or prints it.

Every text field of a record is checked here, so a bad one is rejected with a reason and never
reaches the database (PostgreSQL refuses NUL, and an over-long value fails the whole statement)
or a terminal (an ESC sequence or a right-to-left override in a flow name rewrites what people
read). Names (flow, model, provider, tag keys, event) are also never blank.
"""

from __future__ import annotations

import re

__all__ = ["TextError", "check_name", "check_text", "escaped", "has_forbidden", "named", "shown"]

#: C0 and C1 controls (NUL, ESC, CR, LF, TAB...), DEL, and the Unicode format characters that
#: reorder or hide text: bidi embeddings and overrides, isolates, marks, zero-width characters;
#: and lone surrogates, which no database encoding can hold.
_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
_NAMES = {
    "\x00": "NUL",
    "\x1b": "ESC",
    "\r": "CR",
    "\n": "LF",
    "\t": "TAB",
    "\u202e": "a right-to-left override",
    "\u202d": "a left-to-right override",
}


class TextError(ValueError):
    """A text that cannot be kept; the message says which character and where."""


def has_forbidden(value: str) -> bool:
    """Whether ``value`` holds a control or bidi character (one C-speed scan, for hot paths)."""
    return _FORBIDDEN.search(value) is not None


def _describe(char: str) -> str:
    return _NAMES.get(char, f"the control character U+{ord(char):04X}")


def check_text(value: str, name: str, limit: int) -> str:
    """``value`` if it fits ``limit`` characters and holds no control or bidi character."""
    if len(value) > limit:
        raise TextError(f"{name} is longer than {limit} characters")
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise TextError(f"{name} contains {_describe(bad.group())} at position {bad.start()}")
    return value


def check_name(value: str, name: str, limit: int) -> str:
    """Like :func:`check_text`, and not blank: a name people read in tables and alerts."""
    check_text(value, name, limit)
    if not value.strip():
        raise TextError(f"{name} is blank")
    return value


def shown(value: object) -> str:
    """A sent value as a reason may quote it: a number as written (cut), never a text (a field
    could hold a prompt or a secret: the reason says its length; the line and id say where)."""
    if isinstance(value, str):
        return f"a text of {len(value):,} characters"
    if isinstance(value, int) and value.bit_length() > 64:
        return "a number too large"
    if value is None or isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:39] + "…"
    return f"a {type(value).__name__}"


def named(value: str, limit: int = 40) -> str:
    """A name quoted in a reason: as written when it is clean and short, else :func:`shown`."""
    if len(value) <= limit and _FORBIDDEN.search(value) is None and value.strip():
        return value
    return shown(value)


def escaped(value: str, limit: int) -> str:
    """``value`` with every control or bidi character written as ``\\uXXXX``, cut to ``limit``:
    for text finops writes itself from input (a reason, a location) and must be able to store."""
    clean = _FORBIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
