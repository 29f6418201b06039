"""Parser processes that die with the process that started them.

A ``ProcessPoolExecutor`` worker waits on a queue whose two ends it holds itself, so when its
parent is killed (SIGKILL, the OOM killer) nothing ever tells it; and multiprocessing's resource
tracker stays while any process holds its pipe, the workers included. Both stayed for ever after a
killed ``finops run`` or ``finops ingest``, about 80 MB each. Here every worker starts a thread
that waits for its parent to end and then exits; once the workers are gone the tracker reads the
end of its pipe, removes the pool's semaphores and exits too. Nothing is left.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["process_pool"]

#: Where the parent cannot be waited on (no pidfd: not Linux 5.3+), how often to look for it.
_POLL_S = 0.2


def process_pool(
    workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> ProcessPoolExecutor:
    """``workers`` fresh interpreters (spawn: no inherited database handles or threads), each set
    up with ``initializer(*initargs)`` and gone soon after this process is, however it ends."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )


def _start_worker(parent: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    threading.Thread(target=_exit_with, args=(parent,), name="finops-parent-watch", daemon=True).start()
    initializer(*initargs)


def _exit_with(parent: int) -> None:
    """Return never: exit this process as soon as ``parent`` is no longer its parent."""
    try:
        handle: int | None = os.pidfd_open(parent)  # readable when the parent has ended
    except (AttributeError, OSError):
        handle = None
    if handle is not None and os.getppid() == parent:  # opened on the parent itself, not a reused pid
        select.select([handle], [], [])
    while os.getppid() == parent:
        time.sleep(_POLL_S)
    os._exit(1)  # not sys.exit: no clean-up that could wait on the dead parent
