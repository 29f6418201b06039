"""The schema, as SQLAlchemy Core tables. Every change here needs an Alembic migration.

Units: money is integer nano-dollars (``*_nanos``, 1e-9 USD); times are integer
microseconds since the Unix epoch, UTC (``*_us``); rollup buckets are the UTC
hour's start in epoch seconds (``hour``). Integers compare, sum and index the
same way on SQLite and PostgreSQL and never lose a unit.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "CONTENT_COLUMNS",
    "PROMPT_KEYS",
    "PROMPT_SUMS",
    "ROLLUP_DAILY_KEYS",
    "ROLLUP_KEYS",
    "ROLLUP_SUMS",
    "USAGE_COLUMNS",
    "alert_outbox",
    "budget_breaches",
    "budget_file_snapshots",
    "dead_letters",
    "meta",
    "metadata",
    "outcome_links",
    "outcomes",
    "poller_cursors",
    "price_entries",
    "price_versions",
    "prompt_rollups_daily",
    "prompts",
    "provider_costs",
    "provider_usage",
    "rollups_daily",
    "rollups_hourly",
    "schedule_runs",
    "usage_records",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint identity.
_Id = BigInteger().with_variant(Integer(), "sqlite")

meta = Table(
    "finops_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

usage_records = Table(
    "usage_records",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("source", String(128), nullable=False),
    Column("record_id", String(256), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("hour", BigInteger, nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("flow", String(128), nullable=False),
    Column("tags", Text, nullable=False),  # canonical JSON object, "{}" when none
    Column("service_tier", String(16), nullable=False),
    Column("status", String(8), nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("cache_write_1h_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger, nullable=True),  # NULL: unpriced, never $0
    Column("price_version", String(32), nullable=True),
    Column("prompt_id", String(512), nullable=True),
    Column("user_hash", String(32), nullable=True),
    Column("trace_id", String(512), nullable=True),
    Column("session_id", String(512), nullable=True),
    Column("latency_ms", BigInteger, nullable=True),
    Column("tool_calls", BigInteger, nullable=True),
    Column("ingested_us", BigInteger, nullable=False),
    UniqueConstraint("source", "record_id"),
    Index(None, "ts_us"),
    # outcomes link to usage by request id, else trace, else session id. Both are partial
    # (WHERE ... IS NOT NULL) on PostgreSQL too, as migration 0003 creates them; the
    # `postgresql_where` is not repeated here because naming it imports the PostgreSQL
    # dialect into every command (~80 ms of a SQLite `finops spend`).
    Index(None, "record_id"),
    Index(None, "trace_id", sqlite_where=text("trace_id IS NOT NULL")),
    Index(None, "session_id", sqlite_where=text("session_id IS NOT NULL")),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(32), nullable=False, unique=True),
    Column("source", String(128), nullable=False),
    Column("location", String(1024), nullable=False),
    Column("line", BigInteger, nullable=True),
    Column("record_id", String(256), nullable=True),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False),  # the input's keyed digest, never its text (name kept)
    Column("created_us", BigInteger, nullable=False),
)

price_entries = Table(
    "price_entries",
    metadata,
    Column("key", String(32), primary_key=True),
    Column("layer", String(16), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("source", Text, nullable=False),
    Column("body", Text, nullable=False),  # the entry in file shape, JSON, USD per million tokens
    Column("created_us", BigInteger, nullable=False),
    Index(None, "provider", "model"),
)

price_versions = Table(
    "price_versions",
    metadata,
    Column("version", String(32), primary_key=True),
    Column("layer", String(16), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(256), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("source", Text, nullable=False),
    Column("discount", Text, nullable=True),
    Column("body", Text, nullable=False),
    Column("first_used_us", BigInteger, nullable=False),
)

#: The order of a usage row as the ledger writes it (a tuple, for speed).
USAGE_COLUMNS = (
    "source",
    "record_id",
    "ts_us",
    "hour",
    "provider",
    "model",
    "flow",
    "tags",
    "service_tier",
    "status",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "price_version",
    "prompt_id",
    "user_hash",
    "trace_id",
    "session_id",
    "latency_ms",
    "tool_calls",
    "ingested_us",
)
#: What the sender said: equal content under the same id is a duplicate, else a conflict.
CONTENT_COLUMNS = tuple(
    c for c in USAGE_COLUMNS if c not in ("source", "hour", "cost_nanos", "price_version", "ingested_us")
)

ROLLUP_KEYS = ("hour", "flow", "provider", "model", "service_tier", "status", "tags")
ROLLUP_SUMS = (
    "records",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "cache_write_1h_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_nanos",
    "unpriced_records",
    "unpriced_requests",
)

#: Daily buckets (``day``: the UTC day's start in epoch seconds) of the same sums, so a month
#: or a year is read from ~30 or ~365 buckets per key instead of 24 times as many.
ROLLUP_DAILY_KEYS = ("day", *ROLLUP_KEYS[1:])


def _rollup_table(name: str, bucket: str) -> Table:
    """The hourly and daily rollups share their shape; only the time bucket differs."""
    return Table(
        name,
        metadata,
        Column("id", _Id, primary_key=True, autoincrement=True),
        Column(bucket, BigInteger, nullable=False),
        Column("flow", String(128), nullable=False),
        Column("provider", String(64), nullable=False),
        Column("model", String(200), nullable=False),
        Column("service_tier", String(16), nullable=False),
        Column("status", String(8), nullable=False),
        Column("tags", Text, nullable=False),
        *(Column(sum_name, BigInteger, nullable=False) for sum_name in ROLLUP_SUMS),
        UniqueConstraint(bucket, *ROLLUP_KEYS[1:], name=f"uq_{name}_key"),
    )


rollups_hourly = _rollup_table("rollups_hourly", "hour")
rollups_daily = _rollup_table("rollups_daily", "day")

budget_breaches = Table(
    "budget_breaches",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("budget_key", String(200), nullable=False),
    Column("kind", String(24), nullable=False),  # threshold | fanout | cost_per_success
    Column("period", String(16), nullable=False),  # local day 2026-11-03 or month 2026-11
    Column("threshold", String(16), nullable=False),  # "0.8"; "" where a kind has none
    Column("spend_nanos", BigInteger, nullable=False),
    Column("cap_nanos", BigInteger, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("resolved_us", BigInteger, nullable=True),
    UniqueConstraint("budget_key", "kind", "period", "threshold", name="uq_budget_breaches_once"),
)

alert_outbox = Table(
    "alert_outbox",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(300), nullable=False, unique=True),
    Column("channel", String(200), nullable=True),
    Column("payload", Text, nullable=False),  # the AlertMessage as JSON
    # pending | sending | sent | failed | ambiguous | dismissed
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False),  # claims so far; the current claim's number
    Column("next_attempt_us", BigInteger, nullable=False),  # pending: next send; ambiguous: lookup
    Column("claimed_us", BigInteger, nullable=True),
    Column("lease_until_us", BigInteger, nullable=True),  # sending: the claim ends then
    Column("last_error", Text, nullable=True),
    Column("slack_ts", String(64), nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index(None, "status", "next_attempt_us"),
)

budget_file_snapshots = Table(
    "budget_file_snapshots",
    metadata,
    Column("file", String(1024), primary_key=True),  # the file's name inside the budgets directory
    Column("budgets", Text, nullable=False),  # JSON list of budgets as last validated
    Column("saved_us", BigInteger, nullable=False),
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("source", String(128), nullable=False),
    Column("outcome_id", String(256), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("flow", String(128), nullable=True),  # as sent
    Column("linked_flow", String(128), nullable=True),  # the flow of the linked usage
    Column("status", String(8), nullable=False),  # success | partial | failure
    Column("event", String(128), nullable=True),
    Column("value_nanos", BigInteger, nullable=True),
    Column("request_ids", Text, nullable=False),  # JSON list
    Column("trace_id", String(512), nullable=True),
    Column("session_id", String(512), nullable=True),
    Column("linked", Integer, nullable=False),  # usage records linked so far
    Column("ingested_us", BigInteger, nullable=False),
    UniqueConstraint("source", "outcome_id"),
    Index(None, "ts_us"),
)

outcome_links = Table(
    "outcome_links",
    metadata,
    Column("outcome", BigInteger, primary_key=True),  # outcomes.id
    Column("usage", BigInteger, primary_key=True),  # usage_records.id
    Index(None, "usage"),
)

PROMPT_KEYS = ("day", "prompt_id", "flow", "provider", "model")
PROMPT_SUMS = (
    "records",
    "requests",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "cost_nanos",
    "unpriced_records",
)

#: Spend per day, prompt, flow and model: the prompt audit reads ~1 row per prompt a day.
prompt_rollups_daily = Table(
    "prompt_rollups_daily",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("day", BigInteger, nullable=False),
    Column("prompt_id", String(512), nullable=False),  # "" for usage without a prompt
    Column("flow", String(128), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cost_nanos", BigInteger, nullable=False),
    Column("unpriced_records", BigInteger, nullable=False),
    UniqueConstraint("day", "prompt_id", "flow", "provider", "model", name="uq_prompt_rollups_daily_key"),
)

prompts = Table(
    "prompts",
    metadata,
    Column("prompt_id", String(512), primary_key=True),
    Column("first_seen_us", BigInteger, nullable=False),
    Column("preview", Text, nullable=True),  # redacted, only when the operator opted in
    Column("prompt_tokens", BigInteger, nullable=True),  # counted with tiktoken, or estimated
    Column("tokens_estimated", Integer, nullable=True),
)

# --- issue 5: the daemon -------------------------------------------------------------------

#: What a provider's usage API reported, one row per bucket and group (model, project, key, tier).
#: Kept beside the ledger, never in it: a bucket sums calls the ledger may already hold one by one.
provider_usage = Table(
    "provider_usage",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),  # openai | anthropic
    Column("bucket_start_us", BigInteger, nullable=False),
    Column("bucket_end_us", BigInteger, nullable=False),
    Column("group_key", String(512), nullable=False),  # canonical "k=v|k=v" of the group-by values
    Column("model", String(200), nullable=True),
    Column("project", String(256), nullable=True),
    Column("service_tier", String(16), nullable=True),
    Column("requests", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),  # inclusive, as docs/design.md §2 counts
    Column("cached_input_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("cache_write_1h_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("fetched_us", BigInteger, nullable=False),
    UniqueConstraint("provider", "bucket_start_us", "group_key", name="uq_provider_usage_key"),
)

#: What a provider's cost API billed, one row per bucket (a UTC day) and line item.
provider_costs = Table(
    "provider_costs",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("bucket_start_us", BigInteger, nullable=False),
    Column("bucket_end_us", BigInteger, nullable=False),
    Column("group_key", String(512), nullable=False),
    Column("line_item", String(256), nullable=True),
    Column("model", String(200), nullable=True),
    Column("project", String(256), nullable=True),
    Column("amount_nanos", BigInteger, nullable=False),  # converted exactly from the provider's decimal
    Column("currency", String(8), nullable=False),
    Column("fetched_us", BigInteger, nullable=False),
    UniqueConstraint("provider", "bucket_start_us", "group_key", name="uq_provider_costs_key"),
)

#: Where each poller is up to: a restart neither skips nor repeats a bucket.
poller_cursors = Table(
    "poller_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("cursor", Text, nullable=False),  # JSON, the poller's own shape
    Column("updated_us", BigInteger, nullable=False),
)

#: One row per scheduled job and period: a replica claims it before running, so a job runs once.
schedule_runs = Table(
    "schedule_runs",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("period", String(32), primary_key=True),  # e.g. 2026-11-22, 2026-11
    Column("owner", String(128), nullable=False),  # host:pid of the replica that claimed it
    Column("claimed_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Column("result", Text, nullable=True),
)

#: One row per budget that admission control may hold money against: a reserve locks its
#: budgets' rows (in key order) before it reads spend and holds, so two replicas never hand out
#: holds that together pass a cap. A settlement takes the same locks before it swaps a hold for
#: the actual cost.
budget_locks = Table(
    "budget_locks",
    metadata,
    Column("budget_key", String(300), primary_key=True),
)

#: Money held for a call in flight, from `reserve` until the call's usage settles it, a client
#: releases it, or it lapses at `expires_us`. Denials are kept too, so a retried request_id
#: gets the same answer.
reservations = Table(
    "reservations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("source", String(128), nullable=False),
    Column("request_id", String(256), nullable=True),
    Column("flow", String(128), nullable=False),
    Column("tags", Text, nullable=False),  # canonical JSON object
    Column("estimate_nanos", BigInteger, nullable=False),
    Column("status", String(10), nullable=False),  # open | settled | released | lapsed | denied
    Column("answer", Text, nullable=False),  # the JSON answer given, for an idempotent retry
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("closed_us", BigInteger, nullable=True),  # when settled, released or marked lapsed
    Column("cost_nanos", BigInteger, nullable=True),  # the settling usage's cost (NULL: unpriced)
    Column("record_id", String(256), nullable=True),  # the settling usage record
    UniqueConstraint("source", "request_id"),
    Index(None, "status", "expires_us"),
)

#: Which budgets an open (or lapsed) hold counts against (those covering its flow and tags then),
#: with its estimate and expiry, so a budget's holds are one index range whatever its history.
#: A hold's links are deleted when it is settled or released (migration 0009).
reservation_budgets = Table(
    "reservation_budgets",
    metadata,
    Column("reservation_id", String(40), primary_key=True),
    Column("budget_key", String(300), primary_key=True),
    Column("estimate_nanos", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Index(None, "budget_key", "expires_us"),
)

#: The newest usage of each source (its records' newest ``ts_us`` and when it last sent), kept by
#: every ingest in the batch's transaction so the dashboard's freshness tiles never scan usage.
source_activity = Table(
    "source_activity",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("newest_ts_us", BigInteger, nullable=False),
    Column("last_ingest_us", BigInteger, nullable=False),
)

#: Events drawn on the dashboard's time charts: deploys posted by CI (``POST /v1/annotations``)
#: and budget file changes seen by the daemon. ``annotation_id`` makes a retried post count once.
annotation_events = Table(
    "annotations",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("annotation_id", String(256), nullable=False, unique=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # deploy | budget | note
    Column("flow", String(128), nullable=True),  # NULL: every flow
    Column("text", String(500), nullable=False),
    Column("source", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Index(None, "ts_us"),
)
