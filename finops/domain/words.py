"""Counted nouns for people: ``1 model``, ``2 models``, ``1 record was``, ``3 records were``. Pure.

Every message that puts a number before a noun goes through :func:`plural`, so no output says
"1 models" or "1 were conflicts".
"""

from __future__ import annotations

__all__ = ["plural", "verb"]


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``n`` and the noun, singular for exactly one: ``plural(1, "model")`` is ``1 model``.

    ``many`` is the plural when adding an ``s`` is wrong (``plural(2, "entry", "entries")``).
    The count has thousands separators (``1,204 records``).
    """
    word = noun if n == 1 else (many if many is not None else noun + "s")
    return f"{n:,} {word}"


def verb(n: int, one: str = "was", many: str = "were") -> str:
    """The verb agreeing with ``n``: ``was``/``were`` by default (``1 record was``, ``2 were``)."""
    return one if n == 1 else many
