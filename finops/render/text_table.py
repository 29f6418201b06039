"""Plain-text tables for the terminal: aligned columns, a header and a totals line.

Written by hand instead of with rich because a command that prints one table should
not pay rich's import (a fifth of `finops spend`'s start-up), and because a table
here is never wrapped or cut: a long name stays whole, so the output can be grepped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Column", "render"]

_GAP = "  "


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # numbers are right-aligned
    footer: str = ""


def cell_width(text: str) -> int:
    """Terminal cells taken by ``text``: wide East Asian characters take two, marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _pad(text: str, width: int, right: bool) -> str:
    fill = " " * (width - cell_width(text))
    return fill + text if right else text + fill


def render(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> str:
    """The table as lines; a footer line is added when any column has one."""
    lines: list[Sequence[str]] = [[c.header for c in columns], *rows]
    if any(c.footer for c in columns):
        lines.append([c.footer for c in columns])
    widths = [max(cell_width(line[i]) for line in lines) for i in range(len(columns))]
    out = []
    for line in lines:
        cells = [_pad(text, widths[i], columns[i].right) for i, text in enumerate(line)]
        out.append(_GAP.join(cells).rstrip())
    return "\n".join(out)
