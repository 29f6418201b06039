"""JSONL sources: files and directories, plain or gzip, read as a stream of lines.

Memory stays flat whatever the file size: one line at a time, never the file.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from finops.errors import IngestError

__all__ = ["Line", "UnreadableInput", "expand_paths", "ndjson_lines", "read_lines"]

_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a file, with its 1-based number."""

    path: str
    number: int
    text: str


class UnreadableInput(IngestError):
    """A file stopped being readable part way (a truncated or corrupt gzip, a disk error): the
    lines before it were read; ``after_line`` is the last of them."""

    def __init__(self, path: Path, after_line: int, why: str, *, truncated: bool) -> None:
        self.path, self.after_line, self.why, self.truncated = path, after_line, why, truncated
        state = "is truncated" if truncated else f"cannot be read ({why})"
        super().__init__(f"{path} {state} after line {after_line}")


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
        last = number = 0
        name = str(path)  # one string for every line: pickled once per batch sent to a parser
        try:
            for number, data in enumerate(stream, start=1):
                if on_bytes is not None and number % 1024 == 0:
                    pos = raw.tell()
                    on_bytes(pos - last)
                    last = pos
                text = data.decode("utf-8", errors="replace").strip()
                if text:
                    yield Line(name, number, text)
        except EOFError:  # gzip: the stream ends before its end marker
            raise UnreadableInput(path, number, "truncated", truncated=True) from None
        except (OSError, zlib.error) as exc:
            raise UnreadableInput(path, number, str(exc), truncated=False) from None
        if on_bytes is not None:
            on_bytes(raw.tell() - last)


def ndjson_lines(body: bytes) -> list[str]:
    """A posted NDJSON body's lines: split on newline bytes only (U+2028 may appear raw inside a
    JSON string, and str.splitlines would cut the record there)."""
    return [line.decode("utf-8", "replace").removesuffix("\r") for line in body.split(b"\n")]
