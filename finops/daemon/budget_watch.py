"""The daemon's budgets: re-read when a file in ``budgets/`` changes; a broken edit keeps the last good
version in force and its owner is told once per broken version of the file. Each file added, changed
or removed while the daemon watches is recorded as a ``budget`` annotation for the dashboard's charts
(the folder as first read is the baseline, not a change)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from finops.config.budget_files import file_fingerprint, files_digest
from finops.domain.annotations import BudgetFileVersion
from finops.domain.budgets import Budget
from finops.storage.alerts import enqueue
from finops.storage.db import write_transaction
from finops.usecases.annotations import budget_file_versions, record_budget_changes
from finops.usecases.budgets import BudgetsInForce, budgets_in_force
from finops.usecases.ledger import Ledger

__all__ = ["BudgetWatch"]

log = logging.getLogger("finops.budgets")


class BudgetWatch:
    """The budgets in force, swapped atomically: request threads read ``current`` without locks."""

    def __init__(self, ledger: Ledger, directory: Path, *, optional: bool = False) -> None:
        """``optional``: a folder missing at start means no budgets (said once) until it is created;
        otherwise (and once it has been read) a missing folder is an error and the budgets read
        last stay in force."""
        self._ledger = ledger
        self._directory = directory
        self._optional = optional
        self._digest: str | None = None
        self._lock = threading.Lock()  # one reload at a time
        self.current = BudgetsInForce((), (), False)
        self.reloads = 0
        self._versions: dict[str, BudgetFileVersion] | None = None  # None: not read yet

    @property
    def budgets(self) -> tuple[Budget, ...]:
        return self.current.budgets

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the files if they changed since the last read; ``True`` when they were re-read."""
        with self._lock:
            digest = files_digest(self._directory)
            if digest == self._digest and not force:
                return False
            if self._optional and self.reloads == 0 and not self._directory.is_dir():
                if self._digest is None:
                    log.warning(
                        f"no budgets folder at {self._directory}: running with no budgets; create it "
                        "(it is read within a cycle) or set FINOPS_BUDGETS_DIR",
                        extra={"budgets_dir": str(self._directory)},
                    )
                self._digest = digest
                self._versions = {}  # files that appear in it later are added
                return False
            found = budgets_in_force(self._ledger, self._directory)
            self.current = found
            self._digest = digest
            self.reloads += 1
            self._annotate_changes()
        log.info(
            "budgets loaded",
            extra={"budgets": len(found.budgets), "broken_files": sorted(found.errors_by_file)},
        )
        for message in found.messages:
            log.warning("budget file problem", extra={"problem": message})
        if found.errors_by_file:
            self._tell_owners(found)
        return True

    def _annotate_changes(self) -> None:
        """Record each file added, changed or removed since the last look (never fails the reload)."""
        before = self._versions
        try:
            after = budget_file_versions(self._directory, before)
            if before is not None:
                record_budget_changes(self._ledger, before, after, now=datetime.now(UTC))
        except Exception:  # the chart loses a marker; the budgets are in force all the same
            log.exception("could not record the budget file change as an annotation")
            return
        self._versions = after

    def _tell_owners(self, found: BudgetsInForce) -> None:
        """One Slack message per broken version of a file, to the channel of its last good budgets."""
        settings = self._ledger.settings
        now_us = time.time_ns() // 1000
        with write_transaction(self._ledger.engine) as conn:
            for name, errors in sorted(found.errors_by_file.items()):
                # read as budget files are: never through a link, never waiting on a FIFO
                version = file_fingerprint(Path(name) if Path(name).is_absolute() else self._directory / name)
                kept = found.kept_by_file.get(name, ())
                channel = next((b.slack_channel for b in kept if b.slack_channel), None)
                owners = sorted({b.owner for b in kept})
                n = f"{len(kept)} budget{'s' if len(kept) != 1 else ''}"
                state = (
                    f"its last good version ({n}) stays in force"
                    if kept
                    else "it was never read while valid, so its budgets are NOT enforced"
                )
                shown = "\n".join(f"• {e}" for e in errors[:10])
                more = f"\n…and {len(errors) - 10} more" if len(errors) > 10 else ""
                text = (
                    f"{' '.join(owners) + ': ' if owners else ''}budget file `{Path(name).name}` is broken; "
                    f"{state}. Fix it and save; finops re-reads it within a cycle "
                    f"(`finops budgets validate` checks it).\n{shown}{more}"
                )
                enqueue(
                    conn,
                    dedupe_key=f"budget-file:{Path(name).name}:{version[:16]}",
                    channel=channel or settings.slack_default_channel,
                    payload={"type": "message", "text": text, "blocks": []},
                    now_us=now_us,
                )
