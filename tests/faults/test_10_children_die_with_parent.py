"""Issue 10, item 10: child processes die with their parent.

Found: SIGKILL of ``finops run`` left its parser process and multiprocessing's resource tracker
running (about 80 MB each, for ever); SIGKILL of ``finops ingest`` the same with its pool. A pool
worker waits on a queue whose both ends it holds, so nothing told it its parent was gone, and the
tracker stays while any process holds its pipe, the workers included.

Now each worker watches its parent and exits when it is gone; the tracker then reads the end of
its pipe, removes the pool's semaphores and exits. The test records the children of the real
process (walking /proc) before the SIGKILL and expects none of them alive a few seconds after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon_proc import DaemonProcess

_GONE_WITHIN_S = 5.0


def _stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a process, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0], fields[19]


def _children(parent: int) -> dict[int, tuple[str, str]]:
    """pid -> (start time, command line) of the processes whose parent is ``parent``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and stat[0] == parent:
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found[int(entry.name)] = (stat[2], command)
    return found


def _alive(pid: int, started: str) -> bool:
    """The same process (same start time, so not a reused pid), and not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[2] == started and stat[1] not in ("Z", "X")


def _wait_for_children(parent: int, timeout_s: float = 60) -> dict[int, tuple[str, str]]:
    """The parent's children once its pool worker and the resource tracker are both up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = _children(parent)
        commands = " | ".join(command for _, command in children.values())
        if "resource_tracker" in commands and "spawn_main" in commands:
            return children
        time.sleep(0.05)
    raise AssertionError(f"no pool worker and resource tracker under {parent}: {_children(parent)}")


def _assert_all_gone(children: dict[int, tuple[str, str]]) -> None:
    deadline = time.monotonic() + _GONE_WITHIN_S
    left = dict(children)
    while left and time.monotonic() < deadline:
        left = {pid: info for pid, info in left.items() if _alive(pid, info[0])}
        time.sleep(0.05)
    for pid, (started, _) in left.items():  # do not leave them to the next test
        if _alive(pid, started):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"still running {_GONE_WITHIN_S} s after their parent was killed: {left}"


def test_killing_finops_run_leaves_no_parser_process_or_tracker(tmp_path: Path, sqlite_url: str) -> None:
    proc = DaemonProcess(tmp_path, sqlite_url, FINOPS_INGEST_WORKERS="1").start()
    assert proc.proc is not None
    children = _wait_for_children(proc.proc.pid)  # the parser process starts with the daemon
    proc.stop(signal.SIGKILL)
    _assert_all_gone(children)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="finops ingest uses a parser process on 2+ cores only")
def test_killing_finops_ingest_leaves_no_worker_or_tracker(tmp_path: Path, sqlite_url: str) -> None:
    big = tmp_path / "usage.jsonl"  # over 32 MiB: ingest decodes it in a parser process
    line = (
        '{{"id": "req-{i}", "ts": "2026-11-03T10:{m:02d}:00Z", "provider": "openai", "model": "gpt-4o-mini", '
        '"flow": "support-gpt-en", "tags": {{"team": "support", "env": "prod"}}, "input_tokens": {n}, '
        '"output_tokens": 120, "note": "{pad}"}}\n'
    )
    pad = "x" * 120
    with big.open("w") as out:
        for i in range(140_000):
            out.write(line.format(i=i, m=i % 60, n=1000 + i % 500, pad=pad))
    assert big.stat().st_size > 32 * 1024 * 1024
    ingest = subprocess.Popen(
        [sys.executable, "-m", "finops", "ingest", str(big), "--db", sqlite_url, "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**os.environ, "FINOPS_INGEST_WORKERS": "1"},
    )
    try:
        children = _wait_for_children(ingest.pid)
        time.sleep(0.5)  # the worker is parsing batches
        assert ingest.poll() is None, "the ingest finished before it could be killed"
    finally:
        ingest.kill()
        ingest.wait(30)
    _assert_all_gone(children)
