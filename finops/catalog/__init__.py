"""Price files: the default catalog shipped with finops, and the operator's override file.

Both are YAML in USD per million tokens. Numbers are read as exact decimals
(never floats). The override file adds negotiated prices and private models
(``prices:``, same shape as the catalog) and discounts (``discounts:``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from finops.domain.pricing import Discount, PriceEntry, entry_from_mapping
from finops.errors import PriceFileError

__all__ = ["load_default_catalog", "load_overrides", "parse_price_yaml"]


class _DecimalLoader(yaml.SafeLoader):
    """The safe loader, with floats read as exact Decimals from their text."""


def _decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | str:
    """A YAML float as an exact Decimal; ``.inf``/``.nan`` stay text so validation names them."""
    assert isinstance(node, yaml.ScalarNode)
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    return value if value.is_finite() else text


_DecimalLoader.add_constructor("tag:yaml.org,2002:float", _decimal)


def parse_price_yaml(text: str, *, name: str) -> Any:
    """Safe-load YAML with exact numbers; errors name the file and line."""
    try:
        return yaml.load(text, Loader=_DecimalLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise PriceFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def _entries(items: object, *, layer: str, name: str) -> list[PriceEntry]:
    if not isinstance(items, list):
        raise PriceFileError(f"{name}: expected a list of price entries")
    entries = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise PriceFileError(f"{name}: entry {i + 1} is not a mapping")
        try:
            entries.append(entry_from_mapping(item, layer=layer, where=f"{name}: entry {i + 1}"))
        except ValueError as exc:
            raise PriceFileError(str(exc)) from None
    return entries


def load_default_catalog() -> list[PriceEntry]:
    """The catalog shipped in the package (``finops/catalog/default.yaml``).

    Parsed once per process: the file is part of the installed package, and parsing it takes
    about 0.1 s, which every ledger's price book (each CLI command, each test) paid again.
    The entries are frozen; their memos of resolved rates depend on nothing but the entry."""
    return list(_default_catalog())


@cache
def _default_catalog() -> tuple[PriceEntry, ...]:
    text = resources.files("finops.catalog").joinpath("default.yaml").read_text("utf-8")
    data = parse_price_yaml(text, name="finops/catalog/default.yaml")
    return tuple(_entries(data.get("models"), layer="catalog", name="finops/catalog/default.yaml"))


def _discount(item: object, where: str) -> Discount:
    if not isinstance(item, Mapping):
        raise PriceFileError(f"{where}: expected match, percent_off, effective_from")
    unknown = set(item) - {"match", "percent_off", "effective_from", "until", "note"}
    if unknown:
        raise PriceFileError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    pattern = item.get("match")
    if not isinstance(pattern, str) or not pattern:
        raise PriceFileError(f"{where}: match is required, e.g. 'anthropic/*'")
    try:
        percent = Decimal(str(item.get("percent_off")))
    except InvalidOperation:
        percent = Decimal(-1)
    if not Decimal(0) < percent <= Decimal(100):
        raise PriceFileError(
            f"{where}: percent_off must be a number in (0, 100], got {item.get('percent_off')!r}"
        )
    dates: list[date | None] = []
    for key in ("effective_from", "until"):
        value = item.get(key)
        if value is None:
            dates.append(None)
            continue
        try:
            dates.append(value if isinstance(value, date) else date.fromisoformat(str(value)))
        except ValueError:
            raise PriceFileError(f"{where}: {key} must be YYYY-MM-DD, got {value!r}") from None
    return Discount(
        pattern=pattern,
        fraction=percent / 100,
        effective_from=dates[0] or date(2000, 1, 1),
        until=dates[1],
        note=str(item.get("note") or f"{percent}% off {pattern}"),
    )


def load_overrides(path: Path) -> tuple[list[PriceEntry], list[Discount]]:
    """The operator's override file: ``prices:`` entries and ``discounts:``."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise PriceFileError(
            f"cannot read the price override file {path}: {exc.strerror}; "
            "fix FINOPS_PRICE_OVERRIDES or create the file"
        ) from None
    data = parse_price_yaml(text, name=str(path)) or {}
    if not isinstance(data, Mapping):
        raise PriceFileError(f"{path}: expected `prices:` and/or `discounts:` at the top level")
    unknown = set(data) - {"prices", "discounts"}
    if unknown:
        raise PriceFileError(f"{path}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}")
    entries = _entries(data.get("prices") or [], layer="override", name=str(path))
    discounts = [
        _discount(item, f"{path}: discount {i + 1}") for i, item in enumerate(data.get("discounts") or [])
    ]
    return entries, discounts
