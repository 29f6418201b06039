"""Record the events drawn on the dashboard's charts: deploys and notes posted by CI
(``POST /v1/annotations``) and budget file changes seen by the daemon's watch."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from finops.domain.annotations import (
    AnnotationError,
    BudgetFileVersion,
    NewAnnotation,
    budget_file_annotations,
    covered_flows,
    parse_posted,
)
from finops.storage.annotations import AnnotationConflict, SavedAnnotations, save_annotations
from finops.storage.db import write_transaction
from finops.usecases.ledger import Ledger

__all__ = [
    "AnnotationConflict",
    "AnnotationError",
    "SavedAnnotations",
    "budget_file_versions",
    "post_annotations",
    "record_budget_changes",
]

#: Who "posted" the budget file annotations (the ``source`` column).
DAEMON_SOURCE = "finops"


def post_annotations(ledger: Ledger, docs: Sequence[Any], *, source: str, now: datetime) -> SavedAnnotations:
    """Check every posted object, then store them in one transaction (all or none).

    Raises :class:`AnnotationError` (the first bad object, its position named when several were
    sent) or :class:`AnnotationConflict` (an id reused with another text).
    """
    items: list[NewAnnotation] = []
    for index, doc in enumerate(docs):
        try:
            items.append(parse_posted(doc, source=source, now=now))
        except AnnotationError as exc:
            raise AnnotationError(f"annotation {index}: {exc}" if len(docs) > 1 else str(exc)) from None
    with write_transaction(ledger.engine) as conn:
        return save_annotations(conn, items, source=source, now_us=time.time_ns() // 1000)


def budget_file_versions(
    directory: Path, before: Mapping[str, BudgetFileVersion] | None = None
) -> dict[str, BudgetFileVersion]:
    """Each budget file's version now (name -> digest and flows); a file whose digest is unchanged
    since ``before`` keeps its flows without being parsed again."""
    from finops.config.budget_files import load_budget_file
    from finops.config.budget_folder import budget_paths, read_budget_bytes

    if not directory.is_dir():
        return {}
    found = {}
    for path in budget_paths(directory):
        raw = read_budget_bytes(path)
        digest = hashlib.sha256(raw if isinstance(raw, bytes) else f"not read: {raw}".encode()).hexdigest()
        known = (before or {}).get(path.name)
        if known is not None and known.digest == digest:
            found[path.name] = known
            continue
        located, problems = load_budget_file(path)
        if problems:  # a broken version: which flows it meant is not known
            found[path.name] = BudgetFileVersion(digest)
            continue
        flows, every = covered_flows(lb.budget for lb in located)
        found[path.name] = BudgetFileVersion(digest, flows, every)
    return found


def record_budget_changes(
    ledger: Ledger,
    before: Mapping[str, BudgetFileVersion],
    after: Mapping[str, BudgetFileVersion],
    *,
    now: datetime,
) -> SavedAnnotations:
    """Store one ``budget`` annotation per file added, changed or removed (once across replicas)."""
    items = budget_file_annotations(before, after, now=now)
    if not items:
        return SavedAnnotations(0, 0)
    with write_transaction(ledger.engine) as conn:
        # a file back at a version annotated before (removed and restored) keeps the first wording
        return save_annotations(
            conn, items, source=DAEMON_SOURCE, now_us=time.time_ns() // 1000, strict=False
        )
