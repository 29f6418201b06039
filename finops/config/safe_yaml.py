"""YAML as operators write it: safe, exact, and with a line number for everything.

``yaml.safe_load`` would lose what a helpful message needs: the line of each key,
and duplicate keys (YAML silently keeps the last). So a file is *composed* into
nodes first, checked (only standard tags; no duplicate keys), and only then
constructed into Python values. Floats become exact ``Decimal`` from their text,
never binary floats. Nothing here knows what a budget is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

__all__ = ["YamlDocument", "YamlIssue", "find", "line", "line_at", "read_yaml"]

_YAML = "tag:yaml.org,2002:"
_MERGE = f"{_YAML}merge"


@dataclass(frozen=True)
class YamlIssue:
    """Something wrong with the YAML itself, at a 1-based line (None: the whole file)."""

    line: int | None
    message: str


@dataclass(frozen=True)
class YamlDocument:
    """A composed and constructed document; ``root`` is None for an empty (or all-comment) file."""

    root: yaml.Node | None
    data: Any
    issues: list[YamlIssue] = field(default_factory=list)  # duplicate keys: usable, but wrong


class _Loader(yaml.SafeLoader):
    """The safe loader; floats become exact Decimals and dates stay text (operator files take none)."""


def _decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | str:
    """A YAML float as an exact Decimal; ``.inf``/``.nan`` stay text so validation names them."""
    assert isinstance(node, yaml.ScalarNode)
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    return value if value.is_finite() else text


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    """A YAML int; one too long for Python (over 4300 digits) is an error with a line, not a crash."""
    assert isinstance(node, yaml.ScalarNode)
    try:
        return int(yaml.SafeLoader.construct_yaml_int(loader, node))
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, "this number is too long", node.start_mark
        ) from None


def _text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    """A date-looking scalar as its text: ``2026-02-30`` is then a validation error, not a crash."""
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_Loader.add_constructor(f"{_YAML}float", _decimal)
_Loader.add_constructor(f"{_YAML}int", _int)
_Loader.add_constructor(f"{_YAML}timestamp", _text)
#: The YAML 1.1 types (plus merge ``<<`` and value ``=`` keys); anything else names code to run.
_STANDARD_TAGS = frozenset(t for t in _Loader.yaml_constructors if t) | {_MERGE, f"{_YAML}value"}


def line(node: yaml.Node) -> int:
    """The 1-based line where ``node`` starts."""
    return int(node.start_mark.line) + 1


def _nodes(root: yaml.Node) -> Iterator[yaml.Node]:
    """Every node once: an alias is walked once, so an alias bomb costs no more than its text."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in node.value for n in pair)


def _check(root: yaml.Node) -> tuple[list[YamlIssue], list[YamlIssue]]:
    """(refused tags, duplicate keys), found before anything is constructed."""
    tags, duplicates = [], []
    for node in _nodes(root):
        if node.tag not in _STANDARD_TAGS:
            tag = f"!!{node.tag[len(_YAML) :]}" if node.tag.startswith(_YAML) else node.tag
            tags.append(
                YamlIssue(
                    line(node),
                    f"YAML tag {tag} is not allowed: only plain values (text, numbers, lists, mappings)",
                )
            )
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
                    continue
                ident = (key.tag, key.value)
                if ident in first:
                    duplicates.append(
                        YamlIssue(
                            line(key),
                            f"duplicate key {key.value!r}: already set on line {first[ident]}; keep one",
                        )
                    )
                first.setdefault(ident, line(key))
    return tags, duplicates


def _syntax(exc: yaml.YAMLError) -> YamlIssue:
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or exc)
    if "'@'" in problem or "'`'" in problem:
        problem += ' (quote values that start with @ or `, e.g. owner: "@dana")'
    return YamlIssue(int(mark.line) + 1 if mark is not None else None, f"not valid YAML: {problem}")


def read_yaml(text: str) -> tuple[YamlDocument | None, list[YamlIssue]]:
    """Compose, check, construct. ``(None, issues)`` when the text cannot be used at all.

    A refused tag stops before construction, so no constructor ever sees it (the
    safe loader would refuse it too, but without a line a person can act on).
    """
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == f"{_YAML}null"):
            return YamlDocument(None, None), []
        tags, duplicates = _check(root)
        if tags:
            return None, sorted(tags + duplicates, key=lambda i: i.line or 0)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        return None, [_syntax(exc)]
    finally:
        loader.dispose()
    return YamlDocument(root, data, sorted(duplicates, key=lambda i: i.line or 0)), []


def find(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The ``key: value`` node pair of a mapping; the last wins (merged ``<<`` entries come first)."""
    found = None
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                found = (k, v)
    return found


def line_at(node: yaml.Node, loc: tuple[int | str, ...]) -> int:
    """The line of the deepest key or list item of ``loc`` present under ``node``, else ``node``'s own.

    ``loc`` is a pydantic error location, e.g. ``("match", "tags", "locale")`` or ``("thresholds", 1)``.
    """
    at = line(node)
    for part in loc:
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            at = line(node)
            continue
        pair = find(node, str(part))
        if pair is None:
            break
        at, node = line(pair[0]), pair[1]
    return at
