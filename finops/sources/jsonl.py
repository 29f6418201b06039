"""JSONL sources: files and directories, plain or gzip, read as a stream of lines.

Memory stays flat whatever the file size: one line at a time, never the file.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from finops.errors import IngestError

__all__ = ["Line", "expand_paths", "ndjson_lines", "read_lines"]

_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a file, with its 1-based number."""

    path: str
    number: int
    text: str


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given; directories as their ``*.jsonl[.gz]`` files, recursively, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(_SUFFIXES))
            if not found:
                raise IngestError(f"{path}: no .jsonl or .jsonl.gz files in this directory")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise IngestError(f"{path}: no such file or directory")
    return files


def read_lines(path: Path, *, on_bytes: Callable[[int], None] | None = None) -> Iterator[Line]:
    """Yield the non-blank lines of a file; gzip is detected by its magic bytes, not its name.

    ``on_bytes`` is told how many bytes of the file on disk were consumed (for a progress bar).
    """
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise IngestError(f"{path}: cannot open: {exc.strerror}") from None
    with raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw) if gzipped else raw
        last = 0
        try:
            for number, data in enumerate(stream, start=1):
                if on_bytes is not None and number % 1024 == 0:
                    pos = raw.tell()
                    on_bytes(pos - last)
                    last = pos
                text = data.decode("utf-8", errors="replace").strip()
                if text:
                    yield Line(str(path), number, text)
        except (OSError, EOFError) as exc:
            raise IngestError(f"{path}: unreadable after line {number}: {exc}") from None
        if on_bytes is not None:
            on_bytes(raw.tell() - last)


def ndjson_lines(body: bytes) -> list[str]:
    """A posted NDJSON body's lines: split on newline bytes only (U+2028 may appear raw inside a
    JSON string, and str.splitlines would cut the record there)."""
    return [line.decode("utf-8", "replace").removesuffix("\r") for line in body.split(b"\n")]
