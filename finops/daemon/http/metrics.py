"""Prometheus metrics of one daemon, in its own registry (tests run several in one process)."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

__all__ = ["Metrics"]

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the output and nobody graphs them


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "finops_http_requests", "HTTP requests by route and status.", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "finops_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.records = Counter(
            "finops_ingest_records",
            "Records received over HTTP by kind (usage, outcome) and result (stored, duplicate, rejected).",
            ["kind", "result"],
            registry=r,
        )
        self.unpriced = Counter(
            "finops_unpriced_records", "Stored usage records without a price (unknown model).", registry=r
        )
        self.cycles = Counter("finops_cycles", "Daemon cycles run.", registry=r)
        self.cycle_errors = Counter(
            "finops_cycle_errors", "Errors in daemon cycle steps, by step.", ["step"], registry=r
        )
        self.cycle_seconds = Histogram(
            "finops_cycle_seconds",
            "Duration of one daemon cycle (budgets, alerts, schedules).",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60),
            registry=r,
        )
        self.alerts_sent = Counter("finops_alerts_sent", "Slack messages delivered.", registry=r)
        self.alerts_failed = Counter("finops_alerts_failed", "Slack messages given up on.", registry=r)
        self.outbox_pending = Gauge(
            "finops_outbox_pending", "Messages waiting in the outbox after the last cycle.", registry=r
        )
        self.budgets = Gauge("finops_budgets_in_force", "Budgets enforced now.", registry=r)
        self.broken_budget_files = Gauge(
            "finops_budget_files_broken", "Budget files that do not validate (last good kept).", registry=r
        )
        self.poll_success = Gauge(
            "finops_provider_poll_last_success_timestamp_seconds",
            "When a provider's usage was last polled successfully.",
            ["provider"],
            registry=r,
        )
        self.database_up = Gauge(
            "finops_database_up", "1 while the database serves, 0 during an outage (503s).", registry=r
        )
        self.read_database_up = Gauge(
            "finops_read_database_up",
            "1 while the read database (FINOPS_READ_DATABASE_URL) serves, 0 during its outage (dashboard, "
            "spend and export answer 503); without one it follows finops_database_up.",
            registry=r,
        )
        self.read_replay_age = Gauge(
            "finops_read_database_replay_age_seconds",
            "Seconds since the read database (a streaming standby) last replayed a commit, as of the "
            "last /healthz; NaN when unknown. An upper bound of its lag: it grows while the primary is idle.",
            registry=r,
        )
        self.read_replay_age.set(float("nan"))  # unknown until /healthz asks
        self.reservations = Counter(
            "finops_reservations", "Reserve answers, by decision (allow | deny).", ["decision"], registry=r
        )
        self.holds = Gauge(
            "finops_holds",
            "Reservations by state after the last cycle: open (holding money), lapsed, settled, released.",
            ["state"],
            registry=r,
        )
        self.poll_errors = Counter(
            "finops_provider_poll_errors", "Failed provider polls.", ["provider"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
