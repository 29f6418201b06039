"""The budget folder as files: which entries count, how each is read, and a digest of them all.

Apart from ``budget_files`` (which parses and validates) so that a command can tell whether
the folder changed since finops last validated it without loading YAML or pydantic.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path

__all__ = ["MAX_BYTES", "SUFFIXES", "SYMLINK", "budget_paths", "folder_digest", "read_budget_bytes"]

SUFFIXES = (".yaml", ".yml")
SYMLINK = "is a symlink; budget files must be regular files in the folder"
#: A budget file is a few dozen lines; a megabyte is a mistake (or an attack on the daemon).
MAX_BYTES = 1 << 20


def _not_regular(mode: int) -> str | None:
    """Why an entry of this type is not read (None: a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return SYMLINK
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a device file"),
        (stat.S_ISBLK, "a device file"),
    ):
        if test(mode):
            return f"is {kind}, not a regular file"
    return "is not a regular file"


def read_budget_bytes(path: Path) -> bytes | str:
    """The bytes of a regular file directly at ``path`` (at most ``MAX_BYTES`` + 1), or why not.

    ``lstat`` decides before anything is opened; the open neither follows a link nor waits
    (a FIFO swapped in after the ``lstat``), and ``fstat`` checks what was actually opened.
    """
    try:
        why = _not_regular(os.lstat(path).st_mode)
    except OSError as exc:
        return f"cannot read this file: {exc.strerror or exc}"
    if why is not None:
        return why
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return SYMLINK if exc.errno == errno.ELOOP else f"cannot read this file: {exc.strerror or exc}"
    try:
        why = _not_regular(os.fstat(fd).st_mode)
        if why is not None:
            return why
        chunks, size = [], 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError as exc:
        return f"cannot read this file: {exc.strerror or exc}"
    finally:
        os.close(fd)


def budget_paths(directory: Path) -> list[Path]:
    """Entries named ``*.yaml`` or ``*.yml`` directly in ``directory``, by name, whatever their type
    (each is then read or reported); hidden and editor files skipped. Nothing is followed or opened."""
    return sorted(
        p for p in directory.iterdir() if p.suffix in SUFFIXES and not p.name.startswith((".", "#"))
    )


def folder_digest(directory: Path) -> str:
    """A hash of the folder's absolute path, its entries' names and what each holds (or why it
    is not read): equal digests mean `load_budget_dir` would read exactly the same thing."""
    digest = hashlib.sha256(str(directory.absolute()).encode() + b"\0")
    if not directory.is_dir():
        return digest.hexdigest() + "-missing"
    for path in budget_paths(directory):
        raw = read_budget_bytes(path)
        body = raw if isinstance(raw, bytes) else f"not read: {raw}".encode()
        digest.update(f"{path.name}\0{len(body)}\0".encode() + hashlib.sha256(body).digest())
    return digest.hexdigest()
