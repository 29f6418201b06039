"""YAML as operators write it: safe, exact, and with a line number for everything.

``yaml.safe_load`` would lose what a helpful message needs: the line of each key,
and duplicate keys (YAML silently keeps the last). So a file is *composed* into
nodes first, checked (only standard tags; no duplicate keys), and only then
constructed into Python values. Floats become exact ``Decimal`` from their text,
never binary floats. Nothing here knows what a budget is.

Operator files can be hostile (or absurd), so reading one is bounded before any
recursion or big-number arithmetic happens: at most ``MAX_BYTES`` of text, nodes at most
``MAX_DEPTH`` deep (PyYAML's composer recurses once per level, so depth is checked as
each node is composed), at most ``MAX_VALUES`` values with aliases expanded (a
"billion laughs" stops at its anchor), no alias inside its own anchor, and numbers of
at most ``MAX_NUMBER_CHARS`` characters (a YAML 1.1 base-60 int is quadratic to build).
Each limit is an issue with a line, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "MAX_VALUES",
    "TOO_BIG",
    "YamlDocument",
    "YamlIssue",
    "find",
    "line",
    "line_at",
    "read_yaml",
]

_YAML = "tag:yaml.org,2002:"
_MERGE = f"{_YAML}merge"

from finops.config.budget_folder import MAX_BYTES  # noqa: E402  (the folder's reader enforces it too)

TOO_BIG = "file is larger than 1 MiB; a budget file is a few dozen lines"
#: Levels of nesting: a budget file needs six (the file, budgets, a budget, match, tags, a tag).
MAX_DEPTH = 32
#: Values (nodes), aliases expanded: a few hundred budgets; also bounds the work of composing.
MAX_VALUES = 20_000
#: A money amount or a count is a few dozen characters at most.
MAX_NUMBER_CHARS = 100


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


class _Limit(yaml.YAMLError):
    """A limit of this module was reached at ``mark``: reported as is, not as a syntax error."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """The safe loader; floats become exact Decimals and dates stay text (operator files take none).

    Composing counts depth and values as it goes, so a hostile file stops at the first node past
    a limit: before Python's recursion limit, and before the rest of the file is even scanned.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._values = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if not self.check_event(yaml.AliasEvent):
                self._values += 1
                if self._depth > MAX_DEPTH:
                    raise _Limit(f"nested deeper than {MAX_DEPTH} levels", self._mark())
                if self._values > MAX_VALUES:
                    raise _Limit(
                        f"more than {MAX_VALUES:,} values; a budget file holds a few hundred budgets: "
                        "split it into several files",
                        self._mark(),
                    )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _mark(self) -> yaml.Mark:
        """Where the next node starts."""
        mark: yaml.Mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        return mark


def _number_text(node: yaml.Node) -> str:
    """The scalar's text, refused before any arithmetic when no budget number could be that long."""
    assert isinstance(node, yaml.ScalarNode)
    if len(node.value) > MAX_NUMBER_CHARS:
        raise _Limit(f"number longer than {MAX_NUMBER_CHARS} characters", node.start_mark)
    return str(node.value)


def _decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | str:
    """A YAML float as an exact Decimal; ``.inf``/``.nan`` stay text so validation names them."""
    text = _number_text(node).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return text
    return value if value.is_finite() else text


def _int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    """A YAML int; a long one is an error with a line, never a crash or minutes of base-60 arithmetic."""
    assert isinstance(node, yaml.ScalarNode)
    _number_text(node)
    try:
        return int(yaml.SafeLoader.construct_yaml_int(loader, node))
    except ValueError:  # a guard: MAX_NUMBER_CHARS is far below Python's 4300-digit limit
        raise _Limit(f"number longer than {MAX_NUMBER_CHARS} characters", node.start_mark) from None


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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expansion(root: yaml.Node) -> YamlIssue | None:
    """What aliases would make of the document, found on the node graph before constructing it.

    Composing bounded what is written; an alias repeats a whole subtree, so each node's size
    and depth *with aliases expanded* are computed (once per node, bottom up). The first node
    past a limit is named: for a billion laughs, the anchor where it explodes. An alias inside
    its own anchor (``&a [*a]``) would make a recursive value; nothing an operator means.
    """
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_.discard(key)
            if depth[key] > MAX_DEPTH:
                return YamlIssue(line(node), f"aliases nest this deeper than {MAX_DEPTH} levels")
            if size[key] > MAX_VALUES:
                return YamlIssue(
                    line(node), f"aliases expand this to more than {MAX_VALUES:,} values; use fewer aliases"
                )
            continue
        if key in size:
            continue
        open_.add(key)
        stack.append((node, True))
        for kid in _children(node):
            if id(kid) in open_:
                return YamlIssue(
                    line(kid), "an alias refers to a value that contains it; copy the value instead"
                )
            if id(kid) not in size:
                stack.append((kid, False))
    return None


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
                            f"duplicate key {_short(key.value)}: "
                            f"already set on line {first[ident]}; keep one",
                        )
                    )
                first.setdefault(ident, line(key))
    return tags, duplicates


def _short(text: str) -> str:
    """``text`` quoted for a message, clipped: a message is one line whatever the file holds."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _syntax(exc: yaml.YAMLError) -> YamlIssue:
    if isinstance(exc, _Limit):
        return YamlIssue(int(exc.mark.line) + 1 if exc.mark is not None else None, exc.message)
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or exc)
    if "'@'" in problem or "'`'" in problem:
        problem += ' (quote values that start with @ or `, e.g. owner: "@dana")'
    return YamlIssue(int(mark.line) + 1 if mark is not None else None, f"not valid YAML: {problem}")


def read_yaml(text: str) -> tuple[YamlDocument | None, list[YamlIssue]]:
    """Compose, check, construct. ``(None, issues)`` when the text cannot be used at all.

    A refused tag stops before construction, so no constructor ever sees it (the
    safe loader would refuse it too, but without a line a person can act on). So do
    the limits of the module docstring.
    """
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return None, [YamlIssue(None, TOO_BIG)]
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == f"{_YAML}null"):
            return YamlDocument(None, None), []
        expanded = _expansion(root)
        if expanded is not None:
            return None, [expanded]
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
