"""The page envelope both providers share: ``data`` (buckets), ``has_more``, ``next_page``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from finops.errors import IngestError

__all__ = ["envelope"]


def envelope(doc: Mapping[str, Any], where: str) -> tuple[list[dict[str, Any]], bool, str | None]:
    """The buckets and the next-page cursor; a page that lost its shape is an error, never "no usage".

    ``has_more`` without a ``next_page`` would loop or silently stop early, so it is refused too.
    """
    data = doc.get("data")
    has_more = doc.get("has_more")
    if not isinstance(data, list) or not isinstance(has_more, bool):
        raise IngestError(
            f"{where}: the answer has no `data` list or `has_more` flag; is the base URL right?"
        )
    next_page = doc.get("next_page")
    if next_page is not None and not isinstance(next_page, str):
        raise IngestError(f"{where}: next_page is {next_page!r}, expected a string")
    if has_more and not next_page:
        raise IngestError(f"{where}: has_more is true but next_page is empty")
    for bucket in data:
        if not isinstance(bucket, dict) or not isinstance(bucket.get("results", []), list):
            raise IngestError(f"{where}: a bucket is not an object with a `results` list")
    return data, has_more, next_page or None
