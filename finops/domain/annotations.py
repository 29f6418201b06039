"""What an annotation posted to ``POST /v1/annotations`` may say, and the stable ids that make a
retried post, or a budget file change seen by two replicas, count once. Pure: the clock is passed in.

A posted annotation: ``{"id"?, "at"?, "kind"? ("deploy" | "note"), "text", "flow"?}``. Every
problem is an :class:`AnnotationError` whose one-line message names the field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from finops.domain.budgets import WILDCARDS, Budget
from finops.domain.text import TextError, check_name

__all__ = [
    "FIELDS",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "POSTED_KINDS",
    "AnnotationError",
    "BudgetFileVersion",
    "NewAnnotation",
    "budget_change_id",
    "budget_file_annotations",
    "covered_flows",
    "parse_posted",
]

POSTED_KINDS = ("deploy", "note")
FIELDS = ("id", "at", "kind", "text", "flow")
MAX_TEXT_CHARS = 500
#: Stored as ``posted:<id>`` in a 256-character column.
MAX_ID_CHARS = 200
MAX_FLOW_CHARS = 128
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class AnnotationError(ValueError):
    """A posted annotation that cannot be kept; the message names the field and what to send."""


@dataclass(frozen=True)
class NewAnnotation:
    """An annotation to store: ``annotation_id`` is its stable identity (the same event, the same id)."""

    annotation_id: str
    at: datetime  # UTC
    kind: str
    text: str
    flow: str | None
    given_id: str | None = None  # the id as the sender gave it (None: derived)


def _string(doc: Mapping[str, Any], name: str, limit: int, hint: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AnnotationError(f"{name} takes a string: {hint}")
    try:
        return check_name(value, name, limit)
    except TextError as exc:
        raise AnnotationError(f"{exc}: {hint}") from None


def _at(value: Any, now: datetime) -> datetime:
    if value is None:
        return now.astimezone(UTC)
    if not isinstance(value, str):
        raise AnnotationError('at takes an ISO 8601 time as a string: "2026-11-03T14:05:00Z"')
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise AnnotationError(
            f'at is not an ISO 8601 time ({value[:40]!r}): send "2026-11-03T14:05:00Z"'
        ) from None
    if parsed.tzinfo is None:
        raise AnnotationError('at has no time zone: send "2026-11-03T14:05:00Z" or an offset like +01:00')
    try:
        at = parsed.astimezone(UTC)
    except OverflowError:
        at = _EARLIEST - timedelta(days=1)
    if not _EARLIEST <= at < _LATEST:
        raise AnnotationError("at must be from 1970-01-01 to 2200-01-01")
    return at


def _derived_id(source: str, at: datetime, kind: str, flow: str | None, text: str) -> str:
    """The same (source, time, kind, flow, text) always gets the same id: a replay counts once."""
    parts = (source, at.isoformat(), kind, flow if flow is not None else "\0", text)
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return f"digest:{digest}"


def parse_posted(doc: Any, *, source: str, now: datetime) -> NewAnnotation:
    """One posted annotation, checked field by field (``now``: the time when ``at`` is left out)."""
    if not isinstance(doc, dict):
        raise AnnotationError('an annotation is a JSON object: {"text": "deployed v1.2", "kind": "deploy"}')
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise AnnotationError(f"unknown field {unknown[0][:40]!r}; known: {', '.join(FIELDS)}")
    given = _string(doc, "id", MAX_ID_CHARS, f"a stable id of at most {MAX_ID_CHARS} characters")
    kind = doc.get("kind", "deploy")
    if kind not in POSTED_KINDS:
        raise AnnotationError(f"kind must be one of {', '.join(POSTED_KINDS)}, got {str(kind)[:40]!r}")
    if doc.get("text") is None:
        raise AnnotationError(f"text is required: what happened, at most {MAX_TEXT_CHARS} characters")
    text = _string(
        doc, "text", MAX_TEXT_CHARS, f"what happened, at most {MAX_TEXT_CHARS} printable characters"
    )
    assert text is not None
    flow = _string(doc, "flow", MAX_FLOW_CHARS, "the flow's name, or leave it out for every flow")
    at = _at(doc.get("at"), now)
    annotation_id = f"posted:{given}" if given is not None else _derived_id(source, at, kind, flow, text)
    return NewAnnotation(annotation_id, at, kind, text, flow, given)


def budget_change_id(file: str, content_digest: str) -> str:
    """The id of one budget file change: every replica watching the same file agrees on it."""
    return f"budget-file:{file[:160]}:{content_digest[:32]}"


@dataclass(frozen=True)
class BudgetFileVersion:
    """One version of a budget file: a digest of what it holds, and the flows its budgets name.

    ``flows``: the flows named exactly (a ``flow``, or a ``match`` glob without wildcards);
    ``every_flow_known``: no budget of the file matches by a glob (and the file could be read).
    """

    digest: str
    flows: tuple[str, ...] = ()
    every_flow_known: bool = False


def covered_flows(budgets: Iterable[Budget]) -> tuple[tuple[str, ...], bool]:
    """The flows ``budgets`` name exactly, sorted, and whether those are all they cover."""
    flows: set[str] = set()
    known = True
    for budget in budgets:
        pattern = budget.flow_pattern
        if any(c in pattern for c in WILDCARDS):
            known = False
        else:
            flows.add(pattern)
    return tuple(sorted(flows)), known


def _change_text(name: str, what: str, version: BudgetFileVersion) -> str:
    shown = ", ".join(version.flows)
    if len(shown) > 300:
        shown = shown[:299] + "…"
    if version.flows:
        noun = "flow" if len(version.flows) == 1 else "flows"
        more = "" if version.every_flow_known else " and flows matched by a glob"
        return f"budget file {name[:150]} {what} ({noun}: {shown}{more})"
    return f"budget file {name[:150]} {what}"


def budget_file_annotations(
    before: Mapping[str, BudgetFileVersion], after: Mapping[str, BudgetFileVersion], *, now: datetime
) -> list[NewAnnotation]:
    """One ``budget`` annotation per file added, changed or removed between two looks at the folder.

    The id is the file's name and the digest of what it now holds (of what it held, for a removal),
    so replicas watching the same files store each change once. A file that goes back to a version
    already annotated is not annotated again (its id is taken). The flow is the one flow the file's
    budgets cover when that is known; otherwise ``None`` (every flow) with the flows in the text.
    """
    found = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old is not None and new is not None and old.digest == new.digest:
            continue
        if new is None:
            assert old is not None
            version, what, key = old, "removed", "removed-" + old.digest
        else:
            version, what, key = new, "added" if old is None else "changed", new.digest
        one = version.flows[0] if version.every_flow_known and len(version.flows) == 1 else None
        found.append(
            NewAnnotation(
                budget_change_id(name, key),
                now.astimezone(UTC),
                "budget",
                _change_text(name, what, version),
                one,
            )
        )
    return found
