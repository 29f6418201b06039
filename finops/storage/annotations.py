"""Chart annotations in the ``annotations`` table: stored once per ``annotation_id``, whoever writes
first (a retried post, or two replicas seeing the same budget file change)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from finops.domain.annotations import NewAnnotation
from finops.storage.sql import dialect_insert
from finops.storage.tables import annotation_events

__all__ = ["AnnotationConflict", "SavedAnnotations", "save_annotations"]


class AnnotationConflict(Exception):
    """An id already stored with another text, kind or flow: the sender reused an id by mistake."""

    def __init__(self, annotation: NewAnnotation) -> None:
        shown = annotation.given_id if annotation.given_id is not None else annotation.annotation_id
        super().__init__(
            f"id {shown!r} is already stored with another text, kind or flow: send a new id for a new event"
        )
        self.annotation = annotation


@dataclass(frozen=True)
class SavedAnnotations:
    stored: int
    duplicates: int


def save_annotations(
    conn: Connection, items: Sequence[NewAnnotation], *, source: str, now_us: int, strict: bool = True
) -> SavedAnnotations:
    """Insert each annotation not stored yet; one already stored with the same kind, text and flow is
    a duplicate (its time may differ: a retry without ``at`` is stamped later). Raises
    :class:`AnnotationConflict` for an id stored with different content (the caller rolls back);
    ``strict=False`` counts it as a duplicate instead (the first wording stays)."""
    a = annotation_events.c
    stored = duplicates = 0
    for item in items:
        insert = dialect_insert(conn, annotation_events).values(
            annotation_id=item.annotation_id,
            ts_us=int(item.at.timestamp() * 1_000_000),
            kind=item.kind,
            flow=item.flow,
            text=item.text,
            source=source,
            created_us=now_us,
        )
        inserted = insert.on_conflict_do_nothing(index_elements=["annotation_id"]).returning(a.id)
        if conn.execute(inserted).first() is not None:
            stored += 1
            continue
        row = conn.execute(select(a.kind, a.text, a.flow).where(a.annotation_id == item.annotation_id)).one()
        if strict and tuple(row) != (item.kind, item.text, item.flow):
            raise AnnotationConflict(item)
        duplicates += 1
    return SavedAnnotations(stored, duplicates)
