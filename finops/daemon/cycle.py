"""The daemon's work besides HTTP: a cycle that re-reads budgets, evaluates them, delivers the
outbox and runs scheduled jobs; a poll loop for the providers' usage APIs.

Every step of a cycle is independent: one failing (Slack down, a provider 500) is logged and
counted, and the others still run. The cycle runs every FINOPS_CYCLE_S seconds, and at once
(coalesced) after an HTTP batch is stored, so budgets are checked right after spend arrives.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from finops.daemon.budget_watch import BudgetWatch
from finops.daemon.database_outage import DatabaseOutage, unavailable
from finops.daemon.http.auth import TokenTable
from finops.daemon.http.dashboard import ViewerAccess
from finops.daemon.http.metrics import Metrics
from finops.daemon.schedules import Job, default_jobs, owner_id, run_due
from finops.daemon.service import IngestService
from finops.errors import ConfigError
from finops.settings import Settings
from finops.storage.tables import alert_outbox, price_entries
from finops.usecases.admission import lapse_holds
from finops.usecases.alerts import Sender, deliver, evaluate_alerts
from finops.usecases.ledger import Ledger

__all__ = ["CycleReport", "Daemon", "Poller"]

log = logging.getLogger("finops.daemon")

#: A provider poller: polls once, returns a line for the log (raises on failure).
Poller = Callable[[Ledger, datetime], str]

#: After an HTTP batch, wait this long for more before evaluating (one evaluation per burst).
_COALESCE_S = 0.5
#: How often /metrics' counts of settled, released, lapsed and denied holds are refreshed.
_CLOSED_HOLDS_EVERY_S = 60.0
#: At shutdown, how long the last cycle waits for one still running.
_FINAL_WAIT_S = 5.0


@dataclass
class CycleReport:
    budgets: int = 0
    new_alerts: int = 0
    resolved: int = 0
    sent: int = 0
    failed: int = 0
    jobs: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    database_unavailable: int = 0  # steps that failed because the database could not serve


def _tokens(settings: Settings) -> TokenTable:
    try:
        tokens = settings.source_tokens()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    loopback = settings.host in ("127.0.0.1", "localhost", "::1")
    if not tokens and not loopback:
        raise ConfigError(
            f"FINOPS_INGEST_TOKENS is not set and the API would listen on {settings.host}: anyone who "
            "can reach it could send usage. Set FINOPS_INGEST_TOKENS=source=token,... or listen on "
            "127.0.0.1"
        )
    return TokenTable(tokens, anonymous=not tokens)


def _viewers(settings: Settings) -> ViewerAccess:
    try:
        tokens = settings.viewer_tokens()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    secure = (settings.public_url or "").lower().startswith("https://")
    return ViewerAccess(tokens, secure_cookie=secure, public_url=settings.public_url)


class Daemon:
    """The parts of ``finops run`` wired together; the HTTP server is added by app/serve.py."""

    def __init__(
        self,
        settings: Settings,
        *,
        sender: Sender | None = None,
        pollers: dict[str, Poller] | None = None,
        jobs: list[Job] | None = None,
        extra_jobs: tuple[Job, ...] = (),
        create: bool = False,
        budgets_optional: bool = False,
    ) -> None:
        """``budgets_optional``: the budget folder is the default one, not named by the operator, so
        a missing one means no budgets (until it is created) rather than an error."""
        self.settings = settings
        self.ledger = Ledger.open(settings, create=create)
        self.metrics = Metrics()
        self.tokens = _tokens(settings)
        self.viewers = _viewers(settings)
        self.budgets = BudgetWatch(self.ledger, settings.budgets_dir, optional=budgets_optional)
        self.wake = threading.Event()
        self._holds_counted_at = -_CLOSED_HOLDS_EVERY_S  # the first cycle counts everything
        self.stop = threading.Event()
        self.metrics.database_up.set(1)
        self.metrics.read_database_up.set(1)
        split = self.ledger.split

        def primary_changed(up: bool) -> None:
            self.metrics.database_up.set(int(up))
            if not split:  # reads go to the primary: the read gauge follows it
                self.metrics.read_database_up.set(int(up))

        self.outage = DatabaseOutage(on_change=primary_changed)
        read_outage = (
            DatabaseOutage(
                what="read database", on_change=lambda up: self.metrics.read_database_up.set(int(up))
            )
            if split
            else self.outage
        )
        self.service = IngestService(
            self.ledger, self.budgets, on_ingest=self.wake.set, outage=self.outage, read_outage=read_outage
        )
        self._sender = sender
        self._pollers = pollers if pollers is not None else {}
        self._jobs = jobs if jobs is not None else default_jobs(self.ledger, extra=extra_jobs)
        self._owner = owner_id()
        self._prices_seen: tuple[Any, ...] | None = None
        self._threads: list[threading.Thread] = []
        self._cycle_lock = threading.Lock()
        self.last_cycle_us: int | None = None
        self._slack_warned = False

    # ------------------------------------------------------------------ one cycle
    def _slack(self) -> Sender | None:
        if self._sender is None:
            s = self.settings
            if s.slack_bot_token is None and s.slack_webhook_url is None:
                if not self._slack_warned:
                    log.warning(
                        "Slack is not configured: alerts wait in the outbox until FINOPS_SLACK_BOT_TOKEN "
                        "or FINOPS_SLACK_WEBHOOK_URL is set"
                    )
                    self._slack_warned = True
                return None
            from finops.notify.slack import sender_for

            self._sender = sender_for(s)
        return self._sender

    def _step(self, report: CycleReport, name: str, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception as exc:  # one broken step never stops the others
            self.metrics.cycle_errors.labels(name).inc()
            if unavailable(exc):  # logged once per outage, not per step and cycle
                outage = self._outage_of()
                outage.failed(exc, writing=False)
                report.database_unavailable += 1
                report.errors.append(f"{name}: the {outage.what} is unavailable")
                return
            log.exception("cycle step failed", extra={"step": name})
            report.errors.append(f"{name}: {type(exc).__name__}: {exc}")

    def _outage_of(self) -> DatabaseOutage:
        """Which database a step found unavailable. With reads split off (a scheduled report reads
        the replica), the primary is asked: if it answers, the read database is the one out."""
        if not self.ledger.split:
            return self.outage
        try:
            with self.ledger.engine.connect() as conn:
                conn.execute(select(1))
        except Exception:  # the primary is out (too)
            return self.outage
        return self.service.read_outage

    def _prices_fingerprint(self) -> tuple[Any, ...]:
        with self.ledger.engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.min(price_entries.c.key), func.max(price_entries.c.key))
            ).one()
        overrides = self.settings.price_overrides
        stat = overrides.stat() if overrides is not None and overrides.exists() else None
        return (*row, stat.st_mtime_ns if stat else None, stat.st_size if stat else None)

    def _reload_prices_if_changed(self) -> None:
        """`finops prices import` or an edited override file apply without a restart."""
        seen = self._prices_fingerprint()
        if self._prices_seen is not None and seen != self._prices_seen:
            self.ledger.reload_prices()
            log.info("price book reloaded", extra={"imported_entries": seen[0]})
        self._prices_seen = seen

    def cycle(self, now: datetime | None = None, *, final: bool = False) -> CycleReport:
        """One pass: budgets, alerts, delivery, scheduled jobs. Safe to call from any thread.

        ``final`` (at shutdown): budgets are evaluated, so breaches of what was just stored are
        recorded with their alerts in the outbox; sending and scheduled jobs wait for the next start.
        """
        if not self._cycle_lock.acquire(timeout=_FINAL_WAIT_S if final else -1):
            log.warning("last cycle skipped: the previous one is still running (a slow Slack?)")
            return CycleReport(errors=["skipped: the previous cycle is still running"])
        try:
            return self._cycle(now, final)
        finally:
            self._cycle_lock.release()

    def _cycle(self, now: datetime | None, final: bool) -> CycleReport:
        started = time.perf_counter()
        now = now or datetime.now(UTC)
        report = CycleReport()
        self._step(report, "prices", self._reload_prices_if_changed)
        self._step(report, "budgets", self.budgets.refresh)
        found = self.budgets.current
        report.budgets = len(found.budgets)
        self.metrics.budgets.set(len(found.budgets))
        self.metrics.broken_budget_files.set(len(found.errors_by_file))

        def evaluate() -> None:
            if found.budgets:
                result = evaluate_alerts(self.ledger, found.budgets, now=now)
                report.new_alerts, report.resolved = len(result.new_alerts), len(result.resolved)

        self._step(report, "evaluate", evaluate)
        if not final:
            self._step(report, "schedules", lambda: report.jobs.extend(self._run_jobs(now)))
            self._step(report, "deliver", lambda: self._deliver(report))
            self._step(report, "holds", self._lapse_holds)
        self.metrics.cycles.inc()
        self.metrics.cycle_seconds.observe(time.perf_counter() - started)
        self.last_cycle_us = time.time_ns() // 1000
        if not report.database_unavailable:
            self.outage.succeeded(writing=False)
        news = report.new_alerts or report.sent or report.failed
        if news or len(report.errors) > report.database_unavailable:  # an outage has its own lines
            log.info(
                "cycle",
                extra={
                    "budgets": report.budgets,
                    "new_alerts": report.new_alerts,
                    "resolved": report.resolved,
                    "sent": report.sent,
                    "failed": report.failed,
                    "errors": report.errors,
                },
            )
        return report

    def _lapse_holds(self) -> None:
        """Open holds every cycle; the closed states (a scan of the whole table) once a minute."""
        closed = time.monotonic() - self._holds_counted_at >= _CLOSED_HOLDS_EVERY_S
        if closed:
            self._holds_counted_at = time.monotonic()
        for state, count in lapse_holds(self.ledger, closed=closed).items():
            self.metrics.holds.labels(state).set(count)

    def _run_jobs(self, now: datetime) -> list[tuple[str, str, str]]:
        return run_due(self.ledger, self._jobs, now=now, owner=self._owner)

    def _deliver(self, report: CycleReport) -> None:
        sender = self._slack()
        if sender is not None:
            result = deliver(self.ledger, sender, stop=self.stop.is_set)
            report.sent, report.failed = result.sent, result.failed
            self.metrics.alerts_sent.inc(result.sent)
            self.metrics.alerts_failed.inc(result.failed)
            for problem in result.problems:
                log.warning("alert not delivered", extra={"problem": problem})
        with self.ledger.engine.connect() as conn:
            pending = conn.scalar(
                select(func.count()).where(alert_outbox.c.status.in_(("pending", "sending")))
            )
        self.metrics.outbox_pending.set(int(pending or 0))

    # ------------------------------------------------------------------ polls
    def poll(self, now: datetime | None = None) -> list[str]:
        """Every configured provider poller once; a failing one is logged and the next still runs."""
        lines = []
        for name, poller in self._pollers.items():
            try:
                line = poller(self.ledger, now or datetime.now(UTC))
            except Exception as exc:  # the next poll retries from the persisted cursor
                self.metrics.poll_errors.labels(name).inc()
                if unavailable(exc):
                    self.outage.failed(exc, writing=False)
                    lines.append(f"{name}: failed: the database is unavailable")
                    continue
                log.warning("provider poll failed", extra={"provider": name, "error": str(exc)})
                lines.append(f"{name}: failed: {exc}")
                continue
            self.metrics.poll_success.labels(name).set(time.time())
            log.info("provider polled", extra={"provider": name, "result": line})
            lines.append(f"{name}: {line}")
        return lines

    # ------------------------------------------------------------------ threads
    def _cycle_loop(self) -> None:
        while not self.stop.is_set():
            woken = self.wake.wait(self.settings.cycle_s)
            if self.stop.is_set():
                break
            if woken:
                if self.stop.wait(_COALESCE_S):  # let a burst of batches land first
                    break  # stopping: the last cycle (shutdown) evaluates what landed
                self.wake.clear()
            self.cycle()

    def _poll_loop(self) -> None:
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(self.settings.poll_interval_s)

    def start(self) -> None:
        """Read budgets, warm up ingest, then start the cycle and poll threads."""
        self.budgets.refresh()
        self._prices_seen = self._prices_fingerprint()  # the book about to be loaded
        self.service.start()
        loops = [("finops-cycle", self._cycle_loop)]
        if self._pollers:
            loops.append(("finops-poll", self._poll_loop))
        for name, target in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the loops, run a last cycle (alerts for what was just stored), close the database."""
        self.stop.set()
        self.wake.set()
        for thread in self._threads:
            thread.join(timeout_s)  # a send in flight stays claimed; the next start checks Slack for it
        self._threads = []
        self.cycle(final=True)
        self.service.close()
        self.ledger.close()
